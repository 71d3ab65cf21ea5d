// Private to machine.cc and queries.cc: the per-request handler.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/status.h"
#include "ledger/machine/machine.h"

namespace purser {

inline Reply Invalid(std::string message) {
  return Reply::Error(ResultCode::kInvalidArgument, std::move(message));
}

inline Reply Ok(ReplyBody body, bool created) {
  Reply reply;
  reply.created = created;
  reply.body = std::move(body);
  return reply;
}

// Sums computed at read time (spend groups, trends, analytics) go through
// ReadSum: a total that does not fit int64 marks the query, which then
// answers an error instead of a wrong (wrapped or clamped) number.
inline thread_local bool g_read_overflow = false;
inline int64_t ReadSum(__int128 value) {
  if (value > INT64_MAX || value < INT64_MIN) {
    g_read_overflow = true;
    return value > 0 ? INT64_MAX : INT64_MIN;
  }
  return static_cast<int64_t>(value);
}

// A refusal of an admission check: which rule, which account, what was left.
struct Refusal {
  ResultCode code = ResultCode::kOk;
  AccountIndex account = kNoAccount;
  int64_t limit_micros = kNoLimit;
  int64_t available_micros = kNoLimit;
  int64_t retry_after_s = 0;  // rate caps: seconds to the next minute
};

// Handles one request: holds the state, the principal, the time and the
// output vector for the duration of Execute().
class Machine::Handler {
 public:
  Handler(Machine* machine, int64_t now_us, std::vector<Event>* events)
      : machine_(machine), state_(*machine->state_), now_us_(now_us), events_(events) {}

  Reply Run(const Request& request);

  // Commands (machine.cc).
  Reply Do(const cmd::OpenAccount& c);
  Reply Do(const cmd::SetCaps& c);
  Reply Do(const cmd::Freeze& c);
  Reply Do(const cmd::Unfreeze& c);
  Reply Do(const cmd::Deposit& c);
  Reply Do(const cmd::Reserve& c);
  Reply Do(const cmd::Settle& c);
  Reply Do(const cmd::Void& c);
  Reply Do(const cmd::Extend& c);
  Reply Do(const cmd::RecordUsage& c);
  Reply Do(const cmd::Refund& c);
  Reply Do(const cmd::RecordRevenue& c);
  Reply Do(const cmd::Adjust& c);
  Reply Do(const cmd::SetPrice& c);
  Reply Do(const cmd::SetBaseline& c);
  Reply Do(const cmd::IssueKey& c);
  Reply Do(const cmd::RevokeKey& c);
  Reply Do(const cmd::RegisterWebhook& c);
  Reply Do(const cmd::RemoveWebhook& c);
  Reply Do(const cmd::IngestDailyReport& c);
  Reply Do(const cmd::Transfer& c);
  Reply Do(const cmd::IndexTagKeys& c);
  Reply Do(const cmd::UpdateWebhook& c);
  Reply Do(const cmd::ExpireDue& c);
  Reply Do(const cmd::CountRejections& c);

  // Queries (queries.cc).
  Reply Do(const query::Authenticate& q);
  Reply Do(const query::GetAccount& q);
  Reply Do(const query::ListAccounts& q);
  Reply Do(const query::GetBalance& q);
  Reply Do(const query::GetReservation& q);
  Reply Do(const query::ListReservations& q);
  Reply Do(const query::GetSpend& q);
  Reply Do(const query::ListAlerts& q);
  Reply Do(const query::ListPrices& q);
  Reply Do(const query::EstimateCost& q);
  Reply Do(const query::ListKeys& q);
  Reply Do(const query::ListWebhooks& q);
  Reply Do(const query::GetPnl& q);
  Reply Do(const query::GetChainHead& q);
  Reply Do(const query::GetDigest& q);
  Reply Do(const query::AccountTree& q);
  Reply Do(const query::DailyReports& q);

  // Analytics (analytics.cc).
  Reply Do(const query::GetBurnRate& q);
  Reply Do(const query::ListActiveRuns& q);
  Reply Do(const query::GetBaseline& q);
  Reply Do(const query::ListAnomalies& q);
  Reply Do(const query::GetEfficiency& q);
  Reply Do(const query::GetTrends& q);
  Reply Do(const query::GetLeaderboard& q);
  Reply Do(const query::GetStats& q);
  Reply Do(const query::GetOverview& q);
  Reply Do(const query::AccountMetrics& q);
  Reply Do(const query::GetWebhook& q);
  Reply Do(const query::WebhookTable& q);

 private:
  enum class Access { kRead, kWrite, kAdminBelowRoot, kAdminInSubtree };

  // Resolves the credentials into principal_; false when they are not valid now.
  bool Authenticate(const Credentials& credentials);
  // Role check alone: permission_denied when the principal's role is too low.
  std::optional<Reply> RequireRole(Role role) const;
  // Finds `id` and checks the principal may act on it with `access`. On
  // failure *error holds the reply (404 for the global admin, 403 for a scoped
  // key whether or not the account exists).
  AccountIndex Resolve(std::string_view id, Access access, Reply* error) const;
  bool Allowed(AccountIndex account, Access access) const;
  // The webhook `id` if the principal may manage it; else *error.
  const Webhook* ManagedWebhook(const std::string& id, Reply* error) const;
  WebhookView MakeWebhookView(const Webhook& hook) const;
  // A missing record: 404 for the global admin, and for a scoped key the
  // same 403 as a record outside its scope, so that it cannot learn what
  // exists elsewhere (API.md).
  Reply NotFoundFor(const std::string& what) const;
  // A reservation ('r') or usage record ('u') that memory does not hold:
  // in debug builds, asserts the prefetch looked for it (Machine::CheckMissesAgainst).
  void Missed(char kind, std::string_view id) const {
#ifndef NDEBUG
    if (machine_->looked_for_) PURSER_ASSERT(machine_->looked_for_(kind, id));
#else
    (void)kind;
    (void)id;
#endif
  }

  void Emit(EventBody body, uint64_t price_version = 0);

  // Admission of a hold of `amount` (and `tokens` for the rate caps) on
  // `account` now (SPEC section 2): frozen and rate caps first, in path
  // order, then inflight and the money caps, then the funds.
  std::optional<Refusal> CheckAdmission(AccountIndex account, int64_t amount,
                                        int64_t tokens) const;
  // The account whose degrade_at_pct the hold would pass, or kNoAccount.
  AccountIndex DegradeAdvice(AccountIndex account, int64_t amount) const;
  // After live spend on `account`: anomaly alerts on transitions, runaway
  // alerts once per episode, and the freeze of the runaway policy, all in
  // this command's commit.
  void React(AccountIndex account);
  // The smallest room left by the caps on the path and the funds, for the
  // overrun of recorded truth. `reversal` (may be null) is a charge that is
  // about to be reversed first, freeing room in windows still current.
  int64_t RoomForTruth(AccountIndex account, const ChargeRecord* reversal,
                       int64_t reversal_micros) const;
  // False (with *error set) when recording `cost` on `account` would overflow
  // a balance or an aggregate.
  bool SpendFits(AccountIndex account, int64_t cost, Reply* error) const;
  // Threshold alerts of every account on the path, then an overrun alert.
  void RaiseSpendAlerts(AccountIndex account, int64_t overrun_micros);
  // Threshold alerts of one account's windows that its spend has reached.
  void RaiseThresholdAlerts(AccountIndex account);
  void CountRejection(AccountIndex account, ResultCode code);
  Reply RefusalReply(const Refusal& refusal) const;

  int64_t EffectiveTtlMax(AccountIndex account) const;
  int64_t EffectiveTtlDefault(AccountIndex account) const;
  OnExpiry EffectiveOnExpiry(AccountIndex account) const;

  // Resolves an amount-or-usage cost. False with *error set when invalid.
  bool ComputeCost(const std::optional<int64_t>& amount, const std::optional<UsageTokens>& usage,
                   int64_t* cost, uint64_t* price_version, Reply* error) const;

  Reply ReserveReply(const Reservation& r, bool created) const;
  Reply SettleReply(const Reservation& r, bool created) const;
  AccountView MakeAccountView(AccountIndex index) const;
  // The account as its create answered (for an identical retry).
  AccountView MakeOpenedAccountView(AccountIndex index,
                                    const std::vector<std::string>& indexed_tag_keys) const;
  // The accounts a scoped query covers: `id`'s subtree, or the key's scope
  // when `id` is empty (every root for the global admin). False with *error.
  bool ScopeRoots(const std::string& id, std::vector<AccountIndex>* roots, Reply* error) const;
  BalanceView MakeBalanceView(AccountIndex index) const;
  ReservationView MakeReservationView(const Reservation& r) const;
  void AddSpendRows(AccountIndex account, const query::GetSpend& q, int64_t slot,
                    std::map<std::string, SpendGroup>* groups, SpendReport* report) const;

  Machine* machine_;
  State& state_;
  const int64_t now_us_;
  std::vector<Event>* events_;
  Principal principal_;
};

}  // namespace purser
