#include "ledger/wire/event_json.h"

#include "ledger/base/clock.h"

namespace purser {

namespace {

void WriteTags(JsonWriter& w, const Tags& tags) {
  w.Key("tags").BeginObject();
  for (const Tag& tag : tags) w.Field(tag.key, tag.value);
  w.EndObject();
}

void WriteDimensions(JsonWriter& w, const Dimensions& d) {
  w.OptionalField("model", d.model);
  w.OptionalField("action", d.action);
  w.OptionalField("waste", d.waste);
  w.OptionalField("outcome", OutcomeName(d.outcome));
  w.OptionalField("run_id", d.run_id);
  WriteTags(w, d.tags);
}

void WriteTokens(JsonWriter& w, const TokenCounts& t) {
  w.Field("input_tokens", t.input);
  w.Field("output_tokens", t.output);
  w.Field("cached_input_tokens", t.cached_input);
  w.Field("cache_write_tokens", t.cache_write);
  w.Field("reasoning_tokens", t.reasoning);
}

}  // namespace

void WriteCapsJson(const Caps& c, bool with_time_zone, JsonWriter* out) {
  JsonWriter& w = *out;
  w.BeginObject();
  w.LimitField("daily_limit_micros", c.daily_limit_micros);
  w.LimitField("monthly_limit_micros", c.monthly_limit_micros);
  w.LimitField("hard_limit_micros", c.hard_limit_micros);
  w.LimitField("max_inflight", c.max_inflight);
  w.LimitField("reservation_ttl_s", c.reservation_ttl_s);
  w.Key("alert_thresholds_pct").BeginArray();
  for (uint8_t pct : c.alert_thresholds_pct) w.Int(pct);
  w.EndArray();
  w.OptionalField("on_expiry", c.on_expiry == OnExpiry::kInherit ? "" : OnExpiryName(c.on_expiry));
  w.OptionalField("runaway_action", c.runaway_action == RunawayAction::kInherit
                                        ? ""
                                        : RunawayActionName(c.runaway_action));
  w.LimitField("runaway_error_streak", c.runaway_error_streak);
  w.Key("runaway_burn_multiplier");
  if (c.runaway_burn_multiplier_bp < 0) {
    w.Null();
  } else {
    w.Usd(c.runaway_burn_multiplier_bp * 100);  // basis points as an exact decimal ("2.5")
  }
  w.LimitField("runaway_min_micros_per_hour", c.runaway_min_micros_per_hour);
  w.LimitField("max_calls_per_minute", c.max_calls_per_minute);
  w.LimitField("max_tokens_per_minute", c.max_tokens_per_minute);
  w.LimitField("degrade_at_pct", c.degrade_at_pct);
  if (with_time_zone) w.Field("time_zone", c.time_zone);
  w.EndObject();
}

namespace {

void WriteAmounts(JsonWriter& w, std::string_view key, const std::vector<event::NamedAmount>& list) {
  w.Key(key).BeginObject();
  for (const auto& entry : list) w.Field(entry.name, entry.amount_micros);
  w.EndObject();
}

struct BodyWriter {
  JsonWriter& w;
  void operator()(const event::AccountOpened& e) {
    w.Field("account", e.account).OptionalField("parent", e.parent);
    w.Field("kind", AccountKindName(e.kind)).Field("name", e.name).Field("wallet", e.wallet);
    w.Key("indexed_tag_keys").BeginArray();
    for (const auto& key : e.indexed_tag_keys) w.String(key);
    w.EndArray();
  }
  void operator()(const event::AccountFrozen& e) {
    w.Field("account", e.account).Field("reason", e.reason);
  }
  void operator()(const event::AccountUnfrozen& e) { w.Field("account", e.account); }
  void operator()(const event::CapsSet& e) {
    w.Field("account", e.account);
    w.Key("caps");
    WriteCapsJson(e.caps, /*with_time_zone=*/true, &w);
  }
  void operator()(const event::Deposited& e) {
    w.Field("deposit_id", e.deposit_id).Field("account", e.account);
    w.Field("amount_micros", e.amount_micros).Field("reference", e.reference);
  }
  void operator()(const event::Reserved& e) {
    w.Field("reservation_id", e.reservation_id).Field("account", e.account);
    w.OptionalField("funding_account", e.funding_account);
    w.Field("amount_micros", e.amount_micros);
    w.Field("expires_at", FormatTimestamp(e.expires_at_us)).Field("ttl_s", e.ttl_s);
    w.OptionalField("run_id", e.run_id).OptionalField("action", e.action);
    WriteTags(w, e.tags);
    if (!e.estimate_model.empty()) {
      w.Key("estimate").BeginObject();
      w.Field("model", e.estimate_model).Field("input_tokens", e.estimate_input_tokens);
      w.Field("max_output_tokens", e.estimate_max_output_tokens);
      w.EndObject();
    }
    w.OptionalField("advice_account", e.advice_account);
  }
  void operator()(const event::Settled& e) {
    w.Field("reservation_id", e.reservation_id).Field("account", e.account);
    w.Field("cost_micros", e.cost_micros).Field("released_micros", e.released_micros);
    w.Field("overrun_micros", e.overrun_micros).Field("late", e.late);
    w.Field("expiry_charge_reversed_micros", e.expiry_charge_reversed_micros);
    WriteDimensions(w, e.dimensions);
    WriteTokens(w, e.tokens);
  }
  void operator()(const event::Voided& e) {
    w.Field("reservation_id", e.reservation_id).Field("released_micros", e.released_micros);
    w.Field("reason", e.reason);
  }
  void operator()(const event::Expired& e) {
    w.Field("reservation_id", e.reservation_id).Field("released_micros", e.released_micros);
    w.Field("charged_micros", e.charged_micros).OptionalField("account", e.account);
  }
  void operator()(const event::Extended& e) {
    w.Field("reservation_id", e.reservation_id);
    w.Field("expires_at", FormatTimestamp(e.expires_at_us)).Field("ttl_s", e.ttl_s);
  }
  void operator()(const event::Refunded& e) {
    w.Field("refund_id", e.refund_id);
    w.Field("target_kind", e.target_kind == ChargeKind::kUsage ? "usage" : "reservation");
    w.Field("target_id", e.target_id).Field("amount_micros", e.amount_micros);
    w.Field("reason", e.reason);
  }
  void operator()(const event::UsageCharged& e) {
    w.Field("usage_id", e.usage_id).Field("account", e.account);
    w.Field("cost_micros", e.cost_micros).Field("overrun_micros", e.overrun_micros);
    WriteDimensions(w, e.dimensions);
    WriteTokens(w, e.tokens);
    if (e.occurred_at_us != 0) w.Field("occurred_at", FormatTimestamp(e.occurred_at_us));
  }
  void operator()(const event::RevenueRecorded& e) {
    w.Field("revenue_id", e.revenue_id).Field("account", e.account);
    w.Field("amount_micros", e.amount_micros).Field("category", e.category);
    w.Field("reference", e.reference);
  }
  void operator()(const event::PriceSet& e) {
    w.Field("model", e.model).Field("version", e.version);
    w.Field("input_per_mtok_micros", e.rates.input_per_mtok);
    w.Field("output_per_mtok_micros", e.rates.output_per_mtok);
    w.LimitField("cached_input_per_mtok_micros", e.rates.cached_input_per_mtok);
    w.LimitField("cache_write_per_mtok_micros", e.rates.cache_write_per_mtok);
    w.LimitField("reasoning_per_mtok_micros", e.rates.reasoning_per_mtok);
  }
  void operator()(const event::BaselineSet& e) {
    w.Field("account", e.account).Field("micros_per_hour", e.micros_per_hour);
    w.Field("multiplier_bp", e.multiplier_bp);
  }
  void operator()(const event::AlertRaised& e) {
    w.Field("alert_id", e.alert_id).Field("account", e.account);
    w.Field("alert_type", AlertTypeName(e.type)).Field("severity", e.severity);
    if (e.type == AlertType::kBudgetThreshold) w.Field("threshold_pct", int64_t{e.threshold_pct});
    w.OptionalField("window", CapWindowName(e.window));
    w.Field("limit_micros", e.limit_micros).Field("value_micros", e.value_micros);
    w.Field("message", e.message);
  }
  void operator()(const event::Adjusted& e) {
    w.Field("adjustment_id", e.adjustment_id).Field("account", e.account);
    w.Field("amount_micros", e.amount_micros).Field("reason", e.reason);
  }
  void operator()(const event::RejectionsCounted& e) {
    w.Field("account", e.account);
    w.Field("minute", FormatTimestamp(e.minute * kMicrosPerMinute));
    w.Field("code", uint64_t{e.code}).Field("count", e.count);
  }
  void operator()(const event::ApiKeyIssued& e) {
    w.Field("key_id", e.key_id).OptionalField("account", e.account);
    w.Field("role", RoleName(e.role)).Field("label", e.label);
    w.OptionalField("rotated_from", e.rotated_from);
    if (!e.rotated_from.empty()) {
      w.Field("old_key_valid_until", FormatTimestamp(e.old_key_valid_until_us));
    }
  }
  void operator()(const event::ApiKeyRevoked& e) { w.Field("key_id", e.key_id); }
  void operator()(const event::WebhookRegistered& e) {
    w.Field("webhook_id", e.webhook_id).Field("url", e.url).OptionalField("account", e.account);
    w.Key("events").BeginArray();
    for (const auto& kind : e.events) w.String(kind);
    w.EndArray();
  }
  void operator()(const event::WebhookRemoved& e) { w.Field("webhook_id", e.webhook_id); }
  void operator()(const event::DailyReportIngested& e) {
    w.Field("report_id", e.report_id).Field("account", e.account).Field("date", e.date);
    w.Field("total_tokens", e.total_tokens).Field("total_cost_micros", e.total_cost_micros);
    w.Field("total_requests", e.total_requests);
    WriteAmounts(w, "cost_by_model", e.cost_by_model);
    WriteAmounts(w, "cost_by_action", e.cost_by_action);
    WriteAmounts(w, "waste_categories", e.waste_categories);
  }
  void operator()(const event::Transferred& e) {
    w.Field("transfer_id", e.transfer_id).Field("from", e.from_account).Field("to", e.to_account);
    w.Field("amount_micros", e.amount_micros).Field("reason", e.reason);
  }
  void operator()(const event::WebhookUpdated& e) {
    w.Field("webhook_id", e.webhook_id).Field("url", e.url).Field("enabled", e.enabled);
    w.Key("events").BeginArray();
    for (const auto& kind : e.events) w.String(kind);
    w.EndArray();
  }
  void operator()(const event::TagKeysIndexed& e) {
    w.Field("account", e.account).Key("keys").BeginArray();
    for (const auto& key : e.keys) w.String(key);
    w.EndArray();
  }
};

struct AccountOf {
  template <typename T>
  std::string operator()(const T& e) const {
    if constexpr (requires { e.account; }) {
      return e.account;
    } else {
      return {};
    }
  }
};

}  // namespace

void WriteEventJson(const Event& event, JsonWriter* out) {
  out->BeginObject();
  out->Field("seq", event.sequence);
  out->Field("time", FormatTimestamp(event.timestamp_us));
  out->Field("actor", event.actor);
  out->Field("type", EventTypeName(event.body));
  if (event.price_version != 0) out->Field("price_version", event.price_version);
  std::visit(BodyWriter{*out}, event.body);
  out->EndObject();
}

std::string EventToJson(const Event& event) {
  JsonWriter writer;
  WriteEventJson(event, &writer);
  return writer.Take();
}

std::string EventAccount(const EventBody& body) { return std::visit(AccountOf{}, body); }

}  // namespace purser
