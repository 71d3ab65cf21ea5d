// libFuzzer target over the HTTP request decoders (api/http_json.h): any
// bytes as the body of any endpoint must decode or be refused, never crash,
// hang or read out of bounds. Built by the `fuzz` preset with clang-14
// (-fsanitize=fuzzer,address,undefined); `scripts/fuzz SECONDS` runs it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/http_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the decoder; the rest is the body.
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace purser;
  switch (data[0] % 20) {
    case 0: { cmd::OpenAccount c; DecodeOpenAccount(body, &c); break; }
    case 1: { CapsPatch p; DecodeCapsPatch(body, &p); break; }
    case 2: { std::string r; DecodeReason(body, &r); break; }
    case 3: { int64_t a; std::string r; DecodeDeposit(body, &a, &r); break; }
    case 4: { cmd::Reserve c; DecodeReserve(body, &c); break; }
    case 5: { cmd::Settle c; DecodeSettle(body, &c); break; }
    case 6: { int64_t t; DecodeExtend(body, &t); break; }
    case 7: { cmd::RecordUsage c; DecodeUsage(body, &c); break; }
    case 8: { cmd::Refund c; DecodeRefund(body, &c); break; }
    case 9: { cmd::Adjust c; DecodeAdjust(body, &c); break; }
    case 10: { cmd::RecordRevenue c; DecodeRevenue(body, &c); break; }
    case 11: { PriceRates r; DecodePrice(body, &r); break; }
    case 12: { UsageTokens u; DecodeEstimate(body, &u); break; }
    case 13: { cmd::SetBaseline c; DecodeBaseline(body, &c); break; }
    case 14: { cmd::IssueKey c; DecodeKeyCreate(body, &c); break; }
    case 15: { int64_t g = 0; DecodeKeyRotate(body, &g); break; }
    case 16: { cmd::RegisterWebhook c; std::string s; DecodeWebhook(body, &c, &s); break; }
    case 17: { event::DailyReportIngested r; DecodeDailyReport(body, &r); break; }
    case 18: { std::string d; DecodeCheckpoint(body, &d); break; }
    default: {
      std::vector<BatchItem> items;
      if (DecodeBatch(body, &items).ok()) {
        for (const BatchItem& item : items) {
          RequestBody request;
          DecodeBatchItem(item, &request);
        }
      }
    }
  }
  return 0;
}
