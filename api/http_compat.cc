// The compatibility endpoints of daily-report style FinOps REST services
// (API.md "Compatibility endpoints"): reports in, dashboard reads out. Costs
// are USD as JSON numbers printed exactly from micro-USD (14.73, never
// 14.729999). They read only the reports (DailyReportIngested events): never
// wallets, caps or the ledger's own spend.

#include <algorithm>

#include "api/http_internal.h"
#include "ledger/crypto.h"
#include "ledger/money.h"

namespace purser {

namespace {

using Plan = HttpApi::Plan;

void WriteAmounts(JsonWriter& w, std::string_view key, const std::vector<event::NamedAmount>& list) {
  w.Key(key).BeginObject();
  for (const auto& entry : list) w.Key(entry.name).Usd(entry.amount_micros);
  w.EndObject();
}

// The reporting account: the key's own, or ?account= for the global admin.
// Phase 1 asks who the key is; phase 2 runs `reads` for that account.
Plan ForAccount(const HttpRequest& request, std::function<Plan(const std::string& account)> reads) {
  std::string named = Param(request, "account");
  Plan plan;
  plan.bodies.push_back(query::Authenticate{});
  plan.then = [named, reads = std::move(reads)](std::vector<Reply>& replies) {
    if (!replies[0].ok()) return Plan::Now(ErrorResponse(replies[0]));
    const auto& principal = std::get<PrincipalView>(replies[0].body);
    std::string account = principal.account.empty() ? named : principal.account;
    if (account.empty()) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument,
                              "the global admin names the reporting account with ?account="));
    }
    return reads(account);
  };
  return plan;
}

// [GetAccount, DailyReports, ListAlerts] for the last `days` days.
Plan Reads(const std::string& account, int days, bool with_alerts,
           std::function<HttpResponse(const AccountView&, const DailyReportList&, const AlertList*,
                                      int64_t first, int64_t last)> format) {
  int64_t last = Today();
  int64_t first = last - days + 1;
  Plan plan;
  plan.bodies.push_back(query::GetAccount{account});
  plan.bodies.push_back(query::DailyReports{account, first, last});
  if (with_alerts) plan.bodies.push_back(query::ListAlerts{account, 0});
  plan.format = [format, first, last, with_alerts](std::vector<Reply>& replies) {
    for (const Reply& reply : replies) {
      if (!reply.ok()) return ErrorResponse(reply);
    }
    return format(std::get<AccountView>(replies[0].body), std::get<DailyReportList>(replies[1].body),
                  with_alerts ? &std::get<AlertList>(replies[2].body) : nullptr, first, last);
  };
  return plan;
}

void WriteCompatAlerts(JsonWriter& w, const AlertList& alerts) {
  w.Key("alerts").BeginArray();
  for (const AlertView& a : alerts.alerts) {
    w.BeginObject().Field("id", std::to_string(a.id)).Field("alert_type", AlertTypeName(a.type));
    w.Field("severity", a.severity);
    std::string title = a.type == AlertType::kBudgetThreshold
                            ? std::to_string(a.threshold_pct) + "% of the " +
                                  std::string(CapWindowName(a.window)) + " budget of " + a.account
                            : std::string(AlertTypeName(a.type)) + " on " + a.account;
    w.Field("title", title).Field("message", a.message);
    w.Field("created_at", FormatTimestamp(a.created_at_us)).EndObject();
  }
  w.EndArray();
}

HttpResponse Dashboard(const AccountView& account, const DailyReportList& list,
                       const AlertList* alerts, int64_t first, int64_t last) {
  int64_t cost = 0, tokens = 0, requests = 0, score_sum = 0, scored = 0;
  for (const auto& report : list.reports) {
    cost += report.total_cost_micros;
    tokens += report.total_tokens;
    requests += report.total_requests;
    if (report.efficiency_score_millionths >= 0) {
      score_sum += report.efficiency_score_millionths;
      ++scored;
    }
  }
  JsonWriter w;
  w.BeginObject().Key("customer").BeginObject();
  w.Field("id", account.id).Field("company_name", account.name).Key("monthly_budget");
  if (account.caps.monthly_limit_micros >= 0) {
    w.Usd(account.caps.monthly_limit_micros);
  } else {
    w.Null();
  }
  w.Key("alert_threshold_pct");
  if (account.caps.alert_thresholds_pct.empty()) {
    w.Null();
  } else {
    w.Int(account.caps.alert_thresholds_pct.front());
  }
  w.EndObject();
  w.Key("summary").BeginObject();
  w.Key("total_cost").Usd(cost).Field("total_tokens", tokens).Field("total_requests", requests);
  w.Key("avg_efficiency");
  if (scored > 0) {
    w.Usd((score_sum + scored / 2) / scored);  // the mean score, rounded half-up to 6 decimals
  } else {
    w.Null();
  }
  w.Field("report_count", static_cast<int64_t>(list.reports.size()));
  w.Field("period_start", FormatDate(first)).Field("period_end", FormatDate(last)).EndObject();
  w.Key("efficiency").BeginObject();
  auto latest = std::find_if(list.reports.rbegin(), list.reports.rend(),
                             [](const auto& r) { return r.efficiency_score_millionths >= 0; });
  if (latest == list.reports.rend()) {
    w.Key("score").Null().Key("date").Null();
  } else {
    w.Key("score").Usd(latest->efficiency_score_millionths).Field("date", latest->date);
  }
  w.EndObject();
  WriteCompatAlerts(w, *alerts);
  w.Key("recommendations").BeginArray().EndArray().EndObject();
  return Json(200, w.Take());
}

HttpResponse EfficiencyScore(const AccountView&, const DailyReportList& list, const AlertList*,
                             int64_t, int64_t) {
  JsonWriter w;
  w.BeginObject().Key("current").BeginObject();
  auto latest = std::find_if(list.reports.rbegin(), list.reports.rend(),
                             [](const auto& r) { return r.efficiency_score_millionths >= 0; });
  if (latest == list.reports.rend()) {
    w.Key("score").Null().Key("date").Null();
  } else {
    w.Key("score").Usd(latest->efficiency_score_millionths).Field("date", latest->date);
  }
  w.EndObject().Key("trend").BeginArray();
  for (const auto& report : list.reports) {
    if (report.efficiency_score_millionths < 0) continue;
    w.BeginObject().Field("date", report.date).Key("score").Usd(report.efficiency_score_millionths);
    w.EndObject();
  }
  w.EndArray().EndObject();
  return Json(200, w.Take());
}

HttpResponse CostTrends(const AccountView&, const DailyReportList& list, const AlertList*,
                        int64_t first, int64_t last) {
  JsonWriter w;
  w.BeginObject().Key("period").BeginObject();
  w.Field("start", FormatDate(first)).Field("end", FormatDate(last));
  w.Field("days", last - first + 1).EndObject();
  w.Key("data").BeginArray();
  for (const auto& report : list.reports) {
    w.BeginObject().Field("date", report.date).Key("total_cost").Usd(report.total_cost_micros);
    w.Field("total_tokens", report.total_tokens).Field("total_requests", report.total_requests);
    WriteAmounts(w, "cost_by_model", report.cost_by_model);
    WriteAmounts(w, "cost_by_action", report.cost_by_action);
    WriteAmounts(w, "waste_categories", report.waste_categories);
    w.EndObject();
  }
  w.EndArray().EndObject();
  return Json(200, w.Take());
}

}  // namespace

Plan CompatRoutes(const HttpRequest& request, const Segments& s) {
  const std::string& m = request.method;
  if (Match(s, {"api", "finops", "daily-report"}) && m == "POST") {
    cmd::IngestDailyReport c;
    if (DecodeError e = DecodeDailyReport(request.body, &c.report); !e.ok()) {
      return Plan::Now(DecodeFailure(e));
    }
    c.report.account = Param(request, "account");  // the machine uses the key's own when scoped
    c.report.report_id =
        request.idempotency_key.empty() ? "rpt_" + RandomHex(8) : request.idempotency_key;
    return Plan::One(std::move(c), [](const Reply& reply) {
      JsonWriter w;
      w.BeginObject().Field("ok", true).Field("report_id", std::get<IdResult>(reply.body).id);
      w.Field("message", "Daily report saved").EndObject();
      return Json(200, w.Take());
    });
  }
  if (m != "GET") return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + request.path));
  if (Match(s, {"api", "finops", "dashboard"})) {
    int days = PeriodDays(Param(request, "period"), 30);
    if (days < 0) return Plan::Now(Refuse(ResultCode::kInvalidArgument, "period must be 7d, 30d or 90d"));
    return ForAccount(request, [days](const std::string& account) {
      return Reads(account, days, true, Dashboard);
    });
  }
  if (Match(s, {"api", "finops", "efficiency-score"})) {
    return ForAccount(request, [](const std::string& account) {
      return Reads(account, 30, false, EfficiencyScore);
    });
  }
  if (Match(s, {"api", "finops", "cost-trends"})) {
    int days = PeriodDays(Param(request, "period"), 30);
    if (days < 0) return Plan::Now(Refuse(ResultCode::kInvalidArgument, "period must be 7d, 30d or 90d"));
    return ForAccount(request, [days](const std::string& account) {
      return Reads(account, days, false, CostTrends);
    });
  }
  if (Match(s, {"api", "finops", "alerts"})) {
    return ForAccount(request, [](const std::string& account) {
      return Plan::One(query::ListAlerts{account, 0}, [](const Reply& reply) {
        JsonWriter w;
        w.BeginObject();
        WriteCompatAlerts(w, std::get<AlertList>(reply.body));
        w.EndObject();
        return Json(200, w.Take());
      });
    });
  }
  return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + request.path));
}

}  // namespace purser
