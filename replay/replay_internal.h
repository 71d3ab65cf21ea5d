// Shared by the replay tools' sources; not part of replay.h's interface.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ledger/base/merkle.h"
#include "ledger/base/signed_note.h"
#include "ledger/base/status.h"
#include "ledger/log/cold_record.h"
#include "ledger/log/event_log.h"
#include "ledger/machine/events.h"
#include "ledger/machine/state.h"

namespace purser {

// Opens a database read-only (NotFound when the directory does not exist).
Result<std::unique_ptr<EventLog>> OpenReadOnly(const std::string& dir);

// Prints "<verb>: N events (R/s)" lines while a long run goes on (nothing
// when `out` is null).
std::function<void(uint64_t)> ProgressPrinter(std::ostream* out, const char* verb);

// Bounds a replay's memory the way the service does: when memory holds
// `max_records` reservations and usage records, the finished ones leave it for
// the cold store of `log` (a scratch database, or the one being rebuilt), and
// come back when an event needs one.
class Evictor {
 public:
  // `with_listing`: also write the reservations' listing entries, for a
  // database the service will open.
  Evictor(EventLog* log, uint64_t max_records, bool with_listing)
      : log_(log), max_records_(max_records), with_listing_(with_listing), threshold_(max_records) {}

  // Before `event` is applied to *state: evicts when memory is full, then
  // loads the record the event changes if the cold store holds it.
  Status BeforeApply(const Event& event, State* state);
  Status EvictFinished(State* state);
  ColdStore* cold() { return &cold_; }

 private:
  using Entries = std::vector<std::pair<std::string, std::string>>;
  Status WriteRecords(Entries* records, Entries* listing);
  static uint64_t InMemory(const State& state) {
    return state.reservations.size() + state.usages.size();
  }

  EventLog* log_;
  uint64_t max_records_;
  bool with_listing_;
  uint64_t threshold_;
  LogColdStore cold_{log_};
};

// A scratch database in the system's temp directory, removed when done.
class ScratchLog {
 public:
  ScratchLog() = default;
  ScratchLog(const ScratchLog&) = delete;
  ScratchLog& operator=(const ScratchLog&) = delete;
  ~ScratchLog();
  Status Open();
  EventLog* get() { return log_.get(); }

 private:
  std::string path_;
  std::unique_ptr<EventLog> log_;
};

// The Merkle tree (SPEC section 9) recomputed from the log's records as a
// replay reads them, against the signed checkpoints' roots and the tree
// stored beside the log.
class MerkleCheck {
 public:
  // The stored checkpoints, their signatures checked with `verifier` (or,
  // without one, only read); they must grow in size and time.
  Status LoadSignedRoots(EventLog* log, const NoteVerifier* verifier);
  // Every record, in order (ReplayOptions::on_event).
  void Observe(uint64_t sequence, std::string_view record);
  // After the replay: every checkpoint met the log's root at its size, and
  // the stored tree's root equals the records'.
  Status Finish(EventLog* log);
  const std::vector<std::pair<uint64_t, Sha256Digest>>& signed_roots() const { return signed_roots_; }
  uint64_t checkpoints_checked() const { return checked_; }

 private:
  MerkleFrontier frontier_;
  std::vector<MerkleNode> completed_;
  std::vector<std::pair<uint64_t, Sha256Digest>> signed_roots_;  // tree size -> root
  std::vector<std::pair<uint64_t, Sha256Digest>>::const_iterator next_;
  int64_t last_time_us_ = 0;
  uint64_t checked_ = 0;
  std::string problem_;
};

// A signed checkpoint opened with the log's public key.
Status OpenCheckpoint(const NoteVerifier& verifier, std::string_view note, LogCheckpoint* checkpoint);

// The accounts of one subtree, learned from AccountOpened events while a log
// is read in order. An empty root means every account.
class SubtreeScope {
 public:
  explicit SubtreeScope(std::string root) : root_(std::move(root)) {}
  void Observe(const event::AccountOpened& e) {
    if (root_.empty()) return;
    if (e.account == root_ || (!e.parent.empty() && members_.contains(e.parent))) {
      members_.insert(e.account);
    }
  }
  bool Contains(const std::string& account) const { return root_.empty() || members_.contains(account); }
  // Whether the root was met (always, for every account).
  bool found() const { return root_.empty() || !members_.empty(); }

 private:
  std::string root_;
  std::unordered_set<std::string> members_;
};

}  // namespace purser
