// The canonical serialization of a State, its digest, and loading it back.
//
// The canonical form lists every account, wallet, window total, breakdown
// row, pending and finished reservation, id-index entry, price, key, webhook,
// alert and daily report, each collection in key order, with interned ids
// resolved to their strings. Two states that applied the same events have the
// same bytes, so:
//   - the state digest (SPEC section 7) is SHA-256 of these bytes, equal live
//     and after `purser-replay rebuild` at the same sequence;
//   - the projection checkpoint stored in RocksDB is these bytes, and loading
//     it gives a state that behaves exactly like the one that wrote it.
// Rejection counts not yet appended as events are not part of the state.
#pragma once

#include <string>
#include <string_view>

#include "ledger/state.h"
#include "ledger/status.h"
#include "ledger/types.h"

namespace purser {

inline constexpr char kSnapshotMagic[] = "purser-state-1";

std::string SerializeState(const State& state);
Sha256Digest StateDigest(const State& state);
// Loads a serialized state into an empty *state.
Status DeserializeState(std::string_view bytes, State* state);

}  // namespace purser
