#include "http/http_api.h"

#include "ops/admin.h"
#include "ops/health.h"
#include "notify/address.h"
#include "notify/notifier.h"

#include <thread>


#include <algorithm>
#include <cstring>
#include <optional>

#include "http/http_internal.h"
#include "http/work_queue.h"
#include "http/http_json.h"
#include "http/json_views.h"
#include "http/ui_assets.h"
#include "ops/metrics.h"
#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"
#include "ledger/base/limits.h"
#include "ledger/base/money.h"

namespace purser {

namespace {

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view text, bool plus_is_space, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return false;
      int high = FromHex(text[i + 1]);
      int low = FromHex(text[i + 2]);
      if (high < 0 || low < 0) return false;
      out->push_back(static_cast<char>(high << 4 | low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

// Months as "YYYY-MM" -> [first day, last day].
bool MonthRange(const std::string& text, int64_t* first, int64_t* last) {
  std::optional<int64_t> month = ParseMonth(text);
  if (!month) return false;
  *first = FirstDayOfMonth(*month);
  *last = FirstDayOfMonth(*month + 1) - 1;
  return true;
}

}  // namespace

bool ParseTarget(std::string_view target, std::string* path,
                 std::map<std::string, std::string>* query, std::vector<std::string>* segments) {
  size_t question = target.find('?');
  std::string_view raw_path = target.substr(0, question);
  if (raw_path.empty() || raw_path.front() != '/') return false;
  // Split first, then decode each segment: an id holding an encoded "/"
  // stays one segment (and is refused by the id rules, not misrouted).
  path->clear();
  if (segments != nullptr) segments->clear();
  size_t start = 1;
  while (start <= raw_path.size()) {
    size_t slash = raw_path.find('/', start);
    if (slash == std::string_view::npos) slash = raw_path.size();
    std::string segment;
    if (!PercentDecode(raw_path.substr(start, slash - start), false, &segment)) return false;
    path->push_back('/');
    path->append(segment);
    if (segments != nullptr) segments->push_back(std::move(segment));
    start = slash + 1;
  }
  if (segments != nullptr && !segments->empty() && segments->back().empty()) segments->pop_back();
  query->clear();
  if (question == std::string_view::npos) return true;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key;
    std::string value;
    if (!PercentDecode(pair.substr(0, eq), true, &key)) return false;
    if (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), true, &value)) return false;
    if (!query->emplace(std::move(key), std::move(value)).second) return false;  // repeated
  }
  return true;
}

std::string PrintablePath(std::string_view path) {
  std::string out;
  for (char c : path.substr(0, 512)) {
    auto byte = static_cast<unsigned char>(c);
    out.push_back(byte < 0x20 || byte >= 0x7f ? '?' : c);
  }
  return out;
}

namespace {

using Plan = HttpApi::Plan;

Plan Decoded(const DecodeError& error) { return Plan::Now(DecodeFailure(error)); }

// ---- command answers, shared by the single endpoints and /v1/batch ---------

HttpResponse CommandAnswer(const std::string& op, const Reply& reply) {
  if (!reply.ok()) return ErrorResponse(reply);
  if (op == "refund" || op == "revenue") {
    const auto& result = std::get<IdResult>(reply.body);
    JsonWriter w;
    w.BeginObject().Field(op == "refund" ? "refund_id" : "revenue_id", result.id);
    w.Field("amount_micros", result.amount_micros).EndObject();
    return Json(reply.created ? 201 : 200, w.Take());
  }
  if (op == "adjustment") {
    const auto& result = std::get<BalanceResult>(reply.body);
    JsonWriter w;
    w.BeginObject().Field("adjustment_id", result.id);
    w.Field("balance_micros", result.balance_micros).EndObject();
    return Json(reply.created ? 201 : 200, w.Take());
  }
  bool creates = op == "reserve" || op == "usage" || op == "deposit" || op == "transfer";
  return creates ? Success(reply, 201) : Json(200, ReplyToJson(reply));
}

Plan Command(const std::string& op, RequestBody body) {
  return Plan::Full(std::move(body), [op](const Reply& reply) { return CommandAnswer(op, reply); });
}

// ---- parameters -----------------------------------------------------------------

bool DayRange(const RouteContext& c, int64_t* from, int64_t* to) {
  int64_t today = Today();
  return DayParam(c.request, "from", FirstDayOfMonth(MonthOfDay(today)), from) &&
         DayParam(c.request, "to", today, to);
}


Plan WindowPlan(const RouteContext& c, const std::function<Plan(int64_t)>& then) {
  int64_t window = 0;
  if (!IntParam(c, "window_s", 3600, 60, kBurnWindowSecondsMax, &window) || window % 60 != 0) {
    return Invalid400("window_s must be a multiple of 60 in 60..86400");
  }
  return then(window);
}

// ---- accounts ---------------------------------------------------------------------

Plan SpendRoute(const RouteContext& c) {
  query::GetSpend q;
  q.account = c.s[2];
  if (!DayRange(c, &q.from_day, &q.to_day)) return Invalid400("from and to must be YYYY-MM-DD");
  std::string group = c.Param("group_by", "none");
  static const std::pair<const char*, GroupBy> kGroups[] = {
      {"none", GroupBy::kNone},   {"model", GroupBy::kModel}, {"action", GroupBy::kAction},
      {"waste", GroupBy::kWaste}, {"child", GroupBy::kChild}, {"day", GroupBy::kDay},
      {"outcome", GroupBy::kOutcome}, {"run", GroupBy::kRun}};
  bool known = false;
  for (const auto& [name, value] : kGroups) {
    if (group == name) {
      q.group_by = value;
      known = true;
    }
  }
  if (group.rfind("tag:", 0) == 0 && group.size() > 4) {
    q.group_by = GroupBy::kTag;
    q.tag_key = group.substr(4);
    known = true;
  }
  if (!known) {
    return Invalid400("group_by must be model, action, waste, outcome, child, day, run or tag:KEY");
  }
  return Plan::Read(std::move(q));
}

Plan TrendsRoute(const RouteContext& c) {
  std::string days = c.Param("days", "30");
  if (days != "7" && days != "30" && days != "90") return Invalid400("days must be 7, 30 or 90");
  return Plan::Read(query::GetTrends{c.s[2], *ParseInt64(days)});
}

// Long by design: the route table of API.md's account endpoints.
std::vector<Route> AccountRoutes() {
  auto ok200 = [](const Reply& reply) { return Json(200, ReplyToJson(reply)); };
  return {
      {"POST", {"v1", "accounts"}, [](const RouteContext& c) {
         cmd::OpenAccount o;
         if (DecodeError e = DecodeOpenAccount(c.request.body, &o); !e.ok()) return Decoded(e);
         return Plan::Created(std::move(o));
       }},
      {"GET", {"v1", "accounts"},
       [](const RouteContext& c) { return Plan::Read(query::ListAccounts{c.Param("parent")}); }},
      {"GET", {"v1", "accounts", "*"},
       [](const RouteContext& c) { return Plan::Read(query::GetAccount{c.s[2]}); }},
      {"GET", {"v1", "accounts", "*", "balance"},
       [](const RouteContext& c) { return Plan::Read(query::GetBalance{c.s[2]}); }},
      {"PUT", {"v1", "accounts", "*", "caps"}, [ok200](const RouteContext& c) {
         cmd::SetCaps o;
         o.account = c.s[2];
         if (DecodeError e = DecodeCapsPatch(c.request.body, &o.patch); !e.ok()) return Decoded(e);
         return Plan::Full(std::move(o), ok200);
       }},
      {"POST", {"v1", "accounts", "*", "freeze"}, [ok200](const RouteContext& c) {
         cmd::Freeze o{c.s[2], ""};
         if (DecodeError e = DecodeReason(c.request.body, &o.reason); !e.ok()) return Decoded(e);
         return Plan::Full(std::move(o), ok200);
       }},
      {"POST", {"v1", "accounts", "*", "unfreeze"},
       [ok200](const RouteContext& c) { return Plan::Full(cmd::Unfreeze{c.s[2]}, ok200); }},
      {"POST", {"v1", "accounts", "*", "deposits"}, [](const RouteContext& c) {
         cmd::Deposit o;
         o.account = c.s[2];
         if (DecodeError e = DecodeDeposit(c.request.body, &o.amount_micros, &o.reference); !e.ok()) {
           return Decoded(e);
         }
         if (c.request.idempotency_key.empty()) {
           return Invalid400("a deposit needs an Idempotency-Key header (retries must not pay twice)");
         }
         o.deposit_id = c.request.idempotency_key;
         return Command("deposit", std::move(o));
       }},
      {"POST", {"v1", "accounts", "*", "adjustments"}, [](const RouteContext& c) {
         cmd::Adjust o;
         o.account = c.s[2];
         if (DecodeError e = DecodeAdjust(c.request.body, &o); !e.ok()) return Decoded(e);
         return Command("adjustment", std::move(o));
       }},
      {"POST", {"v1", "accounts", "*", "indexed-tag-keys"}, [ok200](const RouteContext& c) {
         cmd::IndexTagKeys o;
         o.account = c.s[2];
         if (DecodeError e = DecodeTagKeys(c.request.body, &o.keys); !e.ok()) return Decoded(e);
         return Plan::Full(std::move(o), ok200);
       }},
      {"GET", {"v1", "accounts", "*", "spend"}, SpendRoute},
      {"GET", {"v1", "accounts", "*", "pnl"}, [](const RouteContext& c) {
         query::GetPnl q;
         q.account = c.s[2];
         if (!DayRange(c, &q.from_day, &q.to_day)) return Invalid400("from and to must be YYYY-MM-DD");
         return Plan::Read(std::move(q));
       }},
      {"GET", {"v1", "accounts", "*", "efficiency"}, [](const RouteContext& c) {
         query::GetEfficiency q;
         q.account = c.s[2];
         if (!DayRange(c, &q.from_day, &q.to_day)) return Invalid400("from and to must be YYYY-MM-DD");
         return Plan::Read(std::move(q));
       }},
      {"PUT", {"v1", "accounts", "*", "baseline"}, [ok200](const RouteContext& c) {
         cmd::SetBaseline o;
         o.account = c.s[2];
         if (DecodeError e = DecodeBaseline(c.request.body, &o); !e.ok()) return Decoded(e);
         return Plan::Full(std::move(o), ok200);
       }},
      {"GET", {"v1", "accounts", "*", "baseline"},
       [](const RouteContext& c) { return Plan::Read(query::GetBaseline{c.s[2]}); }},
      {"GET", {"v1", "accounts", "*", "trends"}, TrendsRoute},
      {"GET", {"v1", "accounts", "*", "overview"}, [](const RouteContext& c) {
         query::GetOverview q;
         q.account = c.s[2];
         int64_t depth = 0, minutes = 0, limit = 0;
         if (!IntParam(c, "depth", 2, 0, 8, &depth)) return Invalid400("depth must be in 0..8");
         if (!IntParam(c, "minutes", 180, 1, 1440, &minutes)) return Invalid400("minutes must be in 1..1440");
         if (!IntParam(c, "limit", 5'000, 1, 10'000, &limit)) return Invalid400("limit must be in 1..10000");
         q.depth = static_cast<int>(depth);
         q.minutes = minutes;
         q.accounts_max = static_cast<size_t>(limit);
         return Plan::Read(std::move(q));
       }},
      {"GET", {"v1", "accounts", "*", "burn-rate"}, [](const RouteContext& c) {
         return WindowPlan(c, [&c](int64_t window) {
           return Plan::Read(query::GetBurnRate{c.s[2], window});
         });
       }},
      {"POST", {"v1", "transfers"}, [](const RouteContext& c) {
         cmd::Transfer o;
         if (DecodeError e = DecodeTransfer(c.request.body, &o); !e.ok()) return Decoded(e);
         return Command("transfer", std::move(o));
       }},
  };
}

// ---- spending -----------------------------------------------------------------------

Plan ListReservationsRoute(const RouteContext& c) {
  query::ListReservations q;
  q.account = c.Param("account");
  if (q.account.empty()) return Invalid400("account is required");
  std::string status = c.Param("status", "pending");
  bool known = status == "all";
  for (auto value : {ReservationStatus::kPending, ReservationStatus::kSettled,
                     ReservationStatus::kVoided, ReservationStatus::kExpired}) {
    if (ReservationStatusName(value) == status) {
      q.status = value;
      known = true;
    }
  }
  if (!known) return Invalid400("status must be pending, settled, voided, expired or all");
  int64_t limit = 0;
  if (!IntParam(c, "limit", 100, 1, static_cast<int64_t>(kListLimitMax), &limit)) {
    return Invalid400("limit must be in 1..10000");
  }
  q.limit = static_cast<size_t>(limit);
  return Plan::Read(std::move(q));
}

Plan PriceRoute(const RouteContext& c) {
  cmd::SetPrice o;
  o.model = c.s[2];
  if (DecodeError e = DecodePrice(c.request.body, &o.rates); !e.ok()) return Decoded(e);
  return Plan::Full(std::move(o), [](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    const PriceView& price = std::get<PriceList>(reply.body).prices.front();
    JsonWriter w;
    w.BeginObject().Field("model", price.model);
    w.Field("input_per_mtok_micros", price.rates.input_per_mtok);
    w.Field("output_per_mtok_micros", price.rates.output_per_mtok);
    w.LimitField("cached_input_per_mtok_micros", price.rates.cached_input_per_mtok);
    w.LimitField("cache_write_per_mtok_micros", price.rates.cache_write_per_mtok);
    w.LimitField("reasoning_per_mtok_micros", price.rates.reasoning_per_mtok);
    w.Field("version", price.version).EndObject();
    return Json(200, w.Take());
  });
}

std::vector<Route> SpendingRoutes() {
  return {
      {"POST", {"v1", "reservations"}, [](const RouteContext& c) {
         cmd::Reserve o;
         if (DecodeError e = DecodeReserve(c.request.body, &o); !e.ok()) return Decoded(e);
         return Command("reserve", std::move(o));
       }},
      {"GET", {"v1", "reservations"}, ListReservationsRoute},
      {"GET", {"v1", "reservations", "*"},
       [](const RouteContext& c) { return Plan::Read(query::GetReservation{c.s[2]}); }},
      {"POST", {"v1", "reservations", "*", "settle"}, [](const RouteContext& c) {
         cmd::Settle o;
         if (DecodeError e = DecodeSettle(c.request.body, &o); !e.ok()) return Decoded(e);
         o.reservation_id = c.s[2];
         return Command("settle", std::move(o));
       }},
      {"POST", {"v1", "reservations", "*", "void"}, [](const RouteContext& c) {
         cmd::Void o{c.s[2], ""};
         if (DecodeError e = DecodeReason(c.request.body, &o.reason); !e.ok()) return Decoded(e);
         return Command("void", std::move(o));
       }},
      {"POST", {"v1", "reservations", "*", "extend"}, [](const RouteContext& c) {
         cmd::Extend o{c.s[2], 0};
         if (DecodeError e = DecodeExtend(c.request.body, &o.ttl_s); !e.ok()) return Decoded(e);
         return Command("extend", std::move(o));
       }},
      {"POST", {"v1", "usage"}, [](const RouteContext& c) {
         cmd::RecordUsage o;
         if (DecodeError e = DecodeUsage(c.request.body, &o); !e.ok()) return Decoded(e);
         return Command("usage", std::move(o));
       }},
      {"POST", {"v1", "refunds"}, [](const RouteContext& c) {
         cmd::Refund o;
         if (DecodeError e = DecodeRefund(c.request.body, &o); !e.ok()) return Decoded(e);
         return Command("refund", std::move(o));
       }},
      {"POST", {"v1", "revenue"}, [](const RouteContext& c) {
         cmd::RecordRevenue o;
         if (DecodeError e = DecodeRevenue(c.request.body, &o); !e.ok()) return Decoded(e);
         return Command("revenue", std::move(o));
       }},
      {"GET", {"v1", "prices"}, [](const RouteContext&) { return Plan::Read(query::ListPrices{}); }},
      {"PUT", {"v1", "prices", "*"}, PriceRoute},
      {"POST", {"v1", "estimate"}, [](const RouteContext& c) {
         query::EstimateCost q;
         if (DecodeError e = DecodeEstimate(c.request.body, &q.usage); !e.ok()) return Decoded(e);
         return Plan::Read(std::move(q));
       }},
  };
}

// ---- batch ------------------------------------------------------------------------

Plan BatchRoute(const RouteContext& c) {
  std::vector<BatchItem> items;
  if (DecodeError e = DecodeBatch(c.request.body, &items); !e.ok()) return Decoded(e);
  // Items that do not decode answer 400 in their place; the rest run in order.
  auto failures = std::make_shared<std::vector<std::optional<DecodeError>>>(items.size());
  auto ops = std::make_shared<std::vector<std::string>>();
  Plan plan;
  for (size_t i = 0; i < items.size(); ++i) {
    ops->push_back(items[i].op);
    RequestBody body;
    DecodeError e = DecodeBatchItem(items[i], &body);
    if (!e.ok()) {
      (*failures)[i] = e;
      continue;
    }
    plan.bodies.push_back(std::move(body));
  }
  plan.format = [failures, ops](std::vector<Reply>& replies) {
    JsonWriter w;
    w.BeginObject().Key("results").BeginArray();
    size_t next = 0;
    for (size_t i = 0; i < failures->size(); ++i) {
      // Each body is exactly what the op's own endpoint answers.
      HttpResponse answer = (*failures)[i] ? DecodeFailure(*(*failures)[i])
                                           : CommandAnswer((*ops)[i], replies[next++]);
      w.BeginObject().Field("status", int64_t{answer.status}).Key("body").Raw(answer.body);
      w.EndObject();
    }
    w.EndArray().EndObject();
    return Json(200, w.Take());
  };
  if (plan.bodies.empty()) {
    std::vector<Reply> none;
    return Plan::Now(plan.format(none));
  }
  return plan;
}

// ---- keys and webhooks --------------------------------------------------------------

std::function<HttpResponse(const Reply&)> KeyCreated(std::shared_ptr<std::string> secret) {
  return [secret](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    KeyResult result = std::get<KeyResult>(reply.body);
    if (reply.created) result.api_key = *secret;  // shown once
    JsonWriter w;
    w.BeginObject().Field("key_id", result.key_id);
    if (result.api_key.empty()) {
      w.Key("api_key").Null();
    } else {
      w.Field("api_key", result.api_key);
    }
    w.OptionalField("account", result.account).Field("role", RoleName(result.role)).EndObject();
    return Json(reply.created ? 201 : 200, w.Take());
  };
}

std::shared_ptr<std::string> PrepareKey(cmd::IssueKey* c, const std::string& prefix = "pk_") {
  auto secret = std::make_shared<std::string>(prefix + NewApiKeySecret().substr(3));
  c->key_id = "k_" + RandomHex(6);
  c->secret_sha256 = Sha256(*secret);
  return secret;
}

Plan RegisterWebhookRoute(const RouteContext& c) {
  cmd::RegisterWebhook o;
  std::string secret;
  if (DecodeError e = DecodeWebhook(c.request.body, &o, &secret); !e.ok()) return Decoded(e);
  if (std::string problem = CheckWebhookUrl(o.url, c.options.allow_private_webhooks);
      !problem.empty()) {
    return Invalid400(problem);
  }
  o.request_id = c.request.idempotency_key;
  o.webhook_id = "wh_" + RandomHex(8);
  o.secret_sha256 = Sha256(secret);
  // The secret is kept (to sign) before the webhook exists: a durable
  // webhook always has it. A refused or repeated create leaves an unused one.
  if (c.options.notifier == nullptr) return Plan::Now(NotImplemented("webhook delivery"));
  if (Status stored = c.options.notifier->StoreSecret(o.webhook_id, secret); !stored.ok()) {
    return Plan::Now(Refuse(ResultCode::kUnavailable, stored.message()));
  }
  std::string url = o.url;
  std::vector<std::string> events = o.events;
  return Plan::Full(std::move(o), [url, events](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    JsonWriter w;
    w.BeginObject().Field("webhook_id", std::get<IdResult>(reply.body).id).Field("url", url);
    w.Key("events").BeginArray();
    for (const std::string& kind : events) w.String(kind);
    w.EndArray().Field("enabled", true).EndObject();
    return Json(reply.created ? 201 : 200, w.Take());
  });
}

Plan UpdateWebhookRoute(const RouteContext& c) {
  cmd::UpdateWebhook o;
  o.webhook_id = c.s[2];
  if (DecodeError e = DecodeWebhookUpdate(c.request.body, &o); !e.ok()) return Decoded(e);
  if (o.url) {
    if (std::string problem = CheckWebhookUrl(*o.url, c.options.allow_private_webhooks);
        !problem.empty()) {
      return Invalid400(problem);
    }
  }
  return Plan::Full(std::move(o), [](const Reply& reply) {
    return reply.ok() ? Json(200, ReplyToJson(reply)) : ErrorResponse(reply);
  });
}

// Deliveries are the notifier's records, not the ledger's: the ledger says
// whether the key may manage the webhook, then the notifier answers.
Plan DeliveriesRoute(const RouteContext& c) {
  int64_t limit = 0;
  if (!IntParam(c, "limit", 100, 1, static_cast<int64_t>(kListLimitMax), &limit)) {
    return Invalid400("limit must be in 1..10000");
  }
  std::string state = c.Param("state");
  if (!state.empty() && state != "pending" && state != "delivered" && state != "retrying" &&
      state != "dead") {
    return Invalid400("state must be pending, delivered, retrying or dead");
  }
  Notifier* notifier = c.options.notifier;
  if (notifier == nullptr) return Plan::Now(NotImplemented("webhook delivery"));
  std::string webhook_id = c.s[2];
  return Plan::Full(query::GetWebhook{webhook_id}, [notifier, webhook_id, limit,
                                                    state](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    return Json(200, DeliveriesJson(notifier->Deliveries(webhook_id, static_cast<size_t>(limit), state)));
  });
}

Plan RedeliverRoute(const RouteContext& c) {
  std::string event_id;
  if (DecodeError e = DecodeRedeliver(c.request.body, &event_id); !e.ok()) return Decoded(e);
  Notifier* notifier = c.options.notifier;
  if (notifier == nullptr) return Plan::Now(NotImplemented("webhook delivery"));
  std::string webhook_id = c.s[2];
  return Plan::Full(query::GetWebhook{webhook_id}, [notifier, webhook_id,
                                                    event_id](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    Status status = notifier->Redeliver(webhook_id, event_id);
    if (!status.ok()) return Refuse(ToResultCode(status), status.message());
    JsonWriter w;
    w.BeginObject().Field("webhook_id", webhook_id).Field("event_id", event_id).EndObject();
    return Json(202, w.Take());
  });
}

std::vector<Route> KeyRoutes() {
  auto no_content = [](const Reply& reply) {
    return reply.ok() ? Json(204, "") : ErrorResponse(reply);
  };
  return {
      {"POST", {"v1", "keys"}, [](const RouteContext& c) {
         cmd::IssueKey o;
         if (DecodeError e = DecodeKeyCreate(c.request.body, &o); !e.ok()) return Decoded(e);
         o.request_id = c.request.idempotency_key;
         auto secret = PrepareKey(&o);
         return Plan::Full(std::move(o), KeyCreated(secret));
       }},
      {"GET", {"v1", "keys"}, [](const RouteContext&) { return Plan::Read(query::ListKeys{}); }},
      // The calling key itself: its id, role and scope (the dashboard's login).
      {"GET", {"v1", "keys", "self"}, [](const RouteContext&) { return Plan::Read(query::Authenticate{}); }},
      {"POST", {"v1", "keys", "*", "rotate"}, [](const RouteContext& c) {
         cmd::IssueKey o;
         o.rotate_of = c.s[2];
         if (DecodeError e = DecodeKeyRotate(c.request.body, &o.grace_s); !e.ok()) return Decoded(e);
         o.request_id = c.request.idempotency_key;
         auto secret = PrepareKey(&o);
         return Plan::Full(std::move(o), KeyCreated(secret));
       }},
      {"DELETE", {"v1", "keys", "*"},
       [no_content](const RouteContext& c) { return Plan::Full(cmd::RevokeKey{c.s[2]}, no_content); }},
      {"POST", {"v1", "webhooks"}, RegisterWebhookRoute},
      {"GET", {"v1", "webhooks"}, [](const RouteContext&) { return Plan::Read(query::ListWebhooks{}); }},
      {"DELETE", {"v1", "webhooks", "*"}, [no_content](const RouteContext& c) {
         return Plan::Full(cmd::RemoveWebhook{c.s[2]}, no_content);
       }},
      {"PUT", {"v1", "webhooks", "*"}, UpdateWebhookRoute},
      {"GET", {"v1", "webhooks", "*", "deliveries"}, DeliveriesRoute},
      {"POST", {"v1", "webhooks", "*", "redeliver"}, RedeliverRoute},
  };
}

// ---- analytics and operations ------------------------------------------------------

Plan ChargebackRoute(const RouteContext& c) {
  std::string parent = c.Param("parent");
  if (parent.empty()) return Invalid400("parent is required");
  std::string month = c.Param("month", FormatMonth(MonthOfDay(Today())));
  query::GetSpend q;
  q.account = parent;
  q.group_by = GroupBy::kChild;
  if (!MonthRange(month, &q.from_day, &q.to_day)) return Invalid400("month must be YYYY-MM");
  // The markup in percent with at most 2 decimals, held as basis points.
  int64_t markup_bp = 0;
  if (c.Has("markup_pct")) {
    std::optional<int64_t> micros = ParseUsd(c.Param("markup_pct"));
    if (!micros || *micros < 0 || *micros % 10'000 != 0 || *micros > 1'000 * kMicrosPerUsd) {
      return Invalid400("markup_pct must be a percentage in 0..1000 with at most 2 decimals");
    }
    markup_bp = *micros / 10'000;
  }
  return Plan::Full(std::move(q), [parent, month, markup_bp](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    const SpendReport& report = std::get<SpendReport>(reply.body);
    // Rounded half-up once, on the subtotal; checked: an answer that does
    // not fit int64 is an error, never a wrapped number.
    int64_t markup = 0;
    int64_t total = 0;
    if (!ApplyMarkup(report.total_micros, markup_bp, &markup, &total)) {
      return Refuse(ResultCode::kInvalidArgument,
                    "the chargeback total does not fit in 64-bit micro-USD");
    }
    JsonWriter w;
    w.BeginObject().Field("parent", parent).Field("month", month).Key("lines").BeginArray();
    for (const SpendGroup& group : report.groups) {
      w.BeginObject().Field("account", group.key).Field("cost_micros", group.cost_micros);
      w.Field("calls", group.calls).EndObject();
    }
    w.EndArray();
    w.Field("subtotal_micros", report.total_micros).Field("markup_micros", markup);
    w.Field("total_micros", total).EndObject();
    return Json(200, w.Take());
  });
}

Plan CheckpointRoute(const RouteContext& c) {
  std::string dir;
  if (DecodeError e = DecodeCheckpoint(c.request.body, &dir); !e.ok()) return Decoded(e);
  if (std::string problem = CheckCheckpointDir(dir); !problem.empty()) return Invalid400(problem);
  // The chain-head query checks the global admin; the copy then runs on the
  // API's background thread (it flushes and links files: neither the log
  // thread nor an HTTP thread should wait for it), which the API joins
  // before it goes, so a copy never outlives the service's stop.
  Ledger* sequencer = c.sequencer;
  WorkQueue* work = c.work;
  Plan plan;
  plan.bodies.push_back(query::GetChainHead{});
  plan.async_format = [dir, sequencer, work](std::vector<Reply>& replies,
                                             std::function<void(HttpResponse&&)> respond) {
    if (!replies[0].ok()) {
      respond(ErrorResponse(replies[0]));
      return;
    }
    uint64_t sequence = std::get<ChainHead>(replies[0].body).sequence;
    auto answer = std::make_shared<std::function<void(HttpResponse&&)>>(std::move(respond));
    bool queued = work->Post([dir, sequencer, sequence, answer]() {
      Status status = CreateCheckpointAt(sequencer, dir);
      if (!status.ok()) {
        (*answer)(Refuse(ToResultCode(status), status.message()));
        return;
      }
      JsonWriter w;
      w.BeginObject().Field("dir", dir).Field("seq", sequence).EndObject();
      (*answer)(Json(201, w.Take()));
    });
    if (!queued) (*answer)(Refuse(ResultCode::kUnavailable, "too much background work waits; retry"));
  };
  return plan;
}

Plan LeaderboardRoute(const RouteContext& c) {
  query::GetLeaderboard q;
  q.parent = c.Param("parent");
  if (!ParseLeaderboardMetric(c.Param("metric", "spend"), &q.metric)) {
    return Invalid400("metric must be spend, efficiency or waste");
  }
  std::string period = c.Param("period", "7d");
  if (period != "7d" && period != "30d") return Invalid400("period must be 7d or 30d");
  q.days = period == "7d" ? 7 : 30;
  int64_t limit = 0;
  if (!IntParam(c, "limit", 100, 1, static_cast<int64_t>(kListLimitMax), &limit)) {
    return Invalid400("limit must be in 1..10000");
  }
  q.limit = static_cast<size_t>(limit);
  return Plan::Read(std::move(q));
}

std::vector<Route> OperationRoutes() {
  return {
      {"GET", {"v1", "alerts"}, [](const RouteContext& c) {
         int64_t since = 0;
         if (c.Has("since")) {
           std::optional<int64_t> parsed = ParseTimestamp(c.Param("since"));
           if (!parsed) return Invalid400("since must be RFC 3339 UTC");
           since = *parsed;
         }
         query::ListAlerts q{c.Param("account"), since, std::nullopt};
         if (c.Has("type")) {
           AlertType type;
           if (!ParseAlertType(c.Param("type"), &type)) {
             return Invalid400("type must be budget_threshold, overrun, anomaly or runaway");
           }
           q.type = type;
         }
         if (!ParseNewestFirst(c.Param("order", "oldest"), &q.newest_first)) {
           return Invalid400("order must be oldest or newest");
         }
         return Plan::Read(std::move(q));
       }},
      {"GET", {"v1", "chargeback"}, ChargebackRoute},
      {"GET", {"v1", "leaderboard"}, LeaderboardRoute},
      {"GET", {"v1", "stats"}, [](const RouteContext&) { return Plan::Read(query::GetStats{}); }},
      {"GET", {"v1", "burn-rates", "active"}, [](const RouteContext& c) {
         return WindowPlan(c, [&c](int64_t window) {
           int64_t limit = 0;
           if (!IntParam(c, "limit", 100, 1, static_cast<int64_t>(kListLimitMax), &limit)) {
             return Invalid400("limit must be in 1..10000");
           }
           return Plan::Read(query::ListActiveRuns{c.Param("parent"), window,
                                                   static_cast<size_t>(limit)});
         });
       }},
      {"GET", {"v1", "anomalies", "active"},
       [](const RouteContext& c) { return Plan::Read(query::ListAnomalies{c.Param("parent")}); }},
      {"POST", {"v1", "batch"}, BatchRoute},
      {"GET", {"v1", "admin", "chain-head"},
       [](const RouteContext&) { return Plan::Read(query::GetChainHead{}); }},
      {"GET", {"v1", "admin", "digest"},
       [](const RouteContext&) { return Plan::Read(query::GetDigest{}); }},
      {"POST", {"v1", "admin", "checkpoint"}, CheckpointRoute},
  };
}

const std::vector<Route>& AllRoutes() {
  static const std::vector<Route> routes = [] {
    std::vector<Route> all;
    for (auto part : {AccountRoutes(), SpendingRoutes(), KeyRoutes(), OperationRoutes(),
                      ProofRoutes(), CompatRoutes()}) {
      for (Route& route : part) all.push_back(std::move(route));
    }
    return all;
  }();
  return routes;
}

bool Matches(const Route& route, const Segments& segments) {
  if (route.pattern.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (route.pattern[i] != "*" && route.pattern[i] != segments[i]) return false;
  }
  return true;
}

// The route's plan; 404 for an unknown path, 405 with Allow for a known
// path and another method.
Plan Dispatch(const RouteContext& c) {
  std::vector<std::string> allowed;
  for (const Route& route : AllRoutes()) {
    if (!Matches(route, c.s)) continue;
    if (c.request.method == route.method) return route.handle(c);
    if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
      allowed.push_back(route.method);
    }
  }
  if (allowed.empty()) {
    return Plan::Now(
        Refuse(ResultCode::kNotFound, "no such endpoint: " + PrintablePath(c.request.path)));
  }
  std::sort(allowed.begin(), allowed.end());
  std::string allow;
  for (const std::string& method : allowed) allow += (allow.empty() ? "" : ", ") + method;
  HttpResponse response = MethodNotAllowed(c.request.method, allow);
  return Plan::Now(std::move(response));
}

void Execute(Ledger* sequencer, const Credentials& credentials, Plan plan,
             std::function<void(HttpResponse&&)> respond) {
  if (plan.immediate) {
    // Authentication comes first on every path: an answer decided without
    // the ledger (a bad form, an unknown path) waits for the key's check.
    if (plan.immediate->status >= 400) {
      auto answer = std::make_shared<HttpResponse>(std::move(*plan.immediate));
      Plan check;
      check.bodies.push_back(query::Authenticate{});
      check.format = [answer](std::vector<Reply>& replies) {
        return replies[0].code == ResultCode::kUnauthenticated ? ErrorResponse(replies[0])
                                                               : std::move(*answer);
      };
      Execute(sequencer, credentials, std::move(check), std::move(respond));
      return;
    }
    respond(std::move(*plan.immediate));
    return;
  }
  std::vector<Request> requests;
  requests.reserve(plan.bodies.size());
  for (RequestBody& body : plan.bodies) requests.push_back(Request{credentials, std::move(body)});
  auto shared_plan = std::make_shared<Plan>(std::move(plan));
  bool accepted = sequencer->Submit(
      std::move(requests),
      [sequencer, credentials, shared_plan, respond](std::vector<Reply>&& replies) mutable {
        // This runs on the sequencer's log thread: nothing may escape it.
        try {
          if (shared_plan->then) {
            Execute(sequencer, credentials, shared_plan->then(replies), respond);
            return;
          }
          if (shared_plan->async_format) {
            shared_plan->async_format(replies, respond);
            return;
          }
          respond(shared_plan->format(replies));
        } catch (const std::exception& e) {
          respond(InternalError(e.what()));
        }
      });
  if (!accepted) {
    respond(Refuse(ResultCode::kUnavailable, "the command queue is full or the service is stopping"));
  }
}

// The dashboard's files, without a key (the page asks for one and sends it
// with its API calls). The page may talk to this origin only.
HttpResponse ServeUi(const Segments& segments) {
  std::string name;
  for (size_t i = 1; i < segments.size(); ++i) name += (i > 1 ? "/" : "") + segments[i];
  const UiAsset* asset = FindUiAsset(name);
  if (asset == nullptr) return Refuse(ResultCode::kNotFound, "no such dashboard file: " + PrintablePath(name));
  HttpResponse response;
  response.body = std::string(asset->body);
  response.content_type = std::string(UiContentType(asset->name));
  response.headers = {
      {"Cache-Control", "no-cache"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
  };
  return response;
}

}  // namespace

HttpApi::HttpApi(Ledger* sequencer, Metrics* metrics, HttpApiOptions options)
    : sequencer_(sequencer), metrics_(metrics), options_(options),
      work_(std::make_unique<WorkQueue>(/*max_waiting=*/1024)) {}

HttpApi::~HttpApi() = default;

void HttpApi::StopWork() { work_->Close(); }

void HttpApi::Handle(const HttpRequest& request, std::function<void(HttpResponse&&)> respond) {
  // No exception escapes a request: a bug answers 500 and the service goes on.
  try {
    HandleRequest(request, respond);
  } catch (const std::exception& e) {
    respond(InternalError(e.what()));
  }
}

HttpResponse HttpApi::StandbyResponse(const HttpRequest& request) const {
  LeaderView leader = options_.leader ? options_.leader("") : LeaderView{};
  auto write_leader = [&leader](JsonWriter& w) {
    if (leader.node.empty()) return;
    w.Key("leader").BeginObject().Field("shard", leader.shard).Field("node", leader.node);
    w.Field("rpc", leader.rpc);
    w.Field("http", leader.http).EndObject();
  };
  JsonWriter w;
  if ((request.method == "GET" || request.method == "HEAD") && Match(request.segments, {"healthz"})) {
    w.BeginObject().Field("status", "standby");
    write_leader(w);
    w.EndObject();
    return Json(503, w.Take());
  }
  if (leader.node.empty()) {
    return Refuse(ResultCode::kUnavailable, "this node is a standby and no node leads its shard now "
                                            "(a failover is under way); retry");
  }
  w.BeginObject().Key("error").BeginObject().Field("code", "not_leader");
  w.Field("message", "this node is a standby; the leader is " + leader.node + " at " + leader.http);
  write_leader(w);
  w.EndObject().EndObject();
  return Json(421, w.Take());
}

void HttpApi::HandleRequest(const HttpRequest& request,
                            const std::function<void(HttpResponse&&)>& respond) {
  if (sequencer_ == nullptr) {
    respond(StandbyResponse(request));
    return;
  }
  const Segments& segments = request.segments;
  if ((request.method == "GET" || request.method == "HEAD") && Match(segments, {"healthz"})) {
    if (options_.health != nullptr && options_.health->corrupt()) {
      JsonWriter w;
      w.BeginObject().Field("status", "corrupt").Field("message", options_.health->message());
      w.EndObject();
      respond(Json(503, w.Take()));
      return;
    }
    respond(Json(200, "{\"status\":\"ok\"}"));
    return;
  }
  if ((request.method == "GET" || request.method == "HEAD") && !segments.empty() && segments[0] == "ui") {
    respond(ServeUi(segments));
    return;
  }
  Metrics* metrics = metrics_;
  auto render_metrics = [metrics](const Reply& reply) {
    if (!reply.ok()) return ErrorResponse(reply);
    HttpResponse response;
    response.body = metrics->Render(std::get<AccountMetricsView>(reply.body));
    response.content_type = "text/plain; version=0.0.4";
    return response;
  };
  const query::AccountMetrics account_metrics{metrics_->account_depth(), 1'000};
  if (request.method == "GET" && Match(segments, {"metrics"}) && options_.metrics_public) {
    Execute(sequencer_, Credentials::System(), Plan::Full(account_metrics, render_metrics),
            respond);
    return;
  }
  // Every other request carries a key: "Authorization: Bearer <key>".
  constexpr std::string_view kBearer = "Bearer ";
  if (request.authorization.size() <= kBearer.size() ||
      request.authorization.compare(0, kBearer.size(), kBearer) != 0 ||
      request.authorization.size() > kBearer.size() + 256) {
    respond(Refuse(ResultCode::kUnauthenticated, "Authorization: Bearer <api key> is required"));
    return;
  }
  Credentials credentials = Credentials::FromApiKey(request.authorization.substr(kBearer.size()));
  if (Match(segments, {"metrics"})) {
    Plan plan = request.method == "GET"
                    ? Plan::Full(account_metrics, render_metrics)
                    : Plan::Now(MethodNotAllowed(request.method, "GET"));
    Execute(sequencer_, credentials, std::move(plan), respond);
    return;
  }
  RouteContext context{request, segments, options_, sequencer_, work_.get()};
  Execute(sequencer_, credentials, Dispatch(context), respond);
}

}  // namespace purser
