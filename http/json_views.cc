#include "http/json_views.h"

#include "ledger/base/clock.h"
#include "ledger/wire/event_json.h"
#include "ledger/machine/validate.h"

namespace purser {

namespace {

void WriteRates(const PriceRates& r, JsonWriter& w) {
  w.Field("input_per_mtok_micros", r.input_per_mtok);
  w.Field("output_per_mtok_micros", r.output_per_mtok);
  w.LimitField("cached_input_per_mtok_micros", r.cached_input_per_mtok);
  w.LimitField("cache_write_per_mtok_micros", r.cache_write_per_mtok);
  w.LimitField("reasoning_per_mtok_micros", r.reasoning_per_mtok);
}

struct BodyWriter {
  JsonWriter& w;
  void operator()(const std::monostate&) { w.BeginObject().EndObject(); }
  void operator()(const AccountView& v) { WriteAccountJson(v, &w); }
  void operator()(const AccountList& v) {
    w.BeginObject().Key("accounts").BeginArray();
    for (const AccountView& a : v.accounts) WriteAccountJson(a, &w);
    w.EndArray().EndObject();
  }
  void operator()(const CapsView& v) { WriteCapsJson(v.caps, /*with_time_zone=*/false, &w); }
  void operator()(const BalanceView& v) { WriteBalanceJson(v, &w); }
  void operator()(const ReserveResult& v) {
    w.BeginObject();
    w.Field("reservation_id", v.reservation_id).Field("account", v.account);
    w.Field("amount_micros", v.amount_micros);
    w.Field("expires_at", FormatTimestamp(v.expires_at_us));
    w.Field("headroom_after_micros", v.headroom_after_micros);
    w.Field("seq", v.seq);
    if (!v.advice_account.empty()) {
      w.Field("advice", "degrade").Field("advice_account", v.advice_account);
    }
    w.EndObject();
  }
  void operator()(const SettleResult& v) {
    w.BeginObject();
    w.Field("reservation_id", v.reservation_id).Field("cost_micros", v.cost_micros);
    w.Field("released_micros", v.released_micros).Field("overrun_micros", v.overrun_micros);
    w.Field("late", v.late).Field("seq", v.seq);
    w.EndObject();
  }
  void operator()(const VoidResult& v) {
    w.BeginObject().Field("released_micros", v.released_micros).EndObject();
  }
  void operator()(const ExtendResult& v) {
    w.BeginObject().Field("expires_at", FormatTimestamp(v.expires_at_us)).EndObject();
  }
  void operator()(const UsageResult& v) {
    w.BeginObject();
    w.Field("usage_id", v.usage_id).Field("cost_micros", v.cost_micros);
    w.Field("overrun_micros", v.overrun_micros).Field("seq", v.seq);
    w.EndObject();
  }
  void operator()(const IdResult& v) {
    w.BeginObject().Field("id", v.id).Field("amount_micros", v.amount_micros).EndObject();
  }
  void operator()(const BalanceResult& v) {
    w.BeginObject().Field("balance_micros", v.balance_micros).EndObject();
  }
  void operator()(const KeyResult& v) {
    w.BeginObject();
    w.Field("key_id", v.key_id).OptionalField("account", v.account);
    w.Field("role", RoleName(v.role));
    w.OptionalField("api_key", v.api_key);
    w.EndObject();
  }
  void operator()(const PrincipalView& v) {
    w.BeginObject();
    w.Field("key_id", v.key_id).OptionalField("account", v.account).Field("role", RoleName(v.role));
    w.EndObject();
  }
  void operator()(const ReservationView& v) { WriteReservationJson(v, &w); }
  void operator()(const ReservationList& v) {
    w.BeginObject().Key("reservations").BeginArray();
    for (const ReservationView& r : v.reservations) WriteReservationJson(r, &w);
    w.EndArray().EndObject();
  }
  void operator()(const SpendReport& v) {
    w.BeginObject();
    w.Field("account", v.account);
    w.Field("from", FormatDate(v.from_day)).Field("to", FormatDate(v.to_day));
    w.Field("total_micros", v.total_micros).Field("calls", v.calls);
    w.Key("groups").BeginArray();
    for (const SpendGroup& g : v.groups) {
      w.BeginObject();
      w.Field("key", g.key).Field("cost_micros", g.cost_micros).Field("calls", g.calls);
      w.Field("input_tokens", g.input_tokens).Field("output_tokens", g.output_tokens);
      w.Field("cached_input_tokens", g.cached_input_tokens);
      w.Field("cache_write_tokens", g.cache_write_tokens);
      w.Field("reasoning_tokens", g.reasoning_tokens);
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const AlertList& v) {
    w.BeginObject().Key("alerts").BeginArray();
    for (const AlertView& a : v.alerts) {
      w.BeginObject();
      w.Field("id", std::to_string(a.id)).Field("account", a.account);
      w.Field("type", AlertTypeName(a.type)).Field("severity", a.severity);
      if (a.type == AlertType::kBudgetThreshold) {
        w.Field("threshold_pct", int64_t{a.threshold_pct});
        w.Field("window", CapWindowName(a.window));
        w.Field("limit_micros", a.limit_micros);
      }
      if (a.type == AlertType::kAnomaly || a.type == AlertType::kRunaway) {
        w.Field("limit_micros", a.limit_micros);  // the rate that was passed, per hour
      }
      w.Field("value_micros", a.value_micros);
      if (a.type == AlertType::kOverrun) w.Field("count", a.count);
      w.Field("message", a.message).Field("created_at", FormatTimestamp(a.created_at_us));
      w.Field("seq", a.id);
      w.EndObject();
    }
    w.EndArray();
    // Only when the bound cut the list, so the usual answer keeps API.md's shape.
    if (v.truncated) w.Field("truncated", true);
    w.EndObject();
  }
  void operator()(const PriceList& v) {
    w.BeginObject().Field("version", v.version).Key("prices").BeginArray();
    for (const PriceView& p : v.prices) {
      w.BeginObject().Field("model", p.model);
      WriteRates(p.rates, w);
      w.Field("version", p.version).EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const CostResult& v) {
    w.BeginObject().Field("cost_micros", v.cost_micros).Field("price_version", v.price_version);
    w.EndObject();
  }
  void operator()(const KeyList& v) {
    w.BeginObject().Key("keys").BeginArray();
    for (const KeyView& k : v.keys) {
      w.BeginObject();
      w.Field("key_id", k.key_id).OptionalField("account", k.account);
      w.Field("role", RoleName(k.role)).Field("label", k.label).Field("revoked", k.revoked);
      w.Key("valid_until");
      if (k.valid_until_us == INT64_MAX) {
        w.Null();
      } else {
        w.String(FormatTimestamp(k.valid_until_us));
      }
      w.Field("created_at", FormatTimestamp(k.created_at_us));
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const WebhookList& v) {
    w.BeginObject().Key("webhooks").BeginArray();
    for (const WebhookView& h : v.webhooks) (*this)(h);
    w.EndArray().EndObject();
  }
  void operator()(const WebhookView& h) {
    w.BeginObject();
    w.Field("webhook_id", h.webhook_id).Field("url", h.url).OptionalField("account", h.account);
    w.Key("events").BeginArray();
    for (const std::string& kind : h.events) w.String(kind);
    w.EndArray();
    w.Field("enabled", h.enabled).Field("created_at", FormatTimestamp(h.created_at_us));
    w.EndObject();
  }
  void operator()(const WebhookTableView&) { w.BeginObject().EndObject(); }  // service only
  void operator()(const PnlView& v) {
    w.BeginObject();
    w.Field("revenue_micros", v.revenue_micros).Field("cost_micros", v.cost_micros);
    w.Field("profit_micros", v.profit_micros).Key("margin_pct");
    if (v.margin_bp) {
      // Percent with two decimals, exactly, from basis points.
      int64_t bp = *v.margin_bp;
      std::string text = bp < 0 ? "-" : "";
      int64_t magnitude = bp < 0 ? -bp : bp;
      text += std::to_string(magnitude / 100);
      if (magnitude % 100 != 0) {
        text += '.';
        text += static_cast<char>('0' + magnitude % 100 / 10);
        if (magnitude % 10 != 0) text += static_cast<char>('0' + magnitude % 10);
      }
      w.Raw(text);
    } else {
      w.Null();
    }
    w.EndObject();
  }
  void operator()(const ChainHead& v) {
    w.BeginObject().Field("seq", v.sequence).Field("hash", HexEncode(v.hash)).EndObject();
  }
  void operator()(const DigestView& v) {
    w.BeginObject().Field("seq", v.sequence).Field("digest", HexEncode(v.digest)).EndObject();
  }
  void operator()(const AccountTreeView&) { w.BeginObject().EndObject(); }
  void operator()(const DailyReportList&) { w.BeginObject().EndObject(); }
  void operator()(const TransferResult& v) {
    w.BeginObject().Field("transfer_id", v.transfer_id);
    w.Field("from_balance_micros", v.from_balance_micros);
    w.Field("to_balance_micros", v.to_balance_micros).EndObject();
  }
  void operator()(const TagKeysView& v) {
    w.BeginObject().Key("indexed_tag_keys").BeginArray();
    for (const std::string& key : v.keys) w.String(key);
    w.EndArray().EndObject();
  }
  void operator()(const BurnRateView& v) {
    w.BeginObject().Field("account", v.account).Field("window_s", v.window_s);
    w.Field("micros_per_hour", v.micros_per_hour).Field("spend_micros", v.spend_micros);
    w.Field("calls", v.calls);
    if (v.baseline_micros_per_hour > 0) {
      w.Field("baseline_micros_per_hour", v.baseline_micros_per_hour);
      w.Field("ratio_pct", v.ratio_pct);
    }
    w.EndObject();
  }
  void operator()(const RunList& v) {
    w.BeginObject().Field("window_s", v.window_s).Key("runs").BeginArray();
    for (const RunView& r : v.runs) {
      w.BeginObject().Field("run_id", r.run_id).Field("account", r.account);
      w.Field("micros_per_hour", r.micros_per_hour).Field("spend_micros", r.spend_micros);
      w.Field("calls", r.calls).Field("first_at", FormatTimestamp(r.first_at_us));
      w.Field("last_at", FormatTimestamp(r.last_at_us)).EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const BaselineView& v) {
    w.BeginObject().Field("account", v.account).Field("micros_per_hour", v.micros_per_hour);
    w.Key("multiplier").Usd(v.multiplier_bp * 100).EndObject();
  }
  void operator()(const AnomalyList& v) {
    w.BeginObject().Key("anomalies").BeginArray();
    for (const AnomalyView& a : v.anomalies) {
      w.BeginObject().Field("account", a.account).Field("micros_per_hour", a.micros_per_hour);
      w.Field("baseline_micros_per_hour", a.baseline_micros_per_hour);
      w.Field("threshold_micros_per_hour", a.threshold_micros_per_hour);
      w.Field("ratio_pct", a.ratio_pct).Field("since", FormatTimestamp(a.since_us)).EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const EfficiencyView& v) {
    w.BeginObject().Field("account", v.account);
    w.Field("from", FormatDate(v.from_day)).Field("to", FormatDate(v.to_day));
    WriteEfficiencyFields(v.total, w);
    w.Key("by_model").BeginArray();
    for (const EfficiencyFigures& m : v.by_model) {
      w.BeginObject().Field("model", m.model);
      WriteEfficiencyFields(m, w);
      w.EndObject();
    }
    w.EndArray().Key("recommendations").BeginArray();
    for (const Recommendation& r : v.recommendations) {
      w.BeginObject().Field("rule", r.rule).Field("message", r.message).Key("value");
      if (r.value_is_pct) {
        w.Usd(r.value * 10'000);  // basis points as an exact percentage
      } else {
        w.Int(r.value);
      }
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const TrendsView& v) {
    w.BeginObject().Key("period").BeginObject();
    w.Field("start", FormatDate(v.first_day)).Field("end", FormatDate(v.last_day));
    w.Field("days", v.last_day - v.first_day + 1).EndObject();
    w.Key("data").BeginArray();
    for (const TrendDay& d : v.days) {
      w.BeginObject().Field("date", FormatDate(d.day)).Field("total_cost_micros", d.cost_micros);
      w.Field("calls", d.calls).Field("tokens", d.tokens);
      for (const auto& [key, list] : {std::pair{"cost_by_model", &d.by_model},
                                      std::pair{"cost_by_action", &d.by_action},
                                      std::pair{"waste", &d.by_waste}}) {
        w.Key(key).BeginObject();
        for (const auto& [name, cost] : *list) w.Field(name, cost);
        w.EndObject();
      }
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const LeaderboardView& v) {
    w.BeginObject().Field("metric", LeaderboardMetricName(v.metric)).Key("entries").BeginArray();
    for (const LeaderboardEntry& e : v.entries) {
      w.BeginObject().Field("account", e.account).Key("value");
      if (v.metric == LeaderboardMetric::kEfficiency) {
        w.Usd(e.value * 10'000);  // the score, 0..100
      } else {
        w.Int(e.value);
      }
      w.Field("spend_micros", e.spend_micros).EndObject();
    }
    w.EndArray().EndObject();
  }
  void operator()(const StatsView& v) {
    w.BeginObject().Field("accounts", v.accounts);
    w.Field("active_accounts_today", v.active_accounts_today);
    w.Field("spend_today_micros", v.spend_today_micros);
    w.Field("spend_month_micros", v.spend_month_micros).Field("calls_today", v.calls_today);
    w.Field("reservations_pending", v.reservations_pending);
    w.Field("events_total", v.events_total).Field("alerts_active", v.alerts_active);
    w.Field("runs_active", v.runs_active).Field("frozen_accounts", v.frozen_accounts);
    w.EndObject();
  }

  void operator()(const AccountMetricsView&) { w.BeginObject().EndObject(); }

  void operator()(const OverviewView& v) {
    auto account = [this](const OverviewAccount& a) {
      w.BeginObject().Field("id", a.balance.account).OptionalField("parent", a.parent);
      w.Field("kind", AccountKindName(a.kind)).Field("name", a.name).Field("depth", a.depth);
      if (a.balance.frozen) w.Field("frozen_reason", a.frozen_reason);
      w.Key("balance");
      WriteBalanceJson(a.balance, &w);
      w.EndObject();
    };
    w.BeginObject().Field("account", v.account).Key("accounts").BeginArray();
    for (const OverviewAccount& a : v.accounts) account(a);
    w.EndArray().Field("truncated", v.truncated).Key("frozen").BeginArray();
    for (const OverviewAccount& a : v.frozen) account(a);
    w.EndArray().Field("frozen_count", v.frozen_count).Key("burn").BeginObject();
    w.Field("first_minute", FormatTimestamp(v.first_minute_us)).Key("micros_per_minute").BeginArray();
    for (int64_t micros : v.burn_per_minute) w.Int(micros);
    w.EndArray();
    if (v.baseline_micros_per_hour > 0) {
      w.Field("baseline_micros_per_hour", v.baseline_micros_per_hour);
      w.Key("multiplier").Usd(v.baseline_multiplier_bp * 100);
    }
    w.EndObject().EndObject();
  }

  static void WriteEfficiencyFields(const EfficiencyFigures& f, JsonWriter& w) {
    w.Key("score").Usd(f.score_bp * 10'000);
    w.Field("total_micros", f.total_micros).Field("waste_micros", f.waste_micros);
    w.Key("cache_hit_rate_pct").Usd(f.cache_hit_rate_bp * 10'000);
    w.Field("cache_savings_micros", f.cache_savings_micros);
    w.Field("cache_write_extra_micros", f.cache_write_extra_micros);
    w.Field("cache_net_savings_micros", f.cache_net_savings_micros);
  }
};

}  // namespace

void WriteBalanceJson(const BalanceView& v, JsonWriter* out) {
  JsonWriter& w = *out;
  w.BeginObject();
  w.Field("account", v.account).OptionalField("funding_account", v.funding_account);
  w.Field("balance_micros", v.balance_micros).Field("held_micros", v.held_micros);
  w.Field("available_micros", v.available_micros).Field("own_held_micros", v.own_held_micros);
  w.Field("spent_today_micros", v.spent_today_micros);
  w.Field("spent_month_micros", v.spent_month_micros);
  w.Field("spent_total_micros", v.spent_total_micros);
  w.LimitField("daily_limit_micros", v.daily_limit_micros);
  w.LimitField("monthly_limit_micros", v.monthly_limit_micros);
  w.LimitField("hard_limit_micros", v.hard_limit_micros);
  w.Field("headroom_micros", v.headroom_micros).Field("inflight", v.inflight);
  w.Field("frozen", v.frozen);
  w.EndObject();
}

void WriteAccountJson(const AccountView& v, JsonWriter* out) {
  JsonWriter& w = *out;
  w.BeginObject();
  w.Field("id", v.id).OptionalField("parent", v.parent).Field("kind", AccountKindName(v.kind));
  w.Field("name", v.name).Field("wallet", v.wallet).Field("frozen", v.frozen);
  if (v.frozen) w.Field("frozen_reason", v.frozen_reason);
  if (v.parent.empty()) {
    w.Key("indexed_tag_keys").BeginArray();
    for (const std::string& key : v.indexed_tag_keys) w.String(key);
    w.EndArray();
  }
  w.Key("caps");
  WriteCapsJson(v.caps, /*with_time_zone=*/false, out);
  w.Key("balance");
  WriteBalanceJson(v.balance, out);
  w.EndObject();
}

void WriteReservationJson(const ReservationView& v, JsonWriter* out) {
  JsonWriter& w = *out;
  w.BeginObject();
  w.Field("reservation_id", v.reservation_id).Field("account", v.account);
  w.Field("amount_micros", v.amount_micros).Field("status", ReservationStatusName(v.status));
  if (v.status == ReservationStatus::kSettled || v.cost_micros != 0) {
    w.Field("cost_micros", v.cost_micros);
  }
  w.Field("created_at", FormatTimestamp(v.created_at_us));
  w.Field("expires_at", FormatTimestamp(v.expires_at_us));
  w.EndObject();
}

void WriteReplyJson(const Reply& reply, JsonWriter* out) { std::visit(BodyWriter{*out}, reply.body); }

void WriteErrorJson(const Reply& reply, JsonWriter* out) {
  JsonWriter& w = *out;
  w.BeginObject().Key("error").BeginObject();
  // Messages may quote what a client sent (an id, a path): never raw bytes
  // that are not clean UTF-8.
  std::string message = reply.message;
  if (!CheckText("message", message, message.size()).empty()) {
    for (char& c : message) {
      auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte >= 0x7f) c = '?';
    }
  }
  w.Field("code", ResultCodeName(reply.code)).Field("message", message);
  if (!reply.account.empty()) w.Field("account", reply.account);
  if (reply.limit_micros >= 0) w.Field("limit_micros", reply.limit_micros);
  if (reply.available_micros >= 0) w.Field("available_micros", reply.available_micros);
  if (reply.retry_after_s > 0) w.Field("retry_after_s", reply.retry_after_s);
  w.EndObject().EndObject();
}

std::string ReplyToJson(const Reply& reply) {
  JsonWriter writer;
  if (reply.ok()) {
    WriteReplyJson(reply, &writer);
  } else {
    WriteErrorJson(reply, &writer);
  }
  return writer.Take();
}

std::string DeliveriesJson(const std::vector<DeliveryView>& deliveries) {
  JsonWriter w;
  w.BeginObject().Key("deliveries").BeginArray();
  for (const DeliveryView& d : deliveries) {
    w.BeginObject().Field("event_id", d.event_id).Field("type", d.type).Field("state", d.state);
    w.Field("attempts", int64_t{d.attempts});
    if (d.last_status_code != 0) w.Field("last_status_code", int64_t{d.last_status_code});
    w.OptionalField("last_error", d.last_error);
    if (d.last_attempt_at_us != 0) w.Field("last_attempt_at", FormatTimestamp(d.last_attempt_at_us));
    if (d.next_attempt_at_us != 0) w.Field("next_attempt_at", FormatTimestamp(d.next_attempt_at_us));
    w.Key("attempt_log").BeginArray();
    for (const DeliveryAttempt& a : d.attempt_log) {
      w.BeginObject().Field("at", FormatTimestamp(a.at_us));
      if (a.status_code != 0) w.Field("status_code", int64_t{a.status_code});
      w.OptionalField("error", a.error).EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return w.Take();
}

}  // namespace purser
