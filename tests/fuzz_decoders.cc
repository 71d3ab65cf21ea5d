// libFuzzer target over every decoder of stored or received bytes: a log
// record and its event payload, the cold store's records, the projection
// checkpoint (snapshot) loader, and the Cap'n Proto RPC command, query and
// reply decoders. Any bytes must decode or be refused, never crash, hang or
// read out of bounds. The first byte picks the decoder. Seeds from the real
// encoders: tests/fuzz_corpus/decoders (tests/fuzz_seeds.cc writes them).
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "ledger/log/cold_record.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/snapshot.h"
#include "ledger/machine/state.h"
#include "rpc/rpc_codec.h"

namespace {

// A Cap'n Proto message of the bytes, as the RPC layer would read it off the
// wire (word-aligned, traversal bounded), passed to `decode`.
template <typename Root, typename Decode>
void WithMessage(std::string_view bytes, Decode decode) {
  std::vector<capnp::word> words(bytes.size() / sizeof(capnp::word));
  if (words.empty()) return;
  std::memcpy(words.data(), bytes.data(), words.size() * sizeof(capnp::word));
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 1 << 16;
  options.nestingLimit = 32;
  try {
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()), options);
    decode(reader.getRoot<Root>());
  } catch (const kj::Exception&) {
    // A malformed message is refused; the RPC layer answers it as such.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace purser;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      // The record's sequence first (its checksum covers it), then the record.
      if (bytes.empty()) break;
      const auto sequence = static_cast<uint8_t>(bytes[0]);
      RecordView view;
      if (DecodeRecord(sequence, bytes.substr(1), &view).ok()) {
        Event event;
        (void)DecodePayload(view.payload, &event);
      }
      break;
    }
    case 1: {
      Event event;
      (void)DecodePayload(bytes, &event);
      break;
    }
    case 2: {
      Reservation reservation;
      (void)DecodeColdReservation(bytes, &reservation);
      break;
    }
    case 3: {
      std::string id;
      UsageRecord usage;
      (void)DecodeColdUsage(bytes, &id, &usage);
      break;
    }
    case 4: {
      State state;
      if (IsCurrentSnapshot(bytes)) (void)DeserializeState(bytes, &state);
      break;
    }
    case 5:
      WithMessage<rpc::Command>(bytes, [](rpc::Command::Reader command) {
        RequestBody body;
        (void)DecodeCommand(command, &body);
      });
      break;
    case 6:
      WithMessage<rpc::Query>(bytes, [](rpc::Query::Reader query) {
        RequestBody body;
        (void)DecodeQuery(query, &body);
      });
      break;
    default:
      WithMessage<rpc::Result>(bytes, [](rpc::Result::Reader result) { (void)DecodeReply(result); });
      break;
  }
  return 0;
}
