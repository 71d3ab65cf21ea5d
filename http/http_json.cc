#include "http/http_json.h"

#include <simdjson.h>

#include <algorithm>
#include <functional>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/base/money.h"

namespace purser {

namespace {

namespace od = simdjson::ondemand;

bool IsTypeError(simdjson::error_code error) {
  switch (error) {
    case simdjson::INCORRECT_TYPE:
    case simdjson::NUMBER_ERROR:
    case simdjson::NUMBER_OUT_OF_RANGE:
      return true;
    default:
      return false;
  }
}

DecodeError FromSimdjson(simdjson::error_code error, std::string_view key, const char* expected) {
  if (IsTypeError(error)) {
    return DecodeError::Invalid(std::string(key) + " must be " + expected);
  }
  return DecodeError::Malformed(std::string("the body is not valid JSON (") +
                                simdjson::error_message(error) + ")");
}

class Field;
using Handler = std::function<DecodeError(std::string_view key, Field& field)>;
DecodeError IterateObject(od::object object, const Handler& handler);

// One value of an object, read with the type the API expects.
class Field {
 public:
  Field(od::value value, std::string_view key) : value_(value), key_(key) {}

  bool IsNull() {
    bool null = false;
    return !value_.is_null().get(null) && null;
  }
  DecodeError String(std::string* out) {
    std::string_view text;
    if (auto error = value_.get_string().get(text)) return FromSimdjson(error, key_, "a string");
    out->assign(text);
    return {};
  }
  DecodeError OptionalString(std::string* out) { return IsNull() ? DecodeError{} : String(out); }
  // A JSON integer: no fraction, no exponent, fits int64.
  DecodeError Integer(int64_t* out) {
    if (auto error = value_.get_int64().get(*out)) return FromSimdjson(error, key_, "an integer");
    return {};
  }
  DecodeError OptionalInteger(std::optional<int64_t>* out) {
    if (IsNull()) return {};
    int64_t value;
    if (DecodeError e = Integer(&value); !e.ok()) return e;
    *out = value;
    return {};
  }
  DecodeError Boolean(bool* out) {
    if (auto error = value_.get_bool().get(*out)) return FromSimdjson(error, key_, "true or false");
    return {};
  }
  // USD as a JSON number, parsed exactly from its text (at most 6 decimals).
  DecodeError Usd(int64_t* out) {
    od::json_type type;
    if (auto error = value_.type().get(type)) return FromSimdjson(error, key_, "a number");
    if (type != od::json_type::number) return DecodeError::Invalid(std::string(key_) + " must be a number");
    std::string_view text = value_.raw_json_token();
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' ||
                             text.back() == '\t')) {
      text.remove_suffix(1);
    }
    std::optional<int64_t> micros = ParseUsd(text);
    if (!micros) {
      return DecodeError::Invalid(std::string(key_) +
                                  " must be USD with at most 6 decimals and no exponent");
    }
    *out = *micros;
    return {};
  }
  // A decimal multiplier ("2.5") read exactly as basis points (at most 4 decimals).
  DecodeError BasisPoints(int64_t* out) {
    int64_t micros = 0;
    if (DecodeError e = Usd(&micros); !e.ok() || micros % 100 != 0) {
      return DecodeError::Invalid(std::string(key_) + " must be a number with at most 4 decimals");
    }
    *out = micros / 100;
    return {};
  }
  DecodeError Object(const Handler& handler) {
    od::object object;
    if (auto error = value_.get_object().get(object)) return FromSimdjson(error, key_, "an object");
    return IterateObject(object, handler);
  }
  DecodeError OptionalObject(const Handler& handler) {
    return IsNull() ? DecodeError{} : Object(handler);
  }
  // {"k":"v",...}: at most 16 entries (checked again by the machine).
  DecodeError TagMap(Tags* out) {
    if (IsNull()) return {};
    DecodeError e = Object([&](std::string_view key, Field& field) -> DecodeError {
      if (out->size() >= kTagsMax) return DecodeError::Invalid("tags has more than 16 entries");
      Tag tag;
      tag.key = key;
      if (DecodeError inner = field.String(&tag.value); !inner.ok()) {
        return DecodeError::Invalid("tag values must be strings");
      }
      out->push_back(std::move(tag));
      return {};
    });
    return e;
  }
  DecodeError StringList(std::vector<std::string>* out, size_t max) {
    od::array array;
    if (auto error = value_.get_array().get(array)) return FromSimdjson(error, key_, "an array");
    for (auto element : array) {
      std::string_view text;
      if (auto error = element.get_string().get(text)) {
        return FromSimdjson(error, key_, "an array of strings");
      }
      if (out->size() >= max) {
        return DecodeError::Invalid(std::string(key_) + " has more than " + std::to_string(max) +
                                    " entries");
      }
      out->emplace_back(text);
    }
    return {};
  }
  DecodeError IntegerList(std::vector<uint8_t>* out, size_t max) {
    od::array array;
    if (auto error = value_.get_array().get(array)) return FromSimdjson(error, key_, "an array");
    for (auto element : array) {
      int64_t number;
      if (auto error = element.get_int64().get(number)) {
        return FromSimdjson(error, key_, "an array of integers");
      }
      if (number < 1 || number > 100) {
        return DecodeError::Invalid(std::string(key_) + " values must be percentages in 1..100");
      }
      if (out->size() >= max) {
        return DecodeError::Invalid(std::string(key_) + " must hold at most " +
                                    std::to_string(max) + " percentages");
      }
      out->push_back(static_cast<uint8_t>(number));
    }
    return {};
  }
  // The value's JSON text as it was sent (metadata).
  DecodeError RawJson(std::string* out) {
    od::json_type type;
    if (auto error = value_.type().get(type)) return FromSimdjson(error, key_, "JSON");
    if (type == od::json_type::object) {
      od::object object;
      std::string_view raw;
      if (auto error = value_.get_object().get(object)) return FromSimdjson(error, key_, "an object");
      if (auto error = object.raw_json().get(raw)) return FromSimdjson(error, key_, "an object");
      out->assign(raw);
      return {};
    }
    out->assign(value_.raw_json_token());
    return {};
  }

 private:
  od::value value_;
  std::string_view key_;
};

DecodeError IterateObject(od::object object, const Handler& handler) {
  std::vector<std::string> seen;
  for (auto field : object) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return FromSimdjson(error, "key", "a string");
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      return DecodeError::Invalid("the body repeats the key \"" + std::string(key) + "\"");
    }
    seen.emplace_back(key);
    od::value value;
    if (auto error = field.value().get(value)) return FromSimdjson(error, seen.back(), "a value");
    Field wrapped(value, seen.back());
    if (DecodeError e = handler(seen.back(), wrapped); !e.ok()) return e;
  }
  return {};
}

// After the root object was read: is there anything but whitespace left?
bool HasTrailingData(od::document& document) {
  const char* location = nullptr;
  return !document.current_location().get(location);  // OUT_OF_BOUNDS at the end
}

od::parser& Parser() {
  thread_local od::parser parser = [] {
    od::parser p;
    if (p.allocate(1 << 20, kJsonDepthMax) != simdjson::SUCCESS) std::abort();
    return p;
  }();
  return parser;
}

// The deepest nesting of arrays and objects, strings skipped. On-Demand only
// meets the depth of the values it reads; skipped ones must be bounded too.
size_t NestingDepth(std::string_view body) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// A body that is not an object: valid JSON of another kind, or not JSON.
DecodeError NotAnObject(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element element;
  if (parser.parse(body.data(), body.size()).get(element)) {
    return DecodeError::Malformed("the body is not valid JSON");
  }
  return DecodeError::Invalid("the body must be a JSON object");
}

// Parses a whole body as one JSON object.
DecodeError ParseObject(std::string_view body, const Handler& handler) {
  if (body.empty()) return DecodeError::Malformed("the body is empty; a JSON object is expected");
  if (NestingDepth(body) > kJsonDepthMax) {
    return DecodeError::Invalid("the body nests deeper than 16 levels");
  }
  simdjson::padded_string padded(body);
  od::parser& parser = Parser();
  if (padded.size() > parser.capacity()) {
    if (parser.allocate(padded.size(), kJsonDepthMax)) return DecodeError::Malformed("body too large");
  }
  od::document document;
  if (auto error = parser.iterate(padded).get(document)) {
    return DecodeError::Malformed(std::string("the body is not valid JSON (") +
                                  simdjson::error_message(error) + ")");
  }
  od::object object;
  if (auto error = document.get_object().get(object)) {
    if (error == simdjson::INCORRECT_TYPE) return NotAnObject(body);
    return DecodeError::Malformed(std::string("the body is not valid JSON (") +
                                  simdjson::error_message(error) + ")");
  }
  if (DecodeError e = IterateObject(object, handler); !e.ok()) return e;
  if (HasTrailingData(document)) {
    return DecodeError::Malformed("the body has data after its JSON object");
  }
  return {};
}

DecodeError Missing(const char* field) { return DecodeError::Invalid(std::string(field) + " is required"); }

// Reads `usage` objects: model and token classes.
DecodeError UsageObject(Field& field, UsageTokens* usage, const char* output_key) {
  bool has_model = false;
  DecodeError e = field.Object([&](std::string_view key, Field& f) -> DecodeError {
    if (key == "model") {
      has_model = true;
      return f.String(&usage->model);
    }
    if (key == "input_tokens") return f.Integer(&usage->tokens.input);
    if (key == output_key) return f.Integer(&usage->tokens.output);
    if (key == "cached_input_tokens") return f.Integer(&usage->tokens.cached_input);
    if (key == "cache_write_tokens") return f.Integer(&usage->tokens.cache_write);
    if (key == "reasoning_tokens") return f.Integer(&usage->tokens.reasoning);
    return {};
  });
  if (e.ok() && !has_model) return Missing("usage.model");
  return e;
}

DecodeError OutcomeField(Field& field, Outcome* outcome) {
  if (field.IsNull()) return {};
  std::string text;
  if (DecodeError e = field.String(&text); !e.ok()) return e;
  if (!ParseOutcome(text, outcome)) return DecodeError::Invalid("outcome must be success, error or cancelled");
  return {};
}

DecodeError CapsLimit(Field& field, Patch<int64_t>* patch) {
  if (field.IsNull()) {
    *patch = Patch<int64_t>::Remove();
    return {};
  }
  int64_t value;
  if (DecodeError e = field.Integer(&value); !e.ok()) return e;
  *patch = Patch<int64_t>::Set(value);
  return {};
}

}  // namespace

DecodeError DecodeOpenAccount(std::string_view body, cmd::OpenAccount* out) {
  bool has_id = false;
  bool has_kind = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "id") {
      has_id = true;
      return f.String(&out->id);
    }
    if (key == "parent") return f.OptionalString(&out->parent);
    if (key == "name") return f.OptionalString(&out->name);
    if (key == "wallet") return f.Boolean(&out->wallet);
    if (key == "kind") {
      has_kind = true;
      std::string kind;
      if (DecodeError inner = f.String(&kind); !inner.ok()) return inner;
      if (!ParseAccountKind(kind, &out->kind)) {
        return DecodeError::Invalid("kind must be org, team, agent or workflow");
      }
      return {};
    }
    if (key == "indexed_tag_keys") return f.StringList(&out->indexed_tag_keys, kIndexedTagKeysMax);
    return {};
  });
  if (!e.ok()) return e;
  if (!has_id) return Missing("id");
  if (!has_kind) return Missing("kind");
  return {};
}

DecodeError DecodeCapsPatch(std::string_view body, CapsPatch* out) {
  return ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "daily_limit_micros") return CapsLimit(f, &out->daily_limit_micros);
    if (key == "monthly_limit_micros") return CapsLimit(f, &out->monthly_limit_micros);
    if (key == "hard_limit_micros") return CapsLimit(f, &out->hard_limit_micros);
    if (key == "max_inflight") return CapsLimit(f, &out->max_inflight);
    if (key == "reservation_ttl_s") return CapsLimit(f, &out->reservation_ttl_s);
    if (key == "alert_thresholds_pct") {
      if (f.IsNull()) {
        out->alert_thresholds_pct = Patch<std::vector<uint8_t>>::Remove();
        return {};
      }
      std::vector<uint8_t> thresholds;
      if (DecodeError e = f.IntegerList(&thresholds, kAlertThresholdsMax); !e.ok()) return e;
      out->alert_thresholds_pct = Patch<std::vector<uint8_t>>::Set(std::move(thresholds));
      return {};
    }
    if (key == "on_expiry") {
      if (f.IsNull()) {
        out->on_expiry = Patch<OnExpiry>::Remove();
        return {};
      }
      std::string text;
      if (DecodeError e = f.String(&text); !e.ok()) return e;
      if (text == "release") out->on_expiry = Patch<OnExpiry>::Set(OnExpiry::kRelease);
      else if (text == "charge") out->on_expiry = Patch<OnExpiry>::Set(OnExpiry::kCharge);
      else return DecodeError::Invalid("on_expiry must be release or charge");
      return {};
    }
    if (key == "runaway_action") {
      if (f.IsNull()) {
        out->runaway_action = Patch<RunawayAction>::Remove();
        return {};
      }
      std::string text;
      if (DecodeError e = f.String(&text); !e.ok()) return e;
      if (text == "alert") out->runaway_action = Patch<RunawayAction>::Set(RunawayAction::kAlert);
      else if (text == "freeze") out->runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
      else return DecodeError::Invalid("runaway_action must be alert or freeze");
      return {};
    }
    if (key == "runaway_error_streak") return CapsLimit(f, &out->runaway_error_streak);
    if (key == "runaway_min_micros_per_hour") return CapsLimit(f, &out->runaway_min_micros_per_hour);
    if (key == "max_calls_per_minute") return CapsLimit(f, &out->max_calls_per_minute);
    if (key == "max_tokens_per_minute") return CapsLimit(f, &out->max_tokens_per_minute);
    if (key == "degrade_at_pct") return CapsLimit(f, &out->degrade_at_pct);
    if (key == "runaway_burn_multiplier") {
      if (f.IsNull()) {
        out->runaway_burn_multiplier_bp = Patch<int64_t>::Remove();
        return {};
      }
      int64_t bp = 0;
      if (DecodeError e = f.BasisPoints(&bp); !e.ok()) return e;
      out->runaway_burn_multiplier_bp = Patch<int64_t>::Set(bp);
      return {};
    }
    // Unlike elsewhere, an unknown field is an error here (API.md).
    return DecodeError::Invalid("unknown caps field \"" + std::string(key) + "\"");
  });
}

DecodeError DecodeReason(std::string_view body, std::string* reason) {
  if (body.empty()) return {};  // the reason is optional, and so is the body
  return ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "reason") return f.OptionalString(reason);
    return {};
  });
}

DecodeError DecodeDeposit(std::string_view body, int64_t* amount_micros, std::string* reference) {
  bool has_amount = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "amount_micros") {
      has_amount = true;
      return f.Integer(amount_micros);
    }
    if (key == "reference") return f.OptionalString(reference);
    return {};
  });
  if (e.ok() && !has_amount) return Missing("amount_micros");
  return e;
}

DecodeError DecodeReserve(std::string_view body, cmd::Reserve* out) {
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "reservation_id") return f.String(&out->reservation_id);
    if (key == "account") return f.String(&out->account);
    if (key == "amount_micros") return f.OptionalInteger(&out->amount_micros);
    if (key == "estimate") {
      if (f.IsNull()) return {};
      Estimate estimate;
      bool has_model = false;
      DecodeError inner = f.Object([&](std::string_view k, Field& g) -> DecodeError {
        if (k == "model") {
          has_model = true;
          return g.String(&estimate.model);
        }
        if (k == "input_tokens") return g.Integer(&estimate.input_tokens);
        if (k == "max_output_tokens") return g.Integer(&estimate.max_output_tokens);
        return {};
      });
      if (!inner.ok()) return inner;
      if (!has_model) return Missing("estimate.model");
      out->estimate = std::move(estimate);
      return {};
    }
    if (key == "ttl_s") {
      if (f.IsNull()) return {};
      if (DecodeError inner = f.Integer(&out->ttl_s); !inner.ok()) return inner;
      // 0 is not "the default": a TTL is at least a second (omit it for the default).
      if (out->ttl_s < 1) return DecodeError::Invalid("ttl_s must be at least 1 (omit it for the default)");
      return {};
    }
    if (key == "run_id") return f.OptionalString(&out->run_id);
    if (key == "action") return f.OptionalString(&out->action);
    if (key == "tags") return f.TagMap(&out->tags);
    return {};
  });
  if (!e.ok()) return e;
  if (out->reservation_id.empty()) return Missing("reservation_id");
  if (out->account.empty()) return Missing("account");
  return {};
}

DecodeError DecodeSettle(std::string_view body, cmd::Settle* out) {
  return ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "amount_micros") return f.OptionalInteger(&out->amount_micros);
    if (key == "usage") {
      if (f.IsNull()) return {};
      UsageTokens usage;
      if (DecodeError e = UsageObject(f, &usage, "output_tokens"); !e.ok()) return e;
      out->usage = std::move(usage);
      return {};
    }
    if (key == "action") {
      if (f.IsNull()) return {};
      std::string action;
      if (DecodeError e = f.String(&action); !e.ok()) return e;
      out->action = std::move(action);
      return {};
    }
    if (key == "waste") {
      if (f.IsNull()) return {};
      std::string waste;
      if (DecodeError e = f.String(&waste); !e.ok()) return e;
      out->waste = std::move(waste);
      return {};
    }
    if (key == "outcome") return OutcomeField(f, &out->outcome);
    if (key == "tags") return f.TagMap(&out->tags);
    return {};
  });
}

DecodeError DecodeExtend(std::string_view body, int64_t* ttl_s) {
  bool has_ttl = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "ttl_s") {
      has_ttl = true;
      return f.Integer(ttl_s);
    }
    return {};
  });
  if (e.ok() && !has_ttl) return Missing("ttl_s");
  return e;
}

DecodeError DecodeUsage(std::string_view body, cmd::RecordUsage* out) {
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "usage_id") return f.String(&out->usage_id);
    if (key == "account") return f.String(&out->account);
    if (key == "amount_micros") return f.OptionalInteger(&out->amount_micros);
    if (key == "usage") {
      if (f.IsNull()) return {};
      UsageTokens usage;
      if (DecodeError inner = UsageObject(f, &usage, "output_tokens"); !inner.ok()) return inner;
      out->usage = std::move(usage);
      return {};
    }
    if (key == "action") return f.OptionalString(&out->action);
    if (key == "waste") return f.OptionalString(&out->waste);
    if (key == "outcome") return OutcomeField(f, &out->outcome);
    if (key == "run_id") return f.OptionalString(&out->run_id);
    if (key == "tags") return f.TagMap(&out->tags);
    if (key == "occurred_at") {
      if (f.IsNull()) return {};
      std::string text;
      if (DecodeError inner = f.String(&text); !inner.ok()) return inner;
      std::optional<int64_t> at = ParseTimestamp(text);
      if (!at || text.size() <= 10) {
        return DecodeError::Invalid("occurred_at must be an RFC 3339 UTC time");
      }
      out->occurred_at_us = *at;
      return {};
    }
    return {};
  });
  if (!e.ok()) return e;
  if (out->usage_id.empty()) return Missing("usage_id");
  if (out->account.empty()) return Missing("account");
  return {};
}

DecodeError DecodeRefund(std::string_view body, cmd::Refund* out) {
  std::string reservation_id;
  std::string usage_id;
  bool has_amount = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "refund_id") return f.String(&out->refund_id);
    if (key == "reservation_id") return f.OptionalString(&reservation_id);
    if (key == "usage_id") return f.OptionalString(&usage_id);
    if (key == "amount_micros") {
      has_amount = true;
      return f.Integer(&out->amount_micros);
    }
    if (key == "reason") return f.OptionalString(&out->reason);
    return {};
  });
  if (!e.ok()) return e;
  if (out->refund_id.empty()) return Missing("refund_id");
  if (!has_amount) return Missing("amount_micros");
  if (reservation_id.empty() == usage_id.empty()) {
    return DecodeError::Invalid("give exactly one of reservation_id and usage_id");
  }
  out->target_kind = usage_id.empty() ? ChargeKind::kReservation : ChargeKind::kUsage;
  out->target_id = usage_id.empty() ? reservation_id : usage_id;
  return {};
}

DecodeError DecodeAdjust(std::string_view body, cmd::Adjust* out) {
  bool has_amount = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "adjustment_id") return f.String(&out->adjustment_id);
    if (key == "amount_micros") {
      has_amount = true;
      return f.Integer(&out->amount_micros);
    }
    if (key == "reason") return f.OptionalString(&out->reason);
    return {};
  });
  if (!e.ok()) return e;
  if (out->adjustment_id.empty()) return Missing("adjustment_id");
  if (!has_amount) return Missing("amount_micros");
  return {};
}

DecodeError DecodeRevenue(std::string_view body, cmd::RecordRevenue* out) {
  bool has_amount = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "revenue_id") return f.String(&out->revenue_id);
    if (key == "account") return f.String(&out->account);
    if (key == "amount_micros") {
      has_amount = true;
      return f.Integer(&out->amount_micros);
    }
    if (key == "category") return f.OptionalString(&out->category);
    if (key == "reference") return f.OptionalString(&out->reference);
    return {};
  });
  if (!e.ok()) return e;
  if (out->revenue_id.empty()) return Missing("revenue_id");
  if (out->account.empty()) return Missing("account");
  if (!has_amount) return Missing("amount_micros");
  return {};
}

DecodeError DecodePrice(std::string_view body, PriceRates* out) {
  bool has_input = false;
  bool has_output = false;
  auto optional_rate = [](Field& f, int64_t* rate) -> DecodeError {
    if (f.IsNull()) {
      *rate = -1;
      return {};
    }
    return f.Integer(rate);
  };
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "input_per_mtok_micros") {
      has_input = true;
      return f.Integer(&out->input_per_mtok);
    }
    if (key == "output_per_mtok_micros") {
      has_output = true;
      return f.Integer(&out->output_per_mtok);
    }
    if (key == "cached_input_per_mtok_micros") return optional_rate(f, &out->cached_input_per_mtok);
    if (key == "cache_write_per_mtok_micros") return optional_rate(f, &out->cache_write_per_mtok);
    if (key == "reasoning_per_mtok_micros") return optional_rate(f, &out->reasoning_per_mtok);
    return {};
  });
  if (!e.ok()) return e;
  if (!has_input) return Missing("input_per_mtok_micros");
  if (!has_output) return Missing("output_per_mtok_micros");
  for (int64_t rate : {out->cached_input_per_mtok, out->cache_write_per_mtok, out->reasoning_per_mtok}) {
    if (rate < -1) return DecodeError::Invalid("rates must not be negative");
  }
  return {};
}

DecodeError DecodeEstimate(std::string_view body, UsageTokens* out) {
  bool has_model = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "model") {
      has_model = true;
      return f.String(&out->model);
    }
    if (key == "input_tokens") return f.Integer(&out->tokens.input);
    if (key == "output_tokens") return f.Integer(&out->tokens.output);
    if (key == "cached_input_tokens") return f.Integer(&out->tokens.cached_input);
    if (key == "cache_write_tokens") return f.Integer(&out->tokens.cache_write);
    if (key == "reasoning_tokens") return f.Integer(&out->tokens.reasoning);
    return {};
  });
  if (e.ok() && !has_model) return Missing("model");
  return e;
}

DecodeError DecodeBaseline(std::string_view body, cmd::SetBaseline* out) {
  bool has_rate = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "micros_per_hour") {
      has_rate = true;
      return f.Integer(&out->micros_per_hour);
    }
    if (key == "multiplier") {
      if (f.IsNull()) return {};
      return f.BasisPoints(&out->multiplier_bp);
    }
    return {};
  });
  if (e.ok() && !has_rate) return Missing("micros_per_hour");
  return e;
}

DecodeError DecodeKeyCreate(std::string_view body, cmd::IssueKey* out) {
  bool has_role = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "account") return f.OptionalString(&out->account);
    if (key == "label") return f.OptionalString(&out->label);
    if (key == "role") {
      has_role = true;
      std::string role;
      if (DecodeError inner = f.String(&role); !inner.ok()) return inner;
      if (!ParseRole(role, &out->role)) return DecodeError::Invalid("role must be admin, writer or reader");
      return {};
    }
    return {};
  });
  if (e.ok() && !has_role) return Missing("role");
  return e;
}

DecodeError DecodeKeyRotate(std::string_view body, int64_t* grace_s) {
  if (body.empty()) return {};
  return ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "grace_s") {
      if (f.IsNull()) return {};
      return f.Integer(grace_s);
    }
    return {};
  });
}

DecodeError DecodeWebhook(std::string_view body, cmd::RegisterWebhook* out, std::string* secret) {
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "url") return f.String(&out->url);
    if (key == "events") return f.StringList(&out->events, kWebhookEventsMax);
    if (key == "account") return f.OptionalString(&out->account);
    if (key == "secret") return f.String(secret);
    return {};
  });
  if (!e.ok()) return e;
  if (out->url.empty()) return Missing("url");
  if (out->events.empty()) return Missing("events");
  if (secret->empty()) return Missing("secret");
  if (secret->size() > 256) return DecodeError::Invalid("secret is longer than 256 bytes");
  return {};
}

DecodeError DecodeDailyReport(std::string_view body, event::DailyReportIngested* out) {
  bool has_date = false;
  bool has_cost = false;
  bool has_tokens = false;
  bool has_requests = false;
  auto named = [](Field& f, std::vector<event::NamedAmount>* list) -> DecodeError {
    if (f.IsNull()) return {};
    return f.Object([&](std::string_view key, Field& g) -> DecodeError {
      if (list->size() >= kReportNamedAmountsMax) {
        return DecodeError::Invalid("at most 256 entries per breakdown");
      }
      event::NamedAmount entry;
      entry.name = key;
      if (DecodeError e = g.Usd(&entry.amount_micros); !e.ok()) return e;
      list->push_back(std::move(entry));
      return {};
    });
  };
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "date") {
      has_date = true;
      return f.String(&out->date);
    }
    if (key == "total_tokens") {
      has_tokens = true;
      return f.Integer(&out->total_tokens);
    }
    if (key == "total_cost") {
      has_cost = true;
      return f.Usd(&out->total_cost_micros);
    }
    if (key == "total_requests") {
      has_requests = true;
      return f.Integer(&out->total_requests);
    }
    if (key == "cost_by_model") return named(f, &out->cost_by_model);
    if (key == "cost_by_action") return named(f, &out->cost_by_action);
    if (key == "waste_categories") return named(f, &out->waste_categories);
    if (key == "efficiency_score") {
      if (f.IsNull()) return {};
      return f.Usd(&out->efficiency_score_millionths);  // a 0..100 score, exactly
    }
    if (key == "metadata") {
      if (f.IsNull()) return {};
      return f.RawJson(&out->metadata_json);
    }
    return {};
  });
  if (!e.ok()) return e;
  if (!has_date) return Missing("date");
  if (!has_tokens) return Missing("total_tokens");
  if (!has_cost) return Missing("total_cost");
  if (!has_requests) return Missing("total_requests");
  return {};
}

DecodeError DecodeTransfer(std::string_view body, cmd::Transfer* out) {
  bool has_amount = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "transfer_id") return f.String(&out->transfer_id);
    if (key == "from") return f.String(&out->from);
    if (key == "to") return f.String(&out->to);
    if (key == "amount_micros") {
      has_amount = true;
      return f.Integer(&out->amount_micros);
    }
    if (key == "reason") return f.OptionalString(&out->reason);
    return {};
  });
  if (!e.ok()) return e;
  if (out->transfer_id.empty()) return Missing("transfer_id");
  if (out->from.empty()) return Missing("from");
  if (out->to.empty()) return Missing("to");
  if (!has_amount) return Missing("amount_micros");
  return {};
}

DecodeError DecodeWebhookUpdate(std::string_view body, cmd::UpdateWebhook* out) {
  return ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "url") {
      std::string url;
      if (DecodeError e = f.String(&url); !e.ok()) return e;
      out->url = std::move(url);
      return {};
    }
    if (key == "events") {
      std::vector<std::string> events;
      if (DecodeError e = f.StringList(&events, kWebhookEventsMax); !e.ok()) return e;
      out->events = std::move(events);
      return {};
    }
    if (key == "enabled") {
      bool enabled = true;
      if (DecodeError e = f.Boolean(&enabled); !e.ok()) return e;
      out->enabled = enabled;
      return {};
    }
    return {};
  });
}

DecodeError DecodeRedeliver(std::string_view body, std::string* event_id) {
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "event_id") return f.String(event_id);
    return {};
  });
  if (e.ok() && event_id->empty()) return Missing("event_id");
  return e;
}

DecodeError DecodeTagKeys(std::string_view body, std::vector<std::string>* keys) {
  bool has_keys = false;
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "keys") {
      has_keys = true;
      return f.StringList(keys, kIndexedTagKeysMax);
    }
    return {};
  });
  if (e.ok() && !has_keys) return Missing("keys");
  return e;
}

DecodeError DecodeRegister(std::string_view body, RegisterRequest* out) {
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "company_name") return f.String(&out->company_name);
    if (key == "monthly_budget") {
      if (f.IsNull()) return {};
      int64_t micros = 0;
      if (DecodeError inner = f.Usd(&micros); !inner.ok()) return inner;
      out->monthly_budget_micros = micros;
      return {};
    }
    if (key == "alert_threshold_pct") {
      if (f.IsNull()) return {};
      int64_t pct = 0;
      if (DecodeError inner = f.Integer(&pct); !inner.ok()) return inner;
      if (pct < 1 || pct > 100) return DecodeError::Invalid("alert_threshold_pct must be in 1..100");
      out->alert_threshold_pct = static_cast<uint8_t>(pct);
      return {};
    }
    return {};
  });
  if (!e.ok()) return e;
  if (out->company_name.empty()) return Missing("company_name");
  return {};
}

DecodeError DecodeCheckpoint(std::string_view body, std::string* dir) {
  DecodeError e = ParseObject(body, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "dir") return f.String(dir);
    return {};
  });
  if (e.ok() && dir->empty()) return Missing("dir");
  return e;
}

DecodeError DecodeBatch(std::string_view body, std::vector<BatchItem>* items) {
  bool has_commands = false;
  items->clear();
  simdjson::padded_string padded(body);
  od::parser& parser = Parser();
  if (padded.size() > parser.capacity()) {
    if (parser.allocate(padded.size(), kJsonDepthMax)) return DecodeError::Malformed("body too large");
  }
  od::document document;
  if (auto error = parser.iterate(padded).get(document)) {
    return DecodeError::Malformed(std::string("the body is not valid JSON (") +
                                  simdjson::error_message(error) + ")");
  }
  if (NestingDepth(body) > kJsonDepthMax) {
    return DecodeError::Invalid("the body nests deeper than 16 levels");
  }
  od::object object;
  if (auto error = document.get_object().get(object)) {
    return error == simdjson::INCORRECT_TYPE ? NotAnObject(body)
                                             : DecodeError::Malformed("the body is not valid JSON");
  }
  std::vector<std::string> seen;
  for (auto field : object) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return FromSimdjson(error, "key", "a string");
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      return DecodeError::Invalid("the body repeats the key \"" + std::string(key) + "\"");
    }
    seen.emplace_back(key);
    if (key != "commands") continue;
    has_commands = true;
    od::array array;
    if (auto error = field.value().get_array().get(array)) {
      return FromSimdjson(error, "commands", "an array");
    }
    for (auto element : array) {
      if (items->size() >= kBatchCommandsMax) {
        return DecodeError::Invalid("a batch holds at most 8192 commands");
      }
      od::object item;
      if (auto error = element.get_object().get(item)) {
        return FromSimdjson(error, "each command", "an object");
      }
      std::string_view raw;
      if (auto error = item.raw_json().get(raw)) return FromSimdjson(error, "each command", "an object");
      BatchItem batch_item;
      batch_item.json.assign(raw);
      items->push_back(std::move(batch_item));
    }
  }
  if (HasTrailingData(document)) {
    return DecodeError::Malformed("the body has data after its JSON object");
  }
  if (!has_commands) return Missing("commands");
  // Each item's op, from its own text.
  for (BatchItem& item : *items) {
    DecodeError op = ParseObject(item.json, [&](std::string_view key, Field& f) -> DecodeError {
      if (key == "op") return f.String(&item.op);
      return {};
    });
    if (!op.ok()) return op;
  }
  return {};
}

// Long by design: one branch per operation a batch may hold.
DecodeError DecodeBatchItem(const BatchItem& item, RequestBody* body) {
  const std::string& json = item.json;
  if (item.op == "reserve") {
    cmd::Reserve c;
    DecodeError e = DecodeReserve(json, &c);
    *body = std::move(c);
    return e;
  }
  if (item.op == "usage") {
    cmd::RecordUsage c;
    DecodeError e = DecodeUsage(json, &c);
    *body = std::move(c);
    return e;
  }
  if (item.op == "refund") {
    cmd::Refund c;
    DecodeError e = DecodeRefund(json, &c);
    *body = std::move(c);
    return e;
  }
  if (item.op == "revenue") {
    cmd::RecordRevenue c;
    DecodeError e = DecodeRevenue(json, &c);
    *body = std::move(c);
    return e;
  }
  // settle, void, extend and deposit name their target inside the item.
  std::string reservation_id;
  std::string idempotency_key;
  std::string account;
  DecodeError ids = ParseObject(json, [&](std::string_view key, Field& f) -> DecodeError {
    if (key == "reservation_id") return f.String(&reservation_id);
    if (key == "idempotency_key") return f.String(&idempotency_key);
    if (key == "account") return f.String(&account);
    return {};
  });
  if (!ids.ok()) return ids;
  if (item.op == "settle" || item.op == "void" || item.op == "extend") {
    if (reservation_id.empty()) return Missing("reservation_id");
  }
  if (item.op == "settle") {
    cmd::Settle c;
    DecodeError e = DecodeSettle(json, &c);
    c.reservation_id = reservation_id;
    *body = std::move(c);
    return e;
  }
  if (item.op == "void") {
    cmd::Void c;
    c.reservation_id = reservation_id;
    DecodeError e = DecodeReason(json, &c.reason);
    *body = std::move(c);
    return e;
  }
  if (item.op == "extend") {
    cmd::Extend c;
    c.reservation_id = reservation_id;
    DecodeError e = DecodeExtend(json, &c.ttl_s);
    *body = std::move(c);
    return e;
  }
  if (item.op == "transfer") {
    cmd::Transfer c;
    DecodeError e = DecodeTransfer(json, &c);
    *body = std::move(c);
    return e;
  }
  if (item.op == "deposit") {
    cmd::Deposit c;
    c.deposit_id = idempotency_key;
    c.account = account;
    DecodeError e = DecodeDeposit(json, &c.amount_micros, &c.reference);
    if (e.ok() && idempotency_key.empty()) return Missing("idempotency_key");
    if (e.ok() && account.empty()) return Missing("account");
    *body = std::move(c);
    return e;
  }
  return DecodeError::Invalid(
      "op must be reserve, settle, void, extend, usage, refund, revenue, deposit or transfer");
}

}  // namespace purser
