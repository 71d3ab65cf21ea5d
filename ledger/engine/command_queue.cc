#include "ledger/engine/command_queue.h"

#include <chrono>
#include <iterator>

#include "ledger/base/clock.h"

namespace purser {

bool CommandQueue::Push(std::vector<Request>& requests, Completion& done) {
  const size_t count = requests.size();
  std::vector<uint8_t> types;
  types.reserve(count);
  for (const Request& request : requests) types.push_back(static_cast<uint8_t>(request.body.index()));
  const int64_t now_us = SteadyMicros();
  std::unique_lock lock(mutex_);
  if (closed_) return false;
  if (queued_commands_ + count > commands_max_) {
    refused_full_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const bool was_empty = queue_.empty();
  queue_.push_back(Submission{std::move(requests), {}, std::move(done), std::move(types), now_us});
  queued_commands_ += count;
  lock.unlock();
  if (was_empty) ready_.notify_one();
  return true;
}

CommandQueue::Taken CommandQueue::Take(size_t group_max, int64_t wait_us) {
  Taken taken;
  std::unique_lock lock(mutex_);
  if (queue_.empty() && !closed_ && wait_us > 0) {
    ready_.wait_for(lock, std::chrono::microseconds(wait_us),
                    [&] { return !queue_.empty() || closed_; });
  }
  size_t commands = 0;
  size_t k = 0;
  while (k < queue_.size() &&
         (commands == 0 || commands + queue_[k].requests.size() <= group_max)) {
    commands += queue_[k].requests.size();
    ++k;
  }
  if (k == queue_.size()) {
    taken.submissions.swap(queue_);
  } else {
    const auto end = queue_.begin() + static_cast<ptrdiff_t>(k);
    taken.submissions.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
    queue_.erase(queue_.begin(), end);
  }
  queued_commands_ -= commands;
  taken.closed = closed_ && queue_.empty() && taken.submissions.empty();
  return taken;
}

void CommandQueue::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  ready_.notify_all();
}

size_t CommandQueue::queued_commands() const {
  std::lock_guard lock(mutex_);
  return queued_commands_;
}

}  // namespace purser
