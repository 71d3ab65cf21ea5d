#include "api/http_api.h"

#include <filesystem>
#include <thread>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "api/http_internal.h"
#include "api/http_json.h"
#include "api/json_views.h"
#include "api/metrics.h"
#include "ledger/clock.h"
#include "ledger/crypto.h"
#include "ledger/limits.h"
#include "ledger/money.h"

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

// Loopback, link-local, private, unspecified or multicast.
bool IsPrivate(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr);
    uint8_t a = static_cast<uint8_t>(ip >> 24);
    uint8_t b = static_cast<uint8_t>(ip >> 16);
    return a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) || (a == 172 && b >= 16 && b <= 31) ||
           (a == 192 && b == 168) || (a == 100 && b >= 64 && b <= 127) || a >= 224;
  }
  if (address->sa_family == AF_INET6) {
    const uint8_t* ip = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
    static const uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t kZero[16] = {};
    bool mapped = std::all_of(ip, ip + 10, [](uint8_t x) { return x == 0; }) && ip[10] == 0xff &&
                  ip[11] == 0xff;
    if (mapped) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      std::memcpy(&v4.sin_addr, ip + 12, 4);
      return IsPrivate(reinterpret_cast<const sockaddr*>(&v4));
    }
    return std::memcmp(ip, kLoopback, 16) == 0 || std::memcmp(ip, kZero, 16) == 0 ||
           (ip[0] & 0xfe) == 0xfc || (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) || ip[0] == 0xff;
  }
  return true;
}

// "" when the URL may receive webhooks, else why not.
std::string CheckWebhookUrl(const std::string& url, bool allow_private) {
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return "url must start with http:// or https://";
  }
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos) return "url must not carry credentials";
  std::string host = authority;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host.empty()) return "url has no host";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return "the webhook host " + host + " does not resolve";
  }
  bool private_address = false;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) private_address |= IsPrivate(a->ai_addr);
  freeaddrinfo(found);
  if (private_address && !allow_private) {
    return "the webhook host " + host +
           " resolves to a loopback, link-local or private address (allow it with "
           "--allow-private-webhooks)";
  }
  return {};
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

bool ParseTarget(std::string_view target, std::string* path, std::map<std::string, std::string>* query) {
  size_t question = target.find('?');
  if (!PercentDecode(target.substr(0, question), false, path)) return false;
  if (path->empty() || path->front() != '/') return false;
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

namespace {

using Plan = HttpApi::Plan;

Plan Decoded(const DecodeError& error) { return Plan::Now(DecodeFailure(error)); }

Plan AccountRoutes(const HttpRequest& request, const Segments& s, const HttpApiOptions&) {
  const std::string& m = request.method;
  if (Match(s, {"v1", "accounts"}) && m == "POST") {
    cmd::OpenAccount c;
    if (DecodeError e = DecodeOpenAccount(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::Created(std::move(c));
  }
  if (Match(s, {"v1", "accounts"}) && m == "GET") return Plan::Read(query::ListAccounts{Param(request, "parent")});
  if (Match(s, {"v1", "accounts", "*"}) && m == "GET") return Plan::Read(query::GetAccount{s[2]});
  if (Match(s, {"v1", "accounts", "*", "balance"}) && m == "GET") {
    return Plan::Read(query::GetBalance{s[2]});
  }
  if (Match(s, {"v1", "accounts", "*", "caps"}) && m == "PUT") {
    cmd::SetCaps c;
    c.account = s[2];
    if (DecodeError e = DecodeCapsPatch(request.body, &c.patch); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
  if (Match(s, {"v1", "accounts", "*", "freeze"}) && m == "POST") {
    cmd::Freeze c{s[2], ""};
    if (DecodeError e = DecodeReason(request.body, &c.reason); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
  if (Match(s, {"v1", "accounts", "*", "unfreeze"}) && m == "POST") {
    return Plan::One(cmd::Unfreeze{s[2]}, [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
  if (Match(s, {"v1", "accounts", "*", "deposits"}) && m == "POST") {
    cmd::Deposit c;
    c.account = s[2];
    if (DecodeError e = DecodeDeposit(request.body, &c.amount_micros, &c.reference); !e.ok()) {
      return Decoded(e);
    }
    if (request.idempotency_key.empty()) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument,
                              "a deposit needs an Idempotency-Key header (retries must not pay twice)"));
    }
    c.deposit_id = request.idempotency_key;
    return Plan::Created(std::move(c));
  }
  if (Match(s, {"v1", "accounts", "*", "adjustments"}) && m == "POST") {
    cmd::Adjust c;
    c.account = s[2];
    if (DecodeError e = DecodeAdjust(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) {
      const auto& result = std::get<BalanceResult>(reply.body);
      JsonWriter w;
      w.BeginObject().Field("adjustment_id", result.id).Field("balance_micros", result.balance_micros);
      w.EndObject();
      return Json(reply.created ? 201 : 200, w.Take());
    });
  }
  if (Match(s, {"v1", "accounts", "*", "spend"}) && m == "GET") {
    query::GetSpend q;
    q.account = s[2];
    int64_t today = Today();
    if (!DayParam(request, "from", FirstDayOfMonth(MonthOfDay(today)), &q.from_day) ||
        !DayParam(request, "to", today, &q.to_day)) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument, "from and to must be YYYY-MM-DD"));
    }
    std::string group = Param(request, "group_by", "none");
    static const std::pair<const char*, GroupBy> kGroups[] = {
        {"none", GroupBy::kNone},   {"model", GroupBy::kModel}, {"action", GroupBy::kAction},
        {"waste", GroupBy::kWaste}, {"child", GroupBy::kChild}, {"day", GroupBy::kDay},
        {"outcome", GroupBy::kOutcome}};
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
      return Plan::Now(Refuse(ResultCode::kInvalidArgument,
                              "group_by must be model, action, waste, outcome, child, day or tag:KEY"));
    }
    return Plan::Read(std::move(q));
  }
  if (Match(s, {"v1", "accounts", "*", "pnl"}) && m == "GET") {
    query::GetPnl q;
    q.account = s[2];
    int64_t today = Today();
    if (!DayParam(request, "from", FirstDayOfMonth(MonthOfDay(today)), &q.from_day) ||
        !DayParam(request, "to", today, &q.to_day)) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument, "from and to must be YYYY-MM-DD"));
    }
    return Plan::Read(std::move(q));
  }
  if (Match(s, {"v1", "accounts", "*", "baseline"}) && m == "PUT") {
    cmd::SetBaseline c;
    c.account = s[2];
    if (DecodeError e = DecodeBaseline(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply&) { return Json(200, "{}"); });
  }
  if (Match(s, {"v1", "accounts", "*", "trends"}) && m == "GET") return Plan::Now(NotImplemented("trends"));
  if (Match(s, {"v1", "accounts", "*", "burn-rate"}) && m == "GET") {
    return Plan::Now(NotImplemented("burn rate"));
  }
  return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + m + " " + request.path));
}

Plan ReservationRoutes(const HttpRequest& request, const Segments& s) {
  const std::string& m = request.method;
  if (Match(s, {"v1", "reservations"}) && m == "POST") {
    cmd::Reserve c;
    if (DecodeError e = DecodeReserve(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::Created(std::move(c));
  }
  if (Match(s, {"v1", "reservations"}) && m == "GET") {
    query::ListReservations q;
    q.account = Param(request, "account");
    if (q.account.empty()) return Plan::Now(Refuse(ResultCode::kInvalidArgument, "account is required"));
    std::string status = Param(request, "status", "pending");
    bool known = status == "all";
    for (auto value : {ReservationStatus::kPending, ReservationStatus::kSettled,
                       ReservationStatus::kVoided, ReservationStatus::kExpired}) {
      if (ReservationStatusName(value) == status) {
        q.status = value;
        known = true;
      }
    }
    if (!known) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument,
                              "status must be pending, settled, voided, expired or all"));
    }
    std::optional<int64_t> limit = ParseInt64(Param(request, "limit", "100"));
    if (!limit || *limit < 1 || *limit > static_cast<int64_t>(kListLimitMax)) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument, "limit must be in 1..10000"));
    }
    q.limit = static_cast<size_t>(*limit);
    return Plan::Read(std::move(q));
  }
  if (Match(s, {"v1", "reservations", "*"}) && m == "GET") return Plan::Read(query::GetReservation{s[2]});
  if (Match(s, {"v1", "reservations", "*", "settle"}) && m == "POST") {
    cmd::Settle c;
    if (DecodeError e = DecodeSettle(request.body, &c); !e.ok()) return Decoded(e);
    c.reservation_id = s[2];
    return Plan::One(std::move(c), [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
  if (Match(s, {"v1", "reservations", "*", "void"}) && m == "POST") {
    cmd::Void c{s[2], ""};
    if (DecodeError e = DecodeReason(request.body, &c.reason); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
  if (Match(s, {"v1", "reservations", "*", "extend"}) && m == "POST") {
    cmd::Extend c{s[2], 0};
    if (DecodeError e = DecodeExtend(request.body, &c.ttl_s); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
  return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + m + " " + request.path));
}

Plan SpendingRoutes(const HttpRequest& request, const Segments& s) {
  const std::string& m = request.method;
  if (Match(s, {"v1", "usage"}) && m == "POST") {
    cmd::RecordUsage c;
    if (DecodeError e = DecodeUsage(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::Created(std::move(c));
  }
  if (Match(s, {"v1", "refunds"}) && m == "POST") {
    cmd::Refund c;
    if (DecodeError e = DecodeRefund(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) {
      const auto& result = std::get<IdResult>(reply.body);
      JsonWriter w;
      w.BeginObject().Field("refund_id", result.id).Field("amount_micros", result.amount_micros);
      w.EndObject();
      return Json(reply.created ? 201 : 200, w.Take());
    });
  }
  if (Match(s, {"v1", "revenue"}) && m == "POST") {
    cmd::RecordRevenue c;
    if (DecodeError e = DecodeRevenue(request.body, &c); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) {
      const auto& result = std::get<IdResult>(reply.body);
      JsonWriter w;
      w.BeginObject().Field("revenue_id", result.id).Field("amount_micros", result.amount_micros);
      w.EndObject();
      return Json(reply.created ? 201 : 200, w.Take());
    });
  }
  if (Match(s, {"v1", "prices"}) && m == "GET") return Plan::Read(query::ListPrices{});
  if (Match(s, {"v1", "prices", "*"}) && m == "PUT") {
    cmd::SetPrice c;
    c.model = s[2];
    if (DecodeError e = DecodePrice(request.body, &c.rates); !e.ok()) return Decoded(e);
    return Plan::One(std::move(c), [](const Reply& reply) {
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
  if (Match(s, {"v1", "estimate"}) && m == "POST") {
    query::EstimateCost q;
    if (DecodeError e = DecodeEstimate(request.body, &q.usage); !e.ok()) return Decoded(e);
    return Plan::Read(std::move(q));
  }
  if (Match(s, {"v1", "alerts"}) && m == "GET") {
    int64_t since = 0;
    if (request.query.contains("since")) {
      std::optional<int64_t> parsed = ParseTimestamp(Param(request, "since"));
      if (!parsed) return Plan::Now(Refuse(ResultCode::kInvalidArgument, "since must be RFC 3339 UTC"));
      since = *parsed;
    }
    return Plan::Read(query::ListAlerts{Param(request, "account"), since});
  }
  return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + m + " " + request.path));
}

Plan BatchRoute(const HttpRequest& request) {
  std::vector<BatchItem> items;
  if (DecodeError e = DecodeBatch(request.body, &items); !e.ok()) return Decoded(e);
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
      w.BeginObject();
      if ((*failures)[i]) {
        HttpResponse failed = DecodeFailure(*(*failures)[i]);
        w.Field("status", int64_t{failed.status}).Key("body").Raw(failed.body);
      } else {
        const Reply& reply = replies[next++];
        const std::string& op = (*ops)[i];
        bool creates = op == "reserve" || op == "usage" || op == "refund" || op == "revenue" ||
                       op == "deposit";
        int status = !reply.ok() ? ResultCodeHttpStatus(reply.code) : (creates && reply.created) ? 201 : 200;
        w.Field("status", int64_t{status}).Key("body").Raw(ReplyToJson(reply));
      }
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

Plan KeyRoutes(const HttpRequest& request, const Segments& s, const HttpApiOptions& options) {
  const std::string& m = request.method;
  auto key_created = [](std::shared_ptr<std::string> secret) {
    return [secret](const Reply& reply) {
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
  };
  auto prepare = [](cmd::IssueKey* c) {
    auto secret = std::make_shared<std::string>(NewApiKeySecret());
    c->key_id = "k_" + RandomHex(6);
    c->secret_sha256 = Sha256(*secret);
    return secret;
  };
  if (Match(s, {"v1", "keys"}) && m == "POST") {
    cmd::IssueKey c;
    if (DecodeError e = DecodeKeyCreate(request.body, &c); !e.ok()) return Decoded(e);
    c.request_id = request.idempotency_key;
    auto secret = prepare(&c);
    return Plan::One(std::move(c), key_created(secret));
  }
  if (Match(s, {"v1", "keys", "*", "rotate"}) && m == "POST") {
    cmd::IssueKey c;
    c.rotate_of = s[2];
    if (DecodeError e = DecodeKeyRotate(request.body, &c.grace_s); !e.ok()) return Decoded(e);
    c.request_id = request.idempotency_key;
    auto secret = prepare(&c);
    return Plan::One(std::move(c), key_created(secret));
  }
  if (Match(s, {"v1", "keys", "*"}) && m == "DELETE") {
    return Plan::One(cmd::RevokeKey{s[2]}, [](const Reply&) { return Json(204, ""); });
  }
  if (Match(s, {"v1", "keys"}) && m == "GET") return Plan::Read(query::ListKeys{});
  if (Match(s, {"v1", "webhooks"}) && m == "POST") {
    cmd::RegisterWebhook c;
    std::string secret;
    if (DecodeError e = DecodeWebhook(request.body, &c, &secret); !e.ok()) return Decoded(e);
    if (std::string problem = CheckWebhookUrl(c.url, options.allow_private_webhooks); !problem.empty()) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument, problem));
    }
    c.request_id = request.idempotency_key;
    c.webhook_id = "wh_" + RandomHex(8);
    c.secret_sha256 = Sha256(secret);
    std::string url = c.url;
    std::vector<std::string> events = c.events;
    return Plan::One(std::move(c), [url, events](const Reply& reply) {
      JsonWriter w;
      w.BeginObject().Field("id", std::get<IdResult>(reply.body).id).Field("url", url);
      w.Key("events").BeginArray();
      for (const std::string& kind : events) w.String(kind);
      w.EndArray().EndObject();
      return Json(reply.created ? 201 : 200, w.Take());
    });
  }
  if (Match(s, {"v1", "webhooks"}) && m == "GET") return Plan::Read(query::ListWebhooks{});
  if (Match(s, {"v1", "webhooks", "*"}) && m == "DELETE") {
    return Plan::One(cmd::RemoveWebhook{s[2]}, [](const Reply&) { return Json(204, ""); });
  }
  if (Match(s, {"v1", "webhooks", "*", "deliveries"}) && m == "GET") {
    return Plan::Now(NotImplemented("webhook delivery"));
  }
  return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + m + " " + request.path));
}

Plan ChargebackRoute(const HttpRequest& request) {
  std::string parent = Param(request, "parent");
  if (parent.empty()) return Plan::Now(Refuse(ResultCode::kInvalidArgument, "parent is required"));
  std::string month = Param(request, "month", FormatMonth(MonthOfDay(Today())));
  query::GetSpend q;
  q.account = parent;
  q.group_by = GroupBy::kChild;
  if (!MonthRange(month, &q.from_day, &q.to_day)) {
    return Plan::Now(Refuse(ResultCode::kInvalidArgument, "month must be YYYY-MM"));
  }
  // The markup in percent with at most 2 decimals, held as basis points.
  int64_t markup_bp = 0;
  if (request.query.contains("markup_pct")) {
    std::optional<int64_t> micros = ParseUsd(Param(request, "markup_pct"));
    if (!micros || *micros < 0 || *micros % 10'000 != 0 || *micros > 1'000 * kMicrosPerUsd) {
      return Plan::Now(Refuse(ResultCode::kInvalidArgument,
                              "markup_pct must be a percentage in 0..1000 with at most 2 decimals"));
    }
    markup_bp = *micros / 10'000;
  }
  return Plan::One(std::move(q), [parent, month, markup_bp](const Reply& reply) {
    const SpendReport& report = std::get<SpendReport>(reply.body);
    // Rounded half-up once, on the subtotal.
    __int128 scaled = static_cast<__int128>(report.total_micros) * markup_bp;
    int64_t markup = static_cast<int64_t>((scaled + 5'000) / 10'000);
    JsonWriter w;
    w.BeginObject().Field("parent", parent).Field("month", month).Key("lines").BeginArray();
    for (const SpendGroup& group : report.groups) {
      w.BeginObject().Field("account", group.key).Field("cost_micros", group.cost_micros);
      w.Field("calls", group.calls).EndObject();
    }
    w.EndArray();
    w.Field("subtotal_micros", report.total_micros).Field("markup_micros", markup);
    w.Field("total_micros", report.total_micros + markup).EndObject();
    return Json(200, w.Take());
  });
}

Plan AdminRoutes(const HttpRequest& request, const Segments& s, Sequencer* sequencer) {
  const std::string& m = request.method;
  if (Match(s, {"v1", "admin", "chain-head"}) && m == "GET") return Plan::Read(query::GetChainHead{});
  if (Match(s, {"v1", "admin", "digest"}) && m == "GET") return Plan::Read(query::GetDigest{});
  if (Match(s, {"v1", "admin", "checkpoint"}) && m == "POST") {
    std::string dir;
    if (DecodeError e = DecodeCheckpoint(request.body, &dir); !e.ok()) return Decoded(e);
    // The chain-head query checks the global admin; the copy then runs on
    // a thread of its own (it flushes and links files: neither the log
    // thread nor an HTTP thread should wait for it).
    Plan plan;
    plan.bodies.push_back(query::GetChainHead{});
    plan.async_format = [dir, sequencer](std::vector<Reply>& replies,
                                         std::function<void(HttpResponse&&)> respond) {
      if (!replies[0].ok()) {
        respond(ErrorResponse(replies[0]));
        return;
      }
      uint64_t sequence = std::get<ChainHead>(replies[0].body).sequence;
      std::thread([dir, sequencer, sequence, respond = std::move(respond)]() {
        if (std::filesystem::exists(dir)) {
          respond(Refuse(ResultCode::kInvalidArgument, dir + " already exists"));
          return;
        }
        Status status = sequencer->log()->CreateCheckpointCopy(dir);
        if (!status.ok()) {
          respond(Refuse(ResultCode::kUnavailable, status.message()));
          return;
        }
        JsonWriter w;
        w.BeginObject().Field("dir", dir).Field("seq", sequence).EndObject();
        respond(Json(201, w.Take()));
      }).detach();
    };
    return plan;
  }
  if (Match(s, {"v1", "chargeback"}) && m == "GET") return ChargebackRoute(request);
  for (const char* unbuilt : {"leaderboard", "stats"}) {
    if (Match(s, {"v1", unbuilt}) && m == "GET") return Plan::Now(NotImplemented(unbuilt));
  }
  if (Match(s, {"v1", "burn-rates", "active"}) && m == "GET") return Plan::Now(NotImplemented("burn rates"));
  if (Match(s, {"v1", "anomalies", "active"}) && m == "GET") return Plan::Now(NotImplemented("anomalies"));
  return Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + m + " " + request.path));
}

}  // namespace

HttpApi::HttpApi(Sequencer* sequencer, Metrics* metrics, HttpApiOptions options)
    : sequencer_(sequencer), metrics_(metrics), options_(options) {}

namespace {

void Execute(Sequencer* sequencer, const Credentials& credentials, Plan plan,
             std::function<void(HttpResponse&&)> respond) {
  if (plan.immediate) {
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
        if (shared_plan->then) {
          Execute(sequencer, credentials, shared_plan->then(replies), std::move(respond));
          return;
        }
        if (shared_plan->async_format) {
          shared_plan->async_format(replies, std::move(respond));
          return;
        }
        respond(shared_plan->format(replies));
      });
  if (!accepted) {
    respond(Refuse(ResultCode::kUnavailable, "the command queue is full or the service is stopping"));
  }
}

}  // namespace

void HttpApi::Handle(const HttpRequest& request, std::function<void(HttpResponse&&)> respond) {
  Segments segments = Split(request.path);
  if (request.method == "GET" && Match(segments, {"healthz"})) {
    respond(Json(200, "{\"status\":\"ok\"}"));
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
  if (request.method == "GET" && Match(segments, {"metrics"})) {
    Metrics* metrics = metrics_;
    Execute(sequencer_, credentials,
            Plan::One(query::Authenticate{},
                      [metrics](const Reply&) {
                        HttpResponse response;
                        response.body = metrics->Render();
                        response.content_type = "text/plain; version=0.0.4";
                        return response;
                      }),
            std::move(respond));
    return;
  }
  Plan plan;
  if (segments.size() >= 2 && segments[0] == "api" && segments[1] == "finops") {
    plan = CompatRoutes(request, segments);
  } else if (segments.size() < 2 || segments[0] != "v1") {
    plan = Plan::Now(Refuse(ResultCode::kNotFound, "no such endpoint: " + request.path));
  } else if (segments[1] == "accounts") {
    plan = AccountRoutes(request, segments, options_);
  } else if (segments[1] == "reservations") {
    plan = ReservationRoutes(request, segments);
  } else if (segments[1] == "batch" && segments.size() == 2 && request.method == "POST") {
    plan = BatchRoute(request);
  } else if (segments[1] == "keys" || segments[1] == "webhooks") {
    plan = KeyRoutes(request, segments, options_);
  } else if (segments[1] == "usage" || segments[1] == "refunds" || segments[1] == "revenue" ||
             segments[1] == "prices" || segments[1] == "estimate" || segments[1] == "alerts") {
    plan = SpendingRoutes(request, segments);
  } else {
    plan = AdminRoutes(request, segments, sequencer_);
  }
  Execute(sequencer_, credentials, std::move(plan), std::move(respond));
}

}  // namespace purser
