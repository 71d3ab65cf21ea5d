// Requests (commands and queries) and their replies: the language of the
// sequencer. The RPC and HTTP edges translate to and from these types; the
// machine (ledger/machine.h) executes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ledger/machine/events.h"
#include "ledger/base/result_code.h"
#include "ledger/base/types.h"

namespace purser {

// How a request proves who sent it: the SHA-256 of an API key, or the
// service itself (in-process callers: expiry, tests, benchmarks, first start).
struct Credentials {
  bool system = false;
  Sha256Digest key_sha256{};

  static Credentials System() { return Credentials{true, {}}; }
  static Credentials FromApiKey(std::string_view api_key);
};

// A field of a caps update: keep the current value, set a new one, or remove
// it (no limit / default).
template <typename T>
struct Patch {
  enum class Op : uint8_t { kKeep, kSet, kRemove };
  Op op = Op::kKeep;
  T value{};
  static Patch Set(T v) { return Patch{Op::kSet, std::move(v)}; }
  static Patch Remove() { return Patch{Op::kRemove, T{}}; }
};

struct CapsPatch {
  Patch<int64_t> daily_limit_micros;
  Patch<int64_t> monthly_limit_micros;
  Patch<int64_t> hard_limit_micros;
  Patch<int64_t> max_inflight;
  Patch<int64_t> reservation_ttl_s;
  Patch<std::vector<uint8_t>> alert_thresholds_pct;
  Patch<OnExpiry> on_expiry;
  Patch<RunawayAction> runaway_action;
  Patch<int64_t> runaway_error_streak;
  Patch<int64_t> runaway_burn_multiplier_bp;
  Patch<int64_t> runaway_min_micros_per_hour;
  Patch<int64_t> max_calls_per_minute;
  Patch<int64_t> max_tokens_per_minute;
  Patch<int64_t> degrade_at_pct;
};

// Reserve by estimate: model + input tokens + the most output tokens the call may use.
struct Estimate {
  std::string model;
  int64_t input_tokens = 0;
  int64_t max_output_tokens = 0;
};

// A settle or usage given as token counts, costed through the price table.
struct UsageTokens {
  std::string model;
  TokenCounts tokens;
};

enum class GroupBy : uint8_t { kNone, kModel, kAction, kWaste, kChild, kDay, kTag, kOutcome, kRun };

// What a leaderboard ranks accounts by.
enum class LeaderboardMetric : uint8_t { kSpend, kEfficiency, kWaste };
std::string_view LeaderboardMetricName(LeaderboardMetric metric);
bool ParseLeaderboardMetric(std::string_view text, LeaderboardMetric* metric);

namespace cmd {

struct OpenAccount {
  std::string id;
  std::string parent;  // empty = a root (global admin only)
  AccountKind kind = AccountKind::kAgent;
  std::string name;
  bool wallet = false;
  std::vector<std::string> indexed_tag_keys;  // roots only
};
struct SetCaps {
  std::string account;
  CapsPatch patch;
};
struct Freeze {
  std::string account;
  std::string reason;
};
struct Unfreeze {
  std::string account;
};
struct Deposit {
  std::string deposit_id;  // the Idempotency-Key
  std::string account;
  int64_t amount_micros = 0;
  std::string reference;
};
struct Reserve {
  std::string reservation_id;
  std::string account;
  std::optional<int64_t> amount_micros;
  std::optional<Estimate> estimate;
  int64_t ttl_s = 0;  // 0 = the effective default
  std::string run_id;
  std::string action;
  Tags tags;
};
struct Settle {
  std::string reservation_id;
  std::optional<int64_t> amount_micros;
  std::optional<UsageTokens> usage;
  std::optional<std::string> action;  // overrides the reservation's
  std::optional<std::string> waste;
  Outcome outcome = Outcome::kNone;
  Tags tags;  // merged into the reservation's, key by key
};
struct Void {
  std::string reservation_id;
  std::string reason;
};
struct Extend {
  std::string reservation_id;
  int64_t ttl_s = 0;
};
struct RecordUsage {
  std::string usage_id;
  std::string account;
  std::optional<int64_t> amount_micros;
  std::optional<UsageTokens> usage;
  std::string action;
  std::string waste;
  Outcome outcome = Outcome::kNone;
  std::string run_id;
  Tags tags;
  // Imported history: when the spend happened (within the last 35 days, not
  // in the future); 0 = now.
  int64_t occurred_at_us = 0;
};
struct Refund {
  std::string refund_id;
  ChargeKind target_kind = ChargeKind::kReservation;
  std::string target_id;
  int64_t amount_micros = 0;
  std::string reason;
};
struct RecordRevenue {
  std::string revenue_id;
  std::string account;
  int64_t amount_micros = 0;
  std::string category;
  std::string reference;
};
struct Adjust {
  std::string adjustment_id;
  std::string account;
  int64_t amount_micros = 0;  // signed
  std::string reason;
};
struct SetPrice {
  std::string model;
  PriceRates rates;
};
struct SetBaseline {
  std::string account;
  int64_t micros_per_hour = 0;
  int64_t multiplier_bp = 30'000;  // 3x
};
struct IssueKey {
  std::string request_id;  // the Idempotency-Key; may be empty
  std::string key_id;      // chosen by the edge (random)
  std::string account;     // empty = global (global admin only)
  Role role = Role::kReader;
  std::string label;
  Sha256Digest secret_sha256{};
  std::string rotate_of;  // a rotation: the key replaced; it keeps working grace_s
  int64_t grace_s = 0;
};
struct RevokeKey {
  std::string key_id;
};
struct RegisterWebhook {
  std::string request_id;
  std::string webhook_id;
  std::string url;
  std::vector<std::string> events;
  std::string account;
  Sha256Digest secret_sha256{};
  // The signing secret as an RPC client sent it: the edge keeps it for the
  // notifier and clears it before the command reaches the ledger.
  std::string secret;
};
struct RemoveWebhook {
  std::string webhook_id;
};
// Changes a webhook: the fields given replace its own.
struct UpdateWebhook {
  std::string webhook_id;
  std::optional<std::string> url;
  std::optional<std::vector<std::string>> events;
  std::optional<bool> enabled;
};
struct IngestDailyReport {
  event::DailyReportIngested report;  // request_hash is computed by the machine
};
// Moves funds between two wallets (an orchestrator funding its workers).
struct Transfer {
  std::string transfer_id;
  std::string from;
  std::string to;
  int64_t amount_micros = 0;
  std::string reason;
};
// Adds tag keys to a root account's indexed keys.
struct IndexTagKeys {
  std::string account;
  std::vector<std::string> keys;
};
// Service commands (system credentials only).
struct ExpireDue {};
struct CountRejections {
  std::vector<event::RejectionsCounted> counts;
};

}  // namespace cmd

namespace query {

struct Authenticate {};
struct GetAccount {
  std::string account;
};
struct ListAccounts {
  std::string parent;  // empty = the key's root (or every root for the global admin)
};
struct GetBalance {
  std::string account;
};
struct GetReservation {
  std::string reservation_id;
};
struct ListReservations {
  std::string account;
  std::optional<ReservationStatus> status;
  size_t limit = 100;
};
struct GetSpend {
  std::string account;
  int64_t from_day = 0;
  int64_t to_day = 0;
  GroupBy group_by = GroupBy::kNone;
  std::string tag_key;  // for GroupBy::kTag
};
struct ListAlerts {
  std::string account;  // empty = everything the key sees
  int64_t since_us = 0;
  std::optional<AlertType> type;  // only alerts of this type
  // The newest first: past the bound (kListLimitMax) the newest are kept,
  // where oldest-first keeps the oldest (for paging forward by `since`).
  bool newest_first = false;
};
struct ListPrices {};
struct EstimateCost {
  UsageTokens usage;
};
struct ListKeys {};
struct ListWebhooks {};
struct GetPnl {
  std::string account;
  int64_t from_day = 0;
  int64_t to_day = 0;
};
// Compatibility daily reports of an account (itself only) over a date range.
struct DailyReports {
  std::string account;
  int64_t from_day = 0;
  int64_t to_day = 0;
};
// Answered by the sequencer, not the machine.
struct GetChainHead {};
struct GetDigest {};
// Every account with its parent (service only: the RPC server's alert routing).
struct AccountTree {};
// Burn rate of an account's subtree over the last `window_s` (whole minutes).
struct GetBurnRate {
  std::string account;
  int64_t window_s = 3600;
};
// Runs that spent in the window under `parent` (empty = the key's scope), fastest first.
struct ListActiveRuns {
  std::string parent;
  int64_t window_s = 3600;
  size_t limit = 100;
};
struct GetBaseline {
  std::string account;
};
// Accounts whose anomaly is active now under `parent` (empty = the key's scope).
struct ListAnomalies {
  std::string parent;
};
struct GetEfficiency {
  std::string account;
  int64_t from_day = 0;
  int64_t to_day = 0;
};
// Daily totals with breakdowns over the last `days` days (today included).
struct GetTrends {
  std::string account;
  int64_t days = 30;
};
// Accounts strictly below `parent` (empty = the key's scope) that spend
// directly (leaves), ranked over the last `days` days.
struct GetLeaderboard {
  std::string parent;
  LeaderboardMetric metric = LeaderboardMetric::kSpend;
  int64_t days = 7;
  size_t limit = 100;
};
// Platform figures of the key's scope.
struct GetStats {};
// What the dashboard draws of one subtree in one read: the accounts down to
// `depth` levels below `account` with their balances and caps, every frozen
// account of the subtree, and the subtree's spend per minute.
struct GetOverview {
  std::string account;
  int depth = 2;
  size_t accounts_max = 5'000;
  int64_t minutes = 180;
};
// One webhook the key may manage (admin in scope).
struct GetWebhook {
  std::string webhook_id;
};
// Every webhook with what delivery needs (service only: the notifier).
struct WebhookTable {};
// Per-account figures for /metrics: accounts at depth <= `depth_max` (roots
// are depth 0), at most `accounts_max` of them, in opening order.
struct AccountMetrics {
  int depth_max = 2;
  size_t accounts_max = 1'000;
};

}  // namespace query

using RequestBody =
    std::variant<cmd::OpenAccount, cmd::SetCaps, cmd::Freeze, cmd::Unfreeze, cmd::Deposit,
                 cmd::Reserve, cmd::Settle, cmd::Void, cmd::Extend, cmd::RecordUsage,
                 cmd::Refund, cmd::RecordRevenue, cmd::Adjust, cmd::SetPrice, cmd::SetBaseline,
                 cmd::IssueKey, cmd::RevokeKey, cmd::RegisterWebhook, cmd::RemoveWebhook,
                 cmd::IngestDailyReport, cmd::Transfer, cmd::IndexTagKeys, cmd::UpdateWebhook,
                 cmd::ExpireDue,
                 cmd::CountRejections,
                 query::Authenticate, query::GetAccount, query::ListAccounts, query::GetBalance,
                 query::GetReservation, query::ListReservations, query::GetSpend,
                 query::ListAlerts, query::ListPrices, query::EstimateCost, query::ListKeys,
                 query::ListWebhooks, query::GetPnl, query::GetChainHead, query::GetDigest,
                 query::AccountTree, query::DailyReports, query::GetBurnRate,
                 query::ListActiveRuns, query::GetBaseline, query::ListAnomalies,
                 query::GetEfficiency, query::GetTrends, query::GetLeaderboard, query::GetStats,
                 query::AccountMetrics, query::GetWebhook, query::WebhookTable, query::GetOverview>;

struct Request {
  Credentials credentials;
  RequestBody body;
};

// A short name of a request type ("reserve", "get_balance") for metrics.
const char* RequestTypeName(const RequestBody& body);
// The same by the type's index in RequestBody (body.index()).
const char* RequestTypeNameAt(size_t index);
inline constexpr size_t kRequestTypeCount = std::variant_size_v<RequestBody>;
// True for requests that may append events.
bool IsCommand(const RequestBody& body);

// ---------------------------------------------------------------------------
// Replies.

struct BalanceView {
  std::string account;
  std::string funding_account;
  int64_t balance_micros = 0;
  int64_t held_micros = 0;
  int64_t available_micros = 0;
  int64_t own_held_micros = 0;
  int64_t spent_today_micros = 0;
  int64_t spent_month_micros = 0;
  int64_t spent_total_micros = 0;
  int64_t daily_limit_micros = kNoLimit;
  int64_t monthly_limit_micros = kNoLimit;
  int64_t hard_limit_micros = kNoLimit;
  int64_t headroom_micros = 0;
  int64_t inflight = 0;
  bool frozen = false;
};

struct AccountView {
  std::string id;
  std::string parent;
  AccountKind kind = AccountKind::kOrg;
  std::string name;
  bool wallet = false;
  bool frozen = false;
  std::string frozen_reason;
  Caps caps;
  BalanceView balance;
  std::vector<std::string> indexed_tag_keys;
};

struct AccountList {
  std::vector<AccountView> accounts;
};

struct CapsView {
  Caps caps;
};

struct ReserveResult {
  std::string reservation_id;
  std::string account;
  int64_t amount_micros = 0;
  int64_t expires_at_us = 0;
  int64_t headroom_after_micros = 0;
  uint64_t seq = 0;            // the Reserved event: a receipt
  std::string advice_account;  // set when the degrade advice fired
};

struct SettleResult {
  std::string reservation_id;
  int64_t cost_micros = 0;
  int64_t released_micros = 0;
  int64_t overrun_micros = 0;
  bool late = false;
  uint64_t seq = 0;  // the Settled event
};

struct VoidResult {
  int64_t released_micros = 0;
};

struct ExtendResult {
  int64_t expires_at_us = 0;
};

struct UsageResult {
  std::string usage_id;
  int64_t cost_micros = 0;
  int64_t overrun_micros = 0;
  uint64_t seq = 0;  // the UsageCharged event
};

struct TransferResult {
  std::string transfer_id;
  int64_t from_balance_micros = 0;
  int64_t to_balance_micros = 0;
};

struct TagKeysView {
  std::string account;
  std::vector<std::string> keys;
};

struct BurnRateView {
  std::string account;
  int64_t window_s = 0;
  int64_t micros_per_hour = 0;
  int64_t spend_micros = 0;
  int64_t calls = 0;
  int64_t baseline_micros_per_hour = 0;  // 0 = no baseline (then no ratio)
  int64_t ratio_pct = 0;
};

struct RunView {
  std::string run_id;
  std::string account;
  int64_t micros_per_hour = 0;
  int64_t spend_micros = 0;
  int64_t calls = 0;
  int64_t first_at_us = 0;
  int64_t last_at_us = 0;
};
struct RunList {
  int64_t window_s = 0;
  std::vector<RunView> runs;
};

struct BaselineView {
  std::string account;
  int64_t micros_per_hour = 0;
  int64_t multiplier_bp = 0;
};

struct AnomalyView {
  std::string account;
  int64_t micros_per_hour = 0;
  int64_t baseline_micros_per_hour = 0;
  int64_t threshold_micros_per_hour = 0;
  int64_t ratio_pct = 0;
  int64_t since_us = 0;
};
struct AnomalyList {
  std::vector<AnomalyView> anomalies;
};

// Figures of efficiency: whole-account or one model.
struct EfficiencyFigures {
  std::string model;                     // empty for the account's totals
  int64_t score_bp = 10'000;             // 100 x (1 - waste / total), in basis points
  int64_t total_micros = 0;
  int64_t waste_micros = 0;
  int64_t input_tokens = 0;
  int64_t cached_input_tokens = 0;
  int64_t cache_write_tokens = 0;
  int64_t cache_hit_rate_bp = 0;         // cached / all input tokens
  int64_t cache_savings_micros = 0;      // cached x (input rate - cached rate)
  int64_t cache_write_extra_micros = 0;  // cache writes x (write rate - input rate)
  int64_t cache_net_savings_micros = 0;
  int64_t input_spend_micros = 0;        // input, cached input and cache writes at their rates
  int64_t cache_write_spend_micros = 0;
};
struct Recommendation {
  std::string rule;
  std::string message;
  int64_t value = 0;       // the figure that triggered it
  bool value_is_pct = false;  // basis points of a share (else micro-USD)
};
struct EfficiencyView {
  std::string account;
  int64_t from_day = 0;
  int64_t to_day = 0;
  EfficiencyFigures total;
  std::vector<EfficiencyFigures> by_model;  // spend descending
  std::vector<Recommendation> recommendations;
};

struct TrendDay {
  int64_t day = 0;
  int64_t cost_micros = 0;
  int64_t calls = 0;
  int64_t tokens = 0;
  std::vector<std::pair<std::string, int64_t>> by_model;   // cost descending
  std::vector<std::pair<std::string, int64_t>> by_action;
  std::vector<std::pair<std::string, int64_t>> by_waste;
};
struct TrendsView {
  std::string account;
  int64_t first_day = 0;
  int64_t last_day = 0;
  std::vector<TrendDay> days;  // every day of the period, oldest first
};

struct LeaderboardEntry {
  std::string account;
  int64_t value = 0;         // spend or waste in micro-USD; efficiency in basis points
  int64_t spend_micros = 0;
};
struct LeaderboardView {
  LeaderboardMetric metric = LeaderboardMetric::kSpend;
  std::vector<LeaderboardEntry> entries;
};

struct StatsView {
  int64_t accounts = 0;
  int64_t active_accounts_today = 0;
  int64_t spend_today_micros = 0;
  int64_t spend_month_micros = 0;
  int64_t calls_today = 0;
  int64_t reservations_pending = 0;
  int64_t events_total = 0;
  int64_t alerts_active = 0;  // raised in the last 24 hours, anomalies and runaways still on
  int64_t runs_active = 0;    // runs that spent in the last hour
  int64_t frozen_accounts = 0;
};

struct IdResult {  // refund, revenue, daily report, webhook ...
  std::string id;
  int64_t amount_micros = 0;
};

struct BalanceResult {  // deposit, adjustment
  std::string id;
  int64_t balance_micros = 0;
};

struct KeyResult {
  std::string key_id;
  std::string account;
  Role role = Role::kReader;
  std::string api_key;  // the secret, set by the edge that generated it; shown once
};

struct PrincipalView {
  std::string key_id;
  std::string account;  // empty = global
  Role role = Role::kReader;
};

struct ReservationView {
  std::string reservation_id;
  std::string account;
  int64_t amount_micros = 0;
  ReservationStatus status = ReservationStatus::kPending;
  int64_t cost_micros = 0;
  int64_t created_at_us = 0;
  int64_t expires_at_us = 0;
  std::string run_id;
  std::string action;
};

struct ReservationList {
  std::vector<ReservationView> reservations;
};

struct SpendGroup {
  std::string key;
  int64_t cost_micros = 0;
  int64_t calls = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_input_tokens = 0;
  int64_t cache_write_tokens = 0;
  int64_t reasoning_tokens = 0;
};

struct SpendReport {
  std::string account;
  int64_t from_day = 0;
  int64_t to_day = 0;
  int64_t total_micros = 0;
  int64_t calls = 0;
  std::vector<SpendGroup> groups;  // cost descending, then key ascending
};

struct AlertView {
  uint64_t id = 0;
  std::string account;
  AlertType type = AlertType::kBudgetThreshold;
  std::string severity;
  uint8_t threshold_pct = 0;
  CapWindow window = CapWindow::kNone;
  int64_t limit_micros = 0;
  int64_t value_micros = 0;
  int64_t count = 1;
  std::string message;
  int64_t created_at_us = 0;
};

struct AlertList {
  std::vector<AlertView> alerts;
  bool truncated = false;  // more alerts matched than the bound
};

struct PriceView {
  std::string model;
  PriceRates rates;
  uint64_t version = 0;
};

struct PriceList {
  uint64_t version = 0;
  std::vector<PriceView> prices;
};

struct CostResult {
  int64_t cost_micros = 0;
  uint64_t price_version = 0;
};

struct KeyView {
  std::string key_id;
  std::string account;
  Role role = Role::kReader;
  std::string label;
  bool revoked = false;
  int64_t valid_until_us = 0;  // INT64_MAX when not rotated
  int64_t created_at_us = 0;
};

struct KeyList {
  std::vector<KeyView> keys;
};

struct WebhookView {
  std::string webhook_id;
  std::string url;
  std::vector<std::string> events;
  std::string account;
  int64_t created_at_us = 0;
  bool enabled = true;
};

// What the notifier needs of every webhook (removed ones included).
struct WebhookDefinition {
  WebhookView view;
  bool removed = false;
  uint64_t created_seq = 0;
  Sha256Digest secret_sha256{};
};
struct WebhookTableView {
  uint64_t sequence = 0;  // the state's last event
  std::vector<WebhookDefinition> webhooks;
  std::vector<std::pair<std::string, std::string>> accounts;  // (id, parent)
};

struct WebhookList {
  std::vector<WebhookView> webhooks;
};

struct PnlView {
  std::string account;
  int64_t revenue_micros = 0;
  int64_t cost_micros = 0;
  int64_t profit_micros = 0;
  std::optional<int64_t> margin_bp;  // none without revenue
};

struct AccountMetric {
  std::string account;
  int64_t spend_today_micros = 0;
  int64_t burn_micros_per_hour = 0;  // over the last 5 minutes
  // spent / limit in basis points per window; -1 when the cap is not set.
  int64_t daily_utilization_bp = -1;
  int64_t monthly_utilization_bp = -1;
  int64_t lifetime_utilization_bp = -1;
  bool frozen = false;
};
struct OverviewAccount {
  std::string parent;
  std::string name;
  AccountKind kind = AccountKind::kOrg;
  int depth = 0;  // below the overview's account
  std::string frozen_reason;
  BalanceView balance;
};
struct OverviewView {
  std::string account;
  std::vector<OverviewAccount> accounts;  // depth first, the account first
  bool truncated = false;                 // accounts_max was reached
  std::vector<OverviewAccount> frozen;    // anywhere in the subtree, the first 1,000
  int64_t frozen_count = 0;               // all of them
  int64_t first_minute_us = 0;            // the start of burn_per_minute[0]
  std::vector<int64_t> burn_per_minute;   // micro-USD spent in each minute
  int64_t baseline_micros_per_hour = 0;   // 0 = none
  int64_t baseline_multiplier_bp = 0;
};
struct AccountMetricsView {
  std::vector<AccountMetric> accounts;
  int64_t runs_active = 0;       // runs that spent in the last hour
  int64_t accounts_frozen = 0;
  int64_t anomalies_active = 0;
};

struct ChainHead {
  uint64_t sequence = 0;
  Sha256Digest hash{};
};

struct DigestView {
  uint64_t sequence = 0;
  Sha256Digest digest{};
};

struct DailyReportList {
  std::vector<event::DailyReportIngested> reports;  // by date
};

struct AccountTreeView {
  std::vector<std::pair<std::string, std::string>> accounts;  // (id, parent), opening order
};

using ReplyBody =
    std::variant<std::monostate, AccountView, AccountList, CapsView, BalanceView, ReserveResult,
                 SettleResult, VoidResult, ExtendResult, UsageResult, IdResult, BalanceResult,
                 KeyResult, PrincipalView, ReservationView, ReservationList, SpendReport,
                 AlertList, PriceList, CostResult, KeyList, WebhookList, PnlView, ChainHead,
                 DigestView, AccountTreeView, DailyReportList, TransferResult, TagKeysView,
                 BurnRateView, RunList, BaselineView, AnomalyList, EfficiencyView, TrendsView,
                 LeaderboardView, StatsView, AccountMetricsView, WebhookView, WebhookTableView, OverviewView>;

struct Reply {
  ResultCode code = ResultCode::kOk;
  // A new fact was recorded (HTTP 201), as opposed to a query or the
  // idempotent repeat of an earlier command (200).
  bool created = false;
  std::string message;
  std::string account;             // the account whose cap or wallet refused
  int64_t limit_micros = kNoLimit; // the refusing cap's limit
  int64_t available_micros = kNoLimit;  // room that was left
  int64_t retry_after_s = 0;       // rate_limited: seconds to the next minute
  ReplyBody body;

  bool ok() const { return code == ResultCode::kOk; }
  static Reply Error(ResultCode code, std::string message) {
    Reply reply;
    reply.code = code;
    reply.message = std::move(message);
    return reply;
  }
};

}  // namespace purser
