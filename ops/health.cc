#include "ops/health.h"

#include <chrono>
#include <cstdio>

namespace purser {

void StorageHealth::Start(Ledger* sequencer, int64_t interval_s) {
  thread_ = std::thread([this, sequencer, interval_s] {
    pthread_setname_np(pthread_self(), "purser-scrub");
    Loop(sequencer, interval_s);
  });
}

void StorageHealth::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StorageHealth::ReportCorruption(const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    if (!corrupt_.load()) message_ = message;
  }
  if (!corrupt_.exchange(true)) {
    std::fprintf(stderr, "purserd: CRITICAL: storage corruption: %s\n", message.c_str());
    std::fflush(stderr);
  }
}

std::string StorageHealth::message() const {
  std::lock_guard lock(mutex_);
  return message_;
}

void StorageHealth::Loop(Ledger* sequencer, int64_t interval_s) {
  // The first scrub a moment after start (the service is already serving:
  // a scrub reads every file and must not delay it), then periodically.
  auto wait = std::chrono::milliseconds(200);
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, wait, [this] { return stopping_; })) return;
    }
    Status status = sequencer->VerifyChecksums();
    scrubs_.fetch_add(1);
    if (!status.ok()) ReportCorruption(status.message());
    if (interval_s <= 0) return;
    wait = std::chrono::seconds(interval_s);
  }
}

}  // namespace purser
