// The engine's cold-store manager: which finished records leave memory, when,
// and which come back. It runs on the committer's thread and owns no thread.
//
// A finished reservation or usage record is written to the cold store (with
// its listing-index entry) in the batch of the group that finished it, and
// leaves memory once that batch is durable: the work is spread over every
// group instead of piling up at checkpoints. That is safe because recovery
// loads a record from the cold store only when a log event after the
// checkpoint needs one that neither the checkpoint nor the replayed tail
// holds, that is a record finished before the checkpoint, whose stored
// version must then be the one as of the checkpoint. So:
//   - a record the cold store never held (stored_version 0) is written at
//     once, with its group;
//   - a record the cold store already holds that changed since (a refund of
//     a finished reservation, loaded back for it) is "dirty": rewritten only
//     with the next checkpoint, in the same atomic write.
// Records loaded back stay in memory until the next checkpoint, which a
// bound on their number brings forward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ledger/base/status.h"
#include "ledger/engine/batch.h"
#include "ledger/log/event_log.h"
#include "ledger/machine/state.h"

namespace purser {

class ColdStoreManager {
 public:
  ColdStoreManager(EventLog* log, State* state) : log_(log), state_(state) {}

  // After recovery: finished records in memory that the cold store does not
  // hold at their version (the replayed tail; everything after a replay that
  // could not use the cold store) are written with the next checkpoint.
  void AdoptRecovered();

  // Before a group: drops the records whose batches up to `written` are
  // durable, unless they changed since.
  void Release(uint64_t written);

  // Before a group: loads from the cold store the records the submissions
  // may need that memory does not hold, so that the group does no I/O.
  Status Prefetch(const std::vector<Submission>& submissions);
  // Whether the last Prefetch looked for record `id` of `kind` ('r', 'u')
  // in the cold store (true after a failed prefetch: the group fails). The
  // machine's debug check of its misses (Machine::CheckMissesAgainst).
  bool LookedFor(char kind, std::string_view id) const;

  // After a group: writes the records its events finished into *out and
  // notes the records it changed that the cold store holds.
  void Retire(const std::vector<Event>& events, ColdWrites* out);

  // At a checkpoint: rewrites the changed records into *out, and lets every
  // record loaded back leave memory with it.
  void Checkpoint(ColdWrites* out);

  // The batch that carries what Retire or Checkpoint wrote got `number`.
  void Pushed(uint64_t number);

  // Records loaded back since the last checkpoint (a checkpoint is due
  // when this reaches kLoadedRecordsMax).
  size_t loaded() const { return loaded_.size(); }
  size_t dirty() const { return dirty_.size(); }
  static constexpr size_t kLoadedRecordsMax = 200'000;

 private:
  struct Eviction;
  // Records stored now leave memory with the batch not yet pushed.
  Eviction& Current();
  // Writes a finished record into *out, notes its stored version and its
  // eviction; `listed` collects reservations for their listing entries.
  void Store(Reservation& r, ColdWrites* out, std::vector<const Reservation*>* listed);
  void Store(const std::string& id, UsageRecord& usage, ColdWrites* out);
  // The same for a cold key (kind + id), if memory holds the record finished
  // and changed since it was stored.
  void StoreKey(const std::string& key, ColdWrites* out, std::vector<const Reservation*>* listed);
  void PrefetchListing(const query::ListReservations& q);
  void WriteListing(std::vector<const Reservation*>& listed, ColdWrites* out);

  EventLog* log_;
  State* state_;
  // Records stored with batches not yet durable, to drop once they are.
  struct Eviction {
    uint64_t batch = 0;                                           // 0: not pushed yet
    std::vector<std::tuple<char, std::string, uint64_t>> records;  // kind, id, version
  };
  std::deque<Eviction> evictions_;
  // Loaded back since the last checkpoint: cold key -> version loaded.
  std::unordered_map<std::string, uint64_t> loaded_;
  // Held by the cold store at an older version than memory: cold keys.
  std::unordered_set<std::string> dirty_;
  std::vector<std::string> prefetch_keys_;  // sorted once the prefetch is done
  Status prefetch_status_;
  bool prefetch_done_ = false;  // the last prefetch read everything it looked for
};

}  // namespace purser
