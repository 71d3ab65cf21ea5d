#include "ledger/ledger.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "ledger/engine/sequencer.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "ledger/log/merkle_store.h"
#include "ledger/base/signed_note.h"
#include "ledger/wire/event_json.h"

namespace purser {

// ---- SideStore ---------------------------------------------------------------------

void SideStore::Batch::Put(std::string key, std::string value) {
  ops_.push_back(Op{std::move(key), std::move(value), true});
}
void SideStore::Batch::Delete(std::string key) { ops_.push_back(Op{std::move(key), {}, false}); }

bool SideStore::Get(std::string_view key, std::string* value) const {
  rocksdb::ColumnFamilyHandle* family = log_->notify_family();
  if (family == nullptr) return false;
  return log_->db()->Get(rocksdb::ReadOptions(), family, rocksdb::Slice(key.data(), key.size()), value).ok();
}

Status SideStore::Put(std::string_view key, std::string_view value, bool sync) {
  Batch batch;
  batch.Put(std::string(key), std::string(value));
  return Write(batch, sync);
}

Status SideStore::Write(const Batch& batch, bool sync) {
  rocksdb::ColumnFamilyHandle* family = log_->notify_family();
  if (family == nullptr) return Status::Error("the database has no side store (opened read-only)");
  rocksdb::WriteBatch write;
  for (const Batch::Op& op : batch.ops_) {
    rocksdb::Status status = op.put ? write.Put(family, op.key, op.value) : write.Delete(family, op.key);
    if (!status.ok()) return Status::Error("side store: " + status.ToString());
  }
  rocksdb::WriteOptions options;
  options.sync = sync;
  rocksdb::Status status = log_->db()->Write(options, &write);
  if (!status.ok()) return Status::Error("side store: " + status.ToString());
  return Status::Ok();
}

void SideStore::Scan(std::string_view prefix, std::string_view from, const Visit& visit) const {
  rocksdb::ColumnFamilyHandle* family = log_->notify_family();
  if (family == nullptr) return;
  std::unique_ptr<rocksdb::Iterator> it(log_->db()->NewIterator(rocksdb::ReadOptions(), family));
  std::string_view start = from < prefix ? prefix : from;
  for (it->Seek(rocksdb::Slice(start.data(), start.size()));
       it->Valid() && it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size())); it->Next()) {
    if (!visit(std::string_view(it->key().data(), it->key().size()),
               std::string_view(it->value().data(), it->value().size()))) {
      return;
    }
  }
}

void SideStore::ScanBackward(std::string_view prefix, const Visit& visit) const {
  rocksdb::ColumnFamilyHandle* family = log_->notify_family();
  if (family == nullptr) return;
  std::unique_ptr<rocksdb::Iterator> it(log_->db()->NewIterator(rocksdb::ReadOptions(), family));
  // Past every key of the prefix: the prefix with its last byte raised, or
  // the end when it cannot be raised.
  std::string past(prefix);
  while (!past.empty() && static_cast<uint8_t>(past.back()) == 0xff) past.pop_back();
  if (past.empty()) {
    it->SeekToLast();
  } else {
    past.back() = static_cast<char>(static_cast<uint8_t>(past.back()) + 1);
    it->SeekForPrev(past);
    if (it->Valid() && it->key() == rocksdb::Slice(past)) it->Prev();
  }
  for (; it->Valid() && it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size())); it->Prev()) {
    if (!visit(std::string_view(it->key().data(), it->key().size()),
               std::string_view(it->value().data(), it->value().size()))) {
      return;
    }
  }
}

// ---- EventReader -------------------------------------------------------------------

namespace {

class LogEventReader : public EventReader {
 public:
  LogEventReader(EventLog* log, uint64_t from) : it_(log->NewIterator(from)) {}

  Result<bool> Next(Event* event) override {
    if (!started_) {
      started_ = true;
    } else if (it_->Valid()) {
      it_->Next();
    }
    if (!it_->Valid()) {
      if (Status status = it_->status(); !status.ok()) return status;
      return false;
    }
    RecordView view;
    if (Status status = DecodeRecord(it_->sequence(), it_->record(), &view); !status.ok()) return status;
    if (Status status = DecodePayload(view.payload, event); !status.ok()) return status;
    return true;
  }

 private:
  std::unique_ptr<EventLog::Iterator> it_;
  bool started_ = false;
};

}  // namespace

// ---- Ledger ------------------------------------------------------------------------

Result<std::unique_ptr<Ledger>> Ledger::Open(LedgerOptions options) {
  SequencerOptions engine;
  engine.data_dir = std::move(options.data_dir);
  engine.queue_commands_max = options.queue_commands_max;
  engine.group_commands_max = options.group_commands_max;
  engine.checkpoint_every_events = options.checkpoint_every_events;
  engine.max_open_files = options.max_open_files;
  engine.accept_truncated_log = options.accept_truncated_log;
  engine.write_default_prices = options.write_default_prices;
  engine.sign_every_us = options.sign_every_us;
  engine.merkle_tree = options.merkle_tree;
  engine.storage_env = options.storage_env;
  engine.wake_when_idle = options.wake_when_idle;
  engine.replicate = std::move(options.replicate);
  if (options.clock) engine.clock = std::move(options.clock);
  engine.on_fatal_error = std::move(options.on_fatal_error);
  Result<std::unique_ptr<Sequencer>> opened = Sequencer::Open(std::move(engine));
  if (!opened.ok()) return opened.status();
  auto ledger = std::unique_ptr<Ledger>(new Ledger(std::move(*opened)));
  ledger->admit_ = std::move(options.admit);
  return ledger;
}

Ledger::Ledger(std::unique_ptr<Sequencer> engine)
    : engine_(std::move(engine)), side_(std::make_unique<SideStore>(engine_->log())) {}
Ledger::~Ledger() { Stop(); }

namespace {

// The requests LedgerOptions::admit refused, by index (empty: none).
std::vector<std::optional<Reply>> Refusals(const std::function<std::optional<Reply>(const Request&)>& admit,
                                           std::vector<Request>* requests) {
  std::vector<std::optional<Reply>> refused;
  if (!admit) return refused;
  for (size_t i = 0; i < requests->size(); ++i) {
    std::optional<Reply> reply = admit((*requests)[i]);
    if (!reply) continue;
    refused.resize(requests->size());
    refused[i] = std::move(reply);
  }
  if (refused.empty()) return refused;
  std::vector<Request> admitted;
  for (size_t i = 0; i < requests->size(); ++i) {
    if (!refused[i]) admitted.push_back(std::move((*requests)[i]));
  }
  requests->swap(admitted);
  return refused;
}

// The refusals, with the admitted requests' replies in their places.
std::vector<Reply> Merge(std::vector<std::optional<Reply>> refused, std::vector<Reply>&& replies) {
  std::vector<Reply> merged;
  merged.reserve(refused.size());
  size_t next = 0;
  for (std::optional<Reply>& refusal : refused) {
    merged.push_back(refusal ? std::move(*refusal) : std::move(replies[next++]));
  }
  return merged;
}

}  // namespace

bool Ledger::Submit(std::vector<Request> requests, Completion done) {
  std::vector<std::optional<Reply>> refused = Refusals(admit_, &requests);
  if (refused.empty()) return engine_->Submit(std::move(requests), std::move(done));
  if (requests.empty()) {
    done(Merge(std::move(refused), {}));
    return true;
  }
  return engine_->Submit(std::move(requests),
                         [refused = std::move(refused), done = std::move(done)](std::vector<Reply>&& replies) mutable {
                           done(Merge(std::move(refused), std::move(replies)));
                         });
}
Reply Ledger::Call(Request request) {
  if (admit_) {
    if (std::optional<Reply> refusal = admit_(request)) return std::move(*refusal);
  }
  return engine_->Call(std::move(request));
}
std::vector<Reply> Ledger::CallBatch(std::vector<Request> requests) {
  std::vector<std::optional<Reply>> refused = Refusals(admit_, &requests);
  if (refused.empty()) return engine_->CallBatch(std::move(requests));
  return Merge(std::move(refused), requests.empty() ? std::vector<Reply>() : engine_->CallBatch(std::move(requests)));
}
uint64_t Ledger::AddObserver(EventObserver observer) { return engine_->AddObserver(std::move(observer)); }
void Ledger::RemoveObserver(uint64_t token) { engine_->RemoveObserver(token); }
std::unique_ptr<EventReader> Ledger::ReadEvents(uint64_t from_sequence) {
  return std::make_unique<LogEventReader>(engine_->log(), from_sequence);
}
void Ledger::Stop() { engine_->Stop(); }

bool Ledger::failed() const { return engine_->failed(); }
LedgerStats Ledger::stats() const {
  SequencerStats s = engine_->stats();
  return LedgerStats{s.events_total,   s.group_commits,        s.commands_total,
                     s.last_sequence,  s.queued_commands,      s.queue_capacity,
                     s.queue_full_refusals, s.pending_reservations, s.reservations_in_memory};
}
const Histogram& Ledger::fsync_histogram() const { return engine_->fsync_histogram(); }
const Histogram& Ledger::group_size_histogram() const { return engine_->group_size_histogram(); }
const Histogram& Ledger::execute_histogram() const { return engine_->execute_histogram(); }
const Histogram& Ledger::encode_histogram() const { return engine_->encode_histogram(); }
uint64_t Ledger::command_count(size_t type, ResultCode code) const {
  return engine_->command_count(type, code);
}
const Histogram& Ledger::command_latency(size_t type) const { return engine_->command_latency(type); }
uint64_t Ledger::recovered_tail_events() const { return engine_->recovered_tail_events(); }

Status Ledger::LatestSignedCheckpoint(std::string* note) {
  uint64_t size = 0;
  if (Status status = engine_->log()->LatestSignedCheckpoint(&size, note); !status.ok()) return status;
  if (size == 0) return Status::NotFound("no checkpoint is signed yet");
  return Status::Ok();
}

namespace {

Status ParseCheckpointNote(std::string_view note, LogCheckpoint* checkpoint) {
  Status status = ParseSignedCheckpoint(note, checkpoint);
  return status.ok() ? status : status.WithContext("a stored checkpoint: ");
}

// The time of the first stored checkpoint of tree size `from` or more, and
// its size (0 when there is none).
Status FirstCheckpointFrom(EventLog* log, uint64_t from, uint64_t* size, int64_t* time_us) {
  *size = 0;
  Status parse_status;
  Status status = log->ForEachSignedCheckpoint(from, [&](uint64_t tree_size, std::string_view note) {
    LogCheckpoint checkpoint;
    parse_status = ParseCheckpointNote(note, &checkpoint);
    *size = tree_size;
    *time_us = checkpoint.time_us;
    return false;
  });
  return status.ok() ? parse_status : status;
}

}  // namespace

Status Ledger::SignedCheckpoints(int64_t since_us, size_t limit, std::vector<std::string>* notes) {
  notes->clear();
  EventLog* log = engine_->log();
  uint64_t latest = 0;
  std::string latest_note;
  if (Status status = log->LatestSignedCheckpoint(&latest, &latest_note); !status.ok()) return status;
  // A checkpoint is never dated before the one it follows (LogWriter), so
  // the first at or after `since_us` is found by bisecting tree sizes, not
  // by reading the year of checkpoints before it. `from` ends at the
  // smallest size whose next checkpoint is that recent.
  uint64_t from = 0;
  uint64_t to = latest;
  while (from < to) {
    const uint64_t mid = from + (to - from) / 2;
    uint64_t size = 0;
    int64_t time_us = 0;
    if (Status status = FirstCheckpointFrom(log, mid, &size, &time_us); !status.ok()) return status;
    if (size == 0) return Status::Corruption("a signed checkpoint before the newest is missing");
    if (time_us >= since_us) {
      to = mid;
    } else {
      from = size + 1;  // every size in [mid, size] leads to this one
    }
  }
  Status parse_status;
  Status status = log->ForEachSignedCheckpoint(from, [&](uint64_t, std::string_view note) {
    LogCheckpoint checkpoint;
    parse_status = ParseCheckpointNote(note, &checkpoint);
    if (!parse_status.ok()) return false;
    // A log signed before checkpoint times were held in order (which
    // `purser-replay verify-checkpoints` reports as corrupt) may date one
    // before `since_us` after the start found: the check stays. On such a
    // log the bisection may also start past a checkpoint that qualifies.
    if (checkpoint.time_us >= since_us) notes->emplace_back(note);
    return notes->size() < limit;
  });
  return status.ok() ? parse_status : status;
}

Status Ledger::ProveInclusion(uint64_t sequence, uint64_t tree_size, InclusionProof* proof) {
  if (tree_size == 0) {
    std::string note;
    if (Status status = engine_->log()->LatestSignedCheckpoint(&tree_size, &note); !status.ok()) {
      return status;
    }
    if (tree_size == 0) return Status::NotFound("no checkpoint is signed yet");
  }
  return BuildInclusionProof(engine_->log(), sequence, tree_size, proof);
}

Status Ledger::ProveConsistency(uint64_t from, uint64_t to, ConsistencyProof* proof) {
  return BuildConsistencyProof(engine_->log(), from, to, proof);
}

namespace {

Status ReadDurableEvent(EventLog* log, uint64_t sequence, Event* event) {
  if (sequence == 0 || sequence > log->merkle_durable_size()) {
    return Status::NotFound("event " + std::to_string(sequence) + " is not in the log");
  }
  std::string record;
  RecordView view;
  if (Status status = log->ReadRecord(sequence, &record); !status.ok()) return status;
  if (Status status = DecodeRecord(sequence, record, &view); !status.ok()) return status;
  return DecodePayload(view.payload, event);
}

}  // namespace

Status Ledger::EventAccounts(uint64_t sequence, std::vector<std::string>* accounts) {
  accounts->clear();
  EventLog* log = engine_->log();
  Event event;
  if (Status status = ReadDurableEvent(log, sequence, &event); !status.ok()) return status;
  if (const auto* e = std::get_if<event::Transferred>(&event.body)) {
    *accounts = {e->from_account, e->to_account};
    return Status::Ok();
  }
  if (std::string account = EventAccount(event.body); !account.empty()) {
    accounts->push_back(std::move(account));
    return Status::Ok();
  }
  // Events that name a record: the account of the event that created it.
  char kind = 'r';
  std::string id;
  if (const auto* e = std::get_if<event::Voided>(&event.body)) id = e->reservation_id;
  if (const auto* e = std::get_if<event::Expired>(&event.body)) id = e->reservation_id;
  if (const auto* e = std::get_if<event::Extended>(&event.body)) id = e->reservation_id;
  if (const auto* e = std::get_if<event::Refunded>(&event.body)) {
    id = e->target_id;
    if (e->target_kind == ChargeKind::kUsage) kind = 'u';
  }
  if (id.empty()) return Status::Ok();
  uint64_t created = log->FindId(kind, id);
  Event origin;
  if (created == 0) return Status::Corruption("the id index has no entry for " + id);
  if (Status status = ReadDurableEvent(log, created, &origin); !status.ok()) return status;
  if (std::string account = EventAccount(origin.body); !account.empty()) accounts->push_back(account);
  return Status::Ok();
}

Status Ledger::CopyTo(const std::string& directory) {
  return engine_->log()->CreateCheckpointCopy(directory);
}
Status Ledger::VerifyChecksums() { return engine_->log()->VerifyChecksums(); }
std::string Ledger::StorageProperty(const std::string& name) { return engine_->log()->Property(name); }
Status Ledger::Compact() {
  if (Status status = engine_->log()->FlushAll(); !status.ok()) return status;
  return engine_->log()->CompactEvents();
}
uint64_t Ledger::EventsBytesOnDisk() { return engine_->log()->EventsBytesOnDisk(); }

}  // namespace purser
