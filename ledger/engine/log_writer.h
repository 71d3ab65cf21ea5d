// The engine's log writer: one thread that takes the committer's batches,
// encodes their events into records (checksums, chain links) with the cold
// records and checkpoint they carry, writes everything waiting in one synced
// RocksDB write, and only then acknowledges the batches' submissions, in
// order, and shows their events to observers. It answers chain-head queries
// (it computes the links) and keeps the head mark (ledger/log/head_file.h).
// A failed write stops everything: nothing of that batch or a later one is
// acknowledged.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ledger/base/histogram.h"
#include "ledger/base/replicator.h"
#include "ledger/base/signed_note.h"
#include "ledger/base/result_code.h"
#include "ledger/base/status.h"
#include "ledger/engine/batch.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"

namespace purser {

// Receives every event once it is durable, in order, on the log thread.
using EventObserver = std::function<void(const std::vector<Event>&)>;

class LogWriter {
 public:
  // `failed` is the engine's fail-stop flag; `fail` raises it (and tells why).
  LogWriter(EventLog* log, std::string data_dir, size_t pipeline_depth, const std::atomic<bool>* failed,
            std::function<void(const Status&)> fail);
  ~LogWriter();

  // Before Start: sign a checkpoint of the tree after the first write, then
  // whenever `every_us` of service time passed since the last one and the
  // tree grew (checked after each write and once a second when idle), and
  // at the end. `last_size` and `last_time_us` are the newest stored
  // checkpoint's tree size and time: a checkpoint's time is never before
  // the previous one's, even when the clock steps back, so that the list
  // of checkpoints is in time order too (Ledger::SignedCheckpoints).
  void EnableSigning(NoteSigner signer, int64_t every_us, std::function<int64_t()> clock,
                     uint64_t last_size, int64_t last_time_us);
  // Before Start: every write is published through `replicator` first.
  void EnableReplication(Replicator replicator) { replicator_ = std::move(replicator); }

  void Start();
  // Committer: hands over a batch, waiting while `pipeline_depth` wait.
  void Push(Batch batch);
  // After the last Push: writes what waits, writes the head mark, joins.
  void Finish();

  // Committer: the buffer of a checkpoint written (empty, with its
  // capacity), for the next one to serialize into; an empty string at first.
  std::string TakeCheckpointBuffer();
  // Keeps a buffer for TakeCheckpointBuffer, cleared, if it is larger than
  // the one kept: a written checkpoint's, or the one recovery read into.
  void RecycleCheckpointBuffer(std::string buffer);

  uint64_t AddObserver(EventObserver observer);
  void RemoveObserver(uint64_t token);

  // The number of the last batch written (acquire: its records are durable).
  uint64_t batches_written() const { return batches_written_.load(std::memory_order_acquire); }
  uint64_t durable_sequence() const { return durable_sequence_.load(std::memory_order_relaxed); }
  uint64_t group_commits() const { return group_commits_.load(std::memory_order_relaxed); }
  void set_durable_sequence(uint64_t sequence) { durable_sequence_ = sequence; }

  const Histogram& fsync_histogram() const { return fsync_us_; }
  const Histogram& encode_histogram() const { return encode_us_; }
  uint64_t command_count(size_t type, ResultCode code) const {
    return command_counts_[type * kResultCodeCount + static_cast<uint32_t>(code)].load(
        std::memory_order_relaxed);
  }
  const Histogram& command_latency(size_t type) const { return command_us_[type]; }

 private:
  void Loop();
  void EncodeBatch(Batch* batch, LogBatch* log_batch);
  void CompleteBatch(Batch* batch);
  // Writes the next piece (a chunk, or at last the head) of the checkpoint
  // EncodeBatch set aside, once its batch is durable and acknowledged
  // (EventLog::WriteUnloggedCheckpointChunk and ...Head).
  void WriteSetAsideCheckpointPiece();
  // Rewrites the head mark once a second (or now, at the end).
  void MaybeWriteHeadMark(bool force);
  // Signs and stores a checkpoint of the durable tree when one is due.
  void MaybeSignCheckpoint(bool force);
  // Publishes the write's records (captured in replica_records_) and notes
  // the position in the batch; an error fails the engine.
  Status Replicate(uint64_t first_sequence, LogBatch* log_batch);

  EventLog* const log_;
  const std::string data_dir_;
  const size_t pipeline_depth_;
  const std::atomic<bool>* const failed_;
  const std::function<void(const Status&)> fail_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> pipeline_;
  bool closed_ = false;
  std::thread thread_;

  // Log thread only.
  EventEncoder encoder_;
  std::string payload_;
  struct SetAsideCheckpoint {
    uint64_t generation = 0;  // its chunks' (EventLog::NewCheckpointGeneration)
    uint64_t sequence = 0;
    Sha256Digest link{};
    std::string state;
    uint32_t next_chunk = 0;  // the chunks before it are written
    int64_t set_aside_us = 0;
    int64_t writing_us = 0;   // in the writes so far
    int64_t longest_us = 0;   // the longest of them
  };
  std::optional<SetAsideCheckpoint> set_aside_;
  uint64_t head_mark_sequence_ = 0;
  std::optional<NoteSigner> signer_;
  Replicator replicator_;
  std::string replica_records_;
  int64_t sign_every_us_ = 0;
  std::function<int64_t()> clock_;
  uint64_t signed_size_ = 0;
  int64_t signed_at_us_ = 0;  // 0: none signed since the start
  int64_t signed_time_us_ = 0;  // the newest checkpoint's time, stored or signed here
  bool warned_clock_behind_ = false;
  std::chrono::steady_clock::time_point head_mark_written_{};

  std::mutex spare_mutex_;
  std::string spare_checkpoint_buffer_;  // guarded by spare_mutex_

  std::mutex observers_mutex_;
  std::vector<std::pair<uint64_t, EventObserver>> observers_;
  uint64_t next_observer_ = 1;

  std::atomic<uint64_t> batches_written_{0};
  std::atomic<uint64_t> durable_sequence_{0};
  std::atomic<uint64_t> group_commits_{0};
  Histogram fsync_us_;
  Histogram encode_us_;
  std::array<std::atomic<uint64_t>, kRequestTypeCount * kResultCodeCount> command_counts_{};
  std::array<Histogram, kRequestTypeCount> command_us_;
};

}  // namespace purser
