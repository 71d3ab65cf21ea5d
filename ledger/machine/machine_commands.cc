// The commands of the state machine: one Do() per command, each validating,
// authorizing, deciding and emitting. See machine.h for the contract.

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

// Evaluates a validation that yields a message; returns 400 when it does.
#define PURSER_CHECK_INPUT(expression)                                     \
  do {                                                                     \
    if (std::string problem_ = (expression); !problem_.empty()) {          \
      return Invalid(std::move(problem_));                                 \
    }                                                                      \
  } while (false)

// Returns the reply when an optional<Reply> holds one.
#define PURSER_RETURN_IF(optional_reply)              \
  do {                                                \
    if (auto reply_ = (optional_reply)) return *reply_; \
  } while (false)

// Both lists are sorted by key with unique keys (CheckAndSortTags).
Tags MergeTags(const Tags& base, const Tags& overrides) {
  if (overrides.empty()) return base;  // the usual settle: the reserve's tags
  if (base.empty()) return overrides;
  Tags merged;
  merged.reserve(base.size() + overrides.size());
  merged.assign(overrides.begin(), overrides.end());
  for (const Tag& tag : base) {
    bool overridden = std::any_of(overrides.begin(), overrides.end(),
                                  [&](const Tag& o) { return o.key == tag.key; });
    if (!overridden) merged.push_back(tag);
  }
  std::sort(merged.begin(), merged.end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  return merged;
}

void HashUsage(RequestHasher* hasher, const std::optional<int64_t>& amount,
               const std::optional<UsageTokens>& usage) {
  hasher->Add(amount.value_or(-1));
  hasher->Add(usage ? usage->model : std::string_view("\x01"));
  hasher->Add(usage ? usage->tokens : TokenCounts{});
}

std::string CheckLimit(std::string_view field, const Patch<int64_t>& patch, int64_t max) {
  if (patch.op != Patch<int64_t>::Op::kSet) return {};
  if (patch.value < 0 || patch.value > max) {
    return std::string(field) + " must be in 0.." + std::to_string(max);
  }
  return {};
}

template <typename T>
void ApplyPatch(const Patch<T>& patch, T* value, T removed) {
  if (patch.op == Patch<T>::Op::kSet) *value = patch.value;
  if (patch.op == Patch<T>::Op::kRemove) *value = removed;
}

}  // namespace

Reply Machine::Handler::Do(const cmd::OpenAccount& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckAccountId("id", c.id));
  if (!c.parent.empty()) PURSER_CHECK_INPUT(CheckAccountId("parent", c.parent));
  PURSER_CHECK_INPUT(CheckText("name", c.name, kTextBytesMax));
  if (!c.parent.empty() && !c.indexed_tag_keys.empty()) {
    return Invalid("indexed tag keys are declared on a root account only");
  }
  if (c.indexed_tag_keys.size() > kIndexedTagKeysMax) {
    return Invalid("at most 16 indexed tag keys");
  }
  for (size_t i = 0; i < c.indexed_tag_keys.size(); ++i) {
    const std::string& key = c.indexed_tag_keys[i];
    if (key.empty()) return Invalid("indexed tag keys must not be empty");
    PURSER_CHECK_INPUT(CheckText("indexed tag key", key, kTagKeyBytesMax));
    for (size_t k = 0; k < i; ++k) {
      if (c.indexed_tag_keys[k] == key) return Invalid("indexed tag key repeated: " + key);
    }
  }
  AccountIndex parent = kNoAccount;
  if (c.parent.empty()) {
    if (!principal_.global()) {
      return Reply::Error(ResultCode::kPermissionDenied,
                          "only the global admin opens root accounts");
    }
  } else {
    Reply error;
    parent = Resolve(c.parent, Access::kAdminInSubtree, &error);
    if (parent == kNoAccount) {
      // An unknown parent is 404 for everyone who may create there (API.md).
      return error;
    }
    if (state_.account(parent).depth + 1 >= kAccountDepthMax) {
      return Invalid("the accounts tree is at most 8 levels deep");
    }
  }
  uint64_t hash = RequestHasher()
                      .Add(c.id)
                      .Add(c.parent)
                      .Add(static_cast<int64_t>(c.kind))
                      .Add(c.name)
                      .Add(int64_t{c.wallet})
                      .Add(c.indexed_tag_keys)
                      .Finish();
  if (AccountIndex existing = state_.FindAccount(c.id); existing != kNoAccount) {
    if (state_.account(existing).request_hash == hash) {
      return Ok(MakeOpenedAccountView(existing, c.indexed_tag_keys), false);
    }
    return Reply::Error(ResultCode::kAlreadyExists, "account " + c.id + " already exists");
  }
  Emit(event::AccountOpened{c.id, c.parent, c.kind, c.name, c.wallet, c.indexed_tag_keys, hash});
  return Ok(MakeOpenedAccountView(state_.FindAccount(c.id), c.indexed_tag_keys), true);
}

// Long: every cap of the patch is validated before any is applied.
Reply Machine::Handler::Do(const cmd::SetCaps& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  const CapsPatch& p = c.patch;
  PURSER_CHECK_INPUT(CheckLimit("daily_limit_micros", p.daily_limit_micros, kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("monthly_limit_micros", p.monthly_limit_micros, kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("hard_limit_micros", p.hard_limit_micros, kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("max_inflight", p.max_inflight, kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("reservation_ttl_s", p.reservation_ttl_s, kMaxReservationTtlS));
  if (p.reservation_ttl_s.op == Patch<int64_t>::Op::kSet && p.reservation_ttl_s.value == 0) {
    return Invalid("reservation_ttl_s must be at least 1");
  }
  std::vector<uint8_t> thresholds = p.alert_thresholds_pct.value;
  if (p.alert_thresholds_pct.op == Patch<std::vector<uint8_t>>::Op::kSet) {
    if (thresholds.size() > kAlertThresholdsMax) return Invalid("at most 8 alert thresholds");
    for (uint8_t pct : thresholds) {
      if (pct < 1 || pct > 100) return Invalid("alert thresholds must be in 1..100");
    }
    std::sort(thresholds.begin(), thresholds.end());
    thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
  }
  if (p.on_expiry.op == Patch<OnExpiry>::Op::kSet && p.on_expiry.value == OnExpiry::kInherit) {
    return Invalid("on_expiry must be release or charge");
  }
  if (p.runaway_action.op == Patch<RunawayAction>::Op::kSet &&
      p.runaway_action.value == RunawayAction::kInherit) {
    return Invalid("runaway_action must be alert or freeze");
  }
  PURSER_CHECK_INPUT(CheckLimit("runaway_error_streak", p.runaway_error_streak, kRunawayStreakMax));
  PURSER_CHECK_INPUT(CheckLimit("runaway_burn_multiplier", p.runaway_burn_multiplier_bp,
                                kMultiplierBpMax));
  if (p.runaway_burn_multiplier_bp.op == Patch<int64_t>::Op::kSet &&
      p.runaway_burn_multiplier_bp.value != 0 && p.runaway_burn_multiplier_bp.value < 10'000) {
    return Invalid("runaway_burn_multiplier must be 0 (off) or in 1..100");
  }
  PURSER_CHECK_INPUT(CheckLimit("runaway_min_micros_per_hour", p.runaway_min_micros_per_hour,
                                kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("max_calls_per_minute", p.max_calls_per_minute, kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("max_tokens_per_minute", p.max_tokens_per_minute, kInputValueMax));
  PURSER_CHECK_INPUT(CheckLimit("degrade_at_pct", p.degrade_at_pct, 100));
  if (p.degrade_at_pct.op == Patch<int64_t>::Op::kSet && p.degrade_at_pct.value < 1) {
    return Invalid("degrade_at_pct must be in 1..100");
  }
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;

  Caps caps = state_.account(index).caps;
  ApplyPatch(p.daily_limit_micros, &caps.daily_limit_micros, kNoLimit);
  ApplyPatch(p.monthly_limit_micros, &caps.monthly_limit_micros, kNoLimit);
  ApplyPatch(p.hard_limit_micros, &caps.hard_limit_micros, kNoLimit);
  ApplyPatch(p.max_inflight, &caps.max_inflight, kNoLimit);
  ApplyPatch(p.reservation_ttl_s, &caps.reservation_ttl_s, kNoLimit);
  Patch<std::vector<uint8_t>> sorted{p.alert_thresholds_pct.op, thresholds};
  ApplyPatch(sorted, &caps.alert_thresholds_pct, Caps{}.alert_thresholds_pct);
  ApplyPatch(p.on_expiry, &caps.on_expiry, OnExpiry::kInherit);
  ApplyPatch(p.runaway_action, &caps.runaway_action, RunawayAction::kInherit);
  ApplyPatch(p.runaway_error_streak, &caps.runaway_error_streak, kNoLimit);
  ApplyPatch(p.runaway_burn_multiplier_bp, &caps.runaway_burn_multiplier_bp, kNoLimit);
  ApplyPatch(p.runaway_min_micros_per_hour, &caps.runaway_min_micros_per_hour, kNoLimit);
  ApplyPatch(p.max_calls_per_minute, &caps.max_calls_per_minute, kNoLimit);
  ApplyPatch(p.max_tokens_per_minute, &caps.max_tokens_per_minute, kNoLimit);
  ApplyPatch(p.degrade_at_pct, &caps.degrade_at_pct, kNoLimit);
  // A setting that nothing would act on is refused, never stored silently.
  if (caps.degrade_at_pct >= 0 && caps.daily_limit_micros < 0 && caps.monthly_limit_micros < 0 &&
      caps.hard_limit_micros < 0) {
    return Invalid("degrade_at_pct needs a daily, monthly or hard limit on the same account");
  }
  if (caps == state_.account(index).caps) return Ok(CapsView{caps}, false);  // no event
  Emit(event::CapsSet{c.account, caps});
  // A cap lowered below what is already spent raises its alerts now, not at
  // the next spend.
  RaiseThresholdAlerts(index);
  return Ok(CapsView{caps}, true);
}

Reply Machine::Handler::Do(const cmd::Freeze& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckText("reason", c.reason, kTextBytesMax));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;
  if (state_.account(index).frozen) return Ok(MakeAccountView(index), false);
  Emit(event::AccountFrozen{c.account, c.reason});
  return Ok(MakeAccountView(index), true);
}

Reply Machine::Handler::Do(const cmd::Unfreeze& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;
  if (!state_.account(index).frozen) return Ok(MakeAccountView(index), false);
  Emit(event::AccountUnfrozen{c.account});
  return Ok(MakeAccountView(index), true);
}

Reply Machine::Handler::Do(const cmd::Deposit& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckClientId("idempotency key", c.deposit_id));
  PURSER_CHECK_INPUT(CheckAmount("amount_micros", c.amount_micros, true));
  PURSER_CHECK_INPUT(CheckText("reference", c.reference, kTextBytesMax));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;
  uint64_t hash = RequestHasher().Add(c.account).Add(c.amount_micros).Add(c.reference).Finish();
  if (auto it = state_.deposits.find(c.deposit_id); it != state_.deposits.end()) {
    if (it->second.request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "deposit " + c.deposit_id + " was made with a different payload");
    }
    return Ok(BalanceResult{c.deposit_id, it->second.value}, false);
  }
  const Account& account = state_.account(index);
  if (!account.wallet) return Invalid("account " + c.account + " has no wallet");
  if (!CheckedAdd(account.balance_micros, c.amount_micros) ||
      !CheckedAdd(account.deposited_micros, c.amount_micros)) {
    return Invalid("this deposit would overflow the balance");
  }
  Emit(event::Deposited{c.deposit_id, c.account, c.amount_micros, c.reference, hash});
  return Ok(BalanceResult{c.deposit_id, state_.account(index).balance_micros}, true);
}

Reply Machine::Handler::ReserveReply(const Reservation& r, bool created) const {
  return Ok(ReserveResult{r.id, state_.account(r.account).id, r.amount_micros,
                          r.original_expires_us, r.headroom_after_micros, r.reserve_seq,
                          r.advice_account == kNoAccount ? std::string()
                                                         : state_.account(r.advice_account).id},
            created);
}

// Long: a reserve's steps in their order (validation, the account, idempotency,
// pricing an estimate, the TTL, admission along the path), then its one event.
Reply Machine::Handler::Do(const cmd::Reserve& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  PURSER_CHECK_INPUT(CheckClientId("reservation_id", c.reservation_id));
  if (c.amount_micros.has_value() == c.estimate.has_value()) {
    return Invalid("give exactly one of amount_micros and estimate");
  }
  if (c.amount_micros) PURSER_CHECK_INPUT(CheckAmount("amount_micros", *c.amount_micros, false));
  if (c.estimate) {
    PURSER_CHECK_INPUT(CheckDimension("estimate.model", c.estimate->model, true));
    PURSER_CHECK_INPUT(CheckAmount("estimate.input_tokens", c.estimate->input_tokens, false));
    PURSER_CHECK_INPUT(
        CheckAmount("estimate.max_output_tokens", c.estimate->max_output_tokens, false));
  }
  if (c.ttl_s < 0 || c.ttl_s > kMaxReservationTtlS) return Invalid("ttl_s is out of range");
  PURSER_CHECK_INPUT(CheckDimension("run_id", c.run_id, false));
  PURSER_CHECK_INPUT(CheckDimension("action", c.action, false));
  Tags tags = c.tags;
  PURSER_CHECK_INPUT(CheckAndSortTags(&tags));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kWrite, &error);
  if (index == kNoAccount) return error;

  RequestHasher hasher;
  hasher.Add(c.account).Add(c.amount_micros.value_or(-1));
  if (c.estimate) {
    hasher.Add(c.estimate->model).Add(c.estimate->input_tokens).Add(c.estimate->max_output_tokens);
  }
  uint64_t hash = hasher.Add(c.ttl_s).Add(c.run_id).Add(c.action).Add(tags).Finish();
  if (const Reservation* existing = state_.FindReservation(c.reservation_id)) {
    if (existing->request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "reservation " + c.reservation_id + " exists with a different payload");
    }
    return ReserveReply(*existing, false);
  }
  Missed('r', c.reservation_id);

  int64_t amount = c.amount_micros.value_or(0);
  if (c.estimate) {
    const PriceRates* rates = state_.CurrentRates(c.estimate->model);
    if (rates == nullptr) return Invalid("unknown model: " + c.estimate->model + " has no price");
    std::optional<int64_t> cost =
        Cost(*rates, TokenCounts{c.estimate->input_tokens, c.estimate->max_output_tokens, 0, 0, 0});
    if (!cost) return Invalid("the estimate exceeds 10^12 micro-USD");
    amount = *cost;
  }
  int64_t ttl_max = EffectiveTtlMax(index);
  int64_t ttl_s = c.ttl_s == 0 ? std::min(EffectiveTtlDefault(index), ttl_max) : c.ttl_s;
  if (ttl_s > ttl_max) {
    return Invalid("ttl_s is above the effective reservation_ttl_s of " + std::to_string(ttl_max));
  }
  const int64_t tokens =
      c.estimate ? RateTokens(TokenCounts{c.estimate->input_tokens, c.estimate->max_output_tokens,
                                          0, 0, 0})
                 : 0;
  if (std::optional<Refusal> refusal = CheckAdmission(index, amount, tokens)) {
    CountRejection(index, refusal->code);
    return RefusalReply(*refusal);
  }
  const Account& account = state_.account(index);
  const AccountIndex advice = DegradeAdvice(index, amount);
  event::Reserved e;
  e.reservation_id = c.reservation_id;
  e.account = c.account;
  if (account.funding != kNoAccount) e.funding_account = state_.account(account.funding).id;
  e.amount_micros = amount;
  e.expires_at_us = now_us_ + ttl_s * kMicrosPerSecond;
  e.ttl_s = ttl_s;
  e.run_id = c.run_id;
  e.action = c.action;
  e.tags = std::move(tags);
  if (c.estimate) {
    e.estimate_model = c.estimate->model;
    e.estimate_input_tokens = c.estimate->input_tokens;
    e.estimate_max_output_tokens = c.estimate->max_output_tokens;
  }
  // The headroom after the hold: compute it as if the hold were taken.
  e.headroom_after_micros = std::max<int64_t>(0, Headroom(state_, index, now_us_) - amount);
  for (AccountIndex a = index; a != kNoAccount; a = state_.account(a).parent) {
    const Account& node = state_.account(a);
    if (node.caps.max_inflight >= 0 && node.inflight + 1 >= node.caps.max_inflight) {
      e.headroom_after_micros = 0;
    }
  }
  e.request_hash = hash;
  if (advice != kNoAccount) e.advice_account = state_.account(advice).id;
  uint64_t price_version = c.estimate ? state_.price_version : 0;
  Emit(std::move(e), price_version);
  return ReserveReply(*state_.FindReservation(c.reservation_id), true);
}

Reply Machine::Handler::SettleReply(const Reservation& r, bool created) const {
  return Ok(SettleResult{r.id, r.cost_micros, r.released_micros, r.overrun_micros, r.late,
                          r.settle_seq},
            created);
}

Reply Machine::Handler::Do(const cmd::Settle& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  PURSER_CHECK_INPUT(CheckClientId("reservation_id", c.reservation_id));
  if (c.action) PURSER_CHECK_INPUT(CheckDimension("action", *c.action, false));
  if (c.waste) PURSER_CHECK_INPUT(CheckDimension("waste", *c.waste, false));
  Tags tags = c.tags;
  PURSER_CHECK_INPUT(CheckAndSortTags(&tags));
  Reservation* found = state_.FindReservation(c.reservation_id);
  if (found == nullptr) {
    Missed('r', c.reservation_id);
    return NotFoundFor("reservation " + c.reservation_id);
  }
  Reservation& r = *found;
  if (!Allowed(r.account, Access::kWrite)) {
    return NotFoundFor("reservation " + r.id);
  }
  RequestHasher hasher;
  HashUsage(&hasher, c.amount_micros, c.usage);
  uint64_t hash = hasher.Add(c.action ? *c.action : std::string_view("\x01"))
                      .Add(c.waste ? *c.waste : std::string_view("\x01"))
                      .Add(static_cast<int64_t>(c.outcome))
                      .Add(tags)
                      .Finish();
  if (r.status == ReservationStatus::kSettled) {
    if (r.settle_hash == hash) return SettleReply(r, false);
    return Reply::Error(ResultCode::kReservationNotPending,
                        "reservation " + r.id + " was already settled with a different payload");
  }
  if (r.status == ReservationStatus::kVoided) {
    return Reply::Error(ResultCode::kReservationNotPending, "reservation " + r.id + " was voided");
  }
  int64_t cost = 0;
  uint64_t price_version = 0;
  Reply error;
  if (!ComputeCost(c.amount_micros, c.usage, &cost, &price_version, &error)) return error;

  event::Settled e;
  e.reservation_id = r.id;
  e.account = state_.account(r.account).id;
  e.cost_micros = cost;
  e.dimensions.model = c.usage ? c.usage->model : std::string();
  e.dimensions.action = c.action ? *c.action : state_.strings.Get(r.action);
  e.dimensions.waste = c.waste.value_or(std::string());
  e.dimensions.outcome = c.outcome;
  e.dimensions.run_id = state_.strings.Get(r.run_id);
  e.dimensions.tags = MergeTags(r.tags, tags);
  if (e.dimensions.tags.size() > kTagsMax) return Invalid("more than 16 tags after the merge");
  if (c.usage) e.tokens = c.usage->tokens;
  e.request_hash = hash;
  if (r.status == ReservationStatus::kPending) {
    e.released_micros = std::max<int64_t>(0, r.amount_micros - cost);
    e.overrun_micros = std::max<int64_t>(0, cost - r.amount_micros);
  } else {  // expired: the truth arrives late
    e.late = true;
    if (r.expiry_charged) {
      e.expiry_charge_reversed_micros = r.charge.charged_micros - r.charge.refunded_micros;
    }
    int64_t room = RoomForTruth(r.account, r.expiry_charged ? &r.charge : nullptr,
                                e.expiry_charge_reversed_micros);
    e.overrun_micros = std::max<int64_t>(0, cost - room);
  }
  if (!SpendFits(r.account, cost, &error)) return error;
  AccountIndex account = r.account;
  int64_t overrun = e.overrun_micros;
  Emit(std::move(e), price_version);
  RaiseSpendAlerts(account, overrun);
  React(account);
  // The map's nodes are stable and nothing above removes a reservation.
  return SettleReply(r, true);
}

Reply Machine::Handler::Do(const cmd::Void& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  PURSER_CHECK_INPUT(CheckClientId("reservation_id", c.reservation_id));
  PURSER_CHECK_INPUT(CheckText("reason", c.reason, kTextBytesMax));
  const Reservation* found = state_.FindReservation(c.reservation_id);
  if (found == nullptr) {
    Missed('r', c.reservation_id);
    return NotFoundFor("reservation " + c.reservation_id);
  }
  const Reservation& r = *found;
  if (!Allowed(r.account, Access::kWrite)) {
    return NotFoundFor("reservation " + r.id);
  }
  if (r.status == ReservationStatus::kVoided) {
    // settle_hash holds the void's payload hash (0 for voids of older builds).
    if (r.settle_hash != 0 && r.settle_hash != VoidHash(c.reason)) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "reservation " + r.id + " was voided with a different reason");
    }
    return Ok(VoidResult{r.released_micros}, false);
  }
  if (r.status != ReservationStatus::kPending) {
    return Reply::Error(ResultCode::kReservationNotPending,
                        "reservation " + r.id + " is " +
                            std::string(ReservationStatusName(r.status)));
  }
  int64_t released = r.amount_micros;
  Emit(event::Voided{c.reservation_id, released, c.reason});
  return Ok(VoidResult{released}, true);
}

Reply Machine::Handler::Do(const cmd::Extend& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  PURSER_CHECK_INPUT(CheckClientId("reservation_id", c.reservation_id));
  if (c.ttl_s < 1 || c.ttl_s > kMaxReservationTtlS) return Invalid("ttl_s is out of range");
  const Reservation* found = state_.FindReservation(c.reservation_id);
  if (found == nullptr) {
    Missed('r', c.reservation_id);
    return NotFoundFor("reservation " + c.reservation_id);
  }
  const Reservation& r = *found;
  if (!Allowed(r.account, Access::kWrite)) {
    return NotFoundFor("reservation " + r.id);
  }
  // The request's own values before the state it meets (API.md, Errors).
  int64_t ttl_max = EffectiveTtlMax(r.account);
  if (c.ttl_s > ttl_max) {
    return Invalid("ttl_s is above the effective reservation_ttl_s of " + std::to_string(ttl_max));
  }
  if (r.status != ReservationStatus::kPending) {
    return Reply::Error(ResultCode::kReservationNotPending,
                        "reservation " + r.id + " is " +
                            std::string(ReservationStatusName(r.status)));
  }
  int64_t expires = now_us_ + c.ttl_s * kMicrosPerSecond;
  Emit(event::Extended{c.reservation_id, expires, c.ttl_s});
  return Ok(ExtendResult{expires}, true);
}

Reply Machine::Handler::Do(const cmd::RecordUsage& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  PURSER_CHECK_INPUT(CheckClientId("usage_id", c.usage_id));
  PURSER_CHECK_INPUT(CheckDimension("action", c.action, false));
  PURSER_CHECK_INPUT(CheckDimension("waste", c.waste, false));
  PURSER_CHECK_INPUT(CheckDimension("run_id", c.run_id, false));
  Tags tags = c.tags;
  PURSER_CHECK_INPUT(CheckAndSortTags(&tags));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kWrite, &error);
  if (index == kNoAccount) return error;
  RequestHasher hasher;
  hasher.Add(c.account);
  HashUsage(&hasher, c.amount_micros, c.usage);
  hasher.Add(c.action).Add(c.waste).Add(static_cast<int64_t>(c.outcome)).Add(c.run_id).Add(tags);
  // Payloads without occurred_at hash as they always did.
  if (c.occurred_at_us != 0) hasher.Add(c.occurred_at_us);
  uint64_t hash = hasher.Finish();
  if (auto it = state_.usages.find(c.usage_id); it != state_.usages.end()) {
    if (it->second.request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "usage " + c.usage_id + " exists with a different payload");
    }
    return Ok(UsageResult{c.usage_id, it->second.cost_micros, it->second.overrun_micros,
                          it->second.seq},
              false);
  }
  Missed('u', c.usage_id);
  // The window moves with time: a retry of a recorded import is answered
  // above, however late it comes (found by purser-sim).
  if (c.occurred_at_us != 0) {
    if (c.occurred_at_us > now_us_) return Invalid("occurred_at is in the future");
    if (c.occurred_at_us < now_us_ - kOccurredAtDaysMax * kMicrosPerDay) {
      return Invalid("occurred_at is more than 35 days ago");
    }
  }
  int64_t cost = 0;
  uint64_t price_version = 0;
  if (!ComputeCost(c.amount_micros, c.usage, &cost, &price_version, &error)) return error;
  for (AccountIndex a = index; a != kNoAccount; a = state_.account(a).parent) {
    if (state_.account(a).frozen) {
      CountRejection(index, ResultCode::kAccountFrozen);
      return RefusalReply(Refusal{ResultCode::kAccountFrozen, a});
    }
  }
  if (!SpendFits(index, cost, &error)) return error;
  event::UsageCharged e;
  e.usage_id = c.usage_id;
  e.account = c.account;
  e.cost_micros = cost;
  e.overrun_micros = std::max<int64_t>(0, cost - RoomForTruth(index, nullptr, 0));
  e.dimensions = Dimensions{c.usage ? c.usage->model : std::string(), c.action, c.waste,
                            c.outcome, c.run_id, std::move(tags)};
  if (c.usage) e.tokens = c.usage->tokens;
  e.request_hash = hash;
  e.occurred_at_us = c.occurred_at_us;
  int64_t overrun = e.overrun_micros;
  Emit(std::move(e), price_version);
  uint64_t seq = state_.last_sequence;
  RaiseSpendAlerts(index, overrun);
  // Imported history neither streaks nor runs away: it is not happening now.
  if (c.occurred_at_us == 0) React(index);
  return Ok(UsageResult{c.usage_id, cost, overrun, seq}, true);
}

Reply Machine::Handler::Do(const cmd::Refund& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckClientId("refund_id", c.refund_id));
  PURSER_CHECK_INPUT(CheckClientId("target id", c.target_id));
  PURSER_CHECK_INPUT(CheckAmount("amount_micros", c.amount_micros, true));
  PURSER_CHECK_INPUT(CheckText("reason", c.reason, kTextBytesMax));
  const ChargeRecord* charge = nullptr;
  if (c.target_kind == ChargeKind::kReservation) {
    auto it = state_.reservations.find(c.target_id);
    if (it == state_.reservations.end()) {
      Missed('r', c.target_id);
      return NotFoundFor("reservation " + c.target_id);
    }
    bool charged = it->second.status == ReservationStatus::kSettled || it->second.expiry_charged;
    if (!charged) {
      return Reply::Error(ResultCode::kRefundExceedsCharged,
                          "reservation " + c.target_id + " has charged nothing");
    }
    charge = &it->second.charge;
  } else {
    auto it = state_.usages.find(c.target_id);
    if (it == state_.usages.end()) {
      Missed('u', c.target_id);
      return NotFoundFor("usage " + c.target_id);
    }
    charge = &it->second.charge;
  }
  if (!Allowed(charge->account, Access::kAdminBelowRoot)) {
    return Reply::Error(ResultCode::kPermissionDenied,
                        "an admin refunds only accounts strictly below its own");
  }
  uint64_t hash = RequestHasher()
                      .Add(static_cast<int64_t>(c.target_kind))
                      .Add(c.target_id)
                      .Add(c.amount_micros)
                      .Add(c.reason)
                      .Finish();
  if (auto it = state_.refunds.find(c.refund_id); it != state_.refunds.end()) {
    if (it->second.request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "refund " + c.refund_id + " exists with a different payload");
    }
    return Ok(IdResult{c.refund_id, it->second.value}, false);
  }
  int64_t refundable = charge->charged_micros - charge->refunded_micros;
  if (c.amount_micros > refundable) {
    Reply reply = Reply::Error(ResultCode::kRefundExceedsCharged,
                               "at most " + FormatUsd(refundable) + " USD can still be refunded");
    reply.available_micros = refundable;
    return reply;
  }
  Emit(event::Refunded{c.refund_id, c.target_kind, c.target_id, c.amount_micros, c.reason, hash});
  return Ok(IdResult{c.refund_id, c.amount_micros}, true);
}

Reply Machine::Handler::Do(const cmd::RecordRevenue& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  PURSER_CHECK_INPUT(CheckClientId("revenue_id", c.revenue_id));
  PURSER_CHECK_INPUT(CheckAmount("amount_micros", c.amount_micros, true));
  PURSER_CHECK_INPUT(CheckDimension("category", c.category, false));
  PURSER_CHECK_INPUT(CheckText("reference", c.reference, kTextBytesMax));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kWrite, &error);
  if (index == kNoAccount) return error;
  uint64_t hash = RequestHasher()
                      .Add(c.account)
                      .Add(c.amount_micros)
                      .Add(c.category)
                      .Add(c.reference)
                      .Finish();
  if (auto it = state_.revenues.find(c.revenue_id); it != state_.revenues.end()) {
    if (it->second.request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "revenue " + c.revenue_id + " exists with a different payload");
    }
    return Ok(IdResult{c.revenue_id, it->second.value}, false);
  }
  if (!CheckedAdd(state_.account(index).revenue_total_micros, c.amount_micros)) {
    return Invalid("this revenue would overflow the account's total");
  }
  Emit(event::RevenueRecorded{c.revenue_id, c.account, c.amount_micros, c.category, c.reference,
                              hash});
  return Ok(IdResult{c.revenue_id, c.amount_micros}, true);
}

Reply Machine::Handler::Do(const cmd::Adjust& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckClientId("adjustment_id", c.adjustment_id));
  if (c.amount_micros == 0 || c.amount_micros > kInputValueMax ||
      c.amount_micros < -kInputValueMax) {
    return Invalid("amount_micros must be non-zero and at most 10^12 in magnitude");
  }
  if (c.reason.empty()) return Invalid("reason is required");
  PURSER_CHECK_INPUT(CheckText("reason", c.reason, kTextBytesMax));
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;
  uint64_t hash = RequestHasher().Add(c.account).Add(c.amount_micros).Add(c.reason).Finish();
  if (auto it = state_.adjustments.find(c.adjustment_id); it != state_.adjustments.end()) {
    if (it->second.request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "adjustment " + c.adjustment_id + " exists with a different payload");
    }
    return Ok(BalanceResult{c.adjustment_id, it->second.value}, false);
  }
  const Account& account = state_.account(index);
  if (!account.wallet) return Invalid("account " + c.account + " has no wallet");
  if (!CheckedAdd(account.balance_micros, c.amount_micros) ||
      !CheckedAdd(account.adjusted_micros, c.amount_micros)) {
    return Invalid("this adjustment would overflow the balance");
  }
  Emit(event::Adjusted{c.adjustment_id, c.account, c.amount_micros, c.reason, hash});
  return Ok(BalanceResult{c.adjustment_id, state_.account(index).balance_micros}, true);
}

Reply Machine::Handler::Do(const cmd::SetPrice& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  if (!principal_.global()) {
    return Reply::Error(ResultCode::kPermissionDenied, "prices need the global admin");
  }
  PURSER_CHECK_INPUT(CheckDimension("model", c.model, true));
  PURSER_CHECK_INPUT(CheckAmount("input_per_mtok_micros", c.rates.input_per_mtok, false));
  PURSER_CHECK_INPUT(CheckAmount("output_per_mtok_micros", c.rates.output_per_mtok, false));
  for (int64_t rate : {c.rates.cached_input_per_mtok, c.rates.cache_write_per_mtok,
                       c.rates.reasoning_per_mtok}) {
    if (rate < -1 || rate > kInputValueMax) return Invalid("rates must be in 0..10^12");
  }
  if (auto it = state_.prices.find(c.model);
      it != state_.prices.end() && !it->second.empty() && it->second.back().rates == c.rates) {
    // Unchanged: nothing is appended, and the answer is the model's own version.
    uint64_t version = it->second.back().version;
    return Ok(PriceList{state_.price_version, {PriceView{c.model, c.rates, version}}}, false);
  }
  uint64_t version = state_.price_version + 1;
  Emit(event::PriceSet{c.model, c.rates, version});
  return Ok(PriceList{version, {PriceView{c.model, c.rates, version}}}, true);
}

Reply Machine::Handler::Do(const cmd::SetBaseline& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckAmount("micros_per_hour", c.micros_per_hour, true));
  if (c.multiplier_bp < 1 || c.multiplier_bp > kMultiplierBpMax) {
    return Invalid("multiplier must be in 0.0001..100");
  }
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;
  const Account& account = state_.account(index);
  bool same = account.baseline_micros_per_hour == c.micros_per_hour &&
              account.baseline_multiplier_bp == c.multiplier_bp;
  if (!same) Emit(event::BaselineSet{c.account, c.micros_per_hour, c.multiplier_bp});
  return Ok(BaselineView{c.account, c.micros_per_hour, c.multiplier_bp}, !same);
}

Reply Machine::Handler::Do(const cmd::IssueKey& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  if (!c.request_id.empty()) PURSER_CHECK_INPUT(CheckClientId("idempotency key", c.request_id));
  PURSER_CHECK_INPUT(CheckClientId("key_id", c.key_id));
  PURSER_CHECK_INPUT(CheckText("label", c.label, kTextBytesMax));
  if (c.grace_s < 0 || c.grace_s > 30 * 24 * 3600) return Invalid("grace_s must be in 0..30 days");
  std::string account_id = c.account;
  Role role = c.role;
  if (!c.rotate_of.empty()) {
    auto old = state_.keys.find(c.rotate_of);
    if (old == state_.keys.end() || old->second.revoked) {
      return NotFoundFor("key " + c.rotate_of);
    }
    // A key is rotated once: a second rotation would reset (resurrect) the
    // old secret's expiry. Later rotations go through its successor.
    if (old->second.valid_until_us != INT64_MAX &&
        !(c.request_id.size() > 0 && state_.key_requests.contains(c.request_id))) {
      return Reply::Error(ResultCode::kAlreadyExists,
                          "key " + c.rotate_of + " was rotated already; rotate its successor");
    }
    // A rotation keeps the old key's account and role.
    account_id = old->second.account == kNoAccount ? "" : state_.account(old->second.account).id;
    role = old->second.role;
  }
  AccountIndex index = kNoAccount;
  if (account_id.empty()) {
    if (!principal_.global()) {
      return Reply::Error(ResultCode::kPermissionDenied, "only the global admin issues global keys");
    }
  } else {
    Reply error;
    index = Resolve(account_id, Access::kAdminBelowRoot, &error);
    if (index == kNoAccount) return error;
  }
  uint64_t hash = RequestHasher()
                      .Add(account_id)
                      .Add(static_cast<int64_t>(role))
                      .Add(c.label)
                      .Add(c.rotate_of)
                      .Add(c.grace_s)
                      .Finish();
  if (!c.request_id.empty()) {
    if (auto it = state_.key_requests.find(c.request_id); it != state_.key_requests.end()) {
      const ApiKey& key = state_.keys.at(it->second);
      if (key.request_hash != hash) {
        return Reply::Error(ResultCode::kIdempotencyConflict,
                            "key request " + c.request_id + " was made with a different payload");
      }
      return Ok(KeyResult{key.key_id, account_id, key.role, ""}, false);
    }
  }
  if (state_.keys.contains(c.key_id) || state_.keys_by_hash.contains(c.secret_sha256)) {
    return Reply::Error(ResultCode::kAlreadyExists, "key " + c.key_id + " already exists");
  }
  event::ApiKeyIssued e;
  e.key_id = c.key_id;
  e.account = account_id;
  e.role = role;
  e.label = c.label;
  e.secret_sha256 = c.secret_sha256;
  e.request_id = c.request_id;
  e.rotated_from = c.rotate_of;
  e.old_key_valid_until_us = c.rotate_of.empty() ? 0 : now_us_ + c.grace_s * kMicrosPerSecond;
  e.request_hash = hash;
  Emit(std::move(e));
  return Ok(KeyResult{c.key_id, account_id, role, ""}, true);
}

Reply Machine::Handler::Do(const cmd::RevokeKey& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  auto it = state_.keys.find(c.key_id);
  if (it == state_.keys.end()) {
    return NotFoundFor("key " + c.key_id);
  }
  const ApiKey& key = it->second;
  bool allowed = principal_.global() ||
                 (key.account != kNoAccount && Allowed(key.account, Access::kAdminBelowRoot));
  if (!allowed) {
    return NotFoundFor("key " + c.key_id);
  }
  if (key.revoked) return Ok(std::monostate{}, false);
  Emit(event::ApiKeyRevoked{c.key_id});
  return Ok(std::monostate{}, true);
}

Reply Machine::Handler::Do(const cmd::RegisterWebhook& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  if (!c.request_id.empty()) PURSER_CHECK_INPUT(CheckClientId("idempotency key", c.request_id));
  PURSER_CHECK_INPUT(CheckClientId("webhook_id", c.webhook_id));
  if (c.url.empty()) return Invalid("url is required");
  PURSER_CHECK_INPUT(CheckText("url", c.url, kWebhookUrlBytesMax));
  PURSER_CHECK_INPUT(CheckWebhookEvents(c.events));
  std::string account_id = c.account;
  if (account_id.empty() && !principal_.global()) account_id = state_.account(principal_.root).id;
  if (!account_id.empty()) {
    Reply error;
    if (Resolve(account_id, Access::kAdminInSubtree, &error) == kNoAccount) return error;
  }
  uint64_t hash = RequestHasher().Add(c.url).Add(c.events).Add(account_id).Finish();
  if (!c.request_id.empty()) {
    if (auto it = state_.webhook_requests.find(c.request_id); it != state_.webhook_requests.end()) {
      const Webhook& hook = state_.webhooks.at(it->second);
      if (hook.request_hash != hash) {
        return Reply::Error(ResultCode::kIdempotencyConflict,
                            "webhook request " + c.request_id + " had a different payload");
      }
      return Ok(IdResult{hook.webhook_id, 0}, false);
    }
  }
  if (state_.webhooks.contains(c.webhook_id)) {
    return Reply::Error(ResultCode::kAlreadyExists, "webhook " + c.webhook_id + " already exists");
  }
  Emit(event::WebhookRegistered{c.webhook_id, c.url, c.events, account_id, c.request_id, hash,
                                c.secret_sha256});
  return Ok(IdResult{c.webhook_id, 0}, true);
}

const Webhook* Machine::Handler::ManagedWebhook(const std::string& id, Reply* error) const {
  if (auto denied = RequireRole(Role::kAdmin)) {
    *error = *denied;
    return nullptr;
  }
  auto it = state_.webhooks.find(id);
  if (it == state_.webhooks.end() || it->second.removed) {
    *error = NotFoundFor("webhook " + id);
    return nullptr;
  }
  const Webhook& hook = it->second;
  bool allowed = principal_.global() ||
                 (hook.account != kNoAccount && Allowed(hook.account, Access::kAdminInSubtree));
  if (!allowed) {
    *error = NotFoundFor("webhook " + id);
    return nullptr;
  }
  return &hook;
}

Reply Machine::Handler::Do(const cmd::RemoveWebhook& c) {
  Reply error;
  if (ManagedWebhook(c.webhook_id, &error) == nullptr) return error;
  Emit(event::WebhookRemoved{c.webhook_id});
  return Ok(std::monostate{}, true);
}

Reply Machine::Handler::Do(const cmd::UpdateWebhook& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  if (c.url) {
    if (c.url->empty()) return Invalid("url must not be empty");
    PURSER_CHECK_INPUT(CheckText("url", *c.url, kWebhookUrlBytesMax));
  }
  if (c.events) PURSER_CHECK_INPUT(CheckWebhookEvents(*c.events));
  Reply error;
  const Webhook* hook = ManagedWebhook(c.webhook_id, &error);
  if (hook == nullptr) return error;
  event::WebhookUpdated e{hook->webhook_id, c.url.value_or(hook->url),
                          c.events.value_or(hook->events), c.enabled.value_or(hook->enabled)};
  bool same = e.url == hook->url && e.events == hook->events && e.enabled == hook->enabled;
  if (!same) Emit(e);  // setting what is already set appends nothing
  return Ok(MakeWebhookView(state_.webhooks.at(c.webhook_id)), !same);
}

Reply Machine::Handler::Do(const cmd::IngestDailyReport& c) {
  PURSER_RETURN_IF(RequireRole(Role::kWriter));
  event::DailyReportIngested report = c.report;
  PURSER_CHECK_INPUT(CheckClientId("report id", report.report_id));
  if (report.account.empty() && !principal_.global()) {
    report.account = state_.account(principal_.root).id;
  }
  if (report.account.empty()) return Invalid("the global admin names the account with ?account=");
  if (!ParseDate(report.date)) return Invalid("date must be YYYY-MM-DD");
  PURSER_CHECK_INPUT(CheckAmount("total_tokens", report.total_tokens, false));
  PURSER_CHECK_INPUT(CheckAmount("total_cost", report.total_cost_micros, false));
  PURSER_CHECK_INPUT(CheckAmount("total_requests", report.total_requests, false));
  if (report.efficiency_score_millionths > 100 * kMicrosPerUsd) {
    return Invalid("efficiency_score must be in 0..100");
  }
  for (const auto* list : {&report.cost_by_model, &report.cost_by_action,
                           &report.waste_categories}) {
    if (list->size() > kReportNamedAmountsMax) return Invalid("at most 256 entries per breakdown");
    for (const event::NamedAmount& entry : *list) {
      PURSER_CHECK_INPUT(CheckText("breakdown name", entry.name, kDimensionBytesMax));
      PURSER_CHECK_INPUT(CheckAmount("breakdown cost", entry.amount_micros, false));
    }
  }
  if (report.metadata_json.size() > kMetadataBytesMax) return Invalid("metadata is too large");
  Reply error;
  if (Resolve(report.account, Access::kWrite, &error) == kNoAccount) return error;
  RequestHasher hasher;
  hasher.Add(report.account).Add(report.date).Add(report.total_tokens)
      .Add(report.total_cost_micros).Add(report.total_requests)
      .Add(report.efficiency_score_millionths).Add(report.metadata_json);
  for (const auto* list : {&report.cost_by_model, &report.cost_by_action,
                           &report.waste_categories}) {
    hasher.Add(static_cast<int64_t>(list->size()));
    for (const event::NamedAmount& entry : *list) hasher.Add(entry.name).Add(entry.amount_micros);
  }
  report.request_hash = hasher.Finish();
  if (auto it = state_.daily_report_ids.find(report.report_id);
      it != state_.daily_report_ids.end()) {
    if (it->second != report.request_hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "report " + report.report_id + " exists with a different payload");
    }
    return Ok(IdResult{report.report_id, 0}, false);
  }
  std::string id = report.report_id;
  Emit(std::move(report));
  return Ok(IdResult{id, 0}, true);
}

Reply Machine::Handler::Do(const cmd::ExpireDue&) {
  if (!principal_.system) {
    return Reply::Error(ResultCode::kPermissionDenied, "expiry is run by the service");
  }
  int64_t expired = 0;
  while (!state_.expiry_queue.empty() && state_.expiry_queue.begin()->first <= now_us_) {
    const Reservation& r = *state_.expiry_queue.begin()->second;
    std::string id = r.id;
    AccountIndex account = r.account;
    int64_t amount = r.amount_micros;
    bool charge = EffectiveOnExpiry(account) == OnExpiry::kCharge && amount > 0;
    Reply overflow;
    if (charge && !SpendFits(account, amount, &overflow)) charge = false;
    Emit(event::Expired{id, charge ? 0 : amount, charge ? amount : 0, state_.account(account).id});
    if (charge) RaiseSpendAlerts(account, 0);
    ++expired;
  }
  return Ok(IdResult{"", expired}, expired > 0);
}

Reply Machine::Handler::Do(const cmd::CountRejections& c) {
  if (!principal_.system) {
    return Reply::Error(ResultCode::kPermissionDenied, "rejection counts come from the service");
  }
  for (const event::RejectionsCounted& count : c.counts) {
    if (state_.FindAccount(count.account) == kNoAccount || count.count == 0) continue;
    Emit(count);
  }
  return Ok(std::monostate{}, !c.counts.empty());
}

Reply Machine::Handler::Do(const cmd::Transfer& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  PURSER_CHECK_INPUT(CheckClientId("transfer_id", c.transfer_id));
  PURSER_CHECK_INPUT(CheckAccountId("from", c.from));
  PURSER_CHECK_INPUT(CheckAccountId("to", c.to));
  PURSER_CHECK_INPUT(CheckAmount("amount_micros", c.amount_micros, true));
  PURSER_CHECK_INPUT(CheckText("reason", c.reason, kTextBytesMax));
  if (c.from == c.to) return Invalid("from and to must be different wallets");
  // Out of any wallet in the key's subtree (its root's included), into
  // wallets strictly below its root: no key funds itself.
  Reply error;
  AccountIndex from = Resolve(c.from, Access::kAdminInSubtree, &error);
  if (from == kNoAccount) return error;
  AccountIndex to = Resolve(c.to, Access::kAdminBelowRoot, &error);
  if (to == kNoAccount) return error;
  uint64_t hash =
      RequestHasher().Add(c.from).Add(c.to).Add(c.amount_micros).Add(c.reason).Finish();
  if (auto it = state_.transfers.find(c.transfer_id); it != state_.transfers.end()) {
    if (it->second.request_hash != hash) {
      return Reply::Error(ResultCode::kIdempotencyConflict,
                          "transfer " + c.transfer_id + " was made with a different payload");
    }
    return Ok(TransferResult{c.transfer_id, it->second.from_balance_micros,
                             it->second.to_balance_micros},
              false);
  }
  const Account& source = state_.account(from);
  const Account& target = state_.account(to);
  if (!source.wallet) return Invalid("account " + c.from + " has no wallet");
  if (!target.wallet) return Invalid("account " + c.to + " has no wallet");
  int64_t available = source.balance_micros - source.wallet_held_micros;
  if (available < c.amount_micros) {
    return RefusalReply(Refusal{ResultCode::kInsufficientFunds, from, kNoLimit,
                                std::max<int64_t>(0, available)});
  }
  if (!CheckedAdd(target.balance_micros, c.amount_micros) ||
      !CheckedAdd(target.transferred_in_micros, c.amount_micros) ||
      !CheckedAdd(source.transferred_out_micros, c.amount_micros)) {
    return Invalid("this transfer would overflow a balance");
  }
  Emit(event::Transferred{c.transfer_id, c.from, c.to, c.amount_micros, c.reason, hash});
  return Ok(TransferResult{c.transfer_id, state_.account(from).balance_micros,
                           state_.account(to).balance_micros},
            true);
}

Reply Machine::Handler::Do(const cmd::IndexTagKeys& c) {
  PURSER_RETURN_IF(RequireRole(Role::kAdmin));
  if (c.keys.empty() || c.keys.size() > kIndexedTagKeysMax) {
    return Invalid("keys must name 1..16 tag keys");
  }
  for (size_t i = 0; i < c.keys.size(); ++i) {
    if (c.keys[i].empty()) return Invalid("tag keys must not be empty");
    PURSER_CHECK_INPUT(CheckText("tag key", c.keys[i], kTagKeyBytesMax));
    for (size_t k = 0; k < i; ++k) {
      if (c.keys[k] == c.keys[i]) return Invalid("tag key repeated: " + c.keys[i]);
    }
  }
  // Roots only, so the global admin (a scoped admin acts strictly below its root).
  Reply error;
  AccountIndex index = Resolve(c.account, Access::kAdminBelowRoot, &error);
  if (index == kNoAccount) return error;
  const Account& root = state_.account(index);
  if (root.parent != kNoAccount) return Invalid("indexed tag keys are declared on a root account only");
  std::vector<std::string> added;
  for (const std::string& key : c.keys) {
    if (std::find(root.indexed_tag_keys.begin(), root.indexed_tag_keys.end(), key) ==
        root.indexed_tag_keys.end()) {
      added.push_back(key);
    }
  }
  if (root.indexed_tag_keys.size() + added.size() > kIndexedTagKeysMax) {
    return Invalid("a root indexes at most 16 tag keys");
  }
  if (!added.empty()) Emit(event::TagKeysIndexed{c.account, added});
  return Ok(TagKeysView{c.account, state_.account(index).indexed_tag_keys}, !added.empty());
}

}  // namespace purser
