// Private to the HTTP API's .cc files: response helpers and the Plan of a route.
#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "http/http_api.h"
#include "http/http_json.h"
#include "http/json_views.h"
#include "ledger/base/clock.h"
#include "ledger/base/money.h"

namespace purser {

using Segments = std::vector<std::string>;

inline HttpResponse Json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

inline HttpResponse ErrorResponse(const Reply& reply) {
  JsonWriter writer;
  WriteErrorJson(reply, &writer);
  HttpResponse response = Json(ResultCodeHttpStatus(reply.code), writer.Take());
  if (reply.code == ResultCode::kUnavailable) response.retry_after_s = 1;
  if (reply.code == ResultCode::kRateLimited) {
    response.retry_after_s = static_cast<int>(std::max<int64_t>(1, reply.retry_after_s));
  }
  return response;
}

inline HttpResponse Refuse(ResultCode code, std::string message) {
  return ErrorResponse(Reply::Error(code, std::move(message)));
}

inline HttpResponse DecodeFailure(const DecodeError& error) {
  Reply reply = Reply::Error(ResultCode::kInvalidArgument, error.message);
  JsonWriter writer;
  WriteErrorJson(reply, &writer);
  std::string body = writer.Take();
  if (error.malformed) {
    JsonWriter malformed;
    malformed.BeginObject().Key("error").BeginObject();
    malformed.Field("code", "malformed_json").Field("message", error.message);
    malformed.EndObject().EndObject();
    body = malformed.Take();
  }
  return Json(400, std::move(body));
}

// 405 with the methods the path has.
inline HttpResponse MethodNotAllowed(const std::string& method, const std::string& allow) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject().Field("code", "method_not_allowed");
  w.Field("message", "this path does not take " + method.substr(0, 16) + "; it takes " + allow);
  w.EndObject().EndObject();
  HttpResponse response = Json(405, w.Take());
  response.allow = allow;
  return response;
}

// A bug in serving a request: answered, logged by nobody, never fatal.
inline HttpResponse InternalError(const std::string& what) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject().Field("code", "internal");
  w.Field("message", "the request failed inside the service: " + what.substr(0, 200));
  w.EndObject().EndObject();
  return Json(500, w.Take());
}

inline HttpResponse NotImplemented(const std::string& what) {
  return Refuse(ResultCode::kNotImplemented,
                what + " is not implemented yet: its projection does not exist (no data is faked)");
}

// 201 for a new fact, 200 for a query or an idempotent repeat.
inline HttpResponse Success(const Reply& reply, int created_status) {
  return Json(reply.created ? created_status : 200, ReplyToJson(reply));
}

inline Segments Split(const std::string& path) {
  Segments segments;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    segments.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  if (!segments.empty() && segments.back().empty()) segments.pop_back();
  return segments;
}

inline bool Match(const Segments& segments, std::initializer_list<const char*> pattern) {
  if (segments.size() != pattern.size()) return false;
  size_t i = 0;
  for (const char* part : pattern) {
    if (std::string_view(part) != "*" && segments[i] != part) return false;
    ++i;
  }
  return true;
}

inline std::string Param(const HttpRequest& request, const std::string& name, const std::string& fallback = "") {
  auto it = request.query.find(name);
  return it == request.query.end() ? fallback : it->second;
}

inline bool DayParam(const HttpRequest& request, const std::string& name, int64_t fallback, int64_t* day) {
  auto it = request.query.find(name);
  if (it == request.query.end()) {
    *day = fallback;
    return true;
  }
  std::optional<int64_t> parsed = ParseDate(it->second);
  if (!parsed) return false;
  *day = *parsed;
  return true;
}

inline int64_t Today() { return DayOf(WallClockMicros()); }

// What a route does: answer at once, or run requests through the sequencer
// and format their replies (optionally in two phases).
// "7d" / "30d" / "90d" -> days.
inline int PeriodDays(const std::string& text, int fallback) {
  if (text.empty()) return fallback;
  if (text == "7d") return 7;
  if (text == "30d") return 30;
  if (text == "90d") return 90;
  return -1;
}



struct HttpApi::Plan {
  std::optional<HttpResponse> immediate;
  std::vector<RequestBody> bodies;
  std::function<HttpResponse(std::vector<Reply>&)> format;
  std::function<Plan(std::vector<Reply>&)> then;
  // Instead of `format`: answers later, from any thread.
  std::function<void(std::vector<Reply>&, std::function<void(HttpResponse&&)>)> async_format;

  static Plan Now(HttpResponse response) {
    Plan plan;
    plan.immediate = std::move(response);
    return plan;
  }
  // One request; a refusal becomes its error response.
  static Plan One(RequestBody body, std::function<HttpResponse(const Reply&)> on_success) {
    Plan plan;
    plan.bodies.push_back(std::move(body));
    plan.format = [on_success = std::move(on_success)](std::vector<Reply>& replies) {
      return replies[0].ok() ? on_success(replies[0]) : ErrorResponse(replies[0]);
    };
    return plan;
  }
  // One request; `on_reply` formats its reply, refusals included.
  static Plan Full(RequestBody body, std::function<HttpResponse(const Reply&)> on_reply) {
    Plan plan;
    plan.bodies.push_back(std::move(body));
    plan.format = [on_reply = std::move(on_reply)](std::vector<Reply>& replies) {
      return on_reply(replies[0]);
    };
    return plan;
  }
  static Plan Created(RequestBody body, int status = 201) {
    return One(std::move(body), [status](const Reply& reply) { return Success(reply, status); });
  }
  static Plan Read(RequestBody body) {
    return One(std::move(body), [](const Reply& reply) { return Json(200, ReplyToJson(reply)); });
  }
};

// What a route handler sees.
struct RouteContext {
  const HttpRequest& request;
  const Segments& s;
  const HttpApiOptions& options;
  Ledger* sequencer;
  class WorkQueue* work;  // the API's background thread
  std::string Param(const std::string& name, const std::string& fallback = "") const {
    return purser::Param(request, name, fallback);
  }
  bool Has(const std::string& name) const { return request.query.contains(name); }
};

// An integer query parameter in [min, max]; `fallback` when absent.
inline bool IntParam(const RouteContext& c, const std::string& name, int64_t fallback, int64_t min,
                     int64_t max, int64_t* out) {
  if (!c.Has(name)) {
    *out = fallback;
    return true;
  }
  std::optional<int64_t> value = ParseInt64(c.Param(name));
  if (!value || *value < min || *value > max) return false;
  *out = *value;
  return true;
}

inline HttpApi::Plan Invalid400(std::string message) {
  return HttpApi::Plan::Now(Refuse(ResultCode::kInvalidArgument, std::move(message)));
}

// A method and a path pattern ("*" matches any one segment) with its handler.
struct Route {
  const char* method;
  std::vector<std::string> pattern;
  std::function<HttpApi::Plan(const RouteContext&)> handle;
};

// The compatibility routes (http_compat.cc).
std::vector<Route> CompatRoutes();
// Signed checkpoints and proofs (http_proofs.cc).
std::vector<Route> ProofRoutes();

// A control-character-free copy of a path for messages.
std::string PrintablePath(std::string_view path);

}  // namespace purser
