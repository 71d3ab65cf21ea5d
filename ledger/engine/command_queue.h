// The engine's front queue: producers on any thread push submissions; the
// committer takes whole submissions up to a group's size, waiting until work
// arrives, the next timer is due, or the queue closes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ledger/engine/batch.h"

namespace purser {

class CommandQueue {
 public:
  explicit CommandQueue(size_t commands_max) : commands_max_(commands_max) {}

  // Thread-safe. False, without taking `requests`, when full or closed.
  bool Push(std::vector<Request>& requests, Completion& done);

  struct Taken {
    std::vector<Submission> submissions;
    bool closed = false;  // closed and nothing left after these
  };
  // Committer: waits up to `wait_us` for work (not at all when some is
  // waiting or the queue is closed), then takes whole submissions holding
  // at most `group_max` commands (always at least one submission).
  Taken Take(size_t group_max, int64_t wait_us);

  // No further Push succeeds; Take drains what is left. Idempotent.
  void Close();
  size_t queued_commands() const;
  size_t capacity() const { return commands_max_; }
  // Submissions refused because the queue was full (not closed).
  uint64_t refused_full() const { return refused_full_.load(std::memory_order_relaxed); }

 private:
  const size_t commands_max_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Submission> queue_;
  size_t queued_commands_ = 0;
  bool closed_ = false;
  std::atomic<uint64_t> refused_full_{0};
};

}  // namespace purser
