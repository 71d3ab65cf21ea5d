#include "rpc/loop_inbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "ledger/base/status.h"

namespace purser {

LoopInbox::LoopInbox() : event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  PURSER_ASSERT(event_fd_ >= 0);
}

LoopInbox::~LoopInbox() {
  PURSER_ASSERT(observer_.get() == nullptr);  // DrainAndClose() ran on the loop thread
  close(event_fd_);
}

void LoopInbox::Post(std::function<void()> work) {
  bool wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    wake = queue_.empty();
    queue_.push_back(std::move(work));
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t written = write(event_fd_, &one, sizeof one);
    (void)written;  // EAGAIN only when the counter is saturated: the loop is awake anyway
  }
}

kj::Promise<void> LoopInbox::Run(kj::UnixEventPort& port) {
  observer_ = kj::heap<kj::UnixEventPort::FdObserver>(port, event_fd_,
                                                        kj::UnixEventPort::FdObserver::OBSERVE_READ);
  return WaitAndRun();
}

kj::Promise<void> LoopInbox::WaitAndRun() {
  return observer_->whenBecomesReadable().then([this]() {
    uint64_t count;
    while (read(event_fd_, &count, sizeof count) > 0) {
    }
    RunQueued();
    return WaitAndRun();
  });
}

void LoopInbox::RunQueued() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(queue_);
  }
  for (auto& item : work) item();
}

void LoopInbox::DrainAndClose() {
  RunQueued();
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    queue_.clear();
  }
  observer_ = nullptr;  // on the loop thread that made it, as KJ requires
}

}  // namespace purser
