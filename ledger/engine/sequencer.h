// The single-writer sequencer with group commit.
//
// One thread (the sequencer's) owns the State and the Machine. Producers on
// any thread Submit() requests into a bounded queue. The sequencer takes
// everything waiting (up to a limit), stamps it with one timestamp, expires
// due reservations, executes each request through the machine, encodes the
// events into one RocksDB WriteBatch and hands the batch to the log thread.
// The log thread writes it with sync = true and only then completes the
// requests of that batch (in order). While one batch is being synced the
// sequencer already executes the next, so the disk and the CPU overlap; a
// later batch is never acknowledged before an earlier one, and a failed write
// stops everything (fail-stop): no request of that batch or a later one is
// acknowledged, and no further request is accepted.
//
// Queries travel the same path, so an answer reflects every command answered
// before it was sent (read-your-writes) and only state that is durable by the
// time the answer is delivered.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <tuple>
#include <vector>

#include "ledger/machine/commands.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "ledger/base/histogram.h"
#include "ledger/machine/machine.h"
#include "ledger/machine/state.h"
#include "ledger/base/status.h"

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
  // A projection checkpoint is written after this many events; finished
  // reservations and usage records then move to the cold store, which bounds
  // memory by the traffic of one interval, and the checkpoint's pause of the
  // sequencer with it (~0.6 s per million events here). Default: 1,000,000.
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
  // Called once, on the log thread, when a write fails; the sequencer has
  // stopped. Default: none.
  std::function<void(const Status&)> on_fatal_error;
};

// Completes a submission: one reply per request, in order. Runs on the log
// thread after the batch holding the submission's events is durable; keep it
// short (hand the replies to another thread).
using Completion = std::function<void(std::vector<Reply>&&)>;

// Receives every event once it is durable, in order, on the log thread.
using EventObserver = std::function<void(const std::vector<Event>&)>;

struct SequencerStats {
  uint64_t events_total = 0;
  uint64_t group_commits = 0;
  uint64_t commands_total = 0;
  uint64_t last_sequence = 0;
  size_t queued_commands = 0;
  size_t pending_reservations = 0;
  size_t reservations_in_memory = 0;  // pending and recently finished
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
  const Histogram& fsync_histogram() const { return fsync_us_; }
  const Histogram& group_size_histogram() const { return group_size_; }
  // Time per group commit spent executing (sequencer thread) and encoding
  // records (log thread), in microseconds: where the CPU of a commit goes.
  const Histogram& execute_histogram() const { return execute_us_; }
  const Histogram& encode_histogram() const { return encode_us_; }
  // Requests answered, by type (RequestBody index) and result code.
  uint64_t command_count(size_t type, ResultCode code) const {
    return command_counts_[type * kResultCodeCount + static_cast<uint32_t>(code)].load(
        std::memory_order_relaxed);
  }
  // Time from Submit() to the answer, in microseconds, by request type.
  const Histogram& command_latency(size_t type) const { return command_us_[type]; }

  // How many events recovery re-applied after the checkpoint.
  uint64_t recovered_tail_events() const { return recovered_tail_events_; }
  EventLog* log() { return log_.get(); }

 private:
  struct Submission {
    std::vector<Request> requests;
    std::vector<Reply> replies;
    Completion done;
    std::vector<uint8_t> types;  // RequestBody index of each request, for metrics
    int64_t submitted_us = 0;    // steady clock
  };
  struct Batch {
    std::vector<Submission> submissions;
    std::vector<Event> events;
    // Chain-head queries answered by the log thread, which computes links:
    // the reply to fill and the sequence it asks about.
    std::vector<std::pair<Reply*, uint64_t>> chain_heads;
    // A projection checkpoint of the state after the batch's last event,
    // and the finished records that move to the cold store with it.
    std::optional<std::string> checkpoint;
    std::vector<std::pair<std::string, std::string>> cold_records;
    // Listing-index entries of the reservations among them: (key, status).
    std::vector<std::pair<std::string, std::string>> listing;
    uint64_t number = 0;  // batches are numbered 1, 2, ... in order
  };
  // Records that went to the cold store in batch `batch`: dropped from
  // memory once that batch is written, unless changed again since.
  struct Eviction {
    uint64_t batch = 0;
    std::vector<std::tuple<char, std::string, uint64_t>> records;  // kind, id, version
  };

  explicit Sequencer(SequencerOptions options);
  Status Recover();
  Status CheckHeadMark();
  // Log thread: rewrites the head mark once a second (or now, at stop).
  void MaybeWriteHeadMark(bool force);
  Status WriteDefaultPrices();
  void SequencerLoop();
  void LogLoop();
  // Executes one group commit from `submissions` (may be empty: maintenance).
  void RunGroup(std::vector<Submission> submissions, bool final_checkpoint);
  void Execute(const Request& request, Batch* batch, Reply* reply);
  // Prefetch phase: loads from the cold store the records the submissions
  // refer to that memory does not hold, so that commit does no I/O.
  void Prefetch(const std::vector<Submission>& submissions);
  void PrefetchListing(const query::ListReservations& q);
  // Whether the record under cold-store `key` was loaded and is unchanged.
  bool CleanReload(const std::string& key, uint64_t version) const;
  void Checkpoint(Batch* batch);
  // Listing-index entries of the finished reservations going to the cold
  // store, in key order, into batch->listing.
  void AddListingEntries(const std::vector<const Reservation*>& written, Batch* batch);
  void ReleaseEvictions();
  // Log thread: encodes the batch's events into records (checksums, chain
  // links) and answers its chain-head queries.
  void EncodeBatch(Batch* batch, LogBatch* log_batch);
  // Log thread: acknowledges a written batch (or fails it) and tells observers.
  void CompleteBatch(Batch* batch);
  int64_t Now();
  int64_t NextWakeUs(int64_t now_us) const;
  void FailAll(const Status& status);

  SequencerOptions options_;
  std::unique_ptr<EventLog> log_;
  State state_;
  Machine machine_{&state_};
  EventEncoder encoder_;  // log thread only
  std::string payload_;   // log thread only
  int64_t group_now_us_ = 0;  // the timestamp of the group being executed
  uint64_t batches_pushed_ = 0;
  std::deque<Eviction> evictions_;
  std::vector<std::string> prefetch_keys_;
  Status prefetch_status_;
  // Records loaded from the cold store since the last checkpoint, by
  // cold-store key, with the version loaded.
  std::unordered_map<std::string, uint64_t> loaded_;
  static constexpr size_t kLoadedRecordsMax = 200'000;
  uint64_t events_since_checkpoint_ = 0;
  uint64_t recovered_tail_events_ = 0;
  uint64_t head_mark_sequence_ = 0;  // log thread only
  std::chrono::steady_clock::time_point head_mark_written_{};
  std::mutex observers_mutex_;
  std::vector<std::pair<uint64_t, EventObserver>> observers_;
  uint64_t next_observer_ = 1;

  // Producer queue.
  mutable std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::vector<Submission> queue_;
  size_t queued_commands_ = 0;
  bool stopping_ = false;

  // Sequencer -> log thread.
  std::mutex pipeline_mutex_;
  std::condition_variable pipeline_cv_;
  std::deque<Batch> pipeline_;
  bool pipeline_closed_ = false;

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> events_total_{0};
  std::atomic<uint64_t> group_commits_{0};
  std::atomic<uint64_t> commands_total_{0};
  std::atomic<uint64_t> durable_sequence_{0};
  std::atomic<uint64_t> batches_written_{0};
  std::atomic<size_t> pending_reservations_{0};
  std::atomic<size_t> reservations_in_memory_{0};
  Histogram fsync_us_;
  Histogram group_size_;
  Histogram execute_us_;
  Histogram encode_us_;
  std::array<std::atomic<uint64_t>, kRequestTypeCount * kResultCodeCount> command_counts_{};
  std::array<Histogram, kRequestTypeCount> command_us_;

  std::thread sequencer_thread_;
  std::thread log_thread_;
  std::once_flag stop_once_;
};

}  // namespace purser
