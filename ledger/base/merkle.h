// The log as a Merkle tree in the manner of RFC 6962 / RFC 9162 (SPEC
// section 9): leaf i is the record of event i + 1 as stored (its checksum,
// version, chain link and payload), hashed as SHA-256(0x00 || record); an
// interior node is SHA-256(0x01 || left || right); a tree of n leaves splits
// at the largest power of two below n.
//
// This header is pure (no I/O): the hashes, the right edge of a growing
// tree, and the verification of inclusion and consistency proofs that a
// client or `purser-replay` runs with nothing but the proof and a signed
// root. Proofs are built from the stored tree by ledger/log/merkle_store.h.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/types.h"

namespace purser {

// Interior nodes covering 2^kMerkleStoredLevel leaves and more are stored;
// the ones below are recomputed from the records (at most 64 of them per
// proof), which keeps the tree's writes at one key per 32 events.
inline constexpr int kMerkleStoredLevel = 6;

Sha256Digest MerkleLeafHash(std::string_view record);
Sha256Digest MerkleNodeHash(const Sha256Digest& left, const Sha256Digest& right);
// The root of a tree of these leaves (the hash of nothing for none).
Sha256Digest MerkleRootOf(const std::vector<Sha256Digest>& leaves);

// A completed interior node: `level` 0 is a leaf, `index` counts from the left.
struct MerkleNode {
  int level = 0;
  uint64_t index = 0;
  Sha256Digest hash{};
};

// The right edge of a growing tree: the roots of its perfect subtrees, one
// per set bit of its size.
class MerkleFrontier {
 public:
  uint64_t size() const { return size_; }
  // Adds the next leaf; the interior nodes it completes at
  // kMerkleStoredLevel and above are appended to *completed.
  void Append(const Sha256Digest& leaf, std::vector<MerkleNode>* completed);
  // The root of the size() leaves so far.
  Sha256Digest Root() const;
  // Restores a tree of `size` leaves from its perfect subtrees' roots,
  // largest (leftmost) first: one per set bit of `size`.
  void Reset(uint64_t size, const std::vector<Sha256Digest>& peaks);

 private:
  uint64_t size_ = 0;
  std::array<Sha256Digest, 64> peak_{};  // peak_[k]: the subtree of 2^k leaves, when bit k is set
};

// An inclusion proof (API.md: GET /v1/proofs/inclusion).
struct InclusionProof {
  uint64_t sequence = 0;
  uint64_t leaf_index = 0;  // sequence - 1
  uint64_t tree_size = 0;
  Sha256Digest leaf_hash{};
  std::vector<Sha256Digest> path;
  std::string record;  // the event's record, whose hash is leaf_hash
};

// A consistency proof between two tree sizes.
struct ConsistencyProof {
  uint64_t from = 0;
  uint64_t to = 0;
  std::vector<Sha256Digest> path;
};

// RFC 9162 section 2.1.3.2: the root the path leads to from the leaf, or
// false when the path does not fit the index and size.
bool RootFromInclusionProof(uint64_t leaf_index, uint64_t tree_size, const Sha256Digest& leaf,
                            const std::vector<Sha256Digest>& path, Sha256Digest* root);
bool VerifyInclusion(uint64_t leaf_index, uint64_t tree_size, const Sha256Digest& leaf,
                     const std::vector<Sha256Digest>& path, const Sha256Digest& root);
// RFC 9162 section 2.1.4.2: the tree of `second` leaves with root
// `second_root` extends the tree of `first` leaves with root `first_root`.
bool VerifyConsistency(uint64_t first, uint64_t second, const Sha256Digest& first_root,
                       const Sha256Digest& second_root, const std::vector<Sha256Digest>& path);

// The largest power of two strictly below n (n >= 2).
uint64_t MerkleSplit(uint64_t n);

}  // namespace purser
