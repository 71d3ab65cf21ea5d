// The engine's checkpointer: a projection checkpoint without a pause.
//
// Serializing the state on the committer's thread stopped every commit for
// ~0.2 s per 18 MB of state. Instead, the committer forks: the child holds
// a copy-on-write image of the state exactly as it stood after the group
// just executed, serializes it into an anonymous memory file and exits; the
// committer goes on at once (the fork copies page tables, not pages). A
// waiting thread collects the bytes, and the committer hands them to the log
// writer with a later batch, for the sequence at which the child was forked.
//
// The checkpoint is derived data: a child that fails or is abandoned costs a
// longer replay at the next start, never an event.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "ledger/log/snapshot.h"
#include "ledger/machine/state.h"

namespace purser {

class Checkpointer {
 public:
  struct Snapshot {
    uint64_t sequence = 0;  // the state's last event
    std::string bytes;      // SerializeState of it
  };

  Checkpointer() = default;
  ~Checkpointer() { Abandon(); }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Starts serializing `state` as it is now, with `options`, in a child
  // process. False when no child could be started (the caller serializes
  // inline). Call only when !busy(), from the thread that owns the state.
  bool Start(const State& state, const SnapshotOptions& options);

  // A snapshot is being written, or is written and not taken yet.
  bool busy() const { return busy_; }

  // The finished snapshot, once; nothing while the child works (or when it
  // failed: then busy() is false again).
  std::optional<Snapshot> TakeReady();

  // Drops the snapshot in flight or not yet taken (a checkpoint taken since
  // supersedes it), stopping its child.
  void Abandon();

 private:
  // The waiting thread: reaps the child and reads what it wrote.
  void Collect(pid_t child, int file, uint64_t sequence, std::chrono::steady_clock::time_point started);

  bool busy_ = false;  // owner's thread only
  std::thread waiter_;
  std::mutex mutex_;
  pid_t child_ = -1;   // until reaped
  bool done_ = false;  // the waiter finished (ready_ holds its result, if any)
  std::optional<Snapshot> ready_;
};

}  // namespace purser
