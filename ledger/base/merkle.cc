#include "ledger/base/merkle.h"

#include <bit>
#include <cstring>

#include "ledger/base/crypto.h"

namespace purser {

Sha256Digest MerkleLeafHash(std::string_view record) {
  return Sha256Of({std::string_view("\0", 1), record});
}

Sha256Digest MerkleNodeHash(const Sha256Digest& left, const Sha256Digest& right) {
  return Sha256Of({std::string_view("\1", 1), DigestBytes(left), DigestBytes(right)});
}

uint64_t MerkleSplit(uint64_t n) { return std::bit_floor(n - 1); }

namespace {

Sha256Digest RangeRoot(const std::vector<Sha256Digest>& leaves, size_t begin, size_t end) {
  if (end - begin == 1) return leaves[begin];
  size_t k = MerkleSplit(end - begin);
  return MerkleNodeHash(RangeRoot(leaves, begin, begin + k), RangeRoot(leaves, begin + k, end));
}

}  // namespace

Sha256Digest MerkleRootOf(const std::vector<Sha256Digest>& leaves) {
  if (leaves.empty()) return Sha256("");
  return RangeRoot(leaves, 0, leaves.size());
}

void MerkleFrontier::Append(const Sha256Digest& leaf, std::vector<MerkleNode>* completed) {
  Sha256Digest node = leaf;
  int level = 0;
  // Each set low bit of the size is a perfect subtree to the left that the
  // new leaf completes into one twice its size.
  while ((size_ >> level) & 1) {
    node = MerkleNodeHash(peak_[level], node);
    ++level;
    if (level >= kMerkleStoredLevel) completed->push_back(MerkleNode{level, size_ >> level, node});
  }
  peak_[level] = node;
  ++size_;
}

Sha256Digest MerkleFrontier::Root() const {
  if (size_ == 0) return Sha256("");
  Sha256Digest root{};
  bool first = true;
  for (int level = 0; level < 64; ++level) {
    if (((size_ >> level) & 1) == 0) continue;
    root = first ? peak_[level] : MerkleNodeHash(peak_[level], root);
    first = false;
  }
  return root;
}

void MerkleFrontier::Reset(uint64_t size, const std::vector<Sha256Digest>& peaks) {
  size_ = size;
  size_t next = 0;
  for (int level = 63; level >= 0; --level) {
    if ((size >> level) & 1) peak_[level] = peaks.at(next++);
  }
}

bool RootFromInclusionProof(uint64_t leaf_index, uint64_t tree_size, const Sha256Digest& leaf,
                            const std::vector<Sha256Digest>& path, Sha256Digest* root) {
  if (leaf_index >= tree_size) return false;
  uint64_t fn = leaf_index;
  uint64_t sn = tree_size - 1;
  Sha256Digest r = leaf;
  for (const Sha256Digest& p : path) {
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      r = MerkleNodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = MerkleNodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return false;
  *root = r;
  return true;
}

bool VerifyInclusion(uint64_t leaf_index, uint64_t tree_size, const Sha256Digest& leaf,
                     const std::vector<Sha256Digest>& path, const Sha256Digest& root) {
  Sha256Digest computed;
  return RootFromInclusionProof(leaf_index, tree_size, leaf, path, &computed) && computed == root;
}

bool VerifyConsistency(uint64_t first, uint64_t second, const Sha256Digest& first_root,
                       const Sha256Digest& second_root, const std::vector<Sha256Digest>& path) {
  if (first == 0 || first > second) return false;
  if (first == second) return path.empty() && first_root == second_root;
  std::vector<Sha256Digest> p;
  if (std::has_single_bit(first)) p.push_back(first_root);
  p.insert(p.end(), path.begin(), path.end());
  if (p.empty()) return false;
  uint64_t fn = first - 1;
  uint64_t sn = second - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Sha256Digest fr = p[0];
  Sha256Digest sr = p[0];
  for (size_t i = 1; i < p.size(); ++i) {
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      fr = MerkleNodeHash(p[i], fr);
      sr = MerkleNodeHash(p[i], sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = MerkleNodeHash(sr, p[i]);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && fr == first_root && sr == second_root;
}

}  // namespace purser
