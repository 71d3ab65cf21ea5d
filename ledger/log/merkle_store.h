// Proofs and roots from the Merkle tree stored beside the log
// (ledger/base/merkle.h, ledger/log/event_log.h): nodes covering 64 leaves
// and more are read, smaller ones are recomputed from the records, so that a
// proof costs O(log n) reads. Thread-safe (reads only); sizes are bounded by
// the tree's durable size.
#pragma once

#include <cstdint>
#include <vector>

#include "ledger/base/merkle.h"
#include "ledger/base/status.h"

namespace purser {

class EventLog;

// The root of leaves [begin, end) in the RFC's shape (begin aligned to the
// largest power of two below end - begin, as every subtree of a proof is).
Result<Sha256Digest> MerkleRangeHash(EventLog* log, uint64_t begin, uint64_t end);
// The root of the tree of the first `size` events.
Result<Sha256Digest> MerkleRoot(EventLog* log, uint64_t size);
// The roots of the perfect subtrees of a tree of `size` leaves, largest first.
Status MerklePeaks(EventLog* log, uint64_t size, std::vector<Sha256Digest>* peaks);

// Event `sequence` in the tree of `tree_size` events, with its record.
Status BuildInclusionProof(EventLog* log, uint64_t sequence, uint64_t tree_size, InclusionProof* proof);
// The tree of `to` events extends the tree of `from` (0 < from <= to).
Status BuildConsistencyProof(EventLog* log, uint64_t from, uint64_t to, ConsistencyProof* proof);

}  // namespace purser
