// A lock-free histogram of non-negative integer samples (latencies in
// microseconds, batch sizes) in logarithmic buckets: 4 sub-buckets per power
// of two, so a percentile is within 19% of the true value.
//
// Thread-safety: Record() and the readers may run concurrently from any
// threads (relaxed atomics: a reader sees a recent, not an exact, snapshot).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace purser {

class Histogram {
 public:
  static constexpr int kBuckets = 64 * 4;

  void Record(uint64_t value) {
    buckets_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }

  // The upper bound of the bucket holding the p-th percentile (0 < p <= 100).
  uint64_t Percentile(double p) const {
    uint64_t total = count();
    if (total == 0) return 0;
    auto rank = static_cast<uint64_t>(static_cast<double>(total) * p / 100.0 + 0.5);
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return UpperBound(i);
    }
    return UpperBound(kBuckets - 1);
  }

  // Cumulative counts at each of `bounds` (for Prometheus histograms).
  std::vector<uint64_t> CumulativeAt(const std::vector<uint64_t>& bounds) const {
    std::vector<uint64_t> out(bounds.size(), 0);
    for (int i = 0; i < kBuckets; ++i) {
      uint64_t n = buckets_[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      for (size_t b = 0; b < bounds.size(); ++b) {
        if (UpperBound(i) <= bounds[b]) out[b] += n;
      }
    }
    return out;
  }

  void Reset() {
    for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
    count_.store(0, std::memory_order_relaxed);
    sum_.store(0, std::memory_order_relaxed);
  }

  static int BucketOf(uint64_t value) {
    if (value < 4) return static_cast<int>(value);
    int power = 63 - __builtin_clzll(value);  // >= 2
    int sub = static_cast<int>((value >> (power - 2)) & 3);
    return power * 4 + sub;
  }

  static uint64_t UpperBound(int bucket) {
    if (bucket < 4) return static_cast<uint64_t>(bucket);
    int power = bucket / 4;
    uint64_t sub = static_cast<uint64_t>(bucket % 4);
    if (power >= 63) return UINT64_MAX;
    return ((4 + sub + 1) << (power - 2)) - 1;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace purser
