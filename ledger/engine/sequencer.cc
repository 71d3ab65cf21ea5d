#include "ledger/engine/sequencer.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/engine/recover.h"
#include "ledger/log/cold_record.h"
#include "ledger/log/snapshot.h"
#include "ledger/machine/prices.h"

namespace purser {

namespace {

// The idle timer: expiry runs within this long of a reservation falling due.
constexpr int64_t kIdleWakeUs = 250'000;
// Without idle wakes: a wait long enough to mean "until a submission".
constexpr int64_t kNoIdleWakeUs = 3'600'000'000;

}  // namespace

Sequencer::Sequencer(SequencerOptions options)
    : options_(std::move(options)), queue_(options_.queue_commands_max) {
  if (!options_.clock) options_.clock = WallClockMicros;
}

Result<std::unique_ptr<Sequencer>> Sequencer::Open(SequencerOptions options) {
  std::unique_ptr<Sequencer> s(new Sequencer(std::move(options)));
  EventLogOptions log_options;
  log_options.path = s->options_.data_dir;
  log_options.max_open_files = s->options_.max_open_files;
  log_options.merkle_tree = s->options_.merkle_tree;
  log_options.env = s->options_.storage_env;
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(log_options);
  if (!log.ok()) return log.status();
  s->log_ = std::move(*log);
  RecoverOptions recover{s->options_.data_dir, s->options_.accept_truncated_log};
  // The memory the checkpoint was read into, its pages already touched:
  // the first checkpoint after the start serializes into it instead of
  // fresh pages (~3 ms per MB here; bench/RESULTS.md, "The checkpoint pause").
  std::string checkpoint_buffer;
  if (Status status = RecoverState(s->log_.get(), recover, &s->state_, &s->recovered_tail_events_,
                                   &checkpoint_buffer);
      !status.ok()) {
    return status;
  }
  s->events_since_checkpoint_ = s->recovered_tail_events_;
  s->pending_reservations_ = s->state_.expiry_queue.size();
  s->cold_ = std::make_unique<ColdStoreManager>(s->log_.get(), &s->state_);
  s->cold_->AdoptRecovered();
  // Debug builds: each record a command misses in memory was prefetched.
  s->machine_.CheckMissesAgainst([cold = s->cold_.get()](char kind, std::string_view id) {
    return cold->LookedFor(kind, id);
  });
  s->writer_ = std::make_unique<LogWriter>(s->log_.get(), s->options_.data_dir,
                                           s->options_.pipeline_depth, &s->failed_,
                                           [p = s.get()](const Status& status) { p->FailAll(status); });
  s->writer_->RecycleCheckpointBuffer(std::move(checkpoint_buffer));
  if (s->options_.merkle_tree) {
    if (Status status = s->EnableSigning(); !status.ok()) return status;
  }
  if (s->options_.replicate) s->writer_->EnableReplication(s->options_.replicate);
  s->writer_->Start();
  s->thread_ = std::thread([p = s.get()] {
    pthread_setname_np(pthread_self(), "purser-seq");
    p->Loop();
  });
  if (s->log_->last_sequence() == 0 && s->options_.write_default_prices) {
    if (Status status = s->WriteDefaultPrices(); !status.ok()) return status;
  }
  return s;
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
  if (requests.empty() || requests.size() > kBatchCommandsMax || failed_.load()) return false;
  return queue_.Push(requests, done);
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

uint64_t Sequencer::AddObserver(EventObserver observer) { return writer_->AddObserver(std::move(observer)); }

void Sequencer::RemoveObserver(uint64_t token) { writer_->RemoveObserver(token); }

Status Sequencer::EnableSigning() {
  Result<NoteSigner> signer = LoadOrCreateLogKey(options_.data_dir);
  if (!signer.ok()) return signer.status().WithContext("the log's signing key: ");
  uint64_t size = 0;
  std::string note;
  if (Status status = log_->LatestSignedCheckpoint(&size, &note); !status.ok()) return status;
  LogCheckpoint latest;
  if (size > 0) {
    // The stored checkpoints and the key must belong together: a replaced
    // log.key would sign checkpoints that no earlier log.pub verifies.
    Result<NoteVerifier> verifier = NoteVerifier::FromVerifierKey(signer->VerifierKeyText());
    if (!verifier.ok()) return verifier.status();
    Result<std::string> text = verifier->Open(note);
    if (!text.ok()) {
      return Status::Corruption(std::string("the newest signed checkpoint does not verify with ") +
                                kLogPrivateKeyFile + "'s key (" + text.status().message() +
                                "): the signing key was replaced");
    }
    if (Status status = ParseCheckpointText(*text, &latest); !status.ok()) {
      return status.WithContext("the newest signed checkpoint: ");
    }
  }
  writer_->EnableSigning(std::move(*signer), options_.sign_every_us, options_.clock, size, latest.time_us);
  return Status::Ok();
}

int64_t Sequencer::Now() { return std::max(state_.last_timestamp_us, options_.clock()); }

int64_t Sequencer::NextWakeUs(int64_t now_us) const {
  if (!options_.wake_when_idle) return now_us + kNoIdleWakeUs;
  int64_t wake = now_us + kIdleWakeUs;
  if (!state_.expiry_queue.empty()) wake = std::min(wake, state_.expiry_queue.begin()->first);
  return wake;
}

void Sequencer::Loop() {
  while (true) {
    const int64_t now = options_.clock();
    CommandQueue::Taken taken = queue_.Take(options_.group_commands_max, NextWakeUs(now) - now);
    if (taken.closed) break;
    if (failed_.load()) {
      for (Submission& s : taken.submissions) {
        s.done(std::vector<Reply>(s.requests.size(),
                                  Reply::Error(ResultCode::kUnavailable, "the log failed")));
      }
      continue;
    }
    RunGroup(std::move(taken.submissions), false);
  }
  RunGroup({}, true);  // the final checkpoint
  writer_->Finish();
}

void Sequencer::Execute(const Request& request, Batch* batch, Reply* reply) {
  const size_t events_before = batch->events.size();
  *reply = machine_.Execute(request, group_now_us_, &batch->events);
  if (!reply->ok()) {
    PURSER_ASSERT(batch->events.size() == events_before);  // a refused command emits nothing
    return;
  }
  if (std::holds_alternative<query::GetChainHead>(request.body)) {
    batch->chain_heads.emplace_back(reply, state_.last_sequence);
  } else if (std::holds_alternative<query::GetDigest>(request.body)) {
    LogColdStore cold(log_.get());
    Result<Sha256Digest> digest = StateDigest(state_, &cold);
    if (digest.ok()) {
      reply->body = DigestView{state_.last_sequence, *digest};
    } else {
      *reply = Reply::Error(ResultCode::kUnavailable, digest.status().message());
    }
  }
}

void Sequencer::RunGroup(std::vector<Submission> submissions, bool final_checkpoint) {
  auto started = std::chrono::steady_clock::now();
  cold_->Release(writer_->batches_written());
  if (Status status = cold_->Prefetch(submissions); !status.ok()) {
    // A command that needs a record the store cannot give must not run
    // against a state that lacks it: stop, as for a failed write.
    FailAll(status);
  }
  Batch batch;
  batch.submissions = std::move(submissions);
  size_t expected_events = 8;
  for (const Submission& submission : batch.submissions) expected_events += submission.requests.size();
  batch.events.reserve(expected_events + expected_events / 4);  // no moves of big Events
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
  cold_->Retire(batch.events, &batch.cold);
  events_since_checkpoint_ += batch.events.size();
  // Records loaded back leave memory at a checkpoint: reads alone
  // (listings) must not grow memory without bound.
  if (events_since_checkpoint_ >= options_.checkpoint_every_events ||
      cold_->loaded() >= ColdStoreManager::kLoadedRecordsMax ||
      (final_checkpoint && (events_since_checkpoint_ > 0 || cold_->dirty() > 0))) {
    Checkpoint(&batch);
  }
  if (batch.submissions.empty() && batch.events.empty() && !batch.checkpoint) return;
  commands_total_.fetch_add(commands, std::memory_order_relaxed);
  pending_reservations_.store(state_.expiry_queue.size(), std::memory_order_relaxed);
  reservations_in_memory_.store(state_.reservations.size(), std::memory_order_relaxed);
  if (commands > 0) group_size_.Record(commands);
  execute_us_.Record(MicrosSince(started));
  batch.number = ++batches_pushed_;
  cold_->Pushed(batch.number);
  writer_->Push(std::move(batch));
}

void Sequencer::Checkpoint(Batch* batch) {
  auto started = std::chrono::steady_clock::now();
  const size_t retired = batch->cold.records.size();
  cold_->Checkpoint(&batch->cold);
  SnapshotOptions options;
  options.finished_records = false;  // they are in the cold store, or in this batch
  batch->checkpoint = writer_->TakeCheckpointBuffer();
  const auto serializing = std::chrono::steady_clock::now();
  SerializeState(state_, options, &*batch->checkpoint);
  const size_t rewritten = batch->cold.records.size() - retired;
  batch->checkpoint_rewrote_records = rewritten > 0;
  std::fprintf(stderr,
               "purser: checkpoint at event %llu: %zu bytes of state, %zu changed records "
               "rewritten, %llu ms (serializing %llu ms)\n",
               static_cast<unsigned long long>(state_.last_sequence), batch->checkpoint->size(),
               rewritten, static_cast<unsigned long long>(MicrosSince(started) / 1000),
               static_cast<unsigned long long>(MicrosSince(serializing) / 1000));
  events_since_checkpoint_ = 0;
}

void Sequencer::FailAll(const Status& status) {
  std::fprintf(stderr, "purser: FATAL: %s; the sequencer stopped (fail-stop)\n",
               status.message().c_str());
  failed_.store(true);
  queue_.Close();
  if (options_.on_fatal_error) options_.on_fatal_error(status);
}

void Sequencer::Stop() {
  std::call_once(stop_once_, [this] {
    queue_.Close();
    if (thread_.joinable()) thread_.join();
    if (writer_) writer_->Finish();
    // A clean stop leaves no WAL to replay: the next open, and any
    // read-only replay tool, starts at once.
    if (log_ && !failed_.load()) {
      if (Status status = log_->FlushAll(); !status.ok()) {
        std::fprintf(stderr, "purser: flush at stop: %s\n", status.message().c_str());
      }
    }
  });
}

SequencerStats Sequencer::stats() const {
  SequencerStats stats;
  stats.events_total = writer_->durable_sequence();
  stats.group_commits = writer_->group_commits();
  stats.commands_total = commands_total_.load(std::memory_order_relaxed);
  stats.last_sequence = writer_->durable_sequence();
  stats.pending_reservations = pending_reservations_.load(std::memory_order_relaxed);
  stats.reservations_in_memory = reservations_in_memory_.load(std::memory_order_relaxed);
  stats.queued_commands = queue_.queued_commands();
  stats.queue_capacity = queue_.capacity();
  stats.queue_full_refusals = queue_.refused_full();
  return stats;
}

}  // namespace purser
