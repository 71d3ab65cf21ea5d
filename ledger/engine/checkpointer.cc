#include "ledger/engine/checkpointer.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

namespace purser {

namespace {

// The child: everything is copied, only this thread exists. It writes and
// leaves by _exit (no destructors, no atexit handlers, no stdio flush of
// the parent's buffers).
[[noreturn]] void SerializeInChild(const State& state, const SnapshotOptions& options, int file) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the service
  if (nice(19) == -1) {}
  for (int signal_number : {SIGTERM, SIGINT, SIGHUP}) signal(signal_number, SIG_DFL);
  std::string bytes;
  try {
    bytes = SerializeState(state, options);
  } catch (...) {
    _exit(2);
  }
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = write(file, bytes.data() + written, bytes.size() - written);
    if (n <= 0) _exit(3);
    written += static_cast<size_t>(n);
  }
  _exit(0);
}

bool ReadWhole(int file, std::string* out) {
  struct stat info {};
  if (fstat(file, &info) != 0 || info.st_size < 0) return false;
  out->resize(static_cast<size_t>(info.st_size));
  size_t read_bytes = 0;
  while (read_bytes < out->size()) {
    ssize_t n = pread(file, out->data() + read_bytes, out->size() - read_bytes,
                      static_cast<off_t>(read_bytes));
    if (n <= 0) return false;
    read_bytes += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool Checkpointer::Start(const State& state, const SnapshotOptions& options) {
  Abandon();  // reaps a failed child's waiter, if any
  int file = memfd_create("purser-checkpoint", MFD_CLOEXEC);
  if (file < 0) return false;
  const pid_t child = fork();
  if (child < 0) {
    close(file);
    return false;
  }
  if (child == 0) SerializeInChild(state, options, file);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    child_ = child;
    done_ = false;
    ready_.reset();
  }
  busy_ = true;
  waiter_ = std::thread(&Checkpointer::Collect, this, child, file, state.last_sequence,
                        std::chrono::steady_clock::now());
  return true;
}

void Checkpointer::Collect(pid_t child, int file, uint64_t sequence,
                           std::chrono::steady_clock::time_point started) {
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(child, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  std::optional<Snapshot> snapshot;
  if (reaped == child && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    snapshot.emplace();
    snapshot->sequence = sequence;
    if (!ReadWhole(file, &snapshot->bytes)) snapshot.reset();
  }
  if (snapshot) {
    std::fprintf(stderr, "purser: checkpoint at event %llu: %zu bytes of state serialized in the "
                         "background in %lld ms\n",
                 static_cast<unsigned long long>(sequence), snapshot->bytes.size(),
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started)
                                            .count()));
  }
  close(file);
  if (!snapshot && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
    std::fprintf(stderr, "purser: the checkpoint at event %llu failed in its child (status %d); "
                         "the next one replaces it\n",
                 static_cast<unsigned long long>(sequence), status);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  child_ = -1;
  done_ = true;
  ready_ = std::move(snapshot);
}

std::optional<Checkpointer::Snapshot> Checkpointer::TakeReady() {
  if (!busy_) return std::nullopt;
  std::optional<Snapshot> taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!done_) return std::nullopt;
    taken = std::move(ready_);
    ready_.reset();
  }
  waiter_.join();
  busy_ = false;
  return taken;
}

void Checkpointer::Abandon() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (child_ > 0) kill(child_, SIGKILL);  // not reaped yet: still ours
  }
  if (waiter_.joinable()) waiter_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  ready_.reset();
  done_ = false;
  busy_ = false;
}

}  // namespace purser
