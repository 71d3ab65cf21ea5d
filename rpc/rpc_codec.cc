#include "rpc/rpc_codec.h"

#include <cstring>

#include "ledger/wire/capnp_values.h"
#include "ledger/base/clock.h"
#include "ledger/base/limits.h"

namespace purser {

namespace {

namespace e = ::purser::schema;

// Enums from the wire: refused when out of range (a newer client, or garbage).
template <typename T>
bool EnumIn(uint16_t raw, uint16_t count, T* out) {
  if (raw >= count) return false;
  *out = static_cast<T>(raw);
  return true;
}

std::string GetCheckedTags(capnp::List<e::Tag>::Reader list, Tags* tags) {
  if (list.size() > kTagsMax) return "tags has more than 16 entries";
  for (auto tag : list) tags->push_back(Tag{Str(tag.getKey()), Str(tag.getValue())});
  return {};
}

Patch<int64_t> GetField(rpc::CapsField::Reader field) {
  switch (field.which()) {
    case rpc::CapsField::SET: return Patch<int64_t>::Set(field.getSet());
    case rpc::CapsField::REMOVE: return Patch<int64_t>::Remove();
    default: return Patch<int64_t>{};
  }
}

void PutField(rpc::CapsField::Builder field, const Patch<int64_t>& patch) {
  switch (patch.op) {
    case Patch<int64_t>::Op::kSet: field.setSet(patch.value); break;
    case Patch<int64_t>::Op::kRemove: field.setRemove(); break;
    case Patch<int64_t>::Op::kKeep: field.setKeep(); break;
  }
}

std::optional<UsageTokens> GetUsage(rpc::UsageTokens::Reader r) {
  return UsageTokens{Str(r.getModel()), Get(r.getTokens())};
}

void PutUsage(rpc::UsageTokens::Builder b, const UsageTokens& u) {
  b.setModel(Text(u.model));
  Put(b.initTokens(), u.tokens);
}

std::string DecodeDay(capnp::Text::Reader text, int64_t* day) {
  std::optional<int64_t> parsed = ParseDate(Str(text));
  if (!parsed) return "dates must be YYYY-MM-DD";
  *day = *parsed;
  return {};
}

// ---- commands ----------------------------------------------------------------

std::string DecodeReserve(rpc::Reserve::Reader r, RequestBody* body) {
  cmd::Reserve c;
  c.reservation_id = Str(r.getReservationId());
  c.account = Str(r.getAccount());
  if (r.getAmount().isMicros()) {
    c.amount_micros = r.getAmount().getMicros();
  } else {
    auto estimate = r.getAmount().getEstimate();
    c.estimate = Estimate{Str(estimate.getModel()), estimate.getInputTokens(),
                          estimate.getMaxOutputTokens()};
  }
  c.ttl_s = r.getTtlS();
  c.run_id = Str(r.getRunId());
  c.action = Str(r.getAction());
  if (std::string problem = GetCheckedTags(r.getTags(), &c.tags); !problem.empty()) return problem;
  *body = std::move(c);
  return {};
}

std::string DecodeSettle(rpc::Settle::Reader r, RequestBody* body) {
  cmd::Settle c;
  c.reservation_id = Str(r.getReservationId());
  if (r.getCost().isMicros()) {
    c.amount_micros = r.getCost().getMicros();
  } else {
    c.usage = GetUsage(r.getCost().getUsage());
  }
  if (r.getHasAction()) c.action = Str(r.getAction());
  if (r.getHasWaste()) c.waste = Str(r.getWaste());
  if (!EnumIn(static_cast<uint16_t>(r.getOutcome()), 4, &c.outcome)) return "unknown outcome";
  if (std::string problem = GetCheckedTags(r.getTags(), &c.tags); !problem.empty()) return problem;
  *body = std::move(c);
  return {};
}

std::string DecodeUsage(rpc::Usage::Reader r, RequestBody* body) {
  cmd::RecordUsage c;
  c.usage_id = Str(r.getUsageId());
  c.account = Str(r.getAccount());
  if (r.getCost().isMicros()) {
    c.amount_micros = r.getCost().getMicros();
  } else {
    c.usage = GetUsage(r.getCost().getUsage());
  }
  c.action = Str(r.getAction());
  c.waste = Str(r.getWaste());
  if (!EnumIn(static_cast<uint16_t>(r.getOutcome()), 4, &c.outcome)) return "unknown outcome";
  c.run_id = Str(r.getRunId());
  c.occurred_at_us = r.getOccurredAtUs();
  if (std::string problem = GetCheckedTags(r.getTags(), &c.tags); !problem.empty()) return problem;
  *body = std::move(c);
  return {};
}

std::string DecodeSetCaps(rpc::SetCaps::Reader r, RequestBody* body) {
  cmd::SetCaps c;
  c.account = Str(r.getAccount());
  c.patch.daily_limit_micros = GetField(r.getDailyLimitMicros());
  c.patch.monthly_limit_micros = GetField(r.getMonthlyLimitMicros());
  c.patch.hard_limit_micros = GetField(r.getHardLimitMicros());
  c.patch.max_inflight = GetField(r.getMaxInflight());
  c.patch.reservation_ttl_s = GetField(r.getReservationTtlS());
  if (r.getSetThresholds()) {
    if (r.getAlertThresholdsPct().size() > kAlertThresholdsMax) return "at most 8 alert thresholds";
    std::vector<uint8_t> thresholds;
    for (uint8_t pct : r.getAlertThresholdsPct()) thresholds.push_back(pct);
    c.patch.alert_thresholds_pct = Patch<std::vector<uint8_t>>::Set(std::move(thresholds));
  } else if (r.getRemoveThresholds()) {
    c.patch.alert_thresholds_pct = Patch<std::vector<uint8_t>>::Remove();
  }
  OnExpiry on_expiry;
  if (!EnumIn(static_cast<uint16_t>(r.getOnExpiry()), 3, &on_expiry)) return "unknown on_expiry";
  if (on_expiry != OnExpiry::kInherit) c.patch.on_expiry = Patch<OnExpiry>::Set(on_expiry);
  if (r.getRemoveOnExpiry()) c.patch.on_expiry = Patch<OnExpiry>::Remove();
  RunawayAction runaway;
  if (!EnumIn(static_cast<uint16_t>(r.getRunawayAction()), 3, &runaway)) {
    return "unknown runaway_action";
  }
  if (runaway != RunawayAction::kInherit) c.patch.runaway_action = Patch<RunawayAction>::Set(runaway);
  if (r.getRemoveRunawayAction()) c.patch.runaway_action = Patch<RunawayAction>::Remove();
  c.patch.runaway_error_streak = GetField(r.getRunawayErrorStreak());
  c.patch.runaway_burn_multiplier_bp = GetField(r.getRunawayBurnMultiplierBp());
  c.patch.runaway_min_micros_per_hour = GetField(r.getRunawayMinMicrosPerHour());
  c.patch.max_calls_per_minute = GetField(r.getMaxCallsPerMinute());
  c.patch.max_tokens_per_minute = GetField(r.getMaxTokensPerMinute());
  c.patch.degrade_at_pct = GetField(r.getDegradeAtPct());
  *body = std::move(c);
  return {};
}

// Long by design: one case per admin command of the Command union.
std::string DecodeAdminCommand(rpc::Command::Reader command, RequestBody* body) {
  switch (command.which()) {
    case rpc::Command::OPEN_ACCOUNT: {
      auto r = command.getOpenAccount();
      cmd::OpenAccount c;
      c.id = Str(r.getId());
      c.parent = Str(r.getParent());
      if (!EnumIn(static_cast<uint16_t>(r.getKind()), 4, &c.kind)) return "unknown account kind";
      c.name = Str(r.getName());
      c.wallet = r.getWallet();
      if (r.getIndexedTagKeys().size() > kIndexedTagKeysMax) return "at most 16 indexed tag keys";
      for (auto key : r.getIndexedTagKeys()) c.indexed_tag_keys.push_back(Str(key));
      *body = std::move(c);
      return {};
    }
    case rpc::Command::SET_CAPS: return DecodeSetCaps(command.getSetCaps(), body);
    case rpc::Command::FREEZE:
      *body = cmd::Freeze{Str(command.getFreeze().getAccount()), Str(command.getFreeze().getReason())};
      return {};
    case rpc::Command::UNFREEZE: *body = cmd::Unfreeze{Str(command.getUnfreeze())}; return {};
    case rpc::Command::DEPOSIT: {
      auto r = command.getDeposit();
      *body = cmd::Deposit{Str(r.getDepositId()), Str(r.getAccount()), r.getAmountMicros(),
                           Str(r.getReference())};
      return {};
    }
    case rpc::Command::REFUND: {
      auto r = command.getRefund();
      ChargeKind kind;
      if (!EnumIn(static_cast<uint16_t>(r.getTargetKind()), 2, &kind)) return "unknown target kind";
      *body = cmd::Refund{Str(r.getRefundId()), kind, Str(r.getTargetId()), r.getAmountMicros(),
                          Str(r.getReason())};
      return {};
    }
    case rpc::Command::ADJUST: {
      auto r = command.getAdjust();
      *body = cmd::Adjust{Str(r.getAdjustmentId()), Str(r.getAccount()), r.getAmountMicros(),
                          Str(r.getReason())};
      return {};
    }
    case rpc::Command::SET_PRICE: {
      auto r = command.getSetPrice();
      *body = cmd::SetPrice{Str(r.getModel()), Get(r.getRates())};
      return {};
    }
    case rpc::Command::SET_BASELINE: {
      auto r = command.getSetBaseline();
      *body = cmd::SetBaseline{Str(r.getAccount()), r.getMicrosPerHour(), r.getMultiplierBp()};
      return {};
    }
    case rpc::Command::ISSUE_KEY: {
      auto r = command.getIssueKey();
      cmd::IssueKey c;
      c.request_id = Str(r.getRequestId());
      c.account = Str(r.getAccount());
      if (!EnumIn(static_cast<uint16_t>(r.getRole()), 3, &c.role)) return "unknown role";
      c.label = Str(r.getLabel());
      c.rotate_of = Str(r.getRotateOf());
      c.grace_s = r.getGraceS();
      *body = std::move(c);  // key id and secret are chosen by the server
      return {};
    }
    case rpc::Command::REVOKE_KEY: *body = cmd::RevokeKey{Str(command.getRevokeKey())}; return {};
    case rpc::Command::REGISTER_WEBHOOK: {
      auto r = command.getRegisterWebhook();
      cmd::RegisterWebhook c;
      c.request_id = Str(r.getRequestId());
      c.url = Str(r.getUrl());
      if (r.getEvents().size() > kWebhookEventsMax) return "at most 16 webhook event kinds";
      for (auto kind : r.getEvents()) c.events.push_back(Str(kind));
      c.account = Str(r.getAccount());
      c.secret = Str(r.getSecret());
      if (c.secret.empty()) return "secret is required";
      if (c.secret.size() > 256) return "secret is longer than 256 bytes";
      *body = std::move(c);  // id and secret hash are set by the server
      return {};
    }
    case rpc::Command::REMOVE_WEBHOOK:
      *body = cmd::RemoveWebhook{Str(command.getRemoveWebhook())};
      return {};
    case rpc::Command::TRANSFER: {
      auto r = command.getTransfer();
      *body = cmd::Transfer{Str(r.getTransferId()), Str(r.getFrom()), Str(r.getTo()),
                            r.getAmountMicros(), Str(r.getReason())};
      return {};
    }
    case rpc::Command::UPDATE_WEBHOOK: {
      auto r = command.getUpdateWebhook();
      cmd::UpdateWebhook c;
      c.webhook_id = Str(r.getWebhookId());
      if (r.getSetUrl()) c.url = Str(r.getUrl());
      if (r.getSetEvents()) {
        if (r.getEvents().size() > kWebhookEventsMax) return "at most 16 webhook event kinds";
        std::vector<std::string> events;
        for (auto kind : r.getEvents()) events.push_back(Str(kind));
        c.events = std::move(events);
      }
      if (r.getSetEnabled()) c.enabled = r.getEnabled();
      *body = std::move(c);
      return {};
    }
    case rpc::Command::INDEX_TAG_KEYS: {
      auto r = command.getIndexTagKeys();
      if (r.getKeys().size() > kIndexedTagKeysMax) return "at most 16 tag keys";
      cmd::IndexTagKeys c;
      c.account = Str(r.getAccount());
      for (auto key : r.getKeys()) c.keys.push_back(Str(key));
      *body = std::move(c);
      return {};
    }
    default:
      return "unknown command";
  }
}

// ---- replies -------------------------------------------------------------------

void PutBalance(rpc::BalanceView::Builder b, const BalanceView& v) {
  b.setAccount(Text(v.account));
  b.setFundingAccount(Text(v.funding_account));
  b.setBalanceMicros(v.balance_micros);
  b.setHeldMicros(v.held_micros);
  b.setAvailableMicros(v.available_micros);
  b.setOwnHeldMicros(v.own_held_micros);
  b.setSpentTodayMicros(v.spent_today_micros);
  b.setSpentMonthMicros(v.spent_month_micros);
  b.setSpentTotalMicros(v.spent_total_micros);
  b.setDailyLimitMicros(v.daily_limit_micros);
  b.setMonthlyLimitMicros(v.monthly_limit_micros);
  b.setHardLimitMicros(v.hard_limit_micros);
  b.setHeadroomMicros(v.headroom_micros);
  b.setInflight(v.inflight);
  b.setFrozen(v.frozen);
}

BalanceView GetBalance(rpc::BalanceView::Reader r) {
  BalanceView v;
  v.account = Str(r.getAccount());
  v.funding_account = Str(r.getFundingAccount());
  v.balance_micros = r.getBalanceMicros();
  v.held_micros = r.getHeldMicros();
  v.available_micros = r.getAvailableMicros();
  v.own_held_micros = r.getOwnHeldMicros();
  v.spent_today_micros = r.getSpentTodayMicros();
  v.spent_month_micros = r.getSpentMonthMicros();
  v.spent_total_micros = r.getSpentTotalMicros();
  v.daily_limit_micros = r.getDailyLimitMicros();
  v.monthly_limit_micros = r.getMonthlyLimitMicros();
  v.hard_limit_micros = r.getHardLimitMicros();
  v.headroom_micros = r.getHeadroomMicros();
  v.inflight = r.getInflight();
  v.frozen = r.getFrozen();
  return v;
}

void PutAccount(rpc::AccountView::Builder b, const AccountView& v) {
  b.setId(Text(v.id));
  b.setParent(Text(v.parent));
  b.setKind(static_cast<e::AccountKind>(v.kind));
  b.setName(Text(v.name));
  b.setWallet(v.wallet);
  b.setFrozen(v.frozen);
  Put(b.initCaps(), v.caps);
  PutBalance(b.initBalance(), v.balance);
  auto keys = b.initIndexedTagKeys(static_cast<unsigned>(v.indexed_tag_keys.size()));
  for (unsigned i = 0; i < v.indexed_tag_keys.size(); ++i) keys.set(i, Text(v.indexed_tag_keys[i]));
  b.setFrozenReason(Text(v.frozen_reason));
}

AccountView GetAccount(rpc::AccountView::Reader r) {
  AccountView v;
  v.id = Str(r.getId());
  v.parent = Str(r.getParent());
  v.kind = static_cast<AccountKind>(r.getKind());
  v.name = Str(r.getName());
  v.wallet = r.getWallet();
  v.frozen = r.getFrozen();
  v.caps = Get(r.getCaps());
  v.balance = GetBalance(r.getBalance());
  for (auto key : r.getIndexedTagKeys()) v.indexed_tag_keys.push_back(Str(key));
  v.frozen_reason = Str(r.getFrozenReason());
  return v;
}

void PutWebhook(rpc::WebhookView::Builder b, const WebhookView& w) {
  b.setWebhookId(Text(w.webhook_id));
  b.setUrl(Text(w.url));
  auto events = b.initEvents(static_cast<unsigned>(w.events.size()));
  for (unsigned k = 0; k < w.events.size(); ++k) events.set(k, Text(w.events[k]));
  b.setAccount(Text(w.account));
  b.setCreatedAtUs(w.created_at_us);
  b.setEnabled(w.enabled);
}

void PutFigures(rpc::EfficiencyFigures::Builder b, const EfficiencyFigures& f) {
  b.setModel(Text(f.model));
  b.setScoreBp(f.score_bp);
  b.setTotalMicros(f.total_micros);
  b.setWasteMicros(f.waste_micros);
  b.setCacheHitRateBp(f.cache_hit_rate_bp);
  b.setCacheSavingsMicros(f.cache_savings_micros);
  b.setCacheWriteExtraMicros(f.cache_write_extra_micros);
  b.setCacheNetSavingsMicros(f.cache_net_savings_micros);
}

EfficiencyFigures GetFigures(rpc::EfficiencyFigures::Reader r) {
  EfficiencyFigures f;
  f.model = Str(r.getModel());
  f.score_bp = r.getScoreBp();
  f.total_micros = r.getTotalMicros();
  f.waste_micros = r.getWasteMicros();
  f.cache_hit_rate_bp = r.getCacheHitRateBp();
  f.cache_savings_micros = r.getCacheSavingsMicros();
  f.cache_write_extra_micros = r.getCacheWriteExtraMicros();
  f.cache_net_savings_micros = r.getCacheNetSavingsMicros();
  return f;
}

void PutNamedCosts(capnp::List<rpc::NamedCost>::Builder list,
                   const std::vector<std::pair<std::string, int64_t>>& costs) {
  for (unsigned i = 0; i < costs.size(); ++i) {
    list[i].setName(Text(costs[i].first));
    list[i].setCostMicros(costs[i].second);
  }
}

std::vector<std::pair<std::string, int64_t>> GetNamedCosts(capnp::List<rpc::NamedCost>::Reader list) {
  std::vector<std::pair<std::string, int64_t>> costs;
  for (auto entry : list) costs.emplace_back(Str(entry.getName()), entry.getCostMicros());
  return costs;
}

void PutReservation(rpc::ReservationView::Builder b, const ReservationView& v) {
  b.setReservationId(Text(v.reservation_id));
  b.setAccount(Text(v.account));
  b.setAmountMicros(v.amount_micros);
  b.setStatus(Text(std::string(ReservationStatusName(v.status))));
  b.setCostMicros(v.cost_micros);
  b.setCreatedAtUs(v.created_at_us);
  b.setExpiresAtUs(v.expires_at_us);
  b.setRunId(Text(v.run_id));
  b.setAction(Text(v.action));
}

ReservationView GetReservation(rpc::ReservationView::Reader r) {
  ReservationView v;
  v.reservation_id = Str(r.getReservationId());
  v.account = Str(r.getAccount());
  v.amount_micros = r.getAmountMicros();
  std::string status = Str(r.getStatus());
  for (auto s : {ReservationStatus::kPending, ReservationStatus::kSettled,
                 ReservationStatus::kVoided, ReservationStatus::kExpired}) {
    if (ReservationStatusName(s) == status) v.status = s;
  }
  v.cost_micros = r.getCostMicros();
  v.created_at_us = r.getCreatedAtUs();
  v.expires_at_us = r.getExpiresAtUs();
  v.run_id = Str(r.getRunId());
  v.action = Str(r.getAction());
  return v;
}

kj::ArrayPtr<const kj::byte> Bytes(const Sha256Digest& digest) {
  return kj::ArrayPtr<const kj::byte>(digest.data(), digest.size());
}

Sha256Digest GetDigest(capnp::Data::Reader data) {
  Sha256Digest digest{};
  if (data.size() == digest.size()) std::memcpy(digest.data(), data.begin(), digest.size());
  return digest;
}

struct ReplyEncoder {
  rpc::Result::Builder r;
  void operator()(const std::monostate&) { r.getBody().setNone(); }
  void operator()(const AccountView& v) { PutAccount(r.getBody().initAccount(), v); }
  void operator()(const AccountList& v) {
    auto list = r.getBody().initAccounts(static_cast<unsigned>(v.accounts.size()));
    for (unsigned i = 0; i < v.accounts.size(); ++i) PutAccount(list[i], v.accounts[i]);
  }
  void operator()(const CapsView& v) { Put(r.getBody().initCaps(), v.caps); }
  void operator()(const BalanceView& v) { PutBalance(r.getBody().initBalance(), v); }
  void operator()(const ReserveResult& v) {
    auto b = r.getBody().initReserve();
    b.setReservationId(Text(v.reservation_id));
    b.setAccount(Text(v.account));
    b.setAmountMicros(v.amount_micros);
    b.setExpiresAtUs(v.expires_at_us);
    b.setHeadroomAfterMicros(v.headroom_after_micros);
    b.setSeq(v.seq);
    b.setAdviceAccount(Text(v.advice_account));
  }
  void operator()(const SettleResult& v) {
    auto b = r.getBody().initSettle();
    b.setReservationId(Text(v.reservation_id));
    b.setCostMicros(v.cost_micros);
    b.setReleasedMicros(v.released_micros);
    b.setOverrunMicros(v.overrun_micros);
    b.setLate(v.late);
    b.setSeq(v.seq);
  }
  void operator()(const VoidResult& v) { r.getBody().setReleasedMicros(v.released_micros); }
  void operator()(const ExtendResult& v) { r.getBody().setExpiresAtUs(v.expires_at_us); }
  void operator()(const UsageResult& v) {
    auto b = r.getBody().initUsage();
    b.setUsageId(Text(v.usage_id));
    b.setCostMicros(v.cost_micros);
    b.setOverrunMicros(v.overrun_micros);
    b.setSeq(v.seq);
  }
  void operator()(const IdResult& v) {
    auto b = r.getBody().initId();
    b.setId(Text(v.id));
    b.setAmountMicros(v.amount_micros);
  }
  void operator()(const BalanceResult& v) {
    auto b = r.getBody().initWalletBalance();
    b.setId(Text(v.id));
    b.setBalanceMicros(v.balance_micros);
  }
  void operator()(const KeyResult& v) {
    auto b = r.getBody().initKey();
    b.setKeyId(Text(v.key_id));
    b.setAccount(Text(v.account));
    b.setRole(static_cast<e::Role>(v.role));
    b.setApiKey(Text(v.api_key));
  }
  void operator()(const PrincipalView& v) {
    auto b = r.getBody().initPrincipal();
    b.setKeyId(Text(v.key_id));
    b.setAccount(Text(v.account));
    b.setRole(static_cast<e::Role>(v.role));
  }
  void operator()(const ReservationView& v) { PutReservation(r.getBody().initReservation(), v); }
  void operator()(const ReservationList& v) {
    auto list = r.getBody().initReservations(static_cast<unsigned>(v.reservations.size()));
    for (unsigned i = 0; i < v.reservations.size(); ++i) PutReservation(list[i], v.reservations[i]);
  }
  void operator()(const SpendReport& v) {
    auto b = r.getBody().initSpend();
    b.setAccount(Text(v.account));
    b.setFromDay(Text(FormatDate(v.from_day)));
    b.setToDay(Text(FormatDate(v.to_day)));
    b.setTotalMicros(v.total_micros);
    b.setCalls(v.calls);
    auto groups = b.initGroups(static_cast<unsigned>(v.groups.size()));
    for (unsigned i = 0; i < v.groups.size(); ++i) {
      const SpendGroup& g = v.groups[i];
      groups[i].setKey(Text(g.key));
      groups[i].setCostMicros(g.cost_micros);
      groups[i].setCalls(g.calls);
      groups[i].setInputTokens(g.input_tokens);
      groups[i].setOutputTokens(g.output_tokens);
      groups[i].setCachedInputTokens(g.cached_input_tokens);
      groups[i].setCacheWriteTokens(g.cache_write_tokens);
      groups[i].setReasoningTokens(g.reasoning_tokens);
    }
  }
  void operator()(const AlertList& v) {
    auto list = r.getBody().initAlerts(static_cast<unsigned>(v.alerts.size()));
    for (unsigned i = 0; i < v.alerts.size(); ++i) {
      const AlertView& a = v.alerts[i];
      list[i].setId(a.id);
      list[i].setAccount(Text(a.account));
      list[i].setType(static_cast<e::AlertType>(a.type));
      list[i].setSeverity(Text(a.severity));
      list[i].setThresholdPct(a.threshold_pct);
      list[i].setWindow(static_cast<e::CapWindow>(a.window));
      list[i].setLimitMicros(a.limit_micros);
      list[i].setValueMicros(a.value_micros);
      list[i].setCount(a.count);
      list[i].setMessage(Text(a.message));
      list[i].setCreatedAtUs(a.created_at_us);
    }
    r.setTruncated(v.truncated);
  }
  void operator()(const PriceList& v) {
    auto b = r.getBody().initPrices();
    b.setVersion(v.version);
    auto list = b.initPrices(static_cast<unsigned>(v.prices.size()));
    for (unsigned i = 0; i < v.prices.size(); ++i) {
      list[i].setModel(Text(v.prices[i].model));
      Put(list[i].initRates(), v.prices[i].rates);
      list[i].setVersion(v.prices[i].version);
    }
  }
  void operator()(const CostResult& v) {
    auto b = r.getBody().initCost();
    b.setCostMicros(v.cost_micros);
    b.setPriceVersion(v.price_version);
  }
  void operator()(const KeyList& v) {
    auto list = r.getBody().initKeys(static_cast<unsigned>(v.keys.size()));
    for (unsigned i = 0; i < v.keys.size(); ++i) {
      const KeyView& k = v.keys[i];
      list[i].setKeyId(Text(k.key_id));
      list[i].setAccount(Text(k.account));
      list[i].setRole(static_cast<e::Role>(k.role));
      list[i].setLabel(Text(k.label));
      list[i].setRevoked(k.revoked);
      list[i].setValidUntilUs(k.valid_until_us);
      list[i].setCreatedAtUs(k.created_at_us);
    }
  }
  void operator()(const WebhookList& v) {
    auto list = r.getBody().initWebhooks(static_cast<unsigned>(v.webhooks.size()));
    for (unsigned i = 0; i < v.webhooks.size(); ++i) PutWebhook(list[i], v.webhooks[i]);
  }
  void operator()(const PnlView& v) {
    auto b = r.getBody().initPnl();
    b.setAccount(Text(v.account));
    b.setRevenueMicros(v.revenue_micros);
    b.setCostMicros(v.cost_micros);
    b.setProfitMicros(v.profit_micros);
    b.setHasMargin(v.margin_bp.has_value());
    b.setMarginBp(v.margin_bp.value_or(0));
  }
  void operator()(const ChainHead& v) {
    auto b = r.getBody().initChainHead();
    b.setSequence(v.sequence);
    b.setHash(Bytes(v.hash));
  }
  void operator()(const DigestView& v) {
    auto b = r.getBody().initDigest();
    b.setSequence(v.sequence);
    b.setDigest(Bytes(v.digest));
  }
  void operator()(const AccountTreeView&) { r.getBody().setNone(); }  // service only
  void operator()(const DailyReportList&) { r.getBody().setNone(); }  // HTTP compatibility only
  void operator()(const AccountMetricsView&) { r.getBody().setNone(); }  // /metrics only
  void operator()(const OverviewView&) { r.getBody().setNone(); }        // the dashboard's (HTTP)
  void operator()(const WebhookTableView&) { r.getBody().setNone(); }  // the notifier only
  void operator()(const WebhookView& v) {
    auto list = r.getBody().initWebhooks(1);
    PutWebhook(list[0], v);
  }
  void operator()(const TransferResult& v) {
    auto b = r.getBody().initTransfer();
    b.setTransferId(Text(v.transfer_id));
    b.setFromBalanceMicros(v.from_balance_micros);
    b.setToBalanceMicros(v.to_balance_micros);
  }
  void operator()(const TagKeysView& v) {
    auto list = r.getBody().initIndexedTagKeys(static_cast<unsigned>(v.keys.size()));
    for (unsigned i = 0; i < v.keys.size(); ++i) list.set(i, Text(v.keys[i]));
  }
  void operator()(const BurnRateView& v) {
    auto b = r.getBody().initBurnRate();
    b.setAccount(Text(v.account));
    b.setWindowS(v.window_s);
    b.setMicrosPerHour(v.micros_per_hour);
    b.setSpendMicros(v.spend_micros);
    b.setCalls(v.calls);
    b.setBaselineMicrosPerHour(v.baseline_micros_per_hour);
    b.setRatioPct(v.ratio_pct);
  }
  void operator()(const RunList& v) {
    auto list = r.getBody().initRuns(static_cast<unsigned>(v.runs.size()));
    for (unsigned i = 0; i < v.runs.size(); ++i) {
      const RunView& run = v.runs[i];
      list[i].setRunId(Text(run.run_id));
      list[i].setAccount(Text(run.account));
      list[i].setMicrosPerHour(run.micros_per_hour);
      list[i].setSpendMicros(run.spend_micros);
      list[i].setCalls(run.calls);
      list[i].setFirstAtUs(run.first_at_us);
      list[i].setLastAtUs(run.last_at_us);
    }
  }
  void operator()(const BaselineView& v) {
    auto b = r.getBody().initBaseline();
    b.setAccount(Text(v.account));
    b.setMicrosPerHour(v.micros_per_hour);
    b.setMultiplierBp(v.multiplier_bp);
  }
  void operator()(const AnomalyList& v) {
    auto list = r.getBody().initAnomalies(static_cast<unsigned>(v.anomalies.size()));
    for (unsigned i = 0; i < v.anomalies.size(); ++i) {
      const AnomalyView& a = v.anomalies[i];
      list[i].setAccount(Text(a.account));
      list[i].setMicrosPerHour(a.micros_per_hour);
      list[i].setBaselineMicrosPerHour(a.baseline_micros_per_hour);
      list[i].setThresholdMicrosPerHour(a.threshold_micros_per_hour);
      list[i].setRatioPct(a.ratio_pct);
      list[i].setSinceUs(a.since_us);
    }
  }
  void operator()(const EfficiencyView& v) {
    auto b = r.getBody().initEfficiency();
    b.setAccount(Text(v.account));
    b.setFromDay(Text(FormatDate(v.from_day)));
    b.setToDay(Text(FormatDate(v.to_day)));
    PutFigures(b.initTotal(), v.total);
    auto models = b.initByModel(static_cast<unsigned>(v.by_model.size()));
    for (unsigned i = 0; i < v.by_model.size(); ++i) PutFigures(models[i], v.by_model[i]);
    auto recs = b.initRecommendations(static_cast<unsigned>(v.recommendations.size()));
    for (unsigned i = 0; i < v.recommendations.size(); ++i) {
      recs[i].setRule(Text(v.recommendations[i].rule));
      recs[i].setMessage(Text(v.recommendations[i].message));
      recs[i].setValueBp(v.recommendations[i].value);
    }
  }
  void operator()(const TrendsView& v) {
    auto list = r.getBody().initTrends(static_cast<unsigned>(v.days.size()));
    for (unsigned i = 0; i < v.days.size(); ++i) {
      const TrendDay& d = v.days[i];
      list[i].setDate(Text(FormatDate(d.day)));
      list[i].setCostMicros(d.cost_micros);
      list[i].setCalls(d.calls);
      list[i].setTokens(d.tokens);
      PutNamedCosts(list[i].initByModel(static_cast<unsigned>(d.by_model.size())), d.by_model);
      PutNamedCosts(list[i].initByAction(static_cast<unsigned>(d.by_action.size())), d.by_action);
      PutNamedCosts(list[i].initByWaste(static_cast<unsigned>(d.by_waste.size())), d.by_waste);
    }
  }
  void operator()(const LeaderboardView& v) {
    auto list = r.getBody().initLeaderboard(static_cast<unsigned>(v.entries.size()));
    for (unsigned i = 0; i < v.entries.size(); ++i) {
      list[i].setAccount(Text(v.entries[i].account));
      list[i].setValue(v.entries[i].value);
      list[i].setSpendMicros(v.entries[i].spend_micros);
    }
  }
  void operator()(const StatsView& v) {
    auto b = r.getBody().initStats();
    b.setAccounts(v.accounts);
    b.setActiveAccountsToday(v.active_accounts_today);
    b.setSpendTodayMicros(v.spend_today_micros);
    b.setSpendMonthMicros(v.spend_month_micros);
    b.setCallsToday(v.calls_today);
    b.setReservationsPending(v.reservations_pending);
    b.setEventsTotal(v.events_total);
    b.setAlertsActive(v.alerts_active);
    b.setRunsActive(v.runs_active);
    b.setFrozenAccounts(v.frozen_accounts);
  }
};

}  // namespace

std::string DecodeCommand(rpc::Command::Reader command, RequestBody* body) {
  switch (command.which()) {
    case rpc::Command::RESERVE: return DecodeReserve(command.getReserve(), body);
    case rpc::Command::SETTLE: return DecodeSettle(command.getSettle(), body);
    case rpc::Command::VOID:
      *body = cmd::Void{Str(command.getVoid().getReservationId()), Str(command.getVoid().getReason())};
      return {};
    case rpc::Command::EXTEND:
      *body = cmd::Extend{Str(command.getExtend().getReservationId()), command.getExtend().getTtlS()};
      return {};
    case rpc::Command::USAGE: return DecodeUsage(command.getUsage(), body);
    case rpc::Command::REVENUE: {
      auto r = command.getRevenue();
      *body = cmd::RecordRevenue{Str(r.getRevenueId()), Str(r.getAccount()), r.getAmountMicros(),
                                 Str(r.getCategory()), Str(r.getReference())};
      return {};
    }
    case rpc::Command::QUERY: return DecodeQuery(command.getQuery(), body);
    default: return DecodeAdminCommand(command, body);
  }
}

// Long by design: one case per member of the Query union.
std::string DecodeQuery(rpc::Query::Reader query, RequestBody* body) {
  switch (query.which()) {
    case rpc::Query::GET_ACCOUNT: *body = query::GetAccount{Str(query.getGetAccount())}; return {};
    case rpc::Query::LIST_ACCOUNTS: *body = query::ListAccounts{Str(query.getListAccounts())}; return {};
    case rpc::Query::GET_BALANCE: *body = query::GetBalance{Str(query.getGetBalance())}; return {};
    case rpc::Query::GET_RESERVATION:
      *body = query::GetReservation{Str(query.getGetReservation())};
      return {};
    case rpc::Query::LIST_RESERVATIONS: {
      auto r = query.getListReservations();
      query::ListReservations q;
      q.account = Str(r.getAccount());
      std::string status = Str(r.getStatus());
      if (!status.empty()) {
        bool known = false;
        for (auto s : {ReservationStatus::kPending, ReservationStatus::kSettled,
                       ReservationStatus::kVoided, ReservationStatus::kExpired}) {
          if (ReservationStatusName(s) == status) {
            q.status = s;
            known = true;
          }
        }
        if (!known) return "status must be pending, settled, voided or expired";
      }
      q.limit = r.getLimit() == 0 ? 100 : r.getLimit();
      *body = std::move(q);
      return {};
    }
    case rpc::Query::GET_SPEND: {
      auto r = query.getGetSpend();
      query::GetSpend q;
      q.account = Str(r.getAccount());
      if (std::string problem = DecodeDay(r.getFromDay(), &q.from_day); !problem.empty()) return problem;
      if (std::string problem = DecodeDay(r.getToDay(), &q.to_day); !problem.empty()) return problem;
      if (!EnumIn(static_cast<uint16_t>(r.getGroupBy()), 9, &q.group_by)) return "unknown group_by";
      q.tag_key = Str(r.getTagKey());
      *body = std::move(q);
      return {};
    }
    case rpc::Query::LIST_ALERTS: {
      auto r = query.getListAlerts();
      query::ListAlerts q{Str(r.getAccount()), r.getSinceUs(), std::nullopt};
      if (r.getHasType()) {
        AlertType type;
        if (!EnumIn(static_cast<uint16_t>(r.getType()), 4, &type)) return "unknown alert type";
        q.type = type;
      }
      q.newest_first = r.getNewestFirst();
      *body = std::move(q);
      return {};
    }
    case rpc::Query::LIST_PRICES: *body = query::ListPrices{}; return {};
    case rpc::Query::ESTIMATE: *body = query::EstimateCost{*GetUsage(query.getEstimate())}; return {};
    case rpc::Query::LIST_KEYS: *body = query::ListKeys{}; return {};
    case rpc::Query::LIST_WEBHOOKS: *body = query::ListWebhooks{}; return {};
    case rpc::Query::GET_PNL: {
      auto r = query.getGetPnl();
      query::GetPnl q;
      q.account = Str(r.getAccount());
      if (std::string problem = DecodeDay(r.getFromDay(), &q.from_day); !problem.empty()) return problem;
      if (std::string problem = DecodeDay(r.getToDay(), &q.to_day); !problem.empty()) return problem;
      *body = std::move(q);
      return {};
    }
    case rpc::Query::CHAIN_HEAD: *body = query::GetChainHead{}; return {};
    case rpc::Query::DIGEST: *body = query::GetDigest{}; return {};
    case rpc::Query::WHO_AM_I: *body = query::Authenticate{}; return {};
    case rpc::Query::BURN_RATE:
      *body = query::GetBurnRate{Str(query.getBurnRate().getAccount()),
                                 query.getBurnRate().getWindowS()};
      return {};
    case rpc::Query::ACTIVE_RUNS: {
      auto r = query.getActiveRuns();
      *body = query::ListActiveRuns{Str(r.getAccount()), r.getWindowS(),
                                    r.getLimit() == 0 ? 100 : r.getLimit()};
      return {};
    }
    case rpc::Query::GET_BASELINE: *body = query::GetBaseline{Str(query.getGetBaseline())}; return {};
    case rpc::Query::ANOMALIES: *body = query::ListAnomalies{Str(query.getAnomalies())}; return {};
    case rpc::Query::EFFICIENCY: {
      auto r = query.getEfficiency();
      query::GetEfficiency q;
      q.account = Str(r.getAccount());
      if (std::string problem = DecodeDay(r.getFromDay(), &q.from_day); !problem.empty()) return problem;
      if (std::string problem = DecodeDay(r.getToDay(), &q.to_day); !problem.empty()) return problem;
      *body = std::move(q);
      return {};
    }
    case rpc::Query::TRENDS:
      *body = query::GetTrends{Str(query.getTrends().getAccount()), query.getTrends().getDays()};
      return {};
    case rpc::Query::LEADERBOARD: {
      auto r = query.getLeaderboard();
      query::GetLeaderboard q;
      q.parent = Str(r.getParent());
      if (!EnumIn(static_cast<uint16_t>(r.getMetric()), 3, &q.metric)) return "unknown metric";
      q.days = r.getDays();
      q.limit = r.getLimit() == 0 ? 100 : r.getLimit();
      *body = std::move(q);
      return {};
    }
    case rpc::Query::STATS: *body = query::GetStats{}; return {};
  }
  return "unknown query";
}

void EncodeReply(const Reply& reply, rpc::Result::Builder result) {
  result.setCode(static_cast<rpc::ResultCode>(static_cast<uint16_t>(reply.code)));
  result.setCreated(reply.created);
  result.setMessage(Text(reply.message));
  result.setAccount(Text(reply.account));
  result.setLimitMicros(reply.limit_micros);
  result.setAvailableMicros(reply.available_micros);
  result.setRetryAfterS(reply.retry_after_s);
  std::visit(ReplyEncoder{result}, reply.body);
}

// ---- client side -------------------------------------------------------------------

namespace {

void PutAmountUsage(const std::optional<int64_t>& amount, const std::optional<UsageTokens>& usage,
                    auto union_builder) {
  if (amount) {
    union_builder.setMicros(*amount);
  } else if (usage) {
    PutUsage(union_builder.initUsage(), *usage);
  }
}

struct QueryEncoder {
  rpc::Query::Builder q;
  bool operator()(const query::Authenticate&) { q.setWhoAmI(); return true; }
  bool operator()(const query::GetAccount& x) { q.setGetAccount(Text(x.account)); return true; }
  bool operator()(const query::ListAccounts& x) { q.setListAccounts(Text(x.parent)); return true; }
  bool operator()(const query::GetBalance& x) { q.setGetBalance(Text(x.account)); return true; }
  bool operator()(const query::GetReservation& x) {
    q.setGetReservation(Text(x.reservation_id));
    return true;
  }
  bool operator()(const query::ListReservations& x) {
    auto b = q.initListReservations();
    b.setAccount(Text(x.account));
    if (x.status) b.setStatus(Text(std::string(ReservationStatusName(*x.status))));
    b.setLimit(static_cast<uint32_t>(x.limit));
    return true;
  }
  bool operator()(const query::GetSpend& x) {
    auto b = q.initGetSpend();
    b.setAccount(Text(x.account));
    b.setFromDay(Text(FormatDate(x.from_day)));
    b.setToDay(Text(FormatDate(x.to_day)));
    b.setGroupBy(static_cast<rpc::GroupBy>(x.group_by));
    b.setTagKey(Text(x.tag_key));
    return true;
  }
  bool operator()(const query::ListAlerts& x) {
    auto b = q.initListAlerts();
    b.setAccount(Text(x.account));
    b.setSinceUs(x.since_us);
    if (x.type) {
      b.setHasType(true);
      b.setType(static_cast<e::AlertType>(*x.type));
    }
    b.setNewestFirst(x.newest_first);
    return true;
  }
  bool operator()(const query::GetBurnRate& x) {
    auto b = q.initBurnRate();
    b.setAccount(Text(x.account));
    b.setWindowS(x.window_s);
    return true;
  }
  bool operator()(const query::ListActiveRuns& x) {
    auto b = q.initActiveRuns();
    b.setAccount(Text(x.parent));
    b.setWindowS(x.window_s);
    b.setLimit(static_cast<uint32_t>(x.limit));
    return true;
  }
  bool operator()(const query::GetBaseline& x) { q.setGetBaseline(Text(x.account)); return true; }
  bool operator()(const query::ListAnomalies& x) { q.setAnomalies(Text(x.parent)); return true; }
  bool operator()(const query::GetEfficiency& x) {
    auto b = q.initEfficiency();
    b.setAccount(Text(x.account));
    b.setFromDay(Text(FormatDate(x.from_day)));
    b.setToDay(Text(FormatDate(x.to_day)));
    return true;
  }
  bool operator()(const query::GetTrends& x) {
    auto b = q.initTrends();
    b.setAccount(Text(x.account));
    b.setDays(x.days);
    return true;
  }
  bool operator()(const query::GetLeaderboard& x) {
    auto b = q.initLeaderboard();
    b.setParent(Text(x.parent));
    b.setMetric(static_cast<rpc::LeaderboardMetric>(x.metric));
    b.setDays(x.days);
    b.setLimit(static_cast<uint32_t>(x.limit));
    return true;
  }
  bool operator()(const query::GetStats&) { q.setStats(); return true; }
  bool operator()(const query::ListPrices&) { q.setListPrices(); return true; }
  bool operator()(const query::EstimateCost& x) { PutUsage(q.initEstimate(), x.usage); return true; }
  bool operator()(const query::ListKeys&) { q.setListKeys(); return true; }
  bool operator()(const query::ListWebhooks&) { q.setListWebhooks(); return true; }
  bool operator()(const query::GetPnl& x) {
    auto b = q.initGetPnl();
    b.setAccount(Text(x.account));
    b.setFromDay(Text(FormatDate(x.from_day)));
    b.setToDay(Text(FormatDate(x.to_day)));
    return true;
  }
  bool operator()(const query::GetChainHead&) { q.setChainHead(); return true; }
  bool operator()(const query::GetDigest&) { q.setDigest(); return true; }
  template <typename T>
  bool operator()(const T&) {
    return false;
  }
};

struct CommandEncoder {
  rpc::Command::Builder c;
  void operator()(const cmd::OpenAccount& x) {
    auto b = c.initOpenAccount();
    b.setId(Text(x.id));
    b.setParent(Text(x.parent));
    b.setKind(static_cast<e::AccountKind>(x.kind));
    b.setName(Text(x.name));
    b.setWallet(x.wallet);
    auto keys = b.initIndexedTagKeys(static_cast<unsigned>(x.indexed_tag_keys.size()));
    for (unsigned i = 0; i < x.indexed_tag_keys.size(); ++i) keys.set(i, Text(x.indexed_tag_keys[i]));
  }
  void operator()(const cmd::SetCaps& x) {
    auto b = c.initSetCaps();
    b.setAccount(Text(x.account));
    PutField(b.initDailyLimitMicros(), x.patch.daily_limit_micros);
    PutField(b.initMonthlyLimitMicros(), x.patch.monthly_limit_micros);
    PutField(b.initHardLimitMicros(), x.patch.hard_limit_micros);
    PutField(b.initMaxInflight(), x.patch.max_inflight);
    PutField(b.initReservationTtlS(), x.patch.reservation_ttl_s);
    const auto& thresholds = x.patch.alert_thresholds_pct;
    if (thresholds.op == Patch<std::vector<uint8_t>>::Op::kSet) {
      b.setSetThresholds(true);
      auto list = b.initAlertThresholdsPct(static_cast<unsigned>(thresholds.value.size()));
      for (unsigned i = 0; i < thresholds.value.size(); ++i) list.set(i, thresholds.value[i]);
    }
    b.setRemoveThresholds(thresholds.op == Patch<std::vector<uint8_t>>::Op::kRemove);
    if (x.patch.on_expiry.op == Patch<OnExpiry>::Op::kSet) {
      b.setOnExpiry(static_cast<e::OnExpiry>(x.patch.on_expiry.value));
    }
    b.setRemoveOnExpiry(x.patch.on_expiry.op == Patch<OnExpiry>::Op::kRemove);
    if (x.patch.runaway_action.op == Patch<RunawayAction>::Op::kSet) {
      b.setRunawayAction(static_cast<e::RunawayAction>(x.patch.runaway_action.value));
    }
    b.setRemoveRunawayAction(x.patch.runaway_action.op == Patch<RunawayAction>::Op::kRemove);
    PutField(b.initRunawayErrorStreak(), x.patch.runaway_error_streak);
    PutField(b.initRunawayBurnMultiplierBp(), x.patch.runaway_burn_multiplier_bp);
    PutField(b.initRunawayMinMicrosPerHour(), x.patch.runaway_min_micros_per_hour);
    PutField(b.initMaxCallsPerMinute(), x.patch.max_calls_per_minute);
    PutField(b.initMaxTokensPerMinute(), x.patch.max_tokens_per_minute);
    PutField(b.initDegradeAtPct(), x.patch.degrade_at_pct);
  }
  void operator()(const cmd::Freeze& x) {
    auto b = c.initFreeze();
    b.setAccount(Text(x.account));
    b.setReason(Text(x.reason));
  }
  void operator()(const cmd::Unfreeze& x) { c.setUnfreeze(Text(x.account)); }
  void operator()(const cmd::Deposit& x) {
    auto b = c.initDeposit();
    b.setDepositId(Text(x.deposit_id));
    b.setAccount(Text(x.account));
    b.setAmountMicros(x.amount_micros);
    b.setReference(Text(x.reference));
  }
  void operator()(const cmd::Reserve& x) {
    auto b = c.initReserve();
    b.setReservationId(Text(x.reservation_id));
    b.setAccount(Text(x.account));
    if (x.amount_micros) {
      b.getAmount().setMicros(*x.amount_micros);
    } else if (x.estimate) {
      auto estimate = b.getAmount().initEstimate();
      estimate.setModel(Text(x.estimate->model));
      estimate.setInputTokens(x.estimate->input_tokens);
      estimate.setMaxOutputTokens(x.estimate->max_output_tokens);
    }
    b.setTtlS(x.ttl_s);
    b.setRunId(Text(x.run_id));
    b.setAction(Text(x.action));
    PutTags(b.initTags(static_cast<unsigned>(x.tags.size())), x.tags);
  }
  void operator()(const cmd::Settle& x) {
    auto b = c.initSettle();
    b.setReservationId(Text(x.reservation_id));
    PutAmountUsage(x.amount_micros, x.usage, b.getCost());
    if (x.action) {
      b.setHasAction(true);
      b.setAction(Text(*x.action));
    }
    if (x.waste) {
      b.setHasWaste(true);
      b.setWaste(Text(*x.waste));
    }
    b.setOutcome(static_cast<e::Outcome>(x.outcome));
    PutTags(b.initTags(static_cast<unsigned>(x.tags.size())), x.tags);
  }
  void operator()(const cmd::Void& x) {
    auto b = c.initVoid();
    b.setReservationId(Text(x.reservation_id));
    b.setReason(Text(x.reason));
  }
  void operator()(const cmd::Extend& x) {
    auto b = c.initExtend();
    b.setReservationId(Text(x.reservation_id));
    b.setTtlS(x.ttl_s);
  }
  void operator()(const cmd::RecordUsage& x) {
    auto b = c.initUsage();
    b.setUsageId(Text(x.usage_id));
    b.setAccount(Text(x.account));
    PutAmountUsage(x.amount_micros, x.usage, b.getCost());
    b.setAction(Text(x.action));
    b.setWaste(Text(x.waste));
    b.setOutcome(static_cast<e::Outcome>(x.outcome));
    b.setRunId(Text(x.run_id));
    PutTags(b.initTags(static_cast<unsigned>(x.tags.size())), x.tags);
    b.setOccurredAtUs(x.occurred_at_us);
  }
  void operator()(const cmd::Transfer& x) {
    auto b = c.initTransfer();
    b.setTransferId(Text(x.transfer_id));
    b.setFrom(Text(x.from));
    b.setTo(Text(x.to));
    b.setAmountMicros(x.amount_micros);
    b.setReason(Text(x.reason));
  }
  void operator()(const cmd::UpdateWebhook& x) {
    auto b = c.initUpdateWebhook();
    b.setWebhookId(Text(x.webhook_id));
    if (x.url) {
      b.setSetUrl(true);
      b.setUrl(Text(*x.url));
    }
    if (x.events) {
      b.setSetEvents(true);
      auto events = b.initEvents(static_cast<unsigned>(x.events->size()));
      for (unsigned i = 0; i < x.events->size(); ++i) events.set(i, Text((*x.events)[i]));
    }
    if (x.enabled) {
      b.setSetEnabled(true);
      b.setEnabled(*x.enabled);
    }
  }
  void operator()(const cmd::IndexTagKeys& x) {
    auto b = c.initIndexTagKeys();
    b.setAccount(Text(x.account));
    auto keys = b.initKeys(static_cast<unsigned>(x.keys.size()));
    for (unsigned i = 0; i < x.keys.size(); ++i) keys.set(i, Text(x.keys[i]));
  }
  void operator()(const cmd::Refund& x) {
    auto b = c.initRefund();
    b.setRefundId(Text(x.refund_id));
    b.setTargetKind(static_cast<e::ChargeKind>(x.target_kind));
    b.setTargetId(Text(x.target_id));
    b.setAmountMicros(x.amount_micros);
    b.setReason(Text(x.reason));
  }
  void operator()(const cmd::RecordRevenue& x) {
    auto b = c.initRevenue();
    b.setRevenueId(Text(x.revenue_id));
    b.setAccount(Text(x.account));
    b.setAmountMicros(x.amount_micros);
    b.setCategory(Text(x.category));
    b.setReference(Text(x.reference));
  }
  void operator()(const cmd::Adjust& x) {
    auto b = c.initAdjust();
    b.setAdjustmentId(Text(x.adjustment_id));
    b.setAccount(Text(x.account));
    b.setAmountMicros(x.amount_micros);
    b.setReason(Text(x.reason));
  }
  void operator()(const cmd::SetPrice& x) {
    auto b = c.initSetPrice();
    b.setModel(Text(x.model));
    Put(b.initRates(), x.rates);
  }
  void operator()(const cmd::SetBaseline& x) {
    auto b = c.initSetBaseline();
    b.setAccount(Text(x.account));
    b.setMicrosPerHour(x.micros_per_hour);
    b.setMultiplierBp(x.multiplier_bp);
  }
  void operator()(const cmd::IssueKey& x) {
    auto b = c.initIssueKey();
    b.setRequestId(Text(x.request_id));
    b.setAccount(Text(x.account));
    b.setRole(static_cast<e::Role>(x.role));
    b.setLabel(Text(x.label));
    b.setRotateOf(Text(x.rotate_of));
    b.setGraceS(x.grace_s);
  }
  void operator()(const cmd::RevokeKey& x) { c.setRevokeKey(Text(x.key_id)); }
  void operator()(const cmd::RegisterWebhook& x) {
    auto b = c.initRegisterWebhook();
    b.setRequestId(Text(x.request_id));
    b.setUrl(Text(x.url));
    auto events = b.initEvents(static_cast<unsigned>(x.events.size()));
    for (unsigned i = 0; i < x.events.size(); ++i) events.set(i, Text(x.events[i]));
    b.setAccount(Text(x.account));
    b.setSecret(Text(x.secret));
  }
  void operator()(const cmd::RemoveWebhook& x) { c.setRemoveWebhook(Text(x.webhook_id)); }
  template <typename T>
  void operator()(const T& x) {
    // Queries travel inside a Command; service-only commands never travel.
    QueryEncoder{c.initQuery()}(x);
  }
};

}  // namespace

void EncodeRequest(const RequestBody& body, rpc::Command::Builder command) {
  std::visit(CommandEncoder{command}, body);
}

bool EncodeQuery(const RequestBody& body, rpc::Query::Builder query) {
  return std::visit(QueryEncoder{query}, body);
}

namespace {

// The bodies of transfers, tag keys and the analytics queries: long by
// design, one branch per analytics answer.
void DecodeAnalyticsReply(rpc::Result::Body::Reader body, Reply* reply) {
  switch (body.which()) {
    case rpc::Result::Body::TRANSFER: {
      auto b = body.getTransfer();
      reply->body = TransferResult{Str(b.getTransferId()), b.getFromBalanceMicros(),
                                   b.getToBalanceMicros()};
      break;
    }
    case rpc::Result::Body::INDEXED_TAG_KEYS: {
      TagKeysView view;
      for (auto key : body.getIndexedTagKeys()) view.keys.push_back(Str(key));
      reply->body = std::move(view);
      break;
    }
    case rpc::Result::Body::BURN_RATE: {
      auto b = body.getBurnRate();
      reply->body = BurnRateView{Str(b.getAccount()), b.getWindowS(), b.getMicrosPerHour(),
                                 b.getSpendMicros(), b.getCalls(), b.getBaselineMicrosPerHour(),
                                 b.getRatioPct()};
      break;
    }
    case rpc::Result::Body::RUNS: {
      RunList list;
      for (auto run : body.getRuns()) {
        list.runs.push_back(RunView{Str(run.getRunId()), Str(run.getAccount()),
                                    run.getMicrosPerHour(), run.getSpendMicros(), run.getCalls(),
                                    run.getFirstAtUs(), run.getLastAtUs()});
      }
      reply->body = std::move(list);
      break;
    }
    case rpc::Result::Body::BASELINE: {
      auto b = body.getBaseline();
      reply->body = BaselineView{Str(b.getAccount()), b.getMicrosPerHour(), b.getMultiplierBp()};
      break;
    }
    case rpc::Result::Body::ANOMALIES: {
      AnomalyList list;
      for (auto a : body.getAnomalies()) {
        list.anomalies.push_back(AnomalyView{Str(a.getAccount()), a.getMicrosPerHour(),
                                             a.getBaselineMicrosPerHour(),
                                             a.getThresholdMicrosPerHour(), a.getRatioPct(),
                                             a.getSinceUs()});
      }
      reply->body = std::move(list);
      break;
    }
    case rpc::Result::Body::EFFICIENCY: {
      auto b = body.getEfficiency();
      EfficiencyView view;
      view.account = Str(b.getAccount());
      view.from_day = ParseDate(Str(b.getFromDay())).value_or(0);
      view.to_day = ParseDate(Str(b.getToDay())).value_or(0);
      view.total = GetFigures(b.getTotal());
      for (auto m : b.getByModel()) view.by_model.push_back(GetFigures(m));
      for (auto rec : b.getRecommendations()) {
        view.recommendations.push_back(
            Recommendation{Str(rec.getRule()), Str(rec.getMessage()), rec.getValueBp(), true});
      }
      reply->body = std::move(view);
      break;
    }
    case rpc::Result::Body::TRENDS: {
      TrendsView view;
      for (auto d : body.getTrends()) {
        TrendDay day;
        day.day = ParseDate(Str(d.getDate())).value_or(0);
        day.cost_micros = d.getCostMicros();
        day.calls = d.getCalls();
        day.tokens = d.getTokens();
        day.by_model = GetNamedCosts(d.getByModel());
        day.by_action = GetNamedCosts(d.getByAction());
        day.by_waste = GetNamedCosts(d.getByWaste());
        view.days.push_back(std::move(day));
      }
      if (!view.days.empty()) {
        view.first_day = view.days.front().day;
        view.last_day = view.days.back().day;
      }
      reply->body = std::move(view);
      break;
    }
    case rpc::Result::Body::LEADERBOARD: {
      LeaderboardView view;
      for (auto entry : body.getLeaderboard()) {
        view.entries.push_back(
            LeaderboardEntry{Str(entry.getAccount()), entry.getValue(), entry.getSpendMicros()});
      }
      reply->body = std::move(view);
      break;
    }
    case rpc::Result::Body::STATS: {
      auto b = body.getStats();
      StatsView view;
      view.accounts = b.getAccounts();
      view.active_accounts_today = b.getActiveAccountsToday();
      view.spend_today_micros = b.getSpendTodayMicros();
      view.spend_month_micros = b.getSpendMonthMicros();
      view.calls_today = b.getCallsToday();
      view.reservations_pending = b.getReservationsPending();
      view.events_total = b.getEventsTotal();
      view.alerts_active = b.getAlertsActive();
      view.runs_active = b.getRunsActive();
      view.frozen_accounts = b.getFrozenAccounts();
      reply->body = std::move(view);
      break;
    }
    default:
      break;
  }
}

}  // namespace

// Long by design: one branch per member of Result.Body, in schema order.
Reply DecodeReply(rpc::Result::Reader r) {
  Reply reply;
  const auto code = static_cast<uint32_t>(r.getCode());
  reply.created = r.getCreated();
  reply.message = Str(r.getMessage());
  if (code >= kResultCodeCount) {
    // A code of a newer schema that this side does not know.
    reply.code = ResultCode::kUnavailable;
    reply.message = "unknown result code " + std::to_string(code) + ": " + reply.message;
    return reply;
  }
  reply.code = static_cast<ResultCode>(code);
  reply.account = Str(r.getAccount());
  reply.limit_micros = r.getLimitMicros();
  reply.available_micros = r.getAvailableMicros();
  reply.retry_after_s = r.getRetryAfterS();
  auto body = r.getBody();
  switch (body.which()) {
    case rpc::Result::Body::NONE: break;
    case rpc::Result::Body::ACCOUNT: reply.body = GetAccount(body.getAccount()); break;
    case rpc::Result::Body::ACCOUNTS: {
      AccountList list;
      for (auto a : body.getAccounts()) list.accounts.push_back(GetAccount(a));
      reply.body = std::move(list);
      break;
    }
    case rpc::Result::Body::CAPS: reply.body = CapsView{Get(body.getCaps())}; break;
    case rpc::Result::Body::BALANCE: reply.body = GetBalance(body.getBalance()); break;
    case rpc::Result::Body::RESERVE: {
      auto b = body.getReserve();
      reply.body = ReserveResult{Str(b.getReservationId()), Str(b.getAccount()), b.getAmountMicros(),
                                 b.getExpiresAtUs(), b.getHeadroomAfterMicros(), b.getSeq(),
                                 Str(b.getAdviceAccount())};
      break;
    }
    case rpc::Result::Body::SETTLE: {
      auto b = body.getSettle();
      reply.body = SettleResult{Str(b.getReservationId()), b.getCostMicros(), b.getReleasedMicros(),
                                b.getOverrunMicros(), b.getLate(), b.getSeq()};
      break;
    }
    case rpc::Result::Body::RELEASED_MICROS: reply.body = VoidResult{body.getReleasedMicros()}; break;
    case rpc::Result::Body::EXPIRES_AT_US: reply.body = ExtendResult{body.getExpiresAtUs()}; break;
    case rpc::Result::Body::USAGE: {
      auto b = body.getUsage();
      reply.body = UsageResult{Str(b.getUsageId()), b.getCostMicros(), b.getOverrunMicros(),
                               b.getSeq()};
      break;
    }
    case rpc::Result::Body::ID:
      reply.body = IdResult{Str(body.getId().getId()), body.getId().getAmountMicros()};
      break;
    case rpc::Result::Body::WALLET_BALANCE:
      reply.body = BalanceResult{Str(body.getWalletBalance().getId()),
                                 body.getWalletBalance().getBalanceMicros()};
      break;
    case rpc::Result::Body::KEY: {
      auto b = body.getKey();
      reply.body = KeyResult{Str(b.getKeyId()), Str(b.getAccount()), static_cast<Role>(b.getRole()),
                             Str(b.getApiKey())};
      break;
    }
    case rpc::Result::Body::RESERVATION: reply.body = GetReservation(body.getReservation()); break;
    case rpc::Result::Body::RESERVATIONS: {
      ReservationList list;
      for (auto v : body.getReservations()) list.reservations.push_back(GetReservation(v));
      reply.body = std::move(list);
      break;
    }
    case rpc::Result::Body::SPEND: {
      auto b = body.getSpend();
      SpendReport report;
      report.account = Str(b.getAccount());
      report.from_day = ParseDate(Str(b.getFromDay())).value_or(0);
      report.to_day = ParseDate(Str(b.getToDay())).value_or(0);
      report.total_micros = b.getTotalMicros();
      report.calls = b.getCalls();
      for (auto g : b.getGroups()) {
        report.groups.push_back(SpendGroup{Str(g.getKey()), g.getCostMicros(), g.getCalls(),
                                           g.getInputTokens(), g.getOutputTokens(),
                                           g.getCachedInputTokens(), g.getCacheWriteTokens(),
                                           g.getReasoningTokens()});
      }
      reply.body = std::move(report);
      break;
    }
    case rpc::Result::Body::ALERTS: {
      AlertList list;
      for (auto a : body.getAlerts()) {
        list.alerts.push_back(AlertView{a.getId(), Str(a.getAccount()),
                                        static_cast<AlertType>(a.getType()), Str(a.getSeverity()),
                                        a.getThresholdPct(), static_cast<CapWindow>(a.getWindow()),
                                        a.getLimitMicros(), a.getValueMicros(), a.getCount(),
                                        Str(a.getMessage()), a.getCreatedAtUs()});
      }
      list.truncated = r.getTruncated();
      reply.body = std::move(list);
      break;
    }
    case rpc::Result::Body::PRICES: {
      PriceList list;
      list.version = body.getPrices().getVersion();
      for (auto p : body.getPrices().getPrices()) {
        list.prices.push_back(PriceView{Str(p.getModel()), Get(p.getRates()), p.getVersion()});
      }
      reply.body = std::move(list);
      break;
    }
    case rpc::Result::Body::COST:
      reply.body = CostResult{body.getCost().getCostMicros(), body.getCost().getPriceVersion()};
      break;
    case rpc::Result::Body::KEYS: {
      KeyList list;
      for (auto k : body.getKeys()) {
        list.keys.push_back(KeyView{Str(k.getKeyId()), Str(k.getAccount()),
                                    static_cast<Role>(k.getRole()), Str(k.getLabel()),
                                    k.getRevoked(), k.getValidUntilUs(), k.getCreatedAtUs()});
      }
      reply.body = std::move(list);
      break;
    }
    case rpc::Result::Body::WEBHOOKS: {
      WebhookList list;
      for (auto w : body.getWebhooks()) {
        WebhookView view{Str(w.getWebhookId()), Str(w.getUrl()), {}, Str(w.getAccount()),
                         w.getCreatedAtUs(), w.getEnabled()};
        for (auto kind : w.getEvents()) view.events.push_back(Str(kind));
        list.webhooks.push_back(std::move(view));
      }
      reply.body = std::move(list);
      break;
    }
    case rpc::Result::Body::PNL: {
      auto b = body.getPnl();
      PnlView view{Str(b.getAccount()), b.getRevenueMicros(), b.getCostMicros(), b.getProfitMicros(),
                   std::nullopt};
      if (b.getHasMargin()) view.margin_bp = b.getMarginBp();
      reply.body = std::move(view);
      break;
    }
    case rpc::Result::Body::CHAIN_HEAD:
      reply.body = ChainHead{body.getChainHead().getSequence(), GetDigest(body.getChainHead().getHash())};
      break;
    case rpc::Result::Body::DIGEST:
      reply.body = DigestView{body.getDigest().getSequence(), GetDigest(body.getDigest().getDigest())};
      break;
    case rpc::Result::Body::PRINCIPAL: {
      auto b = body.getPrincipal();
      reply.body = PrincipalView{Str(b.getKeyId()), Str(b.getAccount()), static_cast<Role>(b.getRole())};
      break;
    }
    default:
      DecodeAnalyticsReply(body, &reply);
      break;
  }
  return reply;
}

}  // namespace purser
