#include "ledger/sequencer.h"

#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <future>

#include "ledger/clock.h"
#include "ledger/event_codec.h"
#include "ledger/limits.h"
#include "ledger/prices.h"
#include "ledger/recovery.h"
#include "ledger/snapshot.h"

namespace purser {

namespace {

uint64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

// The idle timer: expiry runs within this long of a reservation falling due.
constexpr int64_t kIdleWakeUs = 250'000;

}  // namespace

Sequencer::Sequencer(SequencerOptions options) : options_(std::move(options)) {
  if (!options_.clock) options_.clock = WallClockMicros;
}

Result<std::unique_ptr<Sequencer>> Sequencer::Open(SequencerOptions options) {
  std::unique_ptr<Sequencer> sequencer(new Sequencer(std::move(options)));
  EventLogOptions log_options;
  log_options.path = sequencer->options_.data_dir;
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(log_options);
  if (!log.ok()) return log.status();
  sequencer->log_ = std::move(*log);
  if (Status status = sequencer->Recover(); !status.ok()) return status;
  sequencer->log_thread_ = std::thread([s = sequencer.get()] {
    pthread_setname_np(pthread_self(), "purser-log");
    s->LogLoop();
  });
  sequencer->sequencer_thread_ = std::thread([s = sequencer.get()] {
    pthread_setname_np(pthread_self(), "purser-seq");
    s->SequencerLoop();
  });
  if (sequencer->log_->last_sequence() == 0 && sequencer->options_.write_default_prices) {
    if (Status status = sequencer->WriteDefaultPrices(); !status.ok()) return status;
  }
  return sequencer;
}

Status Sequencer::Recover() {
  Sha256Digest link;
  if (Status status = LoadCheckpoint(log_.get(), &state_, &link); !status.ok()) return status;
  uint64_t checkpoint_sequence = state_.last_sequence;
  if (Status status = ReplayLog(log_.get(), &state_, &link, ReplayOptions{}); !status.ok()) {
    return Status::Error("recovery: " + status.message());
  }
  if (state_.last_sequence != log_->last_sequence() || link != log_->last_link()) {
    return Status::Error("recovery: the log's head does not match what was replayed");
  }
  recovered_tail_events_ = state_.last_sequence - checkpoint_sequence;
  events_since_checkpoint_ = recovered_tail_events_;
  durable_sequence_ = state_.last_sequence;
  events_total_ = state_.last_sequence;
  pending_reservations_ = state_.expiry_queue.size();
  return Status::Ok();
}

Status Sequencer::WriteDefaultPrices() {
  std::vector<Request> requests;
  for (const ModelPrice& price : DefaultPriceTable()) {
    requests.push_back(Request{Credentials::System(), cmd::SetPrice{price.model, price.rates}});
  }
  for (const Reply& reply : CallBatch(std::move(requests))) {
    if (!reply.ok()) return Status::Error("writing the default prices: " + reply.message);
  }
  return Status::Ok();
}

Sequencer::~Sequencer() { Stop(); }

bool Sequencer::Submit(std::vector<Request> requests, Completion done) {
  size_t count = requests.size();
  if (count == 0 || count > kBatchCommandsMax) return false;
  std::unique_lock lock(queue_mutex_);
  if (stopping_ || failed_.load() || queued_commands_ + count > options_.queue_commands_max) {
    return false;
  }
  bool was_empty = queue_.empty();
  queue_.push_back(Submission{std::move(requests), {}, std::move(done)});
  queued_commands_ += count;
  lock.unlock();
  if (was_empty) queue_cv_.notify_one();
  return true;
}

Reply Sequencer::Call(Request request) {
  std::vector<Request> requests;
  requests.push_back(std::move(request));
  return std::move(CallBatch(std::move(requests)).front());
}

std::vector<Reply> Sequencer::CallBatch(std::vector<Request> requests) {
  size_t count = requests.size();
  std::promise<std::vector<Reply>> promise;
  std::future<std::vector<Reply>> future = promise.get_future();
  bool accepted = Submit(std::move(requests), [&promise](std::vector<Reply>&& replies) {
    promise.set_value(std::move(replies));
  });
  if (!accepted) {
    return std::vector<Reply>(
        count, Reply::Error(ResultCode::kUnavailable, "the command queue is full or stopped"));
  }
  return future.get();
}

void Sequencer::AddObserver(EventObserver observer) { observers_.push_back(std::move(observer)); }

int64_t Sequencer::Now() { return std::max(state_.last_timestamp_us, options_.clock()); }

int64_t Sequencer::NextWakeUs(int64_t now_us) const {
  int64_t wake = now_us + kIdleWakeUs;
  if (!state_.expiry_queue.empty()) wake = std::min(wake, state_.expiry_queue.begin()->first);
  return wake;
}

void Sequencer::SequencerLoop() {
  while (true) {
    std::vector<Submission> taken;
    bool stopping;
    {
      std::unique_lock lock(queue_mutex_);
      if (queue_.empty() && !stopping_) {
        int64_t now = options_.clock();
        int64_t wake = NextWakeUs(now);
        if (wake > now) {
          queue_cv_.wait_for(lock, std::chrono::microseconds(wake - now),
                             [&] { return !queue_.empty() || stopping_; });
        }
      }
      stopping = stopping_;
      // Take whole submissions until the group is full.
      size_t taken_commands = 0;
      size_t k = 0;
      while (k < queue_.size() &&
             (taken_commands == 0 ||
              taken_commands + queue_[k].requests.size() <= options_.group_commands_max)) {
        taken_commands += queue_[k].requests.size();
        ++k;
      }
      if (k == queue_.size()) {
        taken.swap(queue_);
      } else {
        taken.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.begin() + static_cast<ptrdiff_t>(k)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(k));
      }
      queued_commands_ -= taken_commands;
      if (stopping && taken.empty() && queue_.empty()) break;
    }
    if (failed_.load()) {
      for (Submission& s : taken) {
        s.done(std::vector<Reply>(s.requests.size(),
                                  Reply::Error(ResultCode::kUnavailable, "the log failed")));
      }
      continue;
    }
    RunGroup(std::move(taken), false);
  }
  RunGroup({}, true);  // the final checkpoint
  {
    std::lock_guard lock(pipeline_mutex_);
    pipeline_closed_ = true;
  }
  pipeline_cv_.notify_all();
}

void Sequencer::Execute(const Request& request, Batch* batch, Reply* reply) {
  *reply = machine_.Execute(request, group_now_us_, &batch->events);
  if (!reply->ok()) return;
  if (std::holds_alternative<query::GetChainHead>(request.body)) {
    batch->chain_heads.emplace_back(reply, state_.last_sequence);
  } else if (std::holds_alternative<query::GetDigest>(request.body)) {
    reply->body = DigestView{state_.last_sequence, StateDigest(state_)};
  }
}

void Sequencer::RunGroup(std::vector<Submission> submissions, bool final_checkpoint) {
  auto started = std::chrono::steady_clock::now();
  Batch batch;
  batch.submissions = std::move(submissions);
  // Prepare: one timestamp for the whole group, never earlier than the last.
  const int64_t now = Now();
  group_now_us_ = now;
  Reply ignored;
  if (!state_.expiry_queue.empty() && state_.expiry_queue.begin()->first <= now) {
    Execute(Request{Credentials::System(), cmd::ExpireDue{}}, &batch, &ignored);
  }
  if (machine_.HasRejectionCounts()) {
    int64_t before = final_checkpoint ? INT64_MAX : MinuteOf(now);
    if (auto counts = machine_.TakeRejectionCounts(before)) {
      Execute(Request{Credentials::System(), std::move(*counts)}, &batch, &ignored);
    }
  }
  size_t commands = 0;
  for (Submission& submission : batch.submissions) {
    submission.replies.resize(submission.requests.size());
    for (size_t i = 0; i < submission.requests.size(); ++i) {
      Execute(submission.requests[i], &batch, &submission.replies[i]);
    }
    commands += submission.requests.size();
    submission.requests.clear();  // free memory before the sync
  }
  events_since_checkpoint_ += batch.events.size();
  if (events_since_checkpoint_ >= options_.checkpoint_every_events ||
      (final_checkpoint && events_since_checkpoint_ > 0)) {
    batch.checkpoint = SerializeState(state_);
    events_since_checkpoint_ = 0;
  }
  if (batch.submissions.empty() && batch.events.empty() && !batch.checkpoint) return;
  commands_total_.fetch_add(commands, std::memory_order_relaxed);
  pending_reservations_.store(state_.expiry_queue.size(), std::memory_order_relaxed);
  if (commands > 0) group_size_.Record(commands);
  execute_us_.Record(MicrosSince(started));
  std::unique_lock lock(pipeline_mutex_);
  pipeline_cv_.wait(lock, [&] { return pipeline_.size() < options_.pipeline_depth; });
  pipeline_.push_back(std::move(batch));
  lock.unlock();
  pipeline_cv_.notify_all();
}

void Sequencer::EncodeBatch(Batch* batch, LogBatch* log_batch) {
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
  if (batch->checkpoint) {
    log_->AddCheckpoint(log_->last_sequence(), log_->last_link(), *batch->checkpoint, log_batch);
    batch->checkpoint.reset();
  }
}

void Sequencer::LogLoop() {
  while (true) {
    Batch batch;
    {
      std::unique_lock lock(pipeline_mutex_);
      pipeline_cv_.wait(lock, [&] { return !pipeline_.empty() || pipeline_closed_; });
      if (pipeline_.empty()) return;
      batch = std::move(pipeline_.front());
      pipeline_.pop_front();
    }
    pipeline_cv_.notify_all();
    LogBatch log_batch;
    if (!failed_.load()) {
      auto start = std::chrono::steady_clock::now();
      EncodeBatch(&batch, &log_batch);
      encode_us_.Record(MicrosSince(start));
    }
    if (!failed_.load() && !log_batch.empty()) {
      auto start = std::chrono::steady_clock::now();
      Status status = log_->Write(&log_batch, /*sync=*/true);
      fsync_us_.Record(MicrosSince(start));
      if (!status.ok()) FailAll(status);
    }
    if (failed_.load()) {
      for (Submission& s : batch.submissions) {
        s.done(std::vector<Reply>(s.replies.size(),
                                  Reply::Error(ResultCode::kUnavailable, "the log failed")));
      }
      continue;
    }
    if (!batch.events.empty()) {
      durable_sequence_.store(batch.events.back().sequence, std::memory_order_relaxed);
      events_total_.store(batch.events.back().sequence, std::memory_order_relaxed);
      group_commits_.fetch_add(1, std::memory_order_relaxed);
    }
    for (Submission& s : batch.submissions) s.done(std::move(s.replies));
    for (const EventObserver& observer : observers_) observer(batch.events);
  }
}

void Sequencer::FailAll(const Status& status) {
  std::fprintf(stderr, "purser: FATAL: %s; the sequencer stopped (fail-stop)\n",
               status.message().c_str());
  failed_.store(true);
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (options_.on_fatal_error) options_.on_fatal_error(status);
}

void Sequencer::Stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    if (sequencer_thread_.joinable()) sequencer_thread_.join();
    if (log_thread_.joinable()) log_thread_.join();
  });
}

SequencerStats Sequencer::stats() const {
  SequencerStats stats;
  stats.events_total = events_total_.load(std::memory_order_relaxed);
  stats.group_commits = group_commits_.load(std::memory_order_relaxed);
  stats.commands_total = commands_total_.load(std::memory_order_relaxed);
  stats.last_sequence = durable_sequence_.load(std::memory_order_relaxed);
  stats.pending_reservations = pending_reservations_.load(std::memory_order_relaxed);
  std::lock_guard lock(queue_mutex_);
  stats.queued_commands = queued_commands_;
  return stats;
}

}  // namespace purser
