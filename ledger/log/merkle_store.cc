#include "ledger/log/merkle_store.h"

#include <algorithm>
#include <bit>
#include <deque>

#include "ledger/log/event_log.h"

namespace purser {

namespace {

constexpr uint64_t kBlockLeaves = uint64_t{1} << kMerkleStoredLevel;

// The tree as one proof reads it: stored nodes from the merkle family, the
// rest from the leaf hashes of 64-leaf blocks, each block read from the log
// once (a proof's small subtrees all lie in the leaf's block and the tree's
// last one: two segment reads, not one per level).
class TreeReader {
 public:
  explicit TreeReader(EventLog* log) : log_(log) {}

  // The root of leaves [begin, end): RFC 9162's MTH(D[begin:end]), for a
  // range that is a subtree of the tree (begin aligned as the recursion
  // aligns it).
  Result<Sha256Digest> RangeHash(uint64_t begin, uint64_t end) {
    const uint64_t n = end - begin;
    if (n == 0) return Status::InvalidArgument("an empty range has no Merkle node");
    if (std::has_single_bit(n) && begin % n == 0 && std::countr_zero(n) >= kMerkleStoredLevel) {
      Sha256Digest hash;
      if (Status status = log_->GetMerkleNode(std::countr_zero(n), begin / n, &hash); !status.ok()) {
        return status;
      }
      return hash;
    }
    if (n <= kBlockLeaves && begin / kBlockLeaves == (end - 1) / kBlockLeaves) {
      const Leaves* block = nullptr;
      if (Status status = Block(begin / kBlockLeaves, &block); !status.ok()) return status;
      const uint64_t first = begin % kBlockLeaves;
      if (first + n > block->hashes.size()) {
        return Status::Corruption("event " + std::to_string(begin + block->hashes.size() + 1) +
                                  " is missing from the log under the Merkle tree");
      }
      return MerkleRootOf(std::vector<Sha256Digest>(block->hashes.begin() + static_cast<ptrdiff_t>(first),
                                                    block->hashes.begin() + static_cast<ptrdiff_t>(first + n)));
    }
    const uint64_t k = MerkleSplit(n);
    Result<Sha256Digest> left = RangeHash(begin, begin + k);
    if (!left.ok()) return left;
    Result<Sha256Digest> right = RangeHash(begin + k, end);
    if (!right.ok()) return right;
    return MerkleNodeHash(*left, *right);
  }

  // RFC 6962 section 2.1.1, PATH(m, D[begin:end]), leaf m counted from begin.
  Status InclusionPath(uint64_t m, uint64_t begin, uint64_t end, std::vector<Sha256Digest>* path) {
    const uint64_t n = end - begin;
    if (n <= 1) return Status::Ok();
    const uint64_t k = MerkleSplit(n);
    Result<Sha256Digest> other = m < k ? RangeHash(begin + k, end) : RangeHash(begin, begin + k);
    if (!other.ok()) return other.status();
    Status status = m < k ? InclusionPath(m, begin, begin + k, path) : InclusionPath(m - k, begin + k, end, path);
    if (!status.ok()) return status;
    path->push_back(*other);
    return Status::Ok();
  }

  // RFC 6962 section 2.1.2, SUBPROOF(m, D[begin:end], complete).
  Status ConsistencyPath(uint64_t m, uint64_t begin, uint64_t end, bool complete,
                         std::vector<Sha256Digest>* path) {
    const uint64_t n = end - begin;
    if (m == n) {
      if (complete) return Status::Ok();
      Result<Sha256Digest> whole = RangeHash(begin, end);
      if (!whole.ok()) return whole.status();
      path->push_back(*whole);
      return Status::Ok();
    }
    const uint64_t k = MerkleSplit(n);
    Status status = m <= k ? ConsistencyPath(m, begin, begin + k, complete, path)
                           : ConsistencyPath(m - k, begin + k, end, false, path);
    if (!status.ok()) return status;
    Result<Sha256Digest> other = m <= k ? RangeHash(begin + k, end) : RangeHash(begin, begin + k);
    if (!other.ok()) return other.status();
    path->push_back(*other);
    return Status::Ok();
  }

  // Event `sequence`'s record, read with its block (which the proof reads
  // anyway).
  Status Record(uint64_t sequence, std::string* record) {
    const Leaves* block = nullptr;
    if (Status status = Block((sequence - 1) / kBlockLeaves, &block); !status.ok()) return status;
    const uint64_t at = (sequence - 1) % kBlockLeaves;
    if (at >= block->records.size()) {
      return Status::NotFound("event " + std::to_string(sequence) + " is not in the log");
    }
    *record = block->records[at];
    return Status::Ok();
  }

 private:
  struct Leaves {
    uint64_t index = 0;
    std::vector<Sha256Digest> hashes;
    std::vector<std::string> records;
  };

  // Block `index`: its records and their leaf hashes (the log's last block
  // may be partial).
  Status Block(uint64_t index, const Leaves** block) {
    for (const Leaves& cached : blocks_) {
      if (cached.index == index) {
        *block = &cached;
        return Status::Ok();
      }
    }
    const uint64_t begin = index * kBlockLeaves;
    const uint64_t end = begin + kBlockLeaves;  // or the log's end, when it is sooner
    Leaves leaves;
    leaves.index = index;
    auto it = log_->NewIterator(begin + 1, /*scan=*/false);
    for (; it->Valid() && begin + leaves.hashes.size() < end; it->Next()) {
      if (it->sequence() != begin + 1 + leaves.hashes.size()) break;
      leaves.hashes.push_back(MerkleLeafHash(it->record()));
      leaves.records.emplace_back(it->record());
    }
    if (!it->status().ok()) return it->status();
    blocks_.push_back(std::move(leaves));
    *block = &blocks_.back();
    return Status::Ok();
  }

  EventLog* log_;
  std::deque<Leaves> blocks_;  // stable addresses
};

Status CheckSize(EventLog* log, uint64_t size) {
  uint64_t durable = log->merkle_durable_size();
  if (size > durable) {
    return Status::InvalidArgument("the tree has " + std::to_string(durable) + " events, not " +
                                   std::to_string(size));
  }
  return Status::Ok();
}

}  // namespace

Result<Sha256Digest> MerkleRangeHash(EventLog* log, uint64_t begin, uint64_t end) {
  return TreeReader(log).RangeHash(begin, end);
}

Status MerklePeaks(EventLog* log, uint64_t size, std::vector<Sha256Digest>* peaks) {
  peaks->clear();
  TreeReader tree(log);
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    if (((size >> level) & 1) == 0) continue;
    Result<Sha256Digest> peak = tree.RangeHash(begin, begin + (uint64_t{1} << level));
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
  TreeReader tree(log);
  if (Status status = tree.Record(sequence, &proof->record); !status.ok()) return status;
  proof->leaf_hash = MerkleLeafHash(proof->record);
  return tree.InclusionPath(sequence - 1, 0, tree_size, &proof->path);
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
  return TreeReader(log).ConsistencyPath(from, 0, to, true, &proof->path);
}

}  // namespace purser
