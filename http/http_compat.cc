// The compatibility endpoints of daily-report style FinOps REST services
// (API.md "Compatibility endpoints"): reports in, dashboard reads out. Costs
// are USD as JSON numbers printed exactly from micro-USD (14.73, never
// 14.729999). They read only the reports (DailyReportIngested events): never
// wallets, caps or the ledger's own spend.

#include <algorithm>

#include "http/http_internal.h"
#include "ledger/base/crypto.h"
#include "ledger/base/money.h"
#include "ledger/machine/prices.h"

#include <map>

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

// What a compatibility read needs: the account, its reports of the period
// and of the current month, and (for the dashboard and alerts) the ledger's
// alerts, its recorded efficiency and the price table.
struct CompatData {
  const AccountView* account = nullptr;
  const DailyReportList* reports = nullptr;        // the period
  const DailyReportList* month_reports = nullptr;  // this month so far
  const AlertList* alerts = nullptr;
  const EfficiencyView* efficiency = nullptr;
  const PriceList* prices = nullptr;
  int64_t first = 0;
  int64_t last = 0;
};

Plan Reads(const std::string& account, int days, bool full,
           std::function<HttpResponse(const CompatData&)> format) {
  int64_t last = Today();
  int64_t first = last - days + 1;
  Plan plan;
  plan.bodies.push_back(query::GetAccount{account});
  plan.bodies.push_back(query::DailyReports{account, first, last});
  plan.bodies.push_back(query::DailyReports{account, FirstDayOfMonth(MonthOfDay(last)), last});
  if (full) {
    // The newest (the list's bound keeps them), written oldest first as before.
    query::ListAlerts alerts{account, 0, std::nullopt};
    alerts.newest_first = true;
    plan.bodies.push_back(std::move(alerts));
    plan.bodies.push_back(query::GetEfficiency{account, first, last});
    plan.bodies.push_back(query::ListPrices{});
  }
  plan.format = [format, first, last, full](std::vector<Reply>& replies) {
    for (const Reply& reply : replies) {
      if (!reply.ok()) return ErrorResponse(reply);
    }
    CompatData data;
    data.account = &std::get<AccountView>(replies[0].body);
    data.reports = &std::get<DailyReportList>(replies[1].body);
    data.month_reports = &std::get<DailyReportList>(replies[2].body);
    if (full) {
      data.alerts = &std::get<AlertList>(replies[3].body);
      data.efficiency = &std::get<EfficiencyView>(replies[4].body);
      data.prices = &std::get<PriceList>(replies[5].body);
    }
    data.first = first;
    data.last = last;
    return format(data);
  };
  return plan;
}

// Budget alerts of the reports (API.md): the month's reported cost past the
// account's alert threshold and past 100% of its monthly budget.
void WriteReportBudgetAlerts(JsonWriter& w, const CompatData& d) {
  const AccountView& account = *d.account;
  int64_t budget = account.caps.monthly_limit_micros;
  if (budget <= 0 || d.month_reports->reports.empty()) return;
  __int128 cost = 0;
  for (const auto& report : d.month_reports->reports) cost += report.total_cost_micros;
  std::string month = FormatMonth(MonthOfDay(d.last));
  std::string when = d.month_reports->reports.back().date + "T00:00:00Z";
  std::vector<int64_t> thresholds;
  if (!account.caps.alert_thresholds_pct.empty()) {
    thresholds.push_back(account.caps.alert_thresholds_pct.front());
  }
  thresholds.push_back(100);
  for (int64_t pct : thresholds) {
    if (cost * 100 < static_cast<__int128>(pct) * budget) continue;
    w.BeginObject().Field("id", "report-budget-" + month + "-" + std::to_string(pct));
    w.Field("alert_type", "budget_threshold").Field("severity", pct >= 100 ? "critical" : "warning");
    w.Field("title", std::to_string(pct) + "% of the monthly budget of " + account.id);
    w.Field("message", "reported cost of " + month + " is " +
                           FormatUsd(static_cast<int64_t>(cost)) + " USD of a " +
                           FormatUsd(budget) + " USD monthly budget");
    w.Field("created_at", when).EndObject();
    if (pct >= 100) break;
  }
}

void WriteCompatAlerts(JsonWriter& w, const AlertList& alerts, const CompatData& data) {
  w.Key("alerts").BeginArray();
  WriteReportBudgetAlerts(w, data);
  for (auto it = alerts.alerts.rbegin(); it != alerts.alerts.rend(); ++it) {
    const AlertView& a = *it;
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

// The recommendation rules of SPEC section 4 over the reported figures,
// then the ones over the ledger's recorded spend.
void WriteRecommendations(JsonWriter& w, const CompatData& d) {
  w.Key("recommendations").BeginArray();
  __int128 total = 0;
  __int128 waste = 0;
  std::map<std::string, __int128> by_model;
  for (const auto& report : d.reports->reports) {
    total += report.total_cost_micros;
    for (const auto& entry : report.waste_categories) waste += entry.amount_micros;
    for (const auto& entry : report.cost_by_model) by_model[entry.name] += entry.amount_micros;
  }
  auto percent = [](__int128 part, __int128 whole) {
    return FormatUsd(static_cast<int64_t>(part * 100'000'000 / whole)) ;
  };
  if (total > 0 && waste * 5 > total) {
    w.BeginObject().Field("rule", "waste_high");
    w.Field("message", "reported waste is " + percent(waste, total) +
                           "% of reported cost (above 20%)");
    w.Key("value").Raw(percent(waste, total)).EndObject();
  }
  for (const auto& [model, cost] : by_model) {
    if (total <= 0 || cost * 5 <= total * 4) continue;
    std::string vendor = VendorOf(model);
    const PriceView* own = nullptr;
    for (const PriceView& p : d.prices->prices) {
      if (p.model == model) own = &p;
    }
    const PriceView* cheapest = nullptr;
    for (const PriceView& p : d.prices->prices) {
      if (p.model == model || VendorOf(p.model) != vendor || p.rates.output_per_mtok <= 0) continue;
      int64_t price = p.rates.input_per_mtok + p.rates.output_per_mtok;
      if (own != nullptr && price >= own->rates.input_per_mtok + own->rates.output_per_mtok) continue;
      if (cheapest == nullptr ||
          price < cheapest->rates.input_per_mtok + cheapest->rates.output_per_mtok) {
        cheapest = &p;
      }
    }
    if (own == nullptr || cheapest == nullptr) continue;
    w.BeginObject().Field("rule", "cheaper_model");
    w.Field("message", model + " is " + percent(cost, total) + "% of reported cost; " +
                           cheapest->model + " of the same vendor is priced lower");
    w.Key("value").Raw(percent(cost, total)).EndObject();
  }
  for (const Recommendation& r : d.efficiency->recommendations) {
    w.BeginObject().Field("rule", r.rule).Field("message", r.message).Key("value");
    w.Usd(r.value * 10'000).EndObject();
  }
  w.EndArray();
}

HttpResponse Dashboard(const CompatData& d) {
  const AccountView& account = *d.account;
  const DailyReportList& list = *d.reports;
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
  w.Field("period_start", FormatDate(d.first)).Field("period_end", FormatDate(d.last)).EndObject();
  w.Key("efficiency").BeginObject();
  auto latest = std::find_if(list.reports.rbegin(), list.reports.rend(),
                             [](const auto& r) { return r.efficiency_score_millionths >= 0; });
  if (latest == list.reports.rend()) {
    w.Key("score").Null().Key("date").Null();
  } else {
    w.Key("score").Usd(latest->efficiency_score_millionths).Field("date", latest->date);
  }
  w.EndObject();
  WriteCompatAlerts(w, *d.alerts, d);
  WriteRecommendations(w, d);
  w.EndObject();
  return Json(200, w.Take());
}

HttpResponse EfficiencyScore(const CompatData& d) {
  const DailyReportList& list = *d.reports;
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

HttpResponse CostTrends(const CompatData& d) {
  JsonWriter w;
  w.BeginObject().Key("period").BeginObject();
  w.Field("start", FormatDate(d.first)).Field("end", FormatDate(d.last));
  w.Field("days", d.last - d.first + 1).EndObject();
  w.Key("data").BeginArray();
  for (const auto& report : d.reports->reports) {
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

// A customer id from a company name: its letters and digits, lowercase,
// dashes between words, and a suffix that makes it unique.
std::string CustomerId(const std::string& company, const std::string& suffix) {
  std::string id;
  for (char c : company) {
    char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    bool alnum = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9');
    if (alnum) {
      id.push_back(lower);
    } else if (!id.empty() && id.back() != '-') {
      id.push_back('-');
    }
    if (id.size() >= 40) break;
  }
  while (!id.empty() && id.back() == '-') id.pop_back();
  if (id.empty()) id = "customer";
  return id + "-" + suffix;
}

Plan RegisterRoute(const RouteContext& c) {
  RegisterRequest r;
  if (DecodeError e = DecodeRegister(c.request.body, &r); !e.ok()) return Plan::Now(DecodeFailure(e));
  if (r.company_name.size() > 256) {
    return Plan::Now(Refuse(ResultCode::kInvalidArgument, "company_name is longer than 256 bytes"));
  }
  // With an Idempotency-Key, a retry names the same customer (its key is
  // shown once, on the first answer).
  const std::string& idempotency = c.request.idempotency_key;
  std::string suffix = idempotency.empty() ? RandomHex(4)
                                           : HexEncode(Sha256(idempotency)).substr(0, 8);
  cmd::OpenAccount open;
  open.id = CustomerId(r.company_name, suffix);
  open.kind = AccountKind::kOrg;
  open.name = r.company_name;
  Plan plan;
  plan.bodies.push_back(open);
  if (r.monthly_budget_micros || r.alert_threshold_pct) {
    cmd::SetCaps caps;
    caps.account = open.id;
    if (r.monthly_budget_micros) {
      caps.patch.monthly_limit_micros = Patch<int64_t>::Set(*r.monthly_budget_micros);
    }
    if (r.alert_threshold_pct) {
      caps.patch.alert_thresholds_pct =
          Patch<std::vector<uint8_t>>::Set({*r.alert_threshold_pct, 100});
    }
    plan.bodies.push_back(caps);
  }
  cmd::IssueKey key;
  key.account = open.id;
  key.role = Role::kWriter;
  key.label = "finops";
  key.request_id = idempotency.empty() ? "" : "register-" + suffix;
  auto secret = std::make_shared<std::string>("finops_" + RandomHex(32));
  key.key_id = "k_" + RandomHex(6);
  key.secret_sha256 = Sha256(*secret);
  plan.bodies.push_back(key);
  std::string customer = open.id;
  plan.format = [secret, customer](std::vector<Reply>& replies) {
    for (const Reply& reply : replies) {
      if (!reply.ok()) return ErrorResponse(reply);
    }
    bool created = replies.back().created;
    JsonWriter w;
    w.BeginObject().Field("customer_id", customer).Key("api_key");
    if (created) {
      w.String(*secret);
    } else {
      w.Null();
    }
    w.EndObject();
    return Json(created ? 201 : 200, w.Take());
  };
  return plan;
}

Plan DailyReportRoute(const RouteContext& c) {
  cmd::IngestDailyReport o;
  if (DecodeError e = DecodeDailyReport(c.request.body, &o.report); !e.ok()) {
    return Plan::Now(DecodeFailure(e));
  }
  o.report.account = c.Param("account");  // the machine uses the key's own when scoped
  o.report.report_id =
      c.request.idempotency_key.empty() ? "rpt_" + RandomHex(8) : c.request.idempotency_key;
  return Plan::One(std::move(o), [](const Reply& reply) {
    JsonWriter w;
    w.BeginObject().Field("ok", true).Field("report_id", std::get<IdResult>(reply.body).id);
    w.Field("message", "Daily report saved").EndObject();
    return Json(200, w.Take());
  });
}

Plan PeriodReads(const RouteContext& c, bool full,
                 std::function<HttpResponse(const CompatData&)> format) {
  int days = PeriodDays(c.Param("period"), 30);
  if (days < 0) return Plan::Now(Refuse(ResultCode::kInvalidArgument, "period must be 7d, 30d or 90d"));
  return ForAccount(c.request, [days, full, format](const std::string& account) {
    return Reads(account, days, full, format);
  });
}

}  // namespace

std::vector<Route> CompatRoutes() {
  return {
      {"POST", {"api", "finops", "daily-report"}, DailyReportRoute},
      {"POST", {"api", "finops", "register"}, RegisterRoute},
      {"GET", {"api", "finops", "dashboard"},
       [](const RouteContext& c) { return PeriodReads(c, true, Dashboard); }},
      {"GET", {"api", "finops", "efficiency-score"}, [](const RouteContext& c) {
         return ForAccount(c.request, [](const std::string& account) {
           return Reads(account, 30, false, EfficiencyScore);
         });
       }},
      {"GET", {"api", "finops", "cost-trends"},
       [](const RouteContext& c) { return PeriodReads(c, false, CostTrends); }},
      {"GET", {"api", "finops", "alerts"}, [](const RouteContext& c) {
         return ForAccount(c.request, [](const std::string& account) {
           return Reads(account, 30, true, [](const CompatData& d) {
             JsonWriter w;
             w.BeginObject();
             WriteCompatAlerts(w, *d.alerts, d);
             w.EndObject();
             return Json(200, w.Take());
           });
         });
       }},
  };
}

}  // namespace purser
