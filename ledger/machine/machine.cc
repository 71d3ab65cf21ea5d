#include "ledger/machine/machine.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/machine/machine_internal.h"
#include "ledger/base/money.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/reactions.h"
#include "ledger/base/status.h"
#include "ledger/machine/validate.h"

namespace purser {

namespace {

constexpr std::string_view kSystemActor = "system";

// spent + held + amount for a cap check, saturating instead of overflowing
// (a saturated sum is above every limit, which is the right answer).
int64_t SaturatingSum(int64_t a, int64_t b, int64_t c) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) return INT64_MAX;
  if (__builtin_add_overflow(sum, c, &sum)) return INT64_MAX;
  return sum;
}

bool CheckAdd(int64_t a, int64_t b) { return CheckedAdd(a, b).has_value(); }

bool ReachesThreshold(int64_t spent, uint8_t pct, int64_t limit) {
  if (limit == 0) return spent > 0;
  return static_cast<__int128>(spent) * 100 >= static_cast<__int128>(pct) * limit;
}

std::string Severity(uint8_t pct) {
  if (pct >= 100) return "critical";
  if (pct >= 90) return "warning";
  return "info";
}

}  // namespace

Machine::Machine(State* state) : state_(state) {}

Reply Machine::Execute(const Request& request, int64_t now_us, std::vector<Event>* events) {
  PURSER_ASSERT(now_us >= state_->last_timestamp_us);
  Handler handler(this, now_us, events);
  return handler.Run(request);
}

std::optional<cmd::CountRejections> Machine::TakeRejectionCounts(int64_t before_minute) {
  cmd::CountRejections command;
  for (auto it = rejections_.begin(); it != rejections_.end();) {
    const auto& [account, minute, code] = it->first;
    if (minute >= before_minute) {
      ++it;
      continue;
    }
    command.counts.push_back(event::RejectionsCounted{account, minute, code, it->second});
    it = rejections_.erase(it);
  }
  if (command.counts.empty()) return std::nullopt;
  return command;
}

Reply Machine::Handler::Run(const Request& request) {
  if (!Authenticate(request.credentials)) {
    return Reply::Error(ResultCode::kUnauthenticated, "the API key is not valid");
  }
  g_read_overflow = false;
  Reply reply = std::visit([&](const auto& body) { return Do(body); }, request.body);
  if (g_read_overflow && reply.ok() && !IsCommand(request.body)) {
    return Invalid("a total of this answer does not fit in 64 bits; ask for a narrower range");
  }
  return reply;
}

bool Machine::Handler::Authenticate(const Credentials& credentials) {
  if (credentials.system) {
    principal_ = Principal{std::string(kSystemActor), Role::kAdmin, kNoAccount, true};
    return true;
  }
  auto it = state_.keys_by_hash.find(credentials.key_sha256);
  if (it == state_.keys_by_hash.end()) return false;
  const ApiKey& key = state_.keys.at(it->second);
  // The map lookup compared hashes of secrets; compare once more in constant
  // time so that the decision never depends on where two secrets differ.
  if (CRYPTO_memcmp(key.secret_sha256.data(), credentials.key_sha256.data(), 32) != 0) {
    return false;
  }
  if (key.revoked || now_us_ >= key.valid_until_us) return false;
  principal_ = Principal{key.key_id, key.role, key.account};
  return true;
}

std::optional<Reply> Machine::Handler::RequireRole(Role role) const {
  if (static_cast<int>(principal_.role) >= static_cast<int>(role)) return std::nullopt;
  return Reply::Error(ResultCode::kPermissionDenied,
                      "this key's role (" + std::string(RoleName(principal_.role)) +
                          ") may not do this; it needs " + std::string(RoleName(role)));
}

bool Machine::Handler::Allowed(AccountIndex account, Access access) const {
  if (principal_.global()) return true;
  if (!state_.IsInSubtree(account, principal_.root)) return false;
  switch (access) {
    case Access::kRead:
    case Access::kWrite:
    case Access::kAdminInSubtree:
      return true;
    case Access::kAdminBelowRoot:
      // No key can raise its own caps, unfreeze itself or fund itself.
      return account != principal_.root;
  }
  return false;
}

Reply Machine::Handler::NotFoundFor(const std::string& what) const {
  if (principal_.global()) return Reply::Error(ResultCode::kNotFound, what + " not found");
  return Reply::Error(ResultCode::kPermissionDenied, what + " is outside this key's scope");
}

AccountIndex Machine::Handler::Resolve(std::string_view id, Access access, Reply* error) const {
  AccountIndex index = state_.FindAccount(id);
  if (index == kNoAccount) {
    *error = principal_.global()
                 ? Reply::Error(ResultCode::kNotFound, "account " + std::string(id) + " not found")
                 : Reply::Error(ResultCode::kPermissionDenied,
                                "account " + std::string(id) + " is outside this key's scope");
    return kNoAccount;
  }
  if (!Allowed(index, access)) {
    *error = Reply::Error(ResultCode::kPermissionDenied,
                          access == Access::kAdminBelowRoot && index == principal_.root
                              ? "an admin key acts only strictly below its own account"
                              : "account " + std::string(id) + " is outside this key's scope");
    return kNoAccount;
  }
  return index;
}

void Machine::Handler::Emit(EventBody body, uint64_t price_version) {
  // Built where it stays: the event is applied from the caller's list.
  Event& event = events_->emplace_back();
  event.sequence = state_.last_sequence + 1;
  event.timestamp_us = now_us_;
  event.actor = principal_.key_id;
  event.price_version = price_version;
  event.body = std::move(body);
  state_.Apply(event);
}

std::optional<Refusal> Machine::Handler::CheckAdmission(AccountIndex account, int64_t amount,
                                                        int64_t tokens) const {
  const int64_t day = DayOf(now_us_);
  const int64_t month = MonthOfDay(day);
  const int64_t minute = MinuteOf(now_us_);
  // Seconds to the next minute, when the rate counters start again.
  const int64_t retry_s = ((minute + 1) * kMicrosPerMinute - now_us_ + kMicrosPerSecond - 1) /
                          kMicrosPerSecond;
  // At each account of the path, leaf first: frozen, the rate caps, the
  // inflight limit, then the money caps (hard, monthly, daily).
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    const Account& node = state_.account(a);
    if (node.frozen) return Refusal{ResultCode::kAccountFrozen, a};
    const bool current = node.rate_minute == minute;
    const int64_t calls = current ? node.calls_in_minute : 0;
    const int64_t counted = current ? node.tokens_in_minute : 0;
    if (node.caps.max_calls_per_minute >= 0 && calls >= node.caps.max_calls_per_minute) {
      return Refusal{ResultCode::kRateLimited, a, node.caps.max_calls_per_minute, 0,
                     std::max<int64_t>(1, retry_s)};
    }
    if (node.caps.max_tokens_per_minute >= 0 &&
        SaturatingSum(counted, tokens, 0) > node.caps.max_tokens_per_minute) {
      return Refusal{ResultCode::kRateLimited, a, node.caps.max_tokens_per_minute,
                     std::max<int64_t>(0, node.caps.max_tokens_per_minute - counted),
                     std::max<int64_t>(1, retry_s)};
    }
    if (node.caps.max_inflight >= 0 && node.inflight >= node.caps.max_inflight) {
      return Refusal{ResultCode::kInflightLimitReached, a, node.caps.max_inflight, 0};
    }
    struct Check {
      int64_t limit;
      int64_t spent;
      ResultCode code;
    };
    const Check checks[3] = {
        {node.caps.hard_limit_micros, node.spent_total_micros, ResultCode::kHardLimitExceeded},
        {node.caps.monthly_limit_micros, node.SpentMonth(month), ResultCode::kMonthlyCapExceeded},
        {node.caps.daily_limit_micros, node.SpentDay(day), ResultCode::kDailyCapExceeded}};
    for (const Check& check : checks) {
      if (check.limit < 0) continue;
      int64_t used = SaturatingSum(check.spent, node.held_micros, 0);
      if (SaturatingSum(used, amount, 0) > check.limit) {
        return Refusal{check.code, a, check.limit, std::max<int64_t>(0, check.limit - used)};
      }
    }
  }
  AccountIndex funding = state_.account(account).funding;
  if (funding == kNoAccount) return Refusal{ResultCode::kInsufficientFunds, account, kNoLimit, 0};
  const Account& wallet = state_.account(funding);
  int64_t available = wallet.balance_micros - wallet.wallet_held_micros;
  if (available < amount) {
    return Refusal{ResultCode::kInsufficientFunds, funding, kNoLimit,
                   std::max<int64_t>(0, available)};
  }
  return std::nullopt;
}

AccountIndex Machine::Handler::DegradeAdvice(AccountIndex account, int64_t amount) const {
  const int64_t day = DayOf(now_us_);
  const int64_t month = MonthOfDay(day);
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    const Account& node = state_.account(a);
    if (node.caps.degrade_at_pct < 0) continue;
    const int64_t limits[3] = {node.caps.hard_limit_micros, node.caps.monthly_limit_micros,
                               node.caps.daily_limit_micros};
    const int64_t spent[3] = {node.spent_total_micros, node.SpentMonth(month), node.SpentDay(day)};
    for (int i = 0; i < 3; ++i) {
      if (limits[i] < 0) continue;
      __int128 used = static_cast<__int128>(spent[i]) + node.held_micros + amount;
      if (used * 100 > static_cast<__int128>(node.caps.degrade_at_pct) * limits[i]) return a;
    }
  }
  return kNoAccount;
}

// Long: one walk of the path that resolves the inherited runaway settings,
// then raises anomalies and runaway alerts (and the freeze) from them.
void Machine::Handler::React(AccountIndex account) {
  // The path, leaf first, with the runaway settings each account inherits.
  AccountIndex path[kAccountDepthMax + 1];
  int depth = 0;
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) path[depth++] = a;
  RunawaySettings settings[kAccountDepthMax + 1];
  for (int i = depth - 1; i >= 0; --i) {
    const Caps& caps = state_.account(path[i]).caps;
    RunawaySettings inherited = i + 1 < depth ? settings[i + 1] : RunawaySettings{};
    RunawaySettings& own = settings[i];
    own = inherited;
    if (caps.runaway_error_streak >= 0) own.error_streak = caps.runaway_error_streak;
    if (caps.runaway_burn_multiplier_bp >= 0) own.burn_multiplier_bp = caps.runaway_burn_multiplier_bp;
    if (caps.runaway_min_micros_per_hour >= 0) {
      own.min_micros_per_hour = caps.runaway_min_micros_per_hour;
    }
    if (caps.runaway_action != RunawayAction::kInherit) own.action = caps.runaway_action;
  }
  for (int i = 0; i < depth; ++i) {
    const Account& node = state_.account(path[i]);
    int64_t rate = 0;
    int64_t threshold = 0;
    if (node.anomaly_since_us != 0 || !AnomalyHolds(node, now_us_, &rate, &threshold)) continue;
    event::AlertRaised alert;
    alert.alert_id = state_.last_sequence + 1;
    alert.account = node.id;
    alert.type = AlertType::kAnomaly;
    alert.severity = "warning";
    alert.limit_micros = threshold;
    alert.value_micros = rate;
    alert.message = "burn rate of " + node.id + " is " + FormatUsd(rate) +
                    " USD/h over the last 5 minutes, above its baseline of " +
                    FormatUsd(node.baseline_micros_per_hour) + " USD/h x " +
                    FormatUsd(node.baseline_multiplier_bp * 100);
    Emit(std::move(alert));
  }
  // One runaway alert per episode; with the freeze policy, the deepest
  // account that reveals the runaway is frozen in this same commit (its
  // ancestors' episodes alert only: the spender is already stopped).
  bool frozen_below = false;
  for (int i = 0; i < depth; ++i) {
    const Account& node = state_.account(path[i]);
    if (node.runaway) continue;
    RunawayVerdict verdict = CheckRunaway(node, settings[i], now_us_);
    if (!verdict.holds()) continue;
    std::string why =
        verdict.streak
            ? std::to_string(node.error_streak) + " consecutive error outcomes"
            : "a 5-minute burn of " + FormatUsd(verdict.recent_micros_per_hour) +
                  " USD/h, above " + FormatUsd(settings[i].burn_multiplier_bp * 100) + " x the " +
                  FormatUsd(verdict.before_micros_per_hour) + " USD/h of the hour before";
    const bool freeze = settings[i].action == RunawayAction::kFreeze && !frozen_below &&
                        !node.frozen;
    std::string id = node.id;
    event::AlertRaised alert;
    alert.alert_id = state_.last_sequence + 1;
    alert.account = id;
    alert.type = AlertType::kRunaway;
    alert.severity = "critical";
    alert.value_micros = verdict.recent_micros_per_hour;
    alert.limit_micros = static_cast<int64_t>(std::min<__int128>(
        INT64_MAX, static_cast<__int128>(verdict.before_micros_per_hour) *
                       settings[i].burn_multiplier_bp / 10'000));
    alert.message = "runaway on " + id + ": " + why + (freeze ? "; the account is frozen" : "");
    Emit(std::move(alert));
    if (freeze) {
      Emit(event::AccountFrozen{id, "runaway: " + why});
      frozen_below = true;
    }
  }
}

int64_t Machine::Handler::RoomForTruth(AccountIndex account, const ChargeRecord* reversal,
                                       int64_t reversal_micros) const {
  const int64_t day = DayOf(now_us_);
  const int64_t month = MonthOfDay(day);
  const int64_t freed_day =
      reversal != nullptr && DayOf(now_us_) == reversal->day ? reversal_micros : 0;
  const int64_t freed_month =
      reversal != nullptr && month == MonthOfDay(reversal->day) ? reversal_micros : 0;
  int64_t room = INT64_MAX;
  const Account& self = state_.account(account);
  if (self.funding != kNoAccount) {
    const Account& wallet = state_.account(self.funding);
    room = wallet.balance_micros - wallet.wallet_held_micros + reversal_micros;
  }
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    const Account& node = state_.account(a);
    const int64_t limits[3] = {node.caps.hard_limit_micros, node.caps.monthly_limit_micros,
                               node.caps.daily_limit_micros};
    const int64_t used[3] = {
        SaturatingSum(node.spent_total_micros - reversal_micros, node.held_micros, 0),
        SaturatingSum(node.SpentMonth(month) - freed_month, node.held_micros, 0),
        SaturatingSum(node.SpentDay(day) - freed_day, node.held_micros, 0)};
    for (int i = 0; i < 3; ++i) {
      if (limits[i] >= 0) room = std::min(room, limits[i] - used[i]);
    }
  }
  return std::max<int64_t>(0, room);
}

bool Machine::Handler::SpendFits(AccountIndex account, int64_t cost, Reply* error) const {
  bool fits = true;
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    const Account& node = state_.account(a);
    fits = fits && CheckAdd(node.spent_total_micros, cost) && CheckAdd(node.spent_month_micros, cost) &&
           CheckAdd(node.spent_day_micros, cost);
  }
  AccountIndex funding = state_.account(account).funding;
  if (funding != kNoAccount) {
    const Account& wallet = state_.account(funding);
    fits = fits && CheckedSub(wallet.balance_micros, cost).has_value() &&
           CheckAdd(wallet.charged_micros, cost);
  }
  if (!fits) *error = Invalid("recording this cost would overflow a balance or a total");
  return fits;
}

void Machine::Handler::RaiseThresholdAlerts(AccountIndex a) {
  const int64_t day = DayOf(now_us_);
  const int64_t month = MonthOfDay(day);
  const Account& node = state_.account(a);
  struct Window {
    CapWindow window;
    int64_t limit;
    int64_t spent;
    int64_t instance;
  };
  const Window windows[3] = {
      {CapWindow::kDaily, node.caps.daily_limit_micros, node.SpentDay(day), day},
      {CapWindow::kMonthly, node.caps.monthly_limit_micros, node.SpentMonth(month), month},
      {CapWindow::kLifetime, node.caps.hard_limit_micros, node.spent_total_micros, 0}};
  for (const Window& w : windows) {
    if (w.limit < 0) continue;
    for (uint8_t pct : node.caps.alert_thresholds_pct) {
      // Re-read the arm each time: the previous Emit may have changed it.
      const ThresholdArm& arm = state_.account(a).arms[static_cast<int>(w.window) - 1];
      bool fired = arm.instance == w.instance && arm.fired.test(pct);
      if (fired || !ReachesThreshold(w.spent, pct, w.limit)) continue;
      event::AlertRaised alert;
      alert.alert_id = state_.last_sequence + 1;
      alert.account = node.id;
      alert.type = AlertType::kBudgetThreshold;
      alert.severity = Severity(pct);
      alert.threshold_pct = pct;
      alert.window = w.window;
      alert.window_instance = w.instance;
      alert.limit_micros = w.limit;
      alert.value_micros = w.spent;
      alert.message = std::string(CapWindowName(w.window)) + " spend of " + node.id +
                      " reached " + std::to_string(pct) + "% of its limit (" +
                      FormatUsd(w.spent) + " of " + FormatUsd(w.limit) + " USD)";
      Emit(std::move(alert));
    }
  }
}

void Machine::Handler::RaiseSpendAlerts(AccountIndex account, int64_t overrun_micros) {
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    RaiseThresholdAlerts(a);
  }
  const Account& self = state_.account(account);
  if (overrun_micros > 0 && self.overrun_alert_hour != HourOf(now_us_)) {
    event::AlertRaised alert;
    alert.alert_id = state_.last_sequence + 1;
    alert.account = self.id;
    alert.type = AlertType::kOverrun;
    alert.severity = "warning";
    alert.value_micros = overrun_micros;
    alert.message = OverrunMessage(self.id, overrun_micros, 1);
    Emit(std::move(alert));
  }
}

void Machine::Handler::CountRejection(AccountIndex account, ResultCode code) {
  ++machine_->rejections_[{state_.account(account).id, MinuteOf(now_us_),
                           static_cast<uint32_t>(code)}];
}

Reply Machine::Handler::RefusalReply(const Refusal& refusal) const {
  const std::string& id = state_.account(refusal.account).id;
  std::string message;
  switch (refusal.code) {
    case ResultCode::kAccountFrozen: message = "account " + id + " is frozen"; break;
    case ResultCode::kInflightLimitReached:
      message = "account " + id + " has reached its max_inflight of " +
                std::to_string(refusal.limit_micros);
      break;
    case ResultCode::kInsufficientFunds:
      message = "the wallet of " + id + " has " + FormatUsd(refusal.available_micros) +
                " USD available";
      break;
    case ResultCode::kRateLimited:
      message = "account " + id + " has reached a rate cap of " +
                std::to_string(refusal.limit_micros) + " per minute; retry in " +
                std::to_string(refusal.retry_after_s) + " s";
      break;
    default:
      message = std::string(ResultCodeName(refusal.code)) + " on account " + id + ": " +
                FormatUsd(refusal.available_micros) + " of " + FormatUsd(refusal.limit_micros) +
                " USD left";
  }
  Reply reply = Reply::Error(refusal.code, std::move(message));
  reply.account = id;
  reply.retry_after_s = refusal.retry_after_s;
  if (refusal.code != ResultCode::kInflightLimitReached &&
      refusal.code != ResultCode::kRateLimited) {
    reply.limit_micros = refusal.limit_micros;
  }
  if (refusal.code != ResultCode::kRateLimited) reply.available_micros = refusal.available_micros;
  return reply;
}

int64_t Machine::Handler::EffectiveTtlMax(AccountIndex account) const {
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    if (state_.account(a).caps.reservation_ttl_s >= 0) return state_.account(a).caps.reservation_ttl_s;
  }
  return kMaxReservationTtlS;
}

int64_t Machine::Handler::EffectiveTtlDefault(AccountIndex account) const {
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    if (state_.account(a).caps.reservation_ttl_s >= 0) return state_.account(a).caps.reservation_ttl_s;
  }
  return kDefaultReservationTtlS;
}

OnExpiry Machine::Handler::EffectiveOnExpiry(AccountIndex account) const {
  for (AccountIndex a = account; a != kNoAccount; a = state_.account(a).parent) {
    if (state_.account(a).caps.on_expiry != OnExpiry::kInherit) {
      return state_.account(a).caps.on_expiry;
    }
  }
  return OnExpiry::kRelease;
}

bool Machine::Handler::ComputeCost(const std::optional<int64_t>& amount,
                                   const std::optional<UsageTokens>& usage, int64_t* cost,
                                   uint64_t* price_version, Reply* error) const {
  if (amount.has_value() == usage.has_value()) {
    *error = Invalid("give exactly one of amount_micros and usage");
    return false;
  }
  *price_version = 0;
  if (amount) {
    if (std::string problem = CheckAmount("amount_micros", *amount, false); !problem.empty()) {
      *error = Invalid(problem);
      return false;
    }
    *cost = *amount;
    return true;
  }
  if (std::string problem = CheckDimension("usage.model", usage->model, true); !problem.empty()) {
    *error = Invalid(problem);
    return false;
  }
  if (std::string problem = CheckTokens(usage->tokens); !problem.empty()) {
    *error = Invalid(problem);
    return false;
  }
  const PriceRates* rates = state_.CurrentRates(usage->model);
  if (rates == nullptr) {
    *error = Invalid("unknown model: " + usage->model + " has no price");
    return false;
  }
  std::optional<int64_t> computed = Cost(*rates, usage->tokens);
  if (!computed) {
    *error = Invalid("the cost of this usage exceeds 10^12 micro-USD");
    return false;
  }
  *cost = *computed;
  *price_version = state_.price_version;
  return true;
}

}  // namespace purser
