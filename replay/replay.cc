#include "replay/replay.h"
#include "replay/replay_internal.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unordered_map>

#include "cli/cli.h"
#include "http/json_views.h"
#include "ledger/base/clock.h"
#include "ledger/engine/cold_manager.h"
#include "ledger/machine/machine.h"
#include "ledger/log/cold_record.h"
#include "ledger/base/crypto.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/head_file.h"
#include "ledger/wire/event_json.h"
#include "ledger/log/event_log.h"
#include "ledger/base/flags.h"
#include "ledger/base/money.h"
#include "ledger/log/recovery.h"
#include "ledger/log/snapshot.h"
#include "ledger/machine/state.h"

namespace purser {

Result<std::unique_ptr<EventLog>> OpenReadOnly(const std::string& dir) {
  if (!std::filesystem::exists(dir)) return Status::NotFound("no database at " + dir);
  EventLogOptions options;
  options.path = dir;
  options.read_only = true;
  return EventLog::Open(options);
}

using Clock = std::chrono::steady_clock;

std::function<void(uint64_t)> ProgressPrinter(std::ostream* out, const char* verb) {
  if (out == nullptr) return nullptr;
  auto start = Clock::now();
  return [out, verb, start](uint64_t sequence) {
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    *out << verb << ": " << sequence << " events ("
         << static_cast<uint64_t>(static_cast<double>(sequence) / std::max(seconds, 1e-9))
         << "/s)\n";
    out->flush();
  };
}

Status Evictor::BeforeApply(const Event& event, State* state) {
  if (max_records_ > 0 && InMemory(*state) >= threshold_) {
    if (Status status = EvictFinished(state); !status.ok()) return status;
    // Pending reservations stay: with very many of them, wait for half
    // the budget of new records before the next pass.
    threshold_ = std::max(max_records_, InMemory(*state) + max_records_ / 2);
  }
  return LoadColdRecordsFor(log_, event, state);
}

Status Evictor::EvictFinished(State* state) {
  std::vector<std::pair<std::string, uint64_t>> reservations;
  std::vector<std::pair<std::string, uint64_t>> usages;
  for (const auto& [id, r] : state->reservations) {
    if (r.status != ReservationStatus::kPending) reservations.emplace_back(id, r.version);
  }
  for (const auto& [id, usage] : state->usages) usages.emplace_back(id, usage.version);
  // In chunks, so that the encoded copies never outweigh the records.
  constexpr size_t kChunk = 100'000;
  Entries records;
  Entries listing;
  for (size_t from = 0; from < reservations.size(); from += kChunk) {
    size_t to = std::min(reservations.size(), from + kChunk);
    for (size_t i = from; i < to; ++i) {
      const Reservation* r = state->FindReservation(reservations[i].first);
      records.emplace_back(ColdKey('r', r->id), EncodeColdReservation(*r));
      if (with_listing_) listing.push_back(ListingEntry(*r));
    }
    if (Status status = WriteRecords(&records, &listing); !status.ok()) return status;
    for (size_t i = from; i < to; ++i) {
      state->EvictReservation(reservations[i].first, reservations[i].second);
    }
  }
  for (size_t from = 0; from < usages.size(); from += kChunk) {
    size_t to = std::min(usages.size(), from + kChunk);
    for (size_t i = from; i < to; ++i) {
      const std::string& id = usages[i].first;
      records.emplace_back(ColdKey('u', id), EncodeColdUsage(id, state->usages.at(id)));
    }
    if (Status status = WriteRecords(&records, &listing); !status.ok()) return status;
    for (size_t i = from; i < to; ++i) state->EvictUsage(usages[i].first, usages[i].second);
  }
  return Status::Ok();
}

Status Evictor::WriteRecords(Entries* records, Entries* listing) {
  std::sort(records->begin(), records->end());
  std::sort(listing->begin(), listing->end());
  LogBatch batch;
  for (const auto& [key, value] : *records) log_->AddColdRecord(key, value, &batch);
  for (const auto& [key, value] : *listing) log_->AddListingEntry(key, value, &batch);
  records->clear();
  listing->clear();
  return log_->Write(&batch, /*sync=*/false);
}

ScratchLog::~ScratchLog() {
  log_.reset();
  if (!path_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
}

Status ScratchLog::Open() {
  std::string pattern = (std::filesystem::temp_directory_path() / "purser-replay-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return Status::IOError("cannot create a scratch directory in " +
                           std::filesystem::temp_directory_path().string());
  }
  path_ = pattern;
  EventLogOptions options;
  options.path = path_;
  options.write_buffer_bytes = 4 << 20;  // holds no events
  options.cold_write_buffer_bytes = 64 << 20;
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
  if (!log.ok()) return log.status();
  log_ = std::move(*log);
  return Status::Ok();
}

namespace {

// The flows of every wallet, summed from the events alone (not from State),
// for the conservation law: balance = deposits + adjustments + refunds
// + transfers in - transfers out - charges.
class ConservationCheck {
 public:
  // Reservations and usage records are found in `state` (before each event
  // is applied, after the records it needs were loaded back), so that the
  // check holds one entry per account and wallet, never one per record.
  explicit ConservationCheck(const State* state) : state_(state) {}

  void Observe(const Event& event) { std::visit(*this, event.body); }

  void operator()(const event::AccountOpened& e) {
    std::string funding = e.wallet ? e.account : (e.parent.empty() ? "" : funding_[e.parent]);
    funding_[e.account] = funding;
  }
  void operator()(const event::Deposited& e) { flow_[e.account] += e.amount_micros; }
  void operator()(const event::Transferred& e) {
    flow_[e.from_account] -= e.amount_micros;
    flow_[e.to_account] += e.amount_micros;
  }
  void operator()(const event::Adjusted& e) { flow_[e.account] += e.amount_micros; }
  void operator()(const event::Settled& e) {
    Charge(e.account, e.cost_micros - e.expiry_charge_reversed_micros);
  }
  void operator()(const event::UsageCharged& e) { Charge(e.account, e.cost_micros); }
  void operator()(const event::Expired& e) {
    Charge(ReservationAccount(e.reservation_id), e.charged_micros);
  }
  void operator()(const event::Refunded& e) {
    std::string account;
    if (e.target_kind == ChargeKind::kUsage) {
      auto it = state_->usages.find(e.target_id);
      if (it != state_->usages.end() && it->second.charge.account != kNoAccount) {
        account = state_->account(it->second.charge.account).id;
      }
    } else {
      account = ReservationAccount(e.target_id);
    }
    Charge(account, -e.amount_micros);
  }
  template <typename T>
  void operator()(const T&) {}

  // Compares the summed flows with the balances the state holds.
  Status Check(const State& state, uint64_t* wallets) const {
    for (const Account& account : state.accounts) {
      if (!account.wallet) continue;
      ++*wallets;
      auto it = flow_.find(account.id);
      __int128 expected = it == flow_.end() ? 0 : it->second;
      if (expected != account.balance_micros) {
        return Status::Corruption("conservation law broken for wallet " + account.id + ": balance " +
                             std::to_string(account.balance_micros) + " micros, events sum to " +
                             std::to_string(static_cast<int64_t>(expected)));
      }
    }
    return Status::Ok();
  }

 private:
  std::string ReservationAccount(const std::string& id) const {
    const Reservation* r = state_->FindReservation(id);
    return r == nullptr || r->account == kNoAccount ? std::string() : state_->account(r->account).id;
  }

  void Charge(const std::string& account, int64_t amount) {
    auto it = funding_.find(account);
    if (it == funding_.end() || it->second.empty()) return;  // no wallet pays
    flow_[it->second] -= amount;
  }

  const State* state_;
  std::unordered_map<std::string, std::string> funding_;  // account -> its wallet
  std::unordered_map<std::string, __int128> flow_;        // wallet -> summed flows
};

// Replays the log up to the stored projection checkpoint and compares the
// two. Event errors are returned (they name the event); a checkpoint that
// cannot be read, does not match the log or differs from the rebuild is a
// problem of the checkpoint, reported in *checkpoint_problem, and the replay
// goes on without it (as the service does).
Status CheckCheckpoint(EventLog* log, State* state, Sha256Digest* link, ReplayOptions options,
                       ColdStore* rebuilt_cold, bool* checked, std::string* checkpoint_problem) {
  uint64_t checkpoint_sequence = 0;
  Sha256Digest checkpoint_link;
  std::string bytes;
  if (Status status = log->ReadCheckpoint(&checkpoint_sequence, &checkpoint_link, &bytes);
      !status.ok()) {
    *checkpoint_problem = "the projection checkpoint cannot be read: " + status.message();
    return Status::Ok();
  }
  if (checkpoint_sequence == 0) return Status::Ok();
  // A checkpoint of an older format is not loaded by the service either (it
  // replays the whole log), so there is nothing to compare it with.
  if (!IsCurrentSnapshot(bytes)) return Status::Ok();
  options.until_sequence = checkpoint_sequence;
  if (Status status = ReplayLog(log, state, link, options); !status.ok()) return status;
  if (state->last_sequence != checkpoint_sequence || *link != checkpoint_link) {
    *checkpoint_problem = "the projection checkpoint at " + std::to_string(checkpoint_sequence) +
                          " does not match the log";
    return Status::Ok();
  }
  State stored;
  if (Status loaded = DeserializeState(bytes, &stored); !loaded.ok()) {
    *checkpoint_problem = "the projection checkpoint does not load: " + loaded.message();
    return Status::Ok();
  }
  // The cold store as of the checkpoint: a live copy also holds records
  // finished after it (written with their groups), which are not its state.
  LogColdStore cold(log, checkpoint_sequence);
  Result<Sha256Digest> stored_digest = StateDigest(stored, &cold);
  if (!stored_digest.ok()) {
    *checkpoint_problem = "the cold store (records) is damaged: " + stored_digest.status().message();
    return Status::Ok();
  }
  Result<Sha256Digest> rebuilt_digest = StateDigest(*state, rebuilt_cold);
  if (!rebuilt_digest.ok()) return rebuilt_digest.status();
  if (*stored_digest != *rebuilt_digest) {
    *checkpoint_problem = "the projection checkpoint at " + std::to_string(checkpoint_sequence) +
                          " differs from a rebuild of the log";
    return Status::Ok();
  }
  *checked = true;
  return Status::Ok();
}

// The id index (`ids`) against the log: every event that establishes a
// client id has its entry, pointing at it; the index holds nothing else.
class IdIndexCheck {
 public:
  explicit IdIndexCheck(EventLog* log) : log_(log) {}
  void Observe(const Event& event) {
    char kind = 0;
    std::string id;
    if (!IdIndexEntry(event.body, &kind, &id)) return;
    ++expected_;
    if (!problem_.empty()) return;
    uint64_t found = log_->FindId(kind, id);
    if (found != event.sequence) {
      problem_ = "the id index holds " + (found == 0 ? std::string("no entry") :
                                          "event " + std::to_string(found)) +
                 " for " + std::string(1, kind) + ":" + id + " of event " +
                 std::to_string(event.sequence);
    }
  }
  // After the replay: the index holds exactly the entries seen.
  Status Finish() {
    if (!problem_.empty()) return Status::Corruption(problem_);
    uint64_t entries = 0;
    uint64_t beyond = 0;
    Status status = log_->ForEachId([&](std::string_view, uint64_t sequence) {
      ++entries;
      if (sequence > log_->last_sequence()) ++beyond;
    });
    if (!status.ok()) return status.WithContext("the id index cannot be read: ");
    if (beyond > 0) {
      return Status::Corruption("the id index names " + std::to_string(beyond) +
                           " events beyond the log's head");
    }
    if (entries != expected_) {
      return Status::Corruption("the id index holds " + std::to_string(entries) + " entries where the log "
                           "establishes " + std::to_string(expected_) + " ids");
    }
    return Status::Ok();
  }

 private:
  EventLog* log_;
  uint64_t expected_ = 0;
  std::string problem_;
};

}  // namespace

Status Verify(const VerifyOptions& options, VerifyReport* report) {
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(options.data_dir);
  if (!log.ok()) return log.status();
  ScratchLog scratch;
  if (Status opened = scratch.Open(); !opened.ok()) return opened;
  Evictor evictor(scratch.get(), options.max_records_in_memory, /*with_listing=*/false);
  State state;
  Sha256Digest link{};
  ConservationCheck conservation(&state);
  IdIndexCheck ids(log->get());
  ReplayOptions replay;
  replay.progress = ProgressPrinter(options.progress, "verify");
  replay.before_apply = [&](const Event& event) {
    if (Status loaded = evictor.BeforeApply(event, &state); !loaded.ok()) return loaded;
    conservation.Observe(event);  // after the records it needs are back in memory
    return Status::Ok();
  };
  // The Merkle tree and the signed checkpoints against the records (with
  // the key beside the log when there is one: `verify-checkpoints --pub`
  // checks them with a key from elsewhere).
  MerkleCheck merkle;
  std::optional<NoteVerifier> verifier;
  if (std::filesystem::exists(options.data_dir + "/" + kLogPublicKeyFile)) {
    Result<NoteVerifier> loaded = LoadVerifier(options.data_dir + "/" + kLogPublicKeyFile);
    if (!loaded.ok()) return loaded.status();
    verifier = std::move(*loaded);
  }
  if (Status status = merkle.LoadSignedRoots(log->get(), verifier ? &*verifier : nullptr); !status.ok()) {
    return status;
  }
  std::string checkpoint_problem;
  replay.on_event = [&](const Event& e, std::string_view record) {
    ids.Observe(e);
    merkle.Observe(e.sequence, record);
  };
  Status status = CheckCheckpoint(log->get(), &state, &link, replay, evictor.cold(),
                                  &report->checkpoint_checked, &checkpoint_problem);
  if (status.ok()) status = ReplayLog(log->get(), &state, &link, replay);
  report->events = state.last_sequence;
  report->last_sequence = state.last_sequence;
  report->head = link;
  if (!status.ok()) {
    report->bad_sequence = state.last_sequence + 1;
    return status;
  }
  if (!checkpoint_problem.empty()) return Status::Corruption(checkpoint_problem);
  if (Status law = conservation.Check(state, &report->wallets_checked); !law.ok()) return law;
  std::optional<uint64_t> expect_sequence = options.expect_sequence;
  std::optional<Sha256Digest> expect_hash = options.expect_hash;
  if (!expect_sequence && options.use_head_mark) {
    Result<std::optional<HeadMark>> mark = ReadHeadFile(options.data_dir);
    if (!mark.ok()) return mark.status();
    if (mark->has_value()) {
      expect_sequence = (*mark)->sequence;
      expect_hash = (*mark)->link;
      report->head_mark_checked = true;
    }
  }
  if (expect_sequence) {
    if (state.last_sequence < *expect_sequence) {
      return Status::Corruption("the log ends at " + std::to_string(state.last_sequence) +
                           " before the expected head " + std::to_string(*expect_sequence) +
                           (options.expect_sequence ? "" : std::string(" of ") + kHeadFileName) +
                           ": acknowledged events are missing (truncated)");
    }
    std::string record;
    RecordView view;
    if (Status read = (*log)->ReadRecord(*expect_sequence, &record); !read.ok()) return read;
    if (Status decoded = DecodeRecord(*expect_sequence, record, &view); !decoded.ok()) {
      return decoded;
    }
    if (expect_hash && view.link != *expect_hash) {
      report->bad_sequence = *expect_sequence;
      return Status::Corruption("the chain link at " + std::to_string(*expect_sequence) + " is " +
                           HexEncode(view.link) + ", not the expected head");
    }
  }
  if (Status indexed = ids.Finish(); !indexed.ok()) return indexed;
  if (Status tree = merkle.Finish(log->get()); !tree.ok()) return tree;
  report->merkle_tree_checked = log->get()->merkle_durable_size() > 0;
  report->signed_checkpoints_checked = merkle.checkpoints_checked();
  return Status::Ok();
}

Status Salvage(const std::string& data_dir, std::ostream& out) {
  VerifyOptions options;
  options.data_dir = data_dir;
  options.use_head_mark = false;
  VerifyReport report;
  if (Status status = Verify(options, &report); !status.ok()) {
    return Status::Error("the log itself does not verify (salvage accepts a shorter log, not a "
                         "damaged one): " + status.message());
  }
  Result<std::optional<HeadMark>> mark = ReadHeadFile(data_dir);
  uint64_t marked = mark.ok() && mark->has_value() ? (*mark)->sequence : 0;
  if (Status written = WriteHeadFile(data_dir, HeadMark{report.last_sequence, report.head});
      !written.ok()) {
    return written;
  }
  out << "salvaged: the head mark is now " << report.last_sequence << ':' << HexEncode(report.head);
  if (marked > report.last_sequence) {
    out << "; " << marked - report.last_sequence << " acknowledged events (" << report.last_sequence + 1
        << ".." << marked << ") are lost";
  }
  out << '\n';
  return Status::Ok();
}

Status Rebuild(const RebuildOptions& options, RebuildReport* report) {
  auto start = Clock::now();
  Result<std::unique_ptr<EventLog>> source = OpenReadOnly(options.data_dir);
  if (!source.ok()) return source.status();
  std::unique_ptr<EventLog> out;
  ScratchLog scratch;
  if (!options.out_dir.empty()) {
    if (std::filesystem::exists(options.out_dir) && !std::filesystem::is_empty(options.out_dir)) {
      return Status::InvalidArgument(options.out_dir + " exists and is not empty");
    }
    EventLogOptions out_options;
    out_options.path = options.out_dir;
    Result<std::unique_ptr<EventLog>> opened = EventLog::Open(out_options);
    if (!opened.ok()) return opened.status();
    out = std::move(*opened);
  } else if (Status opened = scratch.Open(); !opened.ok()) {
    return opened;
  }
  // The new database is its own cold store; otherwise the scratch one is.
  Evictor evictor(out ? out.get() : scratch.get(), options.max_records_in_memory,
                  /*with_listing=*/out != nullptr);
  auto rebuilt = std::make_shared<State>();
  State& state = *rebuilt;
  Sha256Digest link{};
  ReplayOptions replay;
  replay.until_sequence = options.until_sequence;
  replay.until_time_us = options.until_time_us;
  replay.progress = ProgressPrinter(options.progress, "rebuild");
  replay.before_apply = [&](const Event& event) { return evictor.BeforeApply(event, &state); };
  LogBatch batch;
  Status write_status;
  if (out) {
    // The verified records are copied as they are: their links need no
    // computing again, and the new log is the old one byte for byte.
    replay.on_event = [&](const Event& event, std::string_view record) {
      out->AppendRecord(event, record, &batch);
      if (batch.records() >= 10'000 && write_status.ok()) {
        write_status = out->Write(&batch, /*sync=*/false);
        batch = LogBatch();
      }
    };
  }
  if (Status status = ReplayLog(source->get(), &state, &link, replay); !status.ok()) return status;
  if (!write_status.ok()) return write_status;
  if (out) {
    // As purserd leaves it at a checkpoint: finished records in the cold
    // store with their listing entries (written by the evictor), the rest in
    // the checkpoint.
    if (Status status = evictor.EvictFinished(&state); !status.ok()) return status;
    if (Status status = out->Write(&batch, /*sync=*/false); !status.ok()) return status;
    batch = LogBatch();
    SnapshotOptions snapshot;
    snapshot.finished_records = false;
    out->AddCheckpoint(state.last_sequence, link, SerializeState(state, snapshot), &batch);
    if (Status status = out->Write(&batch, /*sync=*/true); !status.ok()) return status;
    if (Status status = out->FlushAll(); !status.ok()) return status;
  }
  report->sequence = state.last_sequence;
  report->events = state.events_applied;
  const auto digest_start = Clock::now();
  Result<Sha256Digest> digest = StateDigest(state, evictor.cold());
  if (!digest.ok()) return digest.status();
  report->digest = *digest;
  report->digest_seconds = std::chrono::duration<double>(Clock::now() - digest_start).count();
  report->seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (options.keep_state) report->state = std::move(rebuilt);
  return Status::Ok();
}

Result<int64_t> QueryMoment(const QueryOptions& options) {
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(options.data_dir);
  if (!log.ok()) return log.status();
  const uint64_t last = std::min(options.until_sequence, (*log)->last_sequence());
  int64_t moment = 0;
  if (last > 0) {
    std::string record;
    RecordView view;
    Event event;
    Status status = (*log)->ReadRecord(last, &record);
    if (status.ok()) status = DecodeRecord(last, record, &view);
    if (status.ok()) status = DecodePayload(view.payload, &event);
    if (!status.ok()) return status;
    moment = event.timestamp_us;
  }
  // A time before the last event means the last event at or before it; its
  // moment is the time itself, as QueryAsOf answers it.
  if (options.until_time_us != INT64_MAX) moment = options.until_time_us;
  return moment;
}

Status QueryAsOf(const QueryOptions& options, const RequestBody& read, QueryReport* report) {
  if (IsCommand(read)) return Status::InvalidArgument("query answers reads only; this is a command");
  if (std::holds_alternative<query::GetDigest>(read) || std::holds_alternative<query::GetChainHead>(read)) {
    return Status::InvalidArgument("the digest and the chain head as of a moment: use rebuild --until-seq");
  }
  Result<std::unique_ptr<EventLog>> source = OpenReadOnly(options.data_dir);
  if (!source.ok()) return source.status();
  ScratchLog scratch;
  if (Status opened = scratch.Open(); !opened.ok()) return opened;
  Evictor evictor(scratch.get(), options.max_records_in_memory, /*with_listing=*/true);
  State state;
  Sha256Digest link{};
  ReplayOptions replay;
  replay.until_sequence = options.until_sequence;
  replay.until_time_us = options.until_time_us;
  replay.progress = ProgressPrinter(options.progress, "query");
  replay.before_apply = [&](const Event& event) { return evictor.BeforeApply(event, &state); };
  if (Status status = ReplayLog(source->get(), &state, &link, replay); !status.ok()) return status;
  // What the read needs from the cold store, loaded as the service does.
  std::vector<Submission> submissions(1);
  submissions[0].requests.push_back(Request{Credentials::System(), read});
  ColdStoreManager cold(scratch.get(), &state);
  if (Status status = cold.Prefetch(submissions); !status.ok()) return status;
  report->sequence = state.last_sequence;
  report->now_us = options.until_time_us != INT64_MAX
                       ? std::max(options.until_time_us, state.last_timestamp_us)
                       : state.last_timestamp_us;
  Machine machine(&state);
  std::vector<Event> events;
  report->reply = machine.Execute(submissions[0].requests[0], report->now_us, &events);
  PURSER_ASSERT(events.empty());  // a read appends nothing
  return Status::Ok();
}

Status Export(const ExportOptions& options, std::ostream& out, uint64_t* exported) {
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(options.data_dir);
  if (!log.ok()) return log.status();
  // Which accounts are in the requested subtree, and which account each
  // reservation and usage belongs to, learned while reading.
  SubtreeScope scope(options.account);
  std::unordered_map<std::string, std::string> owner;  // reservation/usage id -> account
  State state;
  Sha256Digest link{};
  ReplayOptions replay;
  replay.apply = false;
  *exported = 0;
  JsonWriter writer;
  replay.on_event = [&](const Event& event, std::string_view) {
    std::string account = EventAccount(event.body);
    if (const auto* opened = std::get_if<event::AccountOpened>(&event.body)) {
      scope.Observe(*opened);
    } else if (const auto* reserved = std::get_if<event::Reserved>(&event.body)) {
      owner["r/" + reserved->reservation_id] = reserved->account;
    } else if (const auto* usage = std::get_if<event::UsageCharged>(&event.body)) {
      owner["u/" + usage->usage_id] = usage->account;
    }
    if (account.empty()) {
      if (const auto* e = std::get_if<event::Voided>(&event.body)) account = owner["r/" + e->reservation_id];
      if (const auto* e = std::get_if<event::Expired>(&event.body)) account = owner["r/" + e->reservation_id];
      if (const auto* e = std::get_if<event::Extended>(&event.body)) account = owner["r/" + e->reservation_id];
      if (const auto* e = std::get_if<event::Refunded>(&event.body)) {
        account = owner[(e->target_kind == ChargeKind::kUsage ? "u/" : "r/") + e->target_id];
      }
    }
    if (event.timestamp_us < options.from_us || event.timestamp_us > options.to_us) return;
    if (!options.account.empty() && (account.empty() || !scope.Contains(account))) return;
    writer.Clear();
    WriteEventJson(event, &writer);
    out << writer.str() << '\n';
    ++*exported;
  };
  return ReplayLog(log->get(), &state, &link, replay);
}

namespace {

constexpr char kUsage[] =
    "usage: purser-replay <command> [flags]\n"
    "  verify  --data-dir D [--expect-head SEQ:HASH]\n"
    "      checksums, hash chain, continuity, conservation law, checkpoint;\n"
    "      names the first bad event and exits 1 when anything is wrong\n"
    "  rebuild --data-dir D [--out D2] [--until-seq N | --until-time T]\n"
    "      rebuilds every projection from the log; prints `seq N` and `digest HEX`\n"
    "  export  --data-dir D [--account A] [--from T] [--to T]\n"
    "      JSON lines, one event each (T: RFC 3339 or YYYY-MM-DD)\n"
    "  explain --data-dir D --account A --from T --to T [--json] [--svg FILE]\n"
    "      the story of A's subtree over the window: spend and calls, spend per minute\n"
    "      and its peak, top models, actions and runs, the largest calls, expiries,\n"
    "      alerts, freezes and rejections counted (T: RFC 3339 UTC or YYYY-MM-DD)\n"
    "  what-if --data-dir D --account A --from T --to T [--daily USD] [--monthly USD]\n"
    "          [--hard USD] [--max-inflight N] [--max-calls-per-minute N]\n"
    "          [--runaway-action alert|freeze] [any other flag of `purser budget set`] [--json]\n"
    "      replays the log with those caps on A from the window's first event: which\n"
    "      reservations would have been refused (the first, when, by which cap, how\n"
    "      many), the spend avoided, when the money would have stopped, and actual\n"
    "      against hypothetical spend per day\n"
    "  query   --data-dir D [--as-of SEQ|TIME] READ...\n"
    "      any read of the `purser` CLI (balance A, spend A --group-by model, trends A,\n"
    "      efficiency A, pnl A, alerts --account A, budget get A, ...) answered in API.md's JSON\n"
    "      as the state stood after event SEQ or at TIME (RFC 3339 UTC or YYYY-MM-DD: its\n"
    "      end); default date ranges are those of that moment\n"
    "  prove   --data-dir D --seq N [--tree-size M] | --from M --to N\n"
    "      an inclusion proof of event N (in the tree of the newest signed checkpoint by\n"
    "      default), or a consistency proof between two tree sizes, in API.md's JSON\n"
    "  checkpoint --data-dir D [--tree-size M]\n"
    "      the signed checkpoint of M events (default: the newest), as a signed note\n"
    "  verify-proof --pub log.pub --checkpoint NOTE --proof JSON [--old-checkpoint NOTE]\n"
    "      offline, with the log's public key alone: the checkpoint's signature, then the\n"
    "      inclusion proof (and its record: the event is printed) or the consistency proof\n"
    "  verify-checkpoints --data-dir D --pub log.pub\n"
    "      every signed checkpoint: its signature, consistent with the one before, its root\n"
    "      equal to the log's records at its size\n"
    "  salvage --data-dir D\n"
    "      accepts a log that lost acknowledged events: it must verify on its own;\n"
    "      the head mark (purser-head) moves to its head and the loss is printed\n"
    "verify and rebuild take --max-records N (default 1000000 for verify, which keeps it\n"
    "under 1 GiB, 4000000 for rebuild): when memory holds\n"
    "N reservations and usage records, the finished ones move to a scratch store\n"
    "in $TMPDIR (or, with --out, to the new database); 0 keeps all in memory\n";

// Progress lines go to a terminal; when stderr is a file or a pipe, the
// tools stay quiet but for their result.
std::ostream* ProgressStream() { return isatty(STDERR_FILENO) ? &std::cerr : nullptr; }

int Fail(const std::string& message) {
  std::cerr << "purser-replay: " << message << '\n';
  return 1;
}

int RunVerify(Flags& flags) {
  VerifyOptions options;
  options.data_dir = flags.Get("data-dir");
  options.progress = ProgressStream();
  if (auto most = flags.GetInt("max-records")) {
    if (*most < 0) return Fail("--max-records must be 0 or more");
    options.max_records_in_memory = static_cast<uint64_t>(*most);
  }
  if (flags.Has("expect-head")) {
    std::string head = flags.Get("expect-head");
    size_t colon = head.find(':');
    std::optional<int64_t> sequence = ParseInt64(head.substr(0, colon));
    Sha256Digest hash;
    if (colon == std::string::npos || !sequence || !HexDecode(head.substr(colon + 1), &hash)) {
      return Fail("--expect-head must be SEQ:HASH (64 hex digits)");
    }
    options.expect_sequence = static_cast<uint64_t>(*sequence);
    options.expect_hash = hash;
  }
  VerifyReport report;
  Status status = Verify(options, &report);
  if (!status.ok()) {
    if (report.bad_sequence != 0) std::cout << "first bad event: " << report.bad_sequence << '\n';
    std::cout << "FAILED: " << status.message() << '\n';
    return 1;
  }
  std::cout << "ok: " << report.events << " events, head " << report.last_sequence << ':'
            << HexEncode(report.head) << ", " << report.wallets_checked << " wallets balanced"
            << (report.checkpoint_checked ? ", checkpoint matches" : "")
            << (report.head_mark_checked ? ", head mark reached" : "")
            << (report.merkle_tree_checked ? ", Merkle tree matches" : "")
            << (report.signed_checkpoints_checked > 0
                    ? ", " + std::to_string(report.signed_checkpoints_checked) + " signed checkpoints match"
                    : std::string())
            << '\n';
  return 0;
}

int RunRebuild(Flags& flags) {
  RebuildOptions options;
  options.data_dir = flags.Get("data-dir");
  options.out_dir = flags.Get("out");
  options.progress = ProgressStream();
  if (auto most = flags.GetInt("max-records")) {
    if (*most < 0) return Fail("--max-records must be 0 or more");
    options.max_records_in_memory = static_cast<uint64_t>(*most);
  }
  if (auto until = flags.GetInt("until-seq")) options.until_sequence = static_cast<uint64_t>(*until);
  if (flags.Has("until-time")) {
    std::optional<int64_t> time = ParseTimestamp(flags.Get("until-time"));
    if (!time) return Fail("--until-time must be RFC 3339 UTC or YYYY-MM-DD");
    options.until_time_us = *time;
  }
  if (!flags.error().empty()) return Fail(flags.error());
  options.keep_state = true;
  RebuildReport report;
  if (Status status = Rebuild(options, &report); !status.ok()) return Fail(status.message());
  std::cout << "seq " << report.sequence << '\n' << "digest " << HexEncode(report.digest) << '\n';
  std::cerr << "rebuild: " << report.events << " events in " << report.seconds << " s ("
            << static_cast<uint64_t>(static_cast<double>(report.events) / std::max(report.seconds, 1e-9)) << "/s; the state digest "
            << report.digest_seconds << " s of it)\n";
  // The process ends next and its memory goes back to the system at once:
  // the rebuilt state is left to that instead of being freed record by
  // record (held from a static, it is still reachable, not a leak).
  static auto* const kept = new std::vector<std::shared_ptr<State>>();
  kept->push_back(std::move(report.state));
  return 0;
}

// `query`: its own flags come first; the first other word starts the read,
// whose flags are the CLI's.
int RunQuery(int argc, char** argv) {
  QueryOptions options;
  options.progress = ProgressStream();
  std::string as_of;
  int i = 2;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& name, std::string* out) {
      if (arg == "--" + name && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      if (arg.rfind("--" + name + "=", 0) == 0) {
        *out = arg.substr(name.size() + 3);
        return true;
      }
      return false;
    };
    std::string max_records;
    if (value("data-dir", &options.data_dir) || value("as-of", &as_of)) continue;
    if (value("max-records", &max_records)) {
      std::optional<int64_t> most = ParseInt64(max_records);
      if (!most || *most < 0) return Fail("--max-records must be 0 or more");
      options.max_records_in_memory = static_cast<uint64_t>(*most);
      continue;
    }
    if (arg.rfind("--", 0) == 0) return Fail("unknown flag " + arg + " before the read");
    break;
  }
  if (options.data_dir.empty()) return Fail("--data-dir is required");
  if (!as_of.empty()) {
    std::optional<int64_t> sequence = ParseInt64(as_of);
    std::optional<int64_t> time = ParseTimestamp(as_of);
    if (sequence && as_of.find_first_not_of("0123456789") == std::string::npos) {
      options.until_sequence = static_cast<uint64_t>(*sequence);
    } else if (time) {
      // A bare date means the end of that day.
      options.until_time_us = as_of.size() == 10 ? *time + kMicrosPerDay - 1 : *time;
    } else {
      return Fail("--as-of must be an event sequence or a time (RFC 3339 UTC or YYYY-MM-DD)");
    }
  }
  if (i >= argc) return Fail("give the read, as for the purser CLI (e.g. balance ACCOUNT)");
  // The read's default date ranges are those of the moment it is answered as of.
  Result<int64_t> moment = QueryMoment(options);
  if (!moment.ok()) return Fail(moment.status().message());
  Result<RequestBody> read = ParseCommandLine(std::vector<std::string>(argv + i, argv + argc), *moment);
  if (!read.ok()) return Fail(read.status().message());
  QueryReport report;
  if (Status status = QueryAsOf(options, *read, &report); !status.ok()) return Fail(status.message());
  std::cout << ReplyToJson(report.reply) << '\n';
  std::cerr << "query: as of event " << report.sequence << " at " << FormatTimestamp(report.now_us)
            << '\n';
  return report.reply.ok() ? 0 : 1;
}

int RunExplain(Flags& flags) {
  ExplainOptions options;
  options.data_dir = flags.Get("data-dir");
  options.account = flags.Get("account");
  if (options.account.empty() || !flags.Has("from") || !flags.Has("to")) {
    return Fail("explain needs --account, --from and --to");
  }
  for (auto [name, target] : {std::pair{"from", &options.from_us}, {"to", &options.to_us}}) {
    std::optional<int64_t> time = ParseTimestamp(flags.Get(name));
    if (!time) return Fail(std::string("--") + name + " must be RFC 3339 UTC or YYYY-MM-DD");
    *target = *time;
  }
  if (flags.Get("to").size() == 10) options.to_us += kMicrosPerDay - 1;  // the whole day
  options.progress = ProgressStream();
  ExplainReport report;
  if (Status status = Explain(options, &report); !status.ok()) return Fail(status.message());
  if (flags.Has("json")) {
    std::cout << ExplainJson(options, report) << '\n';
  } else {
    WriteExplainText(options, report, std::cout);
  }
  if (flags.Has("svg")) {
    std::ofstream svg(flags.Get("svg"));
    svg << ExplainSvg(options, report);
    if (!svg) return Fail("cannot write " + flags.Get("svg"));
  }
  return 0;
}

// `what-if`: its own flags, and the caps as `purser budget set` takes them
// (with the names --max-calls-per-minute and --runaway-action too).
int RunWhatIf(int argc, char** argv) {
  WhatIfOptions options;
  options.progress = ProgressStream();
  std::vector<std::string> budget = {"budget", "set"};
  std::string from, to;
  bool json = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
      continue;
    }
    std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2) : std::string();
    std::string value;
    if (size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    } else if (!name.empty() && i + 1 < argc) {
      value = argv[++i];
    } else {
      return Fail(name.empty() ? "unexpected argument " + arg : "--" + name + " needs a value");
    }
    if (name == "data-dir") {
      options.data_dir = value;
    } else if (name == "account") {
      options.account = value;
    } else if (name == "from") {
      from = value;
    } else if (name == "to") {
      to = value;
    } else if (name == "max-records") {
      std::optional<int64_t> most = ParseInt64(value);
      if (!most || *most < 0) return Fail("--max-records must be 0 or more");
      options.max_records_in_memory = static_cast<uint64_t>(*most);
    } else {
      if (name == "max-calls-per-minute") name = "calls-per-minute";
      if (name == "runaway-action") name = "runaway";
      budget.push_back("--" + name);
      budget.push_back(value);
    }
  }
  if (options.data_dir.empty()) return Fail("--data-dir is required");
  if (options.account.empty() || from.empty() || to.empty()) {
    return Fail("what-if needs --account, --from and --to");
  }
  if (budget.size() == 2) return Fail("give at least one cap to try (e.g. --daily 25)");
  for (auto [text, target] : {std::pair{&from, &options.from_us}, {&to, &options.to_us}}) {
    std::optional<int64_t> time = ParseTimestamp(*text);
    if (!time) return Fail("--from and --to must be RFC 3339 UTC or YYYY-MM-DD");
    *target = *time;
  }
  if (to.size() == 10) options.to_us += kMicrosPerDay - 1;  // the whole day
  budget.insert(budget.begin() + 2, options.account);
  Result<RequestBody> caps = ParseCommandLine(budget, options.from_us);
  if (!caps.ok()) return Fail(caps.status().message());
  options.caps = std::get<cmd::SetCaps>(*caps).patch;
  WhatIfReport report;
  if (Status status = WhatIf(options, &report); !status.ok()) return Fail(status.message());
  if (json) {
    std::cout << WhatIfJson(options, report) << '\n';
  } else {
    WriteWhatIfText(options, report, std::cout);
  }
  return 0;
}

uint64_t SizeFlag(Flags& flags, const char* name) {
  std::optional<int64_t> value = flags.GetInt(name);
  return value && *value > 0 ? static_cast<uint64_t>(*value) : 0;
}

int RunProve(Flags& flags) {
  ProveOptions options;
  options.data_dir = flags.Get("data-dir");
  options.sequence = SizeFlag(flags, "seq");
  options.tree_size = SizeFlag(flags, "tree-size");
  options.from_size = SizeFlag(flags, "from");
  options.to_size = SizeFlag(flags, "to");
  if (!flags.error().empty()) return Fail(flags.error());
  if ((options.sequence == 0) == (options.from_size == 0 || options.to_size == 0)) {
    return Fail("prove needs --seq N [--tree-size M] (inclusion) or --from M --to N (consistency)");
  }
  std::string json;
  if (Status status = Prove(options, &json); !status.ok()) return Fail(status.message());
  std::cout << json << '\n';
  return 0;
}

int RunCheckpoint(Flags& flags) {
  std::string note;
  uint64_t size = SizeFlag(flags, "tree-size");
  if (!flags.error().empty()) return Fail(flags.error());
  if (Status status = SignedCheckpointNote(flags.Get("data-dir"), size, &note); !status.ok()) {
    return Fail(status.message());
  }
  std::cout << note;
  return 0;
}

int RunVerifyProof(Flags& flags) {
  if (!flags.Has("pub") || !flags.Has("checkpoint") || !flags.Has("proof")) {
    return Fail("verify-proof needs --pub FILE --checkpoint FILE --proof FILE [--old-checkpoint FILE]");
  }
  Result<NoteVerifier> verifier = LoadVerifier(flags.Get("pub"));
  if (!verifier.ok()) return Fail(verifier.status().message());
  std::string checkpoint, proof, old_checkpoint;
  for (auto [name, text] : {std::pair{"checkpoint", &checkpoint}, {"proof", &proof},
                            {"old-checkpoint", &old_checkpoint}}) {
    if (!flags.Has(name)) continue;
    std::ifstream in(flags.Get(name), std::ios::binary);
    if (!in) return Fail("cannot read " + flags.Get(name));
    text->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string event_json;
  std::optional<std::string_view> old;
  if (flags.Has("old-checkpoint")) old = old_checkpoint;
  Status status = VerifyProof(*verifier, checkpoint, proof, old, &event_json);
  if (!status.ok()) {
    std::cout << "FAILED: " << status.message() << '\n';
    return 1;
  }
  std::cout << "ok: the proof verifies against the checkpoint signed by " << verifier->name() << '\n';
  if (!event_json.empty()) std::cout << event_json << '\n';
  return 0;
}

int RunVerifyCheckpoints(Flags& flags) {
  if (!flags.Has("pub")) return Fail("verify-checkpoints needs --pub FILE (the log's public key)");
  Result<NoteVerifier> verifier = LoadVerifier(flags.Get("pub"));
  if (!verifier.ok()) return Fail(verifier.status().message());
  CheckpointsReport report;
  Status status = VerifyCheckpoints(flags.Get("data-dir"), *verifier, ProgressStream(), &report);
  if (!status.ok()) {
    std::cout << "FAILED: " << status.message() << '\n';
    return 1;
  }
  std::cout << "ok: " << report.checkpoints << " signed checkpoints, each consistent with the one before "
            << "and with the log's " << report.events << " events\n";
  return 0;
}

int RunExport(Flags& flags) {
  ExportOptions options;
  options.data_dir = flags.Get("data-dir");
  options.account = flags.Get("account");
  for (auto [name, target] : {std::pair{"from", &options.from_us}, {"to", &options.to_us}}) {
    if (!flags.Has(name)) continue;
    std::optional<int64_t> time = ParseTimestamp(flags.Get(name));
    if (!time) return Fail(std::string("--") + name + " must be RFC 3339 UTC or YYYY-MM-DD");
    *target = *time;
  }
  // A bare date as --to means the whole day.
  if (flags.Has("to") && flags.Get("to").size() == 10) options.to_us += kMicrosPerDay - 1;
  uint64_t exported = 0;
  if (Status status = Export(options, std::cout, &exported); !status.ok()) {
    return Fail(status.message());
  }
  std::cerr << "export: " << exported << " events\n";
  return 0;
}

}  // namespace

int ReplayMain(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string command = argv[1];
  if (command == "query") return RunQuery(argc, argv);
  if (command == "what-if") return RunWhatIf(argc, argv);
  Flags flags(argc, argv, 2, {"json"});
  static const std::vector<std::string> kKnown = {
      "data-dir", "expect-head", "out", "until-seq", "until-time", "account", "from", "to",
      "max-records", "json", "svg", "seq", "tree-size", "pub", "checkpoint", "old-checkpoint",
      "proof"};
  if (!flags.error().empty()) return Fail(flags.error());
  if (auto unknown = flags.Unknown(kKnown); !unknown.empty()) {
    return Fail("unknown flag --" + unknown.front());
  }
  if (command == "verify-proof") return RunVerifyProof(flags);  // the public key alone
  if (!flags.Has("data-dir")) return Fail("--data-dir is required");
  if (command == "prove") return RunProve(flags);
  if (command == "checkpoint") return RunCheckpoint(flags);
  if (command == "verify-checkpoints") return RunVerifyCheckpoints(flags);
  if (command == "verify") return RunVerify(flags);
  if (command == "rebuild") return RunRebuild(flags);
  if (command == "export") return RunExport(flags);
  if (command == "explain") return RunExplain(flags);
  if (command == "salvage") {
    Status status = Salvage(flags.Get("data-dir"), std::cout);
    return status.ok() ? 0 : Fail(status.message());
  }
  std::cerr << kUsage;
  return 2;
}

}  // namespace purser
