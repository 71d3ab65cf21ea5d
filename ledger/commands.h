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

#include "ledger/events.h"
#include "ledger/result_code.h"
#include "ledger/types.h"

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

enum class GroupBy : uint8_t { kNone, kModel, kAction, kWaste, kChild, kDay, kTag, kOutcome };

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
  int64_t multiplier_bp = 20'000;  // 2x
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
};
struct RemoveWebhook {
  std::string webhook_id;
};
struct IngestDailyReport {
  event::DailyReportIngested report;  // request_hash is computed by the machine
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

}  // namespace query

using RequestBody =
    std::variant<cmd::OpenAccount, cmd::SetCaps, cmd::Freeze, cmd::Unfreeze, cmd::Deposit,
                 cmd::Reserve, cmd::Settle, cmd::Void, cmd::Extend, cmd::RecordUsage,
                 cmd::Refund, cmd::RecordRevenue, cmd::Adjust, cmd::SetPrice, cmd::SetBaseline,
                 cmd::IssueKey, cmd::RevokeKey, cmd::RegisterWebhook, cmd::RemoveWebhook,
                 cmd::IngestDailyReport, cmd::ExpireDue, cmd::CountRejections,
                 query::Authenticate, query::GetAccount, query::ListAccounts, query::GetBalance,
                 query::GetReservation, query::ListReservations, query::GetSpend,
                 query::ListAlerts, query::ListPrices, query::EstimateCost, query::ListKeys,
                 query::ListWebhooks, query::GetPnl, query::GetChainHead, query::GetDigest,
                 query::AccountTree, query::DailyReports>;

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
};

struct SettleResult {
  std::string reservation_id;
  int64_t cost_micros = 0;
  int64_t released_micros = 0;
  int64_t overrun_micros = 0;
  bool late = false;
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
                 DigestView, AccountTreeView, DailyReportList>;

struct Reply {
  ResultCode code = ResultCode::kOk;
  // A new fact was recorded (HTTP 201), as opposed to a query or the
  // idempotent repeat of an earlier command (200).
  bool created = false;
  std::string message;
  std::string account;             // the account whose cap or wallet refused
  int64_t limit_micros = kNoLimit; // the refusing cap's limit
  int64_t available_micros = kNoLimit;  // room that was left
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
