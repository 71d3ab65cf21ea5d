#include "ledger/engine/log_writer.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>

#include "ledger/base/clock.h"
#include "ledger/log/head_file.h"

namespace purser {

LogWriter::LogWriter(EventLog* log, std::string data_dir, size_t pipeline_depth,
                     const std::atomic<bool>* failed, std::function<void(const Status&)> fail)
    : log_(log),
      data_dir_(std::move(data_dir)),
      pipeline_depth_(pipeline_depth),
      failed_(failed),
      fail_(std::move(fail)) {
  durable_sequence_ = log_->last_sequence();
}

LogWriter::~LogWriter() { Finish(); }

void LogWriter::EnableSigning(NoteSigner signer, int64_t every_us, std::function<int64_t()> clock,
                              uint64_t last_size, int64_t last_time_us) {
  signer_ = std::move(signer);
  sign_every_us_ = every_us;
  clock_ = std::move(clock);
  signed_size_ = last_size;
  signed_time_us_ = last_time_us;
}

void LogWriter::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "purser-log");
    Loop();
  });
}

void LogWriter::Push(Batch batch) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return pipeline_.size() < pipeline_depth_; });
  pipeline_.push_back(std::move(batch));
  lock.unlock();
  changed_.notify_all();
}

void LogWriter::Finish() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t LogWriter::AddObserver(EventObserver observer) {
  std::lock_guard lock(observers_mutex_);
  observers_.emplace_back(next_observer_, std::move(observer));
  return next_observer_++;
}

void LogWriter::RemoveObserver(uint64_t token) {
  std::lock_guard lock(observers_mutex_);  // waits for a call in progress
  std::erase_if(observers_, [token](const auto& entry) { return entry.first == token; });
}

void LogWriter::Loop() {
  std::deque<Batch> batches;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      // Idle for a second: the head mark catches up with the last write.
      // Never idle while a checkpoint is being written outside the log.
      while (!set_aside_ && !changed_.wait_for(lock, std::chrono::seconds(1),
                                               [&] { return !pipeline_.empty() || closed_; })) {
        lock.unlock();
        MaybeWriteHeadMark(/*force=*/false);
        MaybeSignCheckpoint(/*force=*/false);
        lock.lock();
      }
      if (pipeline_.empty()) {
        if (closed_) break;
        lock.unlock();
        WriteSetAsideCheckpointPiece();
        continue;
      }
      // Every batch waiting goes into one write and one fsync: group commit
      // at the log, on top of the committer's.
      batches.swap(pipeline_);
    }
    changed_.notify_all();
    size_t checkpoint_bytes = 0;  // in the synced write
    for (const Batch& batch : batches) {
      if (batch.checkpoint && batch.checkpoint_rewrote_records) {
        checkpoint_bytes += batch.checkpoint->size() + (1 << 20);
      }
    }
    LogBatch log_batch(checkpoint_bytes);
    const bool checkpoint = checkpoint_bytes > 0;
    const uint64_t first_sequence = log_->last_sequence() + 1;
    if (replicator_) {
      replica_records_.clear();
      log_batch.CaptureRecords(&replica_records_);
    }
    if (!failed_->load()) {
      auto start = std::chrono::steady_clock::now();
      for (Batch& batch : batches) {
        EncodeBatch(&batch, &log_batch);
      }
      encode_us_.Record(MicrosSince(start));
    }
    if (!failed_->load() && log_batch.records() > 0 && replicator_) {
      if (Status status = Replicate(first_sequence, &log_batch); !status.ok()) fail_(status);
    }
    if (!failed_->load() && !log_batch.empty()) {
      auto start = std::chrono::steady_clock::now();
      Status status = log_->Write(&log_batch, /*sync=*/true);
      uint64_t elapsed_us = MicrosSince(start);
      fsync_us_.Record(elapsed_us);
      if (checkpoint) {
        std::fprintf(stderr, "purser: checkpoint written: %zu bytes in %llu ms\n",
                     log_batch.bytes(), static_cast<unsigned long long>(elapsed_us / 1000));
      }
      if (!status.ok()) fail_(status);
    }
    for (Batch& batch : batches) CompleteBatch(&batch);
    batches.clear();
    WriteSetAsideCheckpointPiece();
    MaybeWriteHeadMark(/*force=*/false);
    MaybeSignCheckpoint(/*force=*/false);
  }
  while (set_aside_) WriteSetAsideCheckpointPiece();  // at stop: all of it
  MaybeWriteHeadMark(/*force=*/true);  // at stop: the final head
  MaybeSignCheckpoint(/*force=*/true);
}

Status LogWriter::Replicate(uint64_t first_sequence, LogBatch* log_batch) {
  Result<uint64_t> position = replicator_(first_sequence, log_batch->records(), replica_records_);
  if (!position.ok()) return position.status();
  log_->SetReplicaPosition(*position, log_batch);
  return Status::Ok();
}

void LogWriter::EncodeBatch(Batch* batch, LogBatch* log_batch) {
  auto head = batch->chain_heads.begin();
  auto answer_heads = [&](uint64_t up_to) {
    for (; head != batch->chain_heads.end() && head->second <= up_to; ++head) {
      head->first->body = ChainHead{log_->last_sequence(), log_->last_link()};
    }
  };
  answer_heads(log_->last_sequence());
  for (const Event& event : batch->events) {
    encoder_.Encode(event, &payload_);
    log_->Append(event, payload_, log_batch);
    answer_heads(event.sequence);
  }
  answer_heads(UINT64_MAX);
  // In key order: the memtable's skip list inserts neighbours far faster.
  auto by_key = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(batch->cold.records.begin(), batch->cold.records.end(), by_key);
  for (const auto& [key, record] : batch->cold.records) log_->AddColdRecord(key, record, log_batch);
  std::sort(batch->cold.listing.begin(), batch->cold.listing.end(), by_key);
  for (const auto& [key, status] : batch->cold.listing) log_->AddListingEntry(key, status, log_batch);
  batch->cold = ColdWrites{};
  if (!batch->checkpoint) return;
  // A checkpoint set aside earlier in this write is older than this one.
  if (set_aside_) RecycleCheckpointBuffer(std::move(set_aside_->state));
  set_aside_.reset();
  if (batch->checkpoint_rewrote_records) {
    log_->AddCheckpoint(log_->last_sequence(), log_->last_link(), *batch->checkpoint, log_batch);
    RecycleCheckpointBuffer(std::move(*batch->checkpoint));  // the write batch holds a copy
  } else {
    // Set aside, so that the group's acknowledgements never wait for
    // megabytes of derived data (bench/RESULTS.md, "The checkpoint pause").
    set_aside_ = SetAsideCheckpoint{log_->NewCheckpointGeneration(), log_->last_sequence(),
                                    log_->last_link(), std::move(*batch->checkpoint), 0, SteadyMicros()};
  }
  batch->checkpoint.reset();
}

void LogWriter::WriteSetAsideCheckpointPiece() {
  if (!set_aside_) return;
  // Only after the synced write of the batch it follows: it never runs
  // ahead of the durable log, and the cold store now holds every record it
  // leaves out. One chunk per call, then the head: between them the loop
  // writes and acknowledges groups, which never wait for the whole state.
  if (failed_->load()) {
    set_aside_.reset();
    return;
  }
  SetAsideCheckpoint& checkpoint = *set_aside_;
  const std::string_view state = checkpoint.state;
  const uint32_t chunks = EventLog::CheckpointChunks(state.size());
  const int64_t start_us = SteadyMicros();
  const bool head = checkpoint.next_chunk == chunks;
  Status status =
      head ? log_->WriteUnloggedCheckpointHead(checkpoint.generation, checkpoint.sequence, checkpoint.link,
                                               state.size(), chunks)
           : log_->WriteUnloggedCheckpointChunk(checkpoint.generation, state, checkpoint.next_chunk);
  const int64_t end_us = SteadyMicros();
  checkpoint.writing_us += end_us - start_us;
  checkpoint.longest_us = std::max(checkpoint.longest_us, end_us - start_us);
  ++checkpoint.next_chunk;
  if (!status.ok()) {
    set_aside_.reset();
    fail_(status);
    return;
  }
  if (!head) return;
  std::fprintf(stderr,
               "purser: checkpoint written: %zu bytes in %u writes outside the WAL, %lld ms in all, "
               "longest %lld ms, over %lld ms\n",
               state.size(), chunks + 1, static_cast<long long>(checkpoint.writing_us / 1000),
               static_cast<long long>(checkpoint.longest_us / 1000),
               static_cast<long long>((end_us - checkpoint.set_aside_us) / 1000));
  RecycleCheckpointBuffer(std::move(checkpoint.state));
  set_aside_.reset();
}

void LogWriter::RecycleCheckpointBuffer(std::string buffer) {
  buffer.clear();
  std::lock_guard lock(spare_mutex_);
  if (buffer.capacity() > spare_checkpoint_buffer_.capacity()) spare_checkpoint_buffer_ = std::move(buffer);
}

std::string LogWriter::TakeCheckpointBuffer() {
  std::lock_guard lock(spare_mutex_);
  return std::move(spare_checkpoint_buffer_);
}

void LogWriter::CompleteBatch(Batch* batch) {
  if (failed_->load()) {
    for (Submission& s : batch->submissions) {
      s.done(std::vector<Reply>(s.replies.size(),
                                Reply::Error(ResultCode::kUnavailable, "the log failed")));
    }
    return;
  }
  batches_written_.store(batch->number, std::memory_order_release);
  if (!batch->events.empty()) {
    durable_sequence_.store(batch->events.back().sequence, std::memory_order_relaxed);
    group_commits_.fetch_add(1, std::memory_order_relaxed);
  }
  const int64_t now_us = SteadyMicros();
  for (Submission& s : batch->submissions) {
    auto waited = static_cast<uint64_t>(std::max<int64_t>(0, now_us - s.submitted_us));
    for (size_t i = 0; i < s.replies.size(); ++i) {
      size_t type = s.types[i];
      command_counts_[type * kResultCodeCount + static_cast<uint32_t>(s.replies[i].code)]
          .fetch_add(1, std::memory_order_relaxed);
      command_us_[type].Record(waited);
    }
    s.done(std::move(s.replies));
  }
  std::lock_guard lock(observers_mutex_);
  for (const auto& [token, observer] : observers_) observer(batch->events);
}

void LogWriter::MaybeWriteHeadMark(bool force) {
  if (failed_->load() || log_->last_sequence() == head_mark_sequence_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - head_mark_written_ < std::chrono::seconds(1)) return;
  // After the acknowledgements: the mark never runs ahead of the durable log.
  Status status = WriteHeadFile(data_dir_, HeadMark{log_->last_sequence(), log_->last_link()});
  if (!status.ok()) {
    fail_(status);  // a disk that cannot take the mark cannot be trusted with the log
    return;
  }
  head_mark_sequence_ = log_->last_sequence();
  head_mark_written_ = now;
}

void LogWriter::MaybeSignCheckpoint(bool force) {
  if (!signer_ || failed_->load()) return;
  const uint64_t size = log_->merkle_durable_size();
  if (size == signed_size_) return;
  const int64_t now_us = clock_();
  // A clock that stepped back signs at once: waiting for it to catch up
  // would leave the log unsigned for as long as the step.
  if (!force && signed_at_us_ != 0 && now_us >= signed_at_us_ && now_us - signed_at_us_ < sign_every_us_) {
    return;
  }
  // On this thread, after a write: every appended event is durable.
  PURSER_ASSERT(log_->merkle_size() == size);
  LogCheckpoint checkpoint{signer_->name(), size, log_->merkle_root(), std::max(now_us, signed_time_us_)};
  if (now_us < signed_time_us_ && !warned_clock_behind_) {
    warned_clock_behind_ = true;  // once a run: it holds until the clock catches up
    std::fprintf(stderr,
                 "purser: the clock reads %s, before the newest signed checkpoint's time %s: "
                 "checkpoints keep that time until the clock passes it\n",
                 FormatTimestamp(now_us).c_str(), FormatTimestamp(signed_time_us_).c_str());
  }
  Status status = log_->AddSignedCheckpoint(size, signer_->Sign(CheckpointText(checkpoint)));
  if (!status.ok()) {
    fail_(status);
    return;
  }
  signed_size_ = size;
  signed_at_us_ = now_us;
  signed_time_us_ = checkpoint.time_us;
}

}  // namespace purser
