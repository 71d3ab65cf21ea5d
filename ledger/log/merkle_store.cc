#include "ledger/log/merkle_store.h"

#include <bit>

#include "ledger/log/event_log.h"

namespace purser {

namespace {

// The leaf hashes of events begin + 1 .. end.
Status LeafHashes(EventLog* log, uint64_t begin, uint64_t end, std::vector<Sha256Digest>* leaves) {
  leaves->clear();
  auto it = log->NewIterator(begin + 1, /*scan=*/false);
  for (; it->Valid() && leaves->size() < end - begin; it->Next()) {
    if (it->sequence() != begin + 1 + leaves->size()) break;
    leaves->push_back(MerkleLeafHash(it->record()));
  }
  if (!it->status().ok()) return it->status();
  if (leaves->size() != end - begin) {
    return Status::Corruption("event " + std::to_string(begin + 1 + leaves->size()) +
                              " is missing from the log under the Merkle tree");
  }
  return Status::Ok();
}

Status CheckSize(EventLog* log, uint64_t size) {
  uint64_t durable = log->merkle_durable_size();
  if (size > durable) {
    return Status::InvalidArgument("the tree has " + std::to_string(durable) + " events, not " +
                                   std::to_string(size));
  }
  return Status::Ok();
}

// RFC 6962 section 2.1.1, PATH(m, D[begin:end]), leaf m counted from begin.
Status InclusionPath(EventLog* log, uint64_t m, uint64_t begin, uint64_t end,
                     std::vector<Sha256Digest>* path) {
  const uint64_t n = end - begin;
  if (n <= 1) return Status::Ok();
  const uint64_t k = MerkleSplit(n);
  Result<Sha256Digest> other = m < k ? MerkleRangeHash(log, begin + k, end)
                                     : MerkleRangeHash(log, begin, begin + k);
  if (!other.ok()) return other.status();
  Status status = m < k ? InclusionPath(log, m, begin, begin + k, path)
                        : InclusionPath(log, m - k, begin + k, end, path);
  if (!status.ok()) return status;
  path->push_back(*other);
  return Status::Ok();
}

// RFC 6962 section 2.1.2, SUBPROOF(m, D[begin:end], complete).
Status ConsistencyPath(EventLog* log, uint64_t m, uint64_t begin, uint64_t end, bool complete,
                       std::vector<Sha256Digest>* path) {
  const uint64_t n = end - begin;
  if (m == n) {
    if (complete) return Status::Ok();
    Result<Sha256Digest> whole = MerkleRangeHash(log, begin, end);
    if (!whole.ok()) return whole.status();
    path->push_back(*whole);
    return Status::Ok();
  }
  const uint64_t k = MerkleSplit(n);
  if (m <= k) {
    if (Status status = ConsistencyPath(log, m, begin, begin + k, complete, path); !status.ok()) {
      return status;
    }
    Result<Sha256Digest> right = MerkleRangeHash(log, begin + k, end);
    if (!right.ok()) return right.status();
    path->push_back(*right);
    return Status::Ok();
  }
  if (Status status = ConsistencyPath(log, m - k, begin + k, end, false, path); !status.ok()) {
    return status;
  }
  Result<Sha256Digest> left = MerkleRangeHash(log, begin, begin + k);
  if (!left.ok()) return left.status();
  path->push_back(*left);
  return Status::Ok();
}

}  // namespace

Result<Sha256Digest> MerkleRangeHash(EventLog* log, uint64_t begin, uint64_t end) {
  const uint64_t n = end - begin;
  if (n == 0) return Status::InvalidArgument("an empty range has no Merkle node");
  if (std::has_single_bit(n) && begin % n == 0) {
    const int level = std::countr_zero(n);
    if (level >= kMerkleStoredLevel) {
      Sha256Digest hash;
      if (Status status = log->GetMerkleNode(level, begin >> level, &hash); !status.ok()) return status;
      return hash;
    }
  }
  if (n <= (uint64_t{1} << kMerkleStoredLevel)) {
    std::vector<Sha256Digest> leaves;
    if (Status status = LeafHashes(log, begin, end, &leaves); !status.ok()) return status;
    return MerkleRootOf(leaves);
  }
  const uint64_t k = MerkleSplit(n);
  Result<Sha256Digest> left = MerkleRangeHash(log, begin, begin + k);
  if (!left.ok()) return left;
  Result<Sha256Digest> right = MerkleRangeHash(log, begin + k, end);
  if (!right.ok()) return right;
  return MerkleNodeHash(*left, *right);
}

Status MerklePeaks(EventLog* log, uint64_t size, std::vector<Sha256Digest>* peaks) {
  peaks->clear();
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    if (((size >> level) & 1) == 0) continue;
    Result<Sha256Digest> peak = MerkleRangeHash(log, begin, begin + (uint64_t{1} << level));
    if (!peak.ok()) return peak.status();
    peaks->push_back(*peak);
    begin += uint64_t{1} << level;
  }
  return Status::Ok();
}

Result<Sha256Digest> MerkleRoot(EventLog* log, uint64_t size) {
  if (Status status = CheckSize(log, size); !status.ok()) return status;
  if (size == 0) return MerkleRootOf({});
  return MerkleRangeHash(log, 0, size);
}

Status BuildInclusionProof(EventLog* log, uint64_t sequence, uint64_t tree_size, InclusionProof* proof) {
  if (Status status = CheckSize(log, tree_size); !status.ok()) return status;
  if (sequence == 0 || sequence > tree_size) {
    return Status::InvalidArgument("event " + std::to_string(sequence) + " is not in the tree of " +
                                   std::to_string(tree_size) + " events");
  }
  proof->sequence = sequence;
  proof->leaf_index = sequence - 1;
  proof->tree_size = tree_size;
  proof->path.clear();
  if (Status status = log->ReadRecord(sequence, &proof->record); !status.ok()) return status;
  proof->leaf_hash = MerkleLeafHash(proof->record);
  return InclusionPath(log, sequence - 1, 0, tree_size, &proof->path);
}

Status BuildConsistencyProof(EventLog* log, uint64_t from, uint64_t to, ConsistencyProof* proof) {
  if (Status status = CheckSize(log, to); !status.ok()) return status;
  if (from == 0 || from > to) {
    return Status::InvalidArgument("a consistency proof needs 0 < from <= to");
  }
  proof->from = from;
  proof->to = to;
  proof->path.clear();
  if (from == to) return Status::Ok();
  return ConsistencyPath(log, from, 0, to, true, &proof->path);
}

}  // namespace purser
