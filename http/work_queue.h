// One background thread for requests whose answers read storage (audit
// proofs and signed checkpoints): neither the ledger's log thread, where a
// request's completion runs, nor an HTTP thread should wait on those reads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace purser {

class WorkQueue {
 public:
  explicit WorkQueue(size_t max_waiting) : max_waiting_(max_waiting) {
    thread_ = std::thread([this] { Loop(); });
  }
  // Runs what waits, then joins.
  ~WorkQueue() { Close(); }
  // Refuses new work, runs what waits, and joins (once; any thread but its own).
  void Close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    changed_.notify_one();
    std::lock_guard join(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // False (and `work` dropped) when `max_waiting` items wait already.
  bool Post(std::function<void()> work) {
    {
      std::lock_guard lock(mutex_);
      if (closed_ || waiting_.size() >= max_waiting_) return false;
      waiting_.push_back(std::move(work));
    }
    changed_.notify_one();
    return true;
  }

 private:
  void Loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [&] { return closed_ || !waiting_.empty(); });
      if (waiting_.empty()) return;
      std::function<void()> work = std::move(waiting_.front());
      waiting_.pop_front();
      lock.unlock();
      work();
      lock.lock();
    }
  }

  const size_t max_waiting_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> waiting_;
  bool closed_ = false;
  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace purser
