// Decoding HTTP/JSON request bodies (../shared/API.md) into ledger requests,
// with simdjson On-Demand.
//
// Strict where money is concerned: a `_micros` field must be a JSON integer
// (no fraction, no exponent) that fits int64 (bounds are the machine's: 10^12,
// signs); USD numbers of the compatibility endpoints are parsed exactly from
// their text, never through a double. A body that repeats a key is refused.
// Unknown fields are ignored, except in PUT caps. `malformed` marks a body
// that is not JSON at all (400 malformed_json); anything else is 400
// invalid_argument. Decoders never throw and never crash on any input
// (tests/fuzz_http_json.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/machine/commands.h"

namespace purser {

inline constexpr size_t kJsonDepthMax = 16;

struct DecodeError {
  bool malformed = false;
  std::string message;
  bool ok() const { return message.empty(); }
  static DecodeError Malformed(std::string text) { return DecodeError{true, std::move(text)}; }
  static DecodeError Invalid(std::string text) { return DecodeError{false, std::move(text)}; }
};

DecodeError DecodeOpenAccount(std::string_view body, cmd::OpenAccount* out);
DecodeError DecodeCapsPatch(std::string_view body, CapsPatch* out);
DecodeError DecodeReason(std::string_view body, std::string* reason);  // freeze, void
DecodeError DecodeDeposit(std::string_view body, int64_t* amount_micros, std::string* reference);
DecodeError DecodeReserve(std::string_view body, cmd::Reserve* out);
DecodeError DecodeSettle(std::string_view body, cmd::Settle* out);
DecodeError DecodeExtend(std::string_view body, int64_t* ttl_s);
DecodeError DecodeUsage(std::string_view body, cmd::RecordUsage* out);
DecodeError DecodeRefund(std::string_view body, cmd::Refund* out);
DecodeError DecodeAdjust(std::string_view body, cmd::Adjust* out);
DecodeError DecodeRevenue(std::string_view body, cmd::RecordRevenue* out);
DecodeError DecodePrice(std::string_view body, PriceRates* out);
DecodeError DecodeEstimate(std::string_view body, UsageTokens* out);
DecodeError DecodeBaseline(std::string_view body, cmd::SetBaseline* out);
DecodeError DecodeKeyCreate(std::string_view body, cmd::IssueKey* out);
DecodeError DecodeKeyRotate(std::string_view body, int64_t* grace_s);
DecodeError DecodeWebhook(std::string_view body, cmd::RegisterWebhook* out, std::string* secret);
DecodeError DecodeDailyReport(std::string_view body, event::DailyReportIngested* out);
DecodeError DecodeCheckpoint(std::string_view body, std::string* dir);
DecodeError DecodeTransfer(std::string_view body, cmd::Transfer* out);
DecodeError DecodeWebhookUpdate(std::string_view body, cmd::UpdateWebhook* out);
DecodeError DecodeRedeliver(std::string_view body, std::string* event_id);
DecodeError DecodeTagKeys(std::string_view body, std::vector<std::string>* keys);

// POST /api/finops/register.
struct RegisterRequest {
  std::string company_name;
  std::optional<int64_t> monthly_budget_micros;
  std::optional<uint8_t> alert_threshold_pct;
};
DecodeError DecodeRegister(std::string_view body, RegisterRequest* out);

// POST /v1/batch: the items, each with its op and its own JSON object text.
struct BatchItem {
  std::string op;
  std::string json;
};
DecodeError DecodeBatch(std::string_view body, std::vector<BatchItem>* items);

// A batch item's fields into a request (the same decoders as the endpoints;
// settle/void/extend carry reservation_id, deposit idempotency_key).
DecodeError DecodeBatchItem(const BatchItem& item, RequestBody* body);

}  // namespace purser
