// The engine: a single-writer sequencer with group commit, in pieces.
//
//   producers --Submit--> CommandQueue (command_queue.h)
//       --> the committer (this file; its own thread): takes a group, loads
//           what it needs from the cold store (ColdStoreManager::Prefetch),
//           stamps one timestamp, expires due reservations, runs each
//           request through the Machine, retires the records the group
//           finished (ColdStoreManager::Retire), now and then adds a
//           projection checkpoint, and hands the Batch on
//       --> LogWriter (log_writer.h; its own thread): encodes, writes all
//           waiting batches with one synced RocksDB write, then completes
//           the submissions in order and tells observers.
//
// While one batch is being synced the committer already executes the next,
// so the disk and the CPU overlap; a later batch is never acknowledged before
// an earlier one, and a failed write stops everything (fail-stop): no request
// of that batch or a later one is acknowledged, and no further request is
// accepted.
//
// Queries travel the same path, so an answer reflects every command answered
// before it was sent (read-your-writes) and only state that is durable by the
// time the answer is delivered.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ledger/base/histogram.h"
#include "ledger/base/replicator.h"
#include "ledger/base/status.h"
#include "ledger/engine/batch.h"
#include "ledger/engine/cold_manager.h"
#include "ledger/engine/command_queue.h"
#include "ledger/engine/log_writer.h"
#include "ledger/log/event_log.h"
#include "ledger/machine/machine.h"
#include "ledger/machine/state.h"

namespace purser {

struct SequencerOptions {
  // The RocksDB directory. Required.
  std::string data_dir;
  // Commands waiting in the queue before Submit() answers "unavailable".
  // Default: 262,144.
  size_t queue_commands_max = 1 << 18;
  // Commands executed in one group commit. Default: 16,384.
  size_t group_commands_max = 1 << 14;
  // Batches executed but not yet taken by the log thread, which writes all
  // of them with one fsync. Default: 8.
  size_t pipeline_depth = 8;
  // A projection checkpoint is written after this many events: it bounds
  // the log tail that a restart re-applies. (Finished records leave memory
  // with the group that finished them, not at checkpoints.) Default: 1,000,000.
  uint64_t checkpoint_every_events = 1'000'000;
  // Files RocksDB may keep open (EventLogOptions::max_open_files). Default: -1.
  int max_open_files = -1;
  // Start even when the log lost events that the head mark says were
  // acknowledged (ledger/head_file.h), logging the loss and moving the mark.
  // An explicit operator decision, never the default. Default: false.
  bool accept_truncated_log = false;
  // Write the default price table on the first start of an empty log. Default: true.
  bool write_default_prices = true;
  // Service time source (microseconds since the epoch). Default: the wall clock.
  std::function<int64_t()> clock;
  // A signed checkpoint of the log's Merkle tree is written at least this
  // often (service time) while events arrive. Default: 60 s.
  int64_t sign_every_us = 60'000'000;
  // As LedgerOptions::merkle_tree. Default: true.
  bool merkle_tree = true;
  // As LedgerOptions::storage_env. Default: null (RocksDB's default).
  rocksdb::Env* storage_env = nullptr;
  // As LedgerOptions::wake_when_idle. Default: true.
  bool wake_when_idle = true;
  // As LedgerOptions::replicate. Default: none.
  Replicator replicate;
  // Called once, on the log thread, when a write fails; the sequencer has
  // stopped. Default: none.
  std::function<void(const Status&)> on_fatal_error;
};

struct SequencerStats {
  uint64_t events_total = 0;
  uint64_t group_commits = 0;
  uint64_t commands_total = 0;
  uint64_t last_sequence = 0;
  size_t queued_commands = 0;
  size_t queue_capacity = 0;         // commands the queue holds at most (--queue-max)
  uint64_t queue_full_refusals = 0;  // submissions refused because it was full
  size_t pending_reservations = 0;
  size_t reservations_in_memory = 0;  // pending, just finished, loaded back
};

class Sequencer {
 public:
  // Opens (or creates) the log, loads the last projection checkpoint,
  // re-applies the log tail through State::Apply while checking checksums,
  // the hash chain and continuity, then starts the threads.
  static Result<std::unique_ptr<Sequencer>> Open(SequencerOptions options);
  ~Sequencer();
  Sequencer(const Sequencer&) = delete;
  Sequencer& operator=(const Sequencer&) = delete;

  // Thread-safe. Enqueues `requests` (at most kBatchCommandsMax). Returns
  // false, without enqueuing, when the queue is full or the sequencer stopped;
  // `done` is then never called.
  bool Submit(std::vector<Request> requests, Completion done);

  // Blocking conveniences for tools and tests. A full queue or a stopped
  // sequencer answers kUnavailable.
  Reply Call(Request request);
  std::vector<Reply> CallBatch(std::vector<Request> requests);

  // Registers an observer of durable events, from any thread; it sees the
  // batches written after it was added. Returns a token for RemoveObserver.
  uint64_t AddObserver(EventObserver observer);
  // After it returns, the observer is not running and is never called again.
  void RemoveObserver(uint64_t token);

  // Stops accepting, executes and syncs everything queued, writes a
  // projection checkpoint and joins the threads. Idempotent.
  void Stop();

  bool failed() const { return failed_.load(); }
  SequencerStats stats() const;
  // Latencies of synced log writes and sizes of group commits.
  const Histogram& fsync_histogram() const { return writer_->fsync_histogram(); }
  const Histogram& group_size_histogram() const { return group_size_; }
  // Time per group commit spent executing (sequencer thread) and encoding
  // records (log thread), in microseconds: where the CPU of a commit goes.
  const Histogram& execute_histogram() const { return execute_us_; }
  const Histogram& encode_histogram() const { return writer_->encode_histogram(); }
  // Requests answered, by type (RequestBody index) and result code.
  uint64_t command_count(size_t type, ResultCode code) const {
    return writer_->command_count(type, code);
  }
  // Time from Submit() to the answer, in microseconds, by request type.
  const Histogram& command_latency(size_t type) const { return writer_->command_latency(type); }

  // How many events recovery re-applied after the checkpoint.
  uint64_t recovered_tail_events() const { return recovered_tail_events_; }
  EventLog* log() { return log_.get(); }

 private:
  explicit Sequencer(SequencerOptions options);
  Status WriteDefaultPrices();
  void Loop();
  // Executes one group commit from `submissions` (may be empty: maintenance).
  void RunGroup(std::vector<Submission> submissions, bool final_checkpoint);
  void Execute(const Request& request, Batch* batch, Reply* reply);
  void Checkpoint(Batch* batch);
  int64_t Now();
  // Loads (or creates) the signing key and hands it to the log writer.
  Status EnableSigning();
  int64_t NextWakeUs(int64_t now_us) const;
  void FailAll(const Status& status);

  SequencerOptions options_;
  std::unique_ptr<EventLog> log_;
  State state_;
  Machine machine_{&state_};
  CommandQueue queue_;
  std::unique_ptr<ColdStoreManager> cold_;
  std::unique_ptr<LogWriter> writer_;
  int64_t group_now_us_ = 0;  // the timestamp of the group being executed
  uint64_t batches_pushed_ = 0;
  uint64_t events_since_checkpoint_ = 0;
  uint64_t recovered_tail_events_ = 0;

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> commands_total_{0};
  std::atomic<size_t> pending_reservations_{0};
  std::atomic<size_t> reservations_in_memory_{0};
  Histogram group_size_;
  Histogram execute_us_;

  std::thread thread_;
  std::once_flag stop_once_;
};

}  // namespace purser
