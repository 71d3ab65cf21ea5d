// The on-disk form of an event: a Cap'n Proto payload (schema/events.capnp)
// inside a record with a checksum and a hash-chain link. docs/FORMAT.md is the
// reference; tests/format_golden_test.cc pins the bytes.
//
// Record layout (value of key = 8-byte big-endian sequence in CF "events"):
//
//   offset  size  field
//   0       8     checksum: XXH3-64 of bytes [8, end), seed = the sequence
//                 number, stored little-endian
//   8       1     format version (kRecordVersion = 1)
//   9       32    link: SHA-256(previous link || sequence as 8 bytes
//                 big-endian || payload); the link before sequence 1 is 32
//                 zero bytes
//   41      n     payload: the Event as a packed Cap'n Proto message
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ledger/machine/events.h"
#include "ledger/base/status.h"
#include "ledger/base/types.h"

namespace purser {

inline constexpr uint8_t kRecordVersion = 1;
inline constexpr size_t kRecordChecksumOffset = 0;
inline constexpr size_t kRecordVersionOffset = 8;
inline constexpr size_t kRecordLinkOffset = 9;
inline constexpr size_t kRecordHeaderBytes = 41;
static_assert(kRecordLinkOffset + 32 == kRecordHeaderBytes);
// Limits when reading a payload (Cap'n Proto ReaderOptions).
inline constexpr uint64_t kPayloadTraversalWordsMax = 1 << 20;  // 8 MiB
inline constexpr int kPayloadNestingMax = 16;

// Encodes events into payloads. Reuses its scratch memory: not thread-safe;
// one encoder per thread.
class EventEncoder {
 public:
  EventEncoder();
  ~EventEncoder();
  EventEncoder(const EventEncoder&) = delete;
  EventEncoder& operator=(const EventEncoder&) = delete;

  // Replaces *payload with the packed Cap'n Proto encoding of `event`.
  void Encode(const Event& event, std::string* payload);

 private:
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
};

// Decodes a payload. An error names what is wrong; it never crashes on bad bytes.
Status DecodePayload(std::string_view payload, Event* event);

// The chain link of an event.
Sha256Digest ChainLink(const Sha256Digest& previous, uint64_t sequence, std::string_view payload);

// Builds a record from a payload, computing its link from `previous_link`.
// The record's checksum is verified again before it is returned (a pair
// assertion: the bytes written are the bytes checked).
std::string EncodeRecord(uint64_t sequence, const Sha256Digest& previous_link,
                         std::string_view payload, Sha256Digest* link);

// A record split into its parts (views into the record's bytes).
struct RecordView {
  Sha256Digest link{};
  std::string_view payload;
};

// The same, appending the record to *out (no allocation in the hot path).
void AppendRecord(uint64_t sequence, const Sha256Digest& previous_link, std::string_view payload,
                  Sha256Digest* link, std::string* out);

// Checks a record's checksum and version and splits it. Corruption is an error.
Status DecodeRecord(uint64_t sequence, std::string_view record, RecordView* view);

// Everything a reader of the log checks of one record before it trusts it:
// DecodeRecord, that its link follows `previous_link`, that its payload
// decodes into *event and carries `sequence`. *link is the record's link.
// Every failure is Corruption naming the event.
Status DecodeChainedRecord(uint64_t sequence, std::string_view record, const Sha256Digest& previous_link,
                           Event* event, Sha256Digest* link);

// A segment (a group's records in the events column family, or one
// replicated message) holds each record after its length: this many bytes,
// little-endian.
inline constexpr size_t kSegmentLengthBytes = 4;
inline uint32_t SegmentRecordLength(std::string_view segment) {
  uint32_t length = 0;
  for (size_t i = 0; i < kSegmentLengthBytes; ++i) {
    length |= uint32_t{static_cast<uint8_t>(segment[i])} << (8 * i);
  }
  return length;
}

// 8-byte big-endian keys of the events column family.
std::string SequenceKey(uint64_t sequence);
uint64_t SequenceFromKey(std::string_view key);

}  // namespace purser
