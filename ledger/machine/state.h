// The ledger's state: every account, wallet, cap, reservation, id-index entry,
// price and projection, as derived from the log.
//
// State is plain data. It changes only through Apply(), a pure function of
// the state and one event that both the live service and replay/ call, so a
// replay reproduces the live state bit for bit. Decisions (admission checks,
// costs) live in ledger/machine.h and read State without changing it.
//
// Thread-safety: none. One thread (the sequencer's) owns a State.
#pragma once

#include <bitset>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/node_hash_map.h>

#include "ledger/machine/events.h"
#include "ledger/base/types.h"

namespace purser {

using AccountIndex = uint32_t;
inline constexpr AccountIndex kNoAccount = UINT32_MAX;

// Maps keyed by std::string that are looked up with string_view (abseil's
// open-addressing tables: far fewer cache misses than std::unordered_map on
// the hot path). Values of a StringMap move when it grows; StableStringMap
// keeps every value at one address for as long as it exists.
// (Debian's abseil has its own string_view, so the functors take
// std::string_view themselves.)
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const;
};
struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringViewHash, StringViewEq>;
template <typename V>
using StableStringMap = absl::node_hash_map<std::string, V, StringViewHash, StringViewEq>;

// Interns dimension strings (models, actions, tag values ...) as small ids.
// Id 0 is the empty string. Ids depend only on the order strings are first
// seen, which replay reproduces; canonical output uses the strings.
class Interner {
 public:
  Interner();
  uint32_t Intern(std::string_view text);
  // The id of `text`, or nullopt when it was never interned.
  std::optional<uint32_t> Find(std::string_view text) const;
  const std::string& Get(uint32_t id) const { return *strings_[id]; }
  size_t size() const { return strings_.size(); }

 private:
  std::vector<std::unique_ptr<std::string>> strings_;
  absl::flat_hash_map<std::string_view, uint32_t, StringViewHash, StringViewEq> ids_;
};

// Totals of one spend row (one dimension value on one day of one account).
struct SpendTotals {
  int64_t cost_micros = 0;
  int64_t calls = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_input_tokens = 0;
  int64_t cache_write_tokens = 0;
  int64_t reasoning_tokens = 0;
  bool operator==(const SpendTotals&) const = default;
};

// What a row of a DayBook is keyed by: (dimension << 32) | interned value.
enum class Dimension : uint8_t {
  kTotal = 0,      // value 0: all spend of the day
  kModel = 1,
  kAction = 2,
  kWaste = 3,
  kRevenue = 4,    // cost_micros holds revenue, calls counts records
  kRejection = 5,  // value = ResultCode number, calls holds the count
  kOutcome = 6,    // value = Outcome number
  kRun = 7,        // value = interned run id (at most kDayBookRowsMax rows a day, then "(other)")
  kTagBase = 16,   // kTagBase + slot of an indexed tag key on the root
};
inline uint64_t RowKey(Dimension dimension, uint32_t value) {
  return uint64_t{static_cast<uint8_t>(dimension)} << 32 | value;
}
inline uint64_t TagRowKey(size_t slot, uint32_t value) {
  return uint64_t{static_cast<uint8_t>(Dimension::kTagBase) + slot} << 32 | value;
}
inline Dimension RowDimension(uint64_t key) { return static_cast<Dimension>(key >> 32); }
inline uint32_t RowValue(uint64_t key) { return static_cast<uint32_t>(key); }

// An account's own spend on one UTC day, by dimension.
using DayBook = absl::flat_hash_map<uint64_t, SpendTotals>;

// Spend per UTC minute over the last 24 hours (SPEC section 4: burn rates),
// minutes with spend only, oldest first. A burn rate over any window of whole
// minutes is a sum over at most 1,440 buckets, never a log scan; older
// minutes fold into the day totals (they are dropped here).
struct MinuteBucket {
  int64_t minute = 0;  // minutes since the epoch, UTC
  int64_t spend_micros = 0;
  int64_t calls = 0;
  bool operator==(const MinuteBucket&) const = default;
};

class MinuteSeries {
 public:
  static constexpr int64_t kMinutesKept = 24 * 60;

  // Adds spend to `minute`, dropping buckets older than 24 hours before
  // `now_minute`. A minute older than that is not recorded.
  void Add(int64_t minute, int64_t spend_micros, int64_t calls, int64_t now_minute);
  // The sums over the minutes [first_minute, last_minute].
  MinuteBucket Sum(int64_t first_minute, int64_t last_minute) const;
  // The same, remembered for one range until a bucket in it changes: the
  // runaway rule asks for the same hour on every spend of a minute.
  int64_t SpendCached(int64_t first_minute, int64_t last_minute) const;
  int64_t last_minute() const { return buckets_.empty() ? INT64_MIN : buckets_.back().minute; }
  const std::vector<MinuteBucket>& buckets() const { return buckets_; }
  std::vector<MinuteBucket>& mutable_buckets() { return buckets_; }
  bool operator==(const MinuteSeries& other) const { return buckets_ == other.buckets_; }

 private:
  std::vector<MinuteBucket> buckets_;
  mutable int64_t cache_first_ = 0;
  mutable int64_t cache_last_ = -1;  // empty range: no cache
  mutable int64_t cache_spend_ = 0;
};

// Threshold alerts already raised in one window instance.
struct ThresholdArm {
  int64_t instance = -1;      // day / month index the mask belongs to
  std::bitset<128> fired;     // bit p = the p% threshold was raised
  bool operator==(const ThresholdArm&) const = default;
};

struct Account {
  std::string id;
  std::string name;
  AccountIndex parent = kNoAccount;
  AccountIndex root = kNoAccount;
  AccountIndex funding = kNoAccount;  // nearest wallet on the path, itself included
  uint8_t depth = 0;                  // 0 for a root
  AccountKind kind = AccountKind::kOrg;
  bool wallet = false;
  bool frozen = false;
  std::string frozen_reason;  // of the freeze in force
  Caps caps;

  // Wallet (when `wallet`).
  int64_t balance_micros = 0;
  int64_t wallet_held_micros = 0;  // holds of the pending reservations it funds
  // Flows of the conservation law: balance = deposits + adjustments + refunds - charges.
  int64_t deposited_micros = 0;
  int64_t adjusted_micros = 0;
  int64_t refunded_micros = 0;
  int64_t charged_micros = 0;

  // Subtree aggregates: this account and everything below it.
  int64_t held_micros = 0;
  int64_t inflight = 0;
  int64_t spend_day = -1;     // the day spent_day_micros belongs to
  int64_t spent_day_micros = 0;
  int64_t spend_month = -1;   // the month spent_month_micros belongs to
  int64_t spent_month_micros = 0;
  int64_t spent_total_micros = 0;
  // This account's own pending reservations.
  int64_t own_held_micros = 0;
  int64_t own_inflight = 0;

  int64_t revenue_total_micros = 0;  // own revenue, lifetime
  int64_t baseline_micros_per_hour = 0;  // 0 = no baseline
  int64_t baseline_multiplier_bp = 0;
  // Wallet flows of transfers (conservation law).
  int64_t transferred_in_micros = 0;
  int64_t transferred_out_micros = 0;

  // Reaction state of the subtree (SPEC section 4), all from event times.
  MinuteSeries burn;                // spend per minute, last 24 hours
  int64_t rate_minute = -1;         // the minute the two rate counters count
  int64_t calls_in_minute = 0;      // reservations admitted + usage charges
  int64_t tokens_in_minute = 0;     // estimates until settled, then real tokens
  int64_t error_streak = 0;         // consecutive `error` outcomes of live spend
  bool runaway = false;             // in a runaway episode (alert raised, not over)
  int64_t anomaly_since_us = 0;     // anomalous since; 0 = not anomalous
  // What the create answered, so that an identical retry answers it again.
  int64_t opened_funding_balance_micros = 0;
  int64_t opened_funding_held_micros = 0;
  int64_t opened_headroom_micros = 0;

  ThresholdArm arms[3];          // daily, monthly, lifetime
  int64_t overrun_alert_hour = -1;
  size_t overrun_alert_index = 0;  // index in State::alerts of this hour's overrun alert

  std::vector<AccountIndex> children;
  std::vector<std::string> indexed_tag_keys;  // roots only
  std::vector<std::unordered_set<uint32_t>> tag_values_seen;  // roots only, per indexed key
  std::map<int64_t, DayBook> days;  // own spend per UTC day
  uint64_t request_hash = 0;        // of the AccountOpened, for idempotent creates

  int64_t SpentDay(int64_t day) const { return spend_day == day ? spent_day_micros : 0; }
  int64_t SpentMonth(int64_t month) const {
    return spend_month == month ? spent_month_micros : 0;
  }
};

// What a settle, usage or expiry charge took, so that a refund or a late
// settle can reverse exactly the rows it added to.
struct ChargeRecord {
  AccountIndex account = kNoAccount;
  int64_t charged_micros = 0;
  int64_t refunded_micros = 0;
  int64_t day = 0;
  std::vector<uint64_t> row_keys;  // DayBook rows besides the total row
};

struct Reservation {
  std::string id;
  AccountIndex account = kNoAccount;
  AccountIndex funding = kNoAccount;
  ReservationStatus status = ReservationStatus::kPending;
  int64_t amount_micros = 0;
  int64_t created_us = 0;
  int64_t expires_us = 0;
  int64_t original_expires_us = 0;
  int64_t ttl_s = 0;
  int64_t headroom_after_micros = 0;
  uint64_t request_hash = 0;
  uint32_t run_id = 0;  // interned
  uint32_t action = 0;  // interned
  Tags tags;
  // After the reservation stopped being pending.
  uint64_t settle_hash = 0;
  int64_t cost_micros = 0;
  int64_t released_micros = 0;
  int64_t overrun_micros = 0;
  bool late = false;
  bool expiry_charged = false;
  ChargeRecord charge;
  uint64_t version = 0;  // the sequence of the last event that changed it
  // Reply-only figures (receipts), left out of the state digest.
  uint64_t reserve_seq = 0;                 // the Reserved event
  uint64_t settle_seq = 0;                  // the Settled event
  AccountIndex advice_account = kNoAccount;  // degrade advice given at admission
  int64_t estimate_tokens = 0;  // counted in its minute's rate until settled
  // The version the cold store holds (0: none): kept by the engine, which
  // writes a finished record once and rewrites it only when it changed.
  // Neither in snapshots nor in the digest.
  uint64_t stored_version = 0;
};

// Pending reservations in expiry order: (expires_at, id).
struct ExpiryOrder {
  bool operator()(const std::pair<int64_t, const Reservation*>& a,
                  const std::pair<int64_t, const Reservation*>& b) const {
    return a.first != b.first ? a.first < b.first : a.second->id < b.second->id;
  }
};
using ExpiryQueue = std::set<std::pair<int64_t, const Reservation*>, ExpiryOrder>;

struct UsageRecord {
  uint64_t request_hash = 0;
  int64_t cost_micros = 0;
  int64_t overrun_micros = 0;
  ChargeRecord charge;
  uint64_t version = 0;  // the sequence of the last event that changed it
  uint64_t seq = 0;      // the UsageCharged event (reply-only, not in the digest)
  uint64_t stored_version = 0;  // as Reservation::stored_version
};

// A transfer's id-index entry: its payload hash and the balances it left.
struct TransferEntry {
  uint64_t request_hash = 0;
  int64_t from_balance_micros = 0;
  int64_t to_balance_micros = 0;
};

// An agent run (Dimensions::run_id) that spent in the last 24 hours.
struct Run {
  AccountIndex account = kNoAccount;  // the account of its latest spend
  int64_t first_us = 0;
  int64_t last_us = 0;
  MinuteSeries burn;
};

// An id-index entry of a create with no richer record: its payload hash and
// the figure its reply repeats.
struct IdEntry {
  uint64_t request_hash = 0;
  int64_t value = 0;  // deposit/adjustment: balance after; refund: amount
};

struct ApiKey {
  std::string key_id;
  AccountIndex account = kNoAccount;  // kNoAccount = global
  Role role = Role::kReader;
  std::string label;
  Sha256Digest secret_sha256{};
  bool revoked = false;
  int64_t valid_until_us = INT64_MAX;  // a rotated key works until then
  int64_t created_us = 0;
  std::string request_id;
  uint64_t request_hash = 0;
};

struct Webhook {
  std::string webhook_id;
  std::string url;
  std::vector<std::string> events;
  AccountIndex account = kNoAccount;
  bool removed = false;
  bool enabled = true;
  uint64_t created_seq = 0;  // the WebhookRegistered event
  int64_t created_us = 0;
  std::string actor;
  std::string request_id;
  uint64_t request_hash = 0;
  Sha256Digest secret_sha256{};
};

struct Alert {
  uint64_t id = 0;
  AccountIndex account = kNoAccount;
  AlertType type = AlertType::kBudgetThreshold;
  std::string severity;
  uint8_t threshold_pct = 0;
  CapWindow window = CapWindow::kNone;
  int64_t window_instance = 0;
  int64_t limit_micros = 0;
  int64_t value_micros = 0;
  std::string message;
  int64_t created_us = 0;
  int64_t count = 1;  // overruns aggregated into it
};

struct DailyReport {
  uint64_t sequence = 0;  // of the event that holds it
  event::DailyReportIngested report;
};

struct PriceVersion {
  uint64_t version = 0;
  int64_t since_us = 0;
  PriceRates rates;
};

inline constexpr size_t kActiveRunsMax = 100'000;  // runs tracked for burn rates
inline constexpr size_t kDayBookRowsMax = 4'096;    // rows of one account's day before runs fold

// The payload hash of a void (its reason): an identical retry answers again,
// another reason is a conflict.
uint64_t VoidHash(std::string_view reason);

class State;

struct AnalyticsCache;
// Holds the read caches of the analytics (ledger/analytics.cc). Not state:
// never digested, snapshotted or replayed; a copy starts empty.
class AnalyticsCacheSlot {
 public:
  AnalyticsCacheSlot();
  ~AnalyticsCacheSlot();
  AnalyticsCacheSlot(AnalyticsCacheSlot&&) noexcept;
  AnalyticsCacheSlot& operator=(AnalyticsCacheSlot&&) noexcept;
  AnalyticsCache& get() const;  // made on first use

 private:
  mutable std::unique_ptr<AnalyticsCache> cache_;
};

// The largest amount a reservation on `account` could get at `now_us`:
// max(0, min(available funds, every cap's room on the path)), 0 when an
// account on the path is frozen or its inflight count is at its limit.
int64_t Headroom(const State& state, AccountIndex account, int64_t now_us);

class State {
 public:
  State();
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  // Moves keep every reservation at its address (node maps), so the expiry
  // queue's pointers stay valid.
  State(State&&) = default;
  State& operator=(State&&) = default;

  // Applies one event. Pure: the result depends only on the state and the
  // event. Events must come in sequence order without gaps.
  void Apply(const Event& event);

  // kNoAccount when there is no such account.
  AccountIndex FindAccount(std::string_view id) const;
  // nullptr when there is no such reservation in memory.
  Reservation* FindReservation(std::string_view id);
  const Reservation* FindReservation(std::string_view id) const;

  // The cold store: finished reservations and usage records leave memory at
  // a checkpoint and come back (Load...) before a command or a replayed
  // event needs them. Which records are in memory never changes what the
  // state means, its behaviour or its digest.
  void LoadReservation(Reservation reservation);
  void LoadUsage(std::string id, UsageRecord usage);
  // Drops a record from memory if it is unchanged since `version` (it is in
  // the cold store at that version). Returns whether it was dropped.
  bool EvictReservation(const std::string& id, uint64_t version);
  bool EvictUsage(const std::string& id, uint64_t version);
  const Account& account(AccountIndex index) const { return accounts[index]; }
  // True when `account` is `ancestor` or below it.
  bool IsInSubtree(AccountIndex account, AccountIndex ancestor) const;
  // The current rates of a model, or nullptr when it has no price.
  const PriceRates* CurrentRates(std::string_view model) const;

  uint64_t last_sequence = 0;
  int64_t last_timestamp_us = 0;
  uint64_t price_version = 0;

  std::vector<Account> accounts;  // by AccountIndex, in opening order
  StringMap<AccountIndex> account_ids;
  std::vector<AccountIndex> roots;
  Interner strings;

  StableStringMap<Reservation> reservations;
  ExpiryQueue expiry_queue;  // the pending reservations
  StableStringMap<UsageRecord> usages;
  StringMap<IdEntry> deposits;
  StringMap<IdEntry> refunds;
  StringMap<IdEntry> revenues;
  StringMap<IdEntry> adjustments;

  StringMap<std::vector<PriceVersion>> prices;  // by model, oldest first

  StringMap<ApiKey> keys;
  std::map<Sha256Digest, std::string> keys_by_hash;
  StringMap<std::string> key_requests;  // Idempotency-Key -> key id

  StringMap<Webhook> webhooks;
  StringMap<std::string> webhook_requests;

  std::vector<Alert> alerts;  // in event order

  StringMap<TransferEntry> transfers;

  // Runs that spent in the last 24 hours, by interned run id, and the same
  // by last spend, so that the oldest folds away past kActiveRunsMax.
  absl::flat_hash_map<uint32_t, Run> runs;
  std::set<std::pair<int64_t, uint32_t>> runs_by_last;
  // Accounts whose anomaly_since_us is set (an index of Account fields).
  std::set<AccountIndex> anomalous_accounts;

  std::map<std::pair<std::string, int64_t>, DailyReport> daily_reports;  // (account, day)
  StringMap<uint64_t> daily_report_ids;  // report id -> request hash

  uint64_t events_applied = 0;
  // Counts the changes of day-book rows of days before the applying event's
  // day (imported history, refunds of past charges, rejections counted over
  // midnight): the analytics' caches of past days are valid while it holds.
  uint64_t past_rows_version = 0;
  AnalyticsCacheSlot analytics_cache;

 private:
  // One-entry caches: a command looks up its account and reservation while
  // deciding, and Apply() looks them up again by id right after.
  mutable AccountIndex last_account_ = kNoAccount;
  mutable const Reservation* last_reservation_ = nullptr;

  void ApplyBody(const Event& event, const event::AccountOpened& e);
  void ApplyBody(const Event& event, const event::AccountFrozen& e);
  void ApplyBody(const Event& event, const event::AccountUnfrozen& e);
  void ApplyBody(const Event& event, const event::CapsSet& e);
  void ApplyBody(const Event& event, const event::Deposited& e);
  void ApplyBody(const Event& event, const event::Reserved& e);
  void ApplyBody(const Event& event, const event::Settled& e);
  void ApplyBody(const Event& event, const event::Voided& e);
  void ApplyBody(const Event& event, const event::Expired& e);
  void ApplyBody(const Event& event, const event::Extended& e);
  void ApplyBody(const Event& event, const event::Refunded& e);
  void ApplyBody(const Event& event, const event::UsageCharged& e);
  void ApplyBody(const Event& event, const event::RevenueRecorded& e);
  void ApplyBody(const Event& event, const event::PriceSet& e);
  void ApplyBody(const Event& event, const event::BaselineSet& e);
  void ApplyBody(const Event& event, const event::AlertRaised& e);
  void ApplyBody(const Event& event, const event::Adjusted& e);
  void ApplyBody(const Event& event, const event::RejectionsCounted& e);
  void ApplyBody(const Event& event, const event::ApiKeyIssued& e);
  void ApplyBody(const Event& event, const event::ApiKeyRevoked& e);
  void ApplyBody(const Event& event, const event::WebhookRegistered& e);
  void ApplyBody(const Event& event, const event::WebhookRemoved& e);
  void ApplyBody(const Event& event, const event::DailyReportIngested& e);
  void ApplyBody(const Event& event, const event::Transferred& e);
  void ApplyBody(const Event& event, const event::TagKeysIndexed& e);
  void ApplyBody(const Event& event, const event::WebhookUpdated& e);

  AccountIndex MustFindAccount(std::string_view id) const;
  Reservation& MustFindReservation(std::string_view id);
  DayBook& BookOf(Account& account, int64_t day);
  // Changes the holds of a pending reservation on its path and wallet by
  // `sign` (+1 take, -1 release).
  void ChangeHold(const Reservation& reservation, int sign);
  // Records spend and returns what a refund would need to reverse it.
  // `spend_us` is when the spend belongs (occurred_at of an import, else the
  // event's time); `live` is spend recorded as it happens (settle or usage
  // without occurred_at): it moves error streaks and runaway episodes.
  struct SpendFacts {
    int64_t cost_micros = 0;
    int64_t event_us = 0;
    int64_t spend_us = 0;
    int64_t overrun_micros = 0;
    int64_t calls = 1;          // rate counters: 1 for usage, 0 for a settle (counted at reserve)
    int64_t rate_tokens = 0;    // tokens added to the current minute's rate counters
    bool live = false;
  };
  ChargeRecord RecordSpend(AccountIndex account, const SpendFacts& facts,
                           const Dimensions& dimensions, const TokenCounts& tokens);
  // Rate counters of the path: `calls` and `tokens` in the minute of `now_us`.
  void CountRate(AccountIndex account, int64_t now_us, int64_t calls, int64_t tokens);
  // Ends anomalies and runaway episodes on the path whose rules no longer hold.
  void SettleReactions(AccountIndex account, int64_t now_us, bool live, Outcome outcome);
  void TrackRun(uint32_t run_id, AccountIndex account, const SpendFacts& facts);
  // Ends the anomalies on the path whose burn fell back before this spend.
  void ClearCalmAnomalies(AccountIndex account, int64_t now_us);
  // Reverses `amount_micros` of a charge: wallet, windows still current,
  // lifetime and dimension rows.
  enum class Reversal { kRefund, kExpiryCharge };
  void ReverseSpend(ChargeRecord* charge, int64_t amount_micros, Reversal reversal);
  void AggregateOverrun(AccountIndex account, int64_t overrun_micros, int64_t timestamp_us);
};

}  // namespace purser
