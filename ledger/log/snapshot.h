// The canonical serialization of a State, its digest, and loading it back.
//
// The canonical form lists every account, wallet, window total, breakdown
// row, pending and finished reservation, id-index entry, price, key, webhook,
// alert and daily report, each collection in key order, with interned ids
// resolved to their strings. Two states that applied the same events have the
// same bytes, so:
//   - the state digest (SPEC section 7) is SHA-256 of these bytes, equal live
//     and after `purser-replay rebuild` at the same sequence;
//   - the projection checkpoint stored in RocksDB is the same encoding in
//     memory order (no sorting), and loading it gives a state whose digest
//     and behaviour equal the one that wrote it.
// Rejection counts not yet appended as events are not part of the state.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "ledger/machine/state.h"
#include "ledger/base/status.h"
#include "ledger/base/types.h"

namespace purser {

// Version 2 added the reaction state (burn minutes, rate counters, streaks,
// runaway and anomaly flags, runs), transfers and reply receipts. Version 3
// is version 2 with varint integers and threshold bits as two words: a fifth
// of the bytes, and under half of the committer's pause to write them. Both
// load. A checkpoint of an older version is not loaded: recovery replays the
// whole log instead (projections are derived; the log is the truth).
inline constexpr char kSnapshotMagic[] = "purser-state-3";
inline constexpr char kSnapshotMagicV2[] = "purser-state-2";
// The digest's bytes keep version 2's form, magic included: digests are
// compared across builds (a rebuild by a later purser-replay).
inline constexpr char kCanonicalMagic[] = "purser-state-2";

// True when `bytes` is a checkpoint this build reads (version 2 or 3).
bool IsCurrentSnapshot(std::string_view bytes);

struct SnapshotOptions {
  // Every collection in key order, interned ids as strings: the digest's
  // bytes. A projection checkpoint skips the sorting and keeps the interner,
  // and loads to a state with the same digest. Default: false.
  bool canonical = false;
  // Include finished reservations and usage records. The live checkpoint
  // leaves them out: they are in the cold store. Default: true.
  bool finished_records = true;
  // The checkpoint version written when not canonical: 3, or 2 (the former
  // fixed-width form, kept for the test that it still loads).
  int version = 3;
};

// The cold store as a digest reads it (ledger/cold_record.h).
class ColdStore {
 public:
  virtual ~ColdStore() = default;
  // Visits every cold reservation in id order.
  virtual Status ForEachReservation(const std::function<void(Reservation&&)>& visit) = 0;
  // Visits every cold usage record in id order.
  virtual Status ForEachUsage(
      const std::function<void(std::string&& id, UsageRecord&&)>& visit) = 0;
};

std::string SerializeState(const State& state, const SnapshotOptions& options);
// The same into `out`, cleared first: a buffer kept between checkpoints
// keeps its pages (a string grown by doubling touches about twice its final
// size in fresh pages: most of a version 2 checkpoint's time at 18 MB).
void SerializeState(const State& state, const SnapshotOptions& options, std::string* out);

// The state digest. With a cold store, records in memory and in the store
// are merged (memory wins: it is never older), so the digest does not depend
// on which records are in memory.
Result<Sha256Digest> StateDigest(const State& state, ColdStore* cold);
inline Sha256Digest StateDigest(const State& state) { return *StateDigest(state, nullptr); }
// Loads a serialized state into an empty *state.
Status DeserializeState(std::string_view bytes, State* state);

}  // namespace purser
