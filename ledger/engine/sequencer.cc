#include "ledger/engine/sequencer.h"

#include "ledger/log/head_file.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <queue>

#include "ledger/base/clock.h"
#include "ledger/log/cold_record.h"
#include "ledger/log/event_codec.h"
#include "ledger/base/limits.h"
#include "ledger/machine/prices.h"
#include "ledger/log/recovery.h"
#include "ledger/log/snapshot.h"

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
  log_options.max_open_files = sequencer->options_.max_open_files;
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
  ReplayOptions replay;
  replay.before_apply = [this](const Event& event) {
    return LoadColdRecordsFor(log_.get(), event, &state_);
  };
  if (Status status = ReplayLog(log_.get(), &state_, &link, replay); !status.ok()) {
    if (checkpoint_sequence == 0) return Status::Error("recovery: " + status.message());
    // The tail after a checkpoint needs the cold store; when that fails (a
    // damaged cold record), the whole log is replayed without it.
    std::fprintf(stderr, "purser: recovery after the checkpoint failed (%s); replaying the whole "
                         "log\n", status.message().c_str());
    state_ = State();
    link = Sha256Digest{};
    checkpoint_sequence = 0;
    replay.before_apply = nullptr;
    if (Status again = ReplayLog(log_.get(), &state_, &link, replay); !again.ok()) {
      return Status::Error("recovery: " + again.message());
    }
  }
  if (state_.last_sequence != log_->last_sequence() || link != log_->last_link()) {
    return Status::Error("recovery: the log's head does not match what was replayed");
  }
  if (Status status = CheckHeadMark(); !status.ok()) return status;
  recovered_tail_events_ = state_.last_sequence - checkpoint_sequence;
  events_since_checkpoint_ = recovered_tail_events_;
  durable_sequence_ = state_.last_sequence;
  events_total_ = state_.last_sequence;
  pending_reservations_ = state_.expiry_queue.size();
  return Status::Ok();
}

// The log must reach the head mark written apart from it: a log that lost
// acknowledged events (truncated, or an older copy) is refused unless the
// operator accepts the loss.
Status Sequencer::CheckHeadMark() {
  Result<std::optional<HeadMark>> read = ReadHeadFile(options_.data_dir);
  if (!read.ok()) {
    if (!options_.accept_truncated_log) return read.status();
    std::fprintf(stderr, "purser: %s; rewriting it as accepted\n", read.status().message().c_str());
    return WriteHeadFile(options_.data_dir, HeadMark{log_->last_sequence(), log_->last_link()});
  }
  if (!read->has_value()) return Status::Ok();
  const HeadMark& mark = **read;
  std::string problem;
  if (mark.sequence > log_->last_sequence()) {
    problem = "the log ends at event " + std::to_string(log_->last_sequence()) + " but event " +
              std::to_string(mark.sequence) + " was acknowledged (" + kHeadFileName +
              "): acknowledged events are missing";
  } else if (mark.sequence > 0) {
    std::string record;
    RecordView view;
    Status read_record = log_->ReadRecord(mark.sequence, &record);
    if (read_record.ok()) read_record = DecodeRecord(mark.sequence, record, &view);
    if (!read_record.ok() || view.link != mark.link) {
      problem = "the log does not hold the acknowledged event " + std::to_string(mark.sequence) +
                " of " + kHeadFileName + ": it was replaced or damaged";
    }
  }
  if (problem.empty()) return Status::Ok();
  if (!options_.accept_truncated_log) {
    return Status::Error(problem +
                         ". Refusing to start. To accept the loss, run `purser-replay salvage "
                         "--data-dir " +
                         options_.data_dir + "` or start with --accept-truncated-log");
  }
  std::fprintf(stderr, "purser: WARNING: %s; accepted by the operator (--accept-truncated-log)\n",
               problem.c_str());
  return WriteHeadFile(options_.data_dir, HeadMark{log_->last_sequence(), log_->last_link()});
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
  std::vector<uint8_t> types;
  types.reserve(requests.size());
  for (const Request& request : requests) types.push_back(static_cast<uint8_t>(request.body.index()));
  int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  queue_.push_back(Submission{std::move(requests), {}, std::move(done), std::move(types), now_us});
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

uint64_t Sequencer::AddObserver(EventObserver observer) {
  std::lock_guard lock(observers_mutex_);
  observers_.emplace_back(next_observer_, std::move(observer));
  return next_observer_++;
}

void Sequencer::RemoveObserver(uint64_t token) {
  std::lock_guard lock(observers_mutex_);  // waits for a call in progress
  std::erase_if(observers_, [token](const auto& entry) { return entry.first == token; });
}

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
  ReleaseEvictions();
  Prefetch(submissions);
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
  events_since_checkpoint_ += batch.events.size();
  // Records loaded from the cold store leave memory at a checkpoint too:
  // reads alone (listings) must not grow memory without bound.
  if (events_since_checkpoint_ >= options_.checkpoint_every_events ||
      loaded_.size() >= kLoadedRecordsMax ||
      (final_checkpoint && events_since_checkpoint_ > 0)) {
    Checkpoint(&batch);
  }
  if (batch.submissions.empty() && batch.events.empty() && !batch.checkpoint) return;
  commands_total_.fetch_add(commands, std::memory_order_relaxed);
  pending_reservations_.store(state_.expiry_queue.size(), std::memory_order_relaxed);
  reservations_in_memory_.store(state_.reservations.size(), std::memory_order_relaxed);
  if (commands > 0) group_size_.Record(commands);
  execute_us_.Record(MicrosSince(started));
  batch.number = ++batches_pushed_;
  if (!evictions_.empty() && evictions_.back().batch == 0) evictions_.back().batch = batch.number;
  std::unique_lock lock(pipeline_mutex_);
  pipeline_cv_.wait(lock, [&] { return pipeline_.size() < options_.pipeline_depth; });
  pipeline_.push_back(std::move(batch));
  lock.unlock();
  pipeline_cv_.notify_all();
}

void Sequencer::Prefetch(const std::vector<Submission>& submissions) {
  prefetch_keys_.clear();
  prefetch_status_ = Status::Ok();
  auto want_reservation = [&](const std::string& id) {
    if (state_.FindReservation(id) == nullptr) prefetch_keys_.push_back(ColdKey('r', id));
  };
  auto want_usage = [&](const std::string& id) {
    if (!state_.usages.contains(id)) prefetch_keys_.push_back(ColdKey('u', id));
  };
  for (const Submission& submission : submissions) {
    for (const Request& request : submission.requests) {
      std::visit(
          [&](const auto& body) {
            using T = std::decay_t<decltype(body)>;
            if constexpr (std::is_same_v<T, cmd::Reserve> || std::is_same_v<T, cmd::Settle> ||
                          std::is_same_v<T, cmd::Void> || std::is_same_v<T, cmd::Extend>) {
              want_reservation(body.reservation_id);
            } else if constexpr (std::is_same_v<T, query::GetReservation>) {
              want_reservation(body.reservation_id);
            } else if constexpr (std::is_same_v<T, query::ListReservations>) {
              PrefetchListing(body);
            } else if constexpr (std::is_same_v<T, cmd::RecordUsage>) {
              want_usage(body.usage_id);
            } else if constexpr (std::is_same_v<T, cmd::Refund>) {
              if (body.target_kind == ChargeKind::kUsage) {
                want_usage(body.target_id);
              } else {
                want_reservation(body.target_id);
              }
            }
          },
          request.body);
    }
  }
  if (!prefetch_status_.ok()) {
    FailAll(prefetch_status_);
    return;
  }
  if (prefetch_keys_.empty()) return;
  std::sort(prefetch_keys_.begin(), prefetch_keys_.end());
  prefetch_keys_.erase(std::unique(prefetch_keys_.begin(), prefetch_keys_.end()),
                       prefetch_keys_.end());
  std::vector<std::string> values;
  std::vector<bool> found;
  Status status = log_->GetColdRecords(prefetch_keys_, &values, &found);
  for (size_t i = 0; status.ok() && i < prefetch_keys_.size(); ++i) {
    if (!found[i]) continue;
    uint64_t version = 0;
    if (!LoadColdRecord(prefetch_keys_[i], values[i], &state_, &version)) {
      status = Status::Error("corrupt cold record " + prefetch_keys_[i]);
      break;
    }
    loaded_[prefetch_keys_[i]] = version;
  }
  // A command that needs a record the store cannot give must not run
  // against a state that lacks it: stop, as for a failed write.
  if (!status.ok()) FailAll(status);
}

void Sequencer::PrefetchListing(const query::ListReservations& q) {
  // Pending reservations are always in memory; finished ones may be in the
  // cold store. The answer is the oldest `limit` of memory and cold store
  // together, so load the oldest `limit` matching cold ones that memory does
  // not hold (merged over the subtree's accounts); the query sees both.
  if (q.status == ReservationStatus::kPending || !prefetch_status_.ok()) return;
  AccountIndex root = state_.FindAccount(q.account);
  if (root == kNoAccount) return;
  size_t limit = std::clamp<size_t>(q.limit, 1, kListLimitMax);
  std::vector<std::string> prefixes;
  for (AccountIndex a = 0; a < state_.accounts.size(); ++a) {
    if (state_.IsInSubtree(a, root)) prefixes.push_back(ListingPrefix(a));
  }
  // The best `limit` so far, greatest (newest) on top.
  std::priority_queue<std::pair<int64_t, std::string>> best;
  prefetch_status_ = log_->ScanListing(prefixes, [&](std::string_view key, std::string_view value) {
    if (key.size() < kListingIdOffset) return false;
    std::pair<int64_t, std::string> entry{ListingCreated(key),
                                          std::string(key.substr(kListingIdOffset))};
    // An account's entries are oldest first: nothing later in it can beat
    // the best `limit` found.
    if (best.size() == limit && entry >= best.top()) return false;
    if (q.status && (value.size() != 1 || static_cast<uint8_t>(value[0]) !=
                                              static_cast<uint8_t>(*q.status))) {
      return true;
    }
    // In memory: its entry here may be stale, and the query sees it anyway.
    if (state_.FindReservation(entry.second) != nullptr) return true;
    best.push(std::move(entry));
    if (best.size() > limit) best.pop();
    return true;
  });
  for (; !best.empty(); best.pop()) prefetch_keys_.push_back(ColdKey('r', best.top().second));
}

bool Sequencer::CleanReload(const std::string& key, uint64_t version) const {
  auto it = loaded_.find(key);
  return it != loaded_.end() && it->second == version;
}

void Sequencer::AddListingEntries(const std::vector<const Reservation*>& written,
                                  Batch* batch) {
  // In key order (account, created, id), for a cheap insert into RocksDB;
  // the sort keys sit in the array, so that comparing rarely leaves it.
  struct Item {
    AccountIndex account;
    int64_t created_us;
    const Reservation* reservation;
  };
  std::vector<Item> items;
  items.reserve(written.size());
  for (const Reservation* r : written) items.push_back({r->account, r->created_us, r});
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.account != b.account) return a.account < b.account;
    if (a.created_us != b.created_us) return a.created_us < b.created_us;
    return a.reservation->id < b.reservation->id;
  });
  batch->listing.reserve(items.size());
  for (const Item& item : items) batch->listing.push_back(ListingEntry(*item.reservation));
}

void Sequencer::Checkpoint(Batch* batch) {
  auto started = std::chrono::steady_clock::now();
  Eviction eviction;
  std::string key;
  std::vector<const Reservation*> written;
  for (const auto& [id, reservation] : state_.reservations) {
    if (reservation.status == ReservationStatus::kPending) continue;
    eviction.records.emplace_back('r', id, reservation.version);
    key = ColdKey('r', id);
    // Loaded and unchanged since: the cold store holds this very version.
    if (CleanReload(key, reservation.version)) continue;
    batch->cold_records.emplace_back(std::move(key), EncodeColdReservation(reservation));
    written.push_back(&reservation);
  }
  AddListingEntries(written, batch);
  for (const auto& [id, usage] : state_.usages) {
    eviction.records.emplace_back('u', id, usage.version);
    key = ColdKey('u', id);
    if (CleanReload(key, usage.version)) continue;
    batch->cold_records.emplace_back(std::move(key), EncodeColdUsage(id, usage));
  }
  loaded_.clear();
  SnapshotOptions options;
  options.finished_records = false;  // they are in the cold store, in this batch
  batch->checkpoint = SerializeState(state_, options);
  std::fprintf(stderr,
               "purser: checkpoint at event %llu: %zu bytes of state, %zu records to the cold "
               "store, %llu ms\n",
               static_cast<unsigned long long>(state_.last_sequence), batch->checkpoint->size(),
               batch->cold_records.size(),
               static_cast<unsigned long long>(MicrosSince(started) / 1000));
  evictions_.push_back(std::move(eviction));  // its batch number is set when pushed
  events_since_checkpoint_ = 0;
}

void Sequencer::ReleaseEvictions() {
  uint64_t written = batches_written_.load(std::memory_order_acquire);
  while (!evictions_.empty() && evictions_.front().batch != 0 && evictions_.front().batch <= written) {
    for (const auto& [kind, id, version] : evictions_.front().records) {
      if (kind == 'r') {
        state_.EvictReservation(id, version);
      } else {
        state_.EvictUsage(id, version);
      }
    }
    evictions_.pop_front();
  }
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
  // In key order: the memtable's skip list inserts neighbours far faster.
  std::sort(batch->cold_records.begin(), batch->cold_records.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, record] : batch->cold_records) {
    log_->AddColdRecord(key, record, log_batch);
  }
  batch->cold_records.clear();
  // Already in key order (AddListingEntries).
  for (const auto& [key, status] : batch->listing) log_->AddListingEntry(key, status, log_batch);
  batch->listing.clear();
  if (batch->checkpoint) {
    log_->AddCheckpoint(log_->last_sequence(), log_->last_link(), *batch->checkpoint, log_batch);
    batch->checkpoint.reset();
  }
}

void Sequencer::LogLoop() {
  std::deque<Batch> batches;
  while (true) {
    {
      std::unique_lock lock(pipeline_mutex_);
      // Idle for a second: the head mark catches up with the last write.
      while (!pipeline_cv_.wait_for(lock, std::chrono::seconds(1),
                                    [&] { return !pipeline_.empty() || pipeline_closed_; })) {
        lock.unlock();
        MaybeWriteHeadMark(/*force=*/false);
        lock.lock();
      }
      if (pipeline_.empty()) break;
      // Every batch waiting goes into one write and one fsync: group commit
      // at the log, on top of the sequencer's.
      batches.swap(pipeline_);
    }
    pipeline_cv_.notify_all();
    LogBatch log_batch;
    bool checkpoint = false;
    if (!failed_.load()) {
      auto start = std::chrono::steady_clock::now();
      for (Batch& batch : batches) {
        checkpoint = checkpoint || batch.checkpoint.has_value();
        EncodeBatch(&batch, &log_batch);
      }
      encode_us_.Record(MicrosSince(start));
    }
    if (!failed_.load() && !log_batch.empty()) {
      auto start = std::chrono::steady_clock::now();
      Status status = log_->Write(&log_batch, /*sync=*/true);
      uint64_t elapsed_us = MicrosSince(start);
      fsync_us_.Record(elapsed_us);
      if (checkpoint) {
        std::fprintf(stderr, "purser: checkpoint written: %zu bytes in %llu ms\n",
                     log_batch.bytes(), static_cast<unsigned long long>(elapsed_us / 1000));
      }
      if (!status.ok()) FailAll(status);
    }
    for (Batch& batch : batches) CompleteBatch(&batch);
    batches.clear();
    MaybeWriteHeadMark(/*force=*/false);
  }
  MaybeWriteHeadMark(/*force=*/true);  // at stop: the final head
}

void Sequencer::MaybeWriteHeadMark(bool force) {
  if (failed_.load() || log_->last_sequence() == head_mark_sequence_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - head_mark_written_ < std::chrono::seconds(1)) return;
  // After the acknowledgements: the mark never runs ahead of the durable log.
  Status status = WriteHeadFile(options_.data_dir, HeadMark{log_->last_sequence(), log_->last_link()});
  if (!status.ok()) {
    FailAll(status);  // a disk that cannot take the mark cannot be trusted with the log
    return;
  }
  head_mark_sequence_ = log_->last_sequence();
  head_mark_written_ = now;
}

void Sequencer::CompleteBatch(Batch* batch) {
  if (failed_.load()) {
    for (Submission& s : batch->submissions) {
      s.done(std::vector<Reply>(s.replies.size(),
                                Reply::Error(ResultCode::kUnavailable, "the log failed")));
    }
    return;
  }
  batches_written_.store(batch->number, std::memory_order_release);
  if (!batch->events.empty()) {
    durable_sequence_.store(batch->events.back().sequence, std::memory_order_relaxed);
    events_total_.store(batch->events.back().sequence, std::memory_order_relaxed);
    group_commits_.fetch_add(1, std::memory_order_relaxed);
  }
  int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
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
  stats.events_total = events_total_.load(std::memory_order_relaxed);
  stats.group_commits = group_commits_.load(std::memory_order_relaxed);
  stats.commands_total = commands_total_.load(std::memory_order_relaxed);
  stats.last_sequence = durable_sequence_.load(std::memory_order_relaxed);
  stats.pending_reservations = pending_reservations_.load(std::memory_order_relaxed);
  stats.reservations_in_memory = reservations_in_memory_.load(std::memory_order_relaxed);
  std::lock_guard lock(queue_mutex_);
  stats.queued_commands = queued_commands_;
  return stats;
}

}  // namespace purser
