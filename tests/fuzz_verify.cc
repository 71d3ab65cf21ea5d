// libFuzzer target over `purser-replay verify`: crafted record streams,
// written as the log writer writes them (checksums and hash chain correct, so
// that verify gets past them) into a real RocksDB database, then verified.
// Verify may refuse the log, and must say which event; it must never crash,
// assert, hang or read out of bounds. The streams mix events that the
// machine would never have emitted (settles of unknown reservations,
// deposits to unknown accounts, negative or overflowing amounts, time going
// backwards) with payloads that are not events at all.
//
// Built by the `fuzz` preset with clang-14 (the ledger and replay libraries
// instrumented, -fsanitize=fuzzer,address,undefined);
// `scripts/fuzz SECONDS` runs it after the HTTP decoders' target.
#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "replay/replay.h"

namespace purser {
namespace {

std::string Pick(FuzzedDataProvider& in, const char* prefix) {
  // A few names, so that events refer to each other more often than not.
  return prefix + std::to_string(in.ConsumeIntegralInRange<int>(0, 3));
}

int64_t Amount(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return in.ConsumeIntegral<int64_t>();                          // anything, overflow too
    case 1: return -in.ConsumeIntegralInRange<int64_t>(0, 1'000'000);      // negative
    default: return in.ConsumeIntegralInRange<int64_t>(0, 100'000'000);    // plausible
  }
}

EventBody Body(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 12)) {
    case 0: {
      event::AccountOpened e;
      e.account = Pick(in, "a");
      if (in.ConsumeBool()) e.parent = Pick(in, "a");
      e.kind = static_cast<AccountKind>(in.ConsumeIntegralInRange<int>(0, 3));
      e.wallet = in.ConsumeBool();
      return e;
    }
    case 1: return event::Deposited{Pick(in, "d"), Pick(in, "a"), Amount(in), "", 0};
    case 2: {
      event::Reserved e;
      e.reservation_id = Pick(in, "r");
      e.account = Pick(in, "a");
      e.funding_account = in.ConsumeBool() ? Pick(in, "a") : "";
      e.amount_micros = Amount(in);
      e.expires_at_us = in.ConsumeIntegral<int64_t>();
      e.ttl_s = in.ConsumeIntegralInRange<int64_t>(-1, 100'000);
      return e;
    }
    case 3: {
      event::Settled e;
      e.reservation_id = Pick(in, "r");
      e.account = Pick(in, "a");
      e.cost_micros = Amount(in);
      e.released_micros = Amount(in);
      e.overrun_micros = Amount(in);
      e.late = in.ConsumeBool();
      e.dimensions.model = Pick(in, "m");
      return e;
    }
    case 4: return event::Voided{Pick(in, "r"), Amount(in), ""};
    case 5: return event::Expired{Pick(in, "r"), Amount(in), Amount(in), in.ConsumeBool() ? Pick(in, "a") : ""};
    case 6: return event::Extended{Pick(in, "r"), in.ConsumeIntegral<int64_t>(), in.ConsumeIntegral<int64_t>()};
    case 7: {
      event::Refunded e;
      e.refund_id = Pick(in, "f");
      e.target_kind = in.ConsumeBool() ? ChargeKind::kUsage : ChargeKind::kReservation;
      e.target_id = in.ConsumeBool() ? Pick(in, "r") : Pick(in, "u");
      e.amount_micros = Amount(in);
      return e;
    }
    case 8: {
      event::UsageCharged e;
      e.usage_id = Pick(in, "u");
      e.account = Pick(in, "a");
      e.cost_micros = Amount(in);
      e.overrun_micros = Amount(in);
      e.occurred_at_us = in.ConsumeBool() ? in.ConsumeIntegral<int64_t>() : 0;
      return e;
    }
    case 9: return event::AccountFrozen{Pick(in, "a"), "fuzz"};
    case 10: return event::AccountUnfrozen{Pick(in, "a")};
    case 11: return event::Adjusted{Pick(in, "j"), Pick(in, "a"), Amount(in), "", 0};
    default: return event::RevenueRecorded{Pick(in, "v"), Pick(in, "a"), Amount(in), "", "", 0};
  }
}

const std::string& Directory() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp != nullptr ? tmp : "/tmp") + "/purser-fuzz-verify-" + std::to_string(getpid());
  }();
  return dir;
}

}  // namespace
}  // namespace purser

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace purser;
  FuzzedDataProvider in(data, size);
  // Now and then through the scratch store of evicted records (one more
  // database to open, so not every time).
  const bool evict = in.ConsumeIntegralInRange<int>(0, 7) == 0;
  const std::string& dir = Directory();
  std::filesystem::remove_all(dir);
  {
    EventLogOptions options;
    options.path = dir;
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
    if (!log.ok()) std::abort();  // the harness's own failure, not verify's
    EventEncoder encoder;
    LogBatch batch;
    int64_t time_us = 1'700'000'000'000'000;
    const int events = in.ConsumeIntegralInRange<int>(1, 64);
    for (int i = 0; i < events && in.remaining_bytes() > 0; ++i) {
      Event event;
      event.sequence = (*log)->last_sequence() + 1;
      time_us += in.ConsumeIntegralInRange<int64_t>(-1'000'000, 100'000'000'000);  // backwards sometimes
      event.timestamp_us = time_us;
      std::string payload;
      if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
        payload = in.ConsumeRandomLengthString(256);  // not an event at all
      } else {
        event.body = Body(in);
        encoder.Encode(event, &payload);
      }
      (*log)->Append(event, payload, &batch);
      if (in.ConsumeIntegralInRange<int>(0, 7) == 0 && !(*log)->Write(&batch, false).ok()) std::abort();
    }
    if (!(*log)->Write(&batch, false).ok()) std::abort();
  }
  VerifyOptions options;
  options.data_dir = dir;
  options.use_head_mark = false;  // no service wrote one
  options.max_records_in_memory = evict ? 2 : 0;
  VerifyReport report;
  Status status = Verify(options, &report);
  // A refusal says why.
  if (!status.ok() && status.message().empty()) std::abort();
  return 0;
}
