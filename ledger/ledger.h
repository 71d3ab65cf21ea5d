// The core's front door. A Ledger is one data directory: a RocksDB event
// log, the state projected from it, and the single writer that orders every
// command. Open it, submit commands and queries, follow the durable events,
// read figures and copy the database; nothing else of the core is needed.
//
// The edges (RPC, HTTP, the CLI's client, webhook delivery), the tools and
// the benchmarks include this header, besides the command, result-code and
// limit types (ledger/machine/commands.h, ledger/base/result_code.h,
// ledger/base/limits.h) and the small utilities of ledger/base/. The rest of
// ledger/ (machine/, log/, engine/) is the core's own; replay/ is the core's
// second reader of the log and includes it too.
//
// A command travels: Submit() -> the engine's queue -> the committer (the
// pure machine: checks, events, state) -> the log writer (records, one synced
// RocksDB write per group) -> Completion. See ledger/engine/sequencer.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/histogram.h"
#include "ledger/base/merkle.h"
#include "ledger/base/replicator.h"
#include "ledger/base/status.h"
#include "ledger/machine/commands.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace purser {

class Sequencer;
class EventLog;

struct LedgerOptions {
  // The RocksDB directory. Required.
  std::string data_dir;
  // Commands waiting before Submit() answers "unavailable". Default: 262,144.
  size_t queue_commands_max = 1 << 18;
  // Commands executed in one group commit. Default: 16,384.
  size_t group_commands_max = 1 << 14;
  // A projection checkpoint is written after this many events (finished
  // records then move to the cold store). Default: 1,000,000.
  uint64_t checkpoint_every_events = 1'000'000;
  // Files RocksDB may keep open. Default: -1 (no limit).
  int max_open_files = -1;
  // Start even when the log lost acknowledged events (an explicit operator
  // decision). Default: false.
  bool accept_truncated_log = false;
  // Write the default price table on the first start. Default: true.
  bool write_default_prices = true;
  // Service time source (microseconds since the epoch). Default: the wall clock.
  std::function<int64_t()> clock;
  // A signed checkpoint of the log's Merkle tree (SPEC section 9) is written
  // at least this often (service time) while events arrive. Default: 60 s.
  int64_t sign_every_us = 60'000'000;
  // Keep the log's Merkle tree and sign its checkpoints. false only to
  // measure what the tree costs (purser-bench inproc --no-merkle-tree): no
  // proofs, no signed checkpoints; the next open with it grows the tree over
  // the events written meanwhile. Default: true.
  bool merkle_tree = true;
  // Called once, on the log thread, when a write fails; the ledger has
  // stopped (fail-stop). Default: none.
  std::function<void(const Status&)> on_fatal_error;
  // RocksDB's environment; null = the default. For the simulator, whose
  // environment injects storage faults. Default: null.
  rocksdb::Env* storage_env = nullptr;
  // Whether the committer wakes by itself when idle (every 250 ms of real
  // time, or when a reservation falls due) to expire what is due and record
  // rejection counts. The simulator turns it off: on its simulated clock,
  // groups then run only for its commands, in an order its seed alone
  // decides. Default: true.
  bool wake_when_idle = true;
  // Cluster mode (cluster/): every write's records are first published to
  // the shard's replicated log, and written here and acknowledged only
  // after it accepted them; a refusal (a deposed leader) stops the ledger
  // (on_fatal_error). The message's position is stored with the write
  // (EventLog::ReplicaPosition). Default: none (the embedded default).
  Replicator replicate;
  // Checks each request before it is queued (Submit, Call, CallBatch) on the
  // submitting thread: a reply refuses it, and it is not executed. Cluster
  // mode refuses opening a tenant that another shard holds. Default: none.
  std::function<std::optional<Reply>(const Request&)> admit;
};

// Completes a submission: one reply per request, in order, once the
// submission's events are durable. Runs on the log thread: keep it short.
using Completion = std::function<void(std::vector<Reply>&&)>;

// Receives every group of durable events, in order, on the log thread:
// keep it short (copy what matters, wake another thread).
using EventObserver = std::function<void(const std::vector<Event>&)>;

struct LedgerStats {
  uint64_t events_total = 0;
  uint64_t group_commits = 0;
  uint64_t commands_total = 0;
  uint64_t last_sequence = 0;
  size_t queued_commands = 0;
  size_t queue_capacity = 0;         // commands the queue holds at most (--queue-max)
  uint64_t queue_full_refusals = 0;  // submissions refused because it was full
  size_t pending_reservations = 0;
  size_t reservations_in_memory = 0;
};

// Operational records kept beside the log, never in it (webhook delivery's
// cursor, secrets and delivery records): their own RocksDB column family.
// Writes are not synced unless asked; the log's next synced write syncs
// them too. Thread-safe.
class SideStore {
 public:
  class Batch {
   public:
    void Put(std::string key, std::string value);
    void Delete(std::string key);
    bool empty() const { return ops_.empty(); }

   private:
    friend class SideStore;
    struct Op {
      std::string key;
      std::string value;
      bool put = true;
    };
    std::vector<Op> ops_;
  };
  using Visit = std::function<bool(std::string_view key, std::string_view value)>;

  explicit SideStore(EventLog* log) : log_(log) {}
  // False when absent (or unreadable).
  bool Get(std::string_view key, std::string* value) const;
  Status Put(std::string_view key, std::string_view value, bool sync = false);
  Status Write(const Batch& batch, bool sync = false);
  // Keys starting with `prefix` from `from` on (at least `prefix`), in
  // order, while `visit` returns true.
  void Scan(std::string_view prefix, std::string_view from, const Visit& visit) const;
  // Keys starting with `prefix`, from the last down, while `visit` returns true.
  void ScanBackward(std::string_view prefix, const Visit& visit) const;

 private:
  EventLog* log_;
};

// Durable events read back from the log, in order, each record's checksum
// checked. Not thread-safe; use one per reader.
class EventReader {
 public:
  virtual ~EventReader() = default;
  // The next event: true, false at the end, or an error (a record that
  // does not verify or decode: the reader stops there).
  virtual Result<bool> Next(Event* event) = 0;
};

class Ledger {
 public:
  // Opens (or creates) the data directory, recovers the state (the last
  // projection checkpoint, then the log after it, every record checked) and
  // starts the engine's threads.
  static Result<std::unique_ptr<Ledger>> Open(LedgerOptions options);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Thread-safe. Enqueues `requests` (at most kBatchCommandsMax); false,
  // without enqueuing, when the queue is full or the ledger stopped (`done`
  // is then never called). Queries take the same path: an answer reflects
  // every command answered before it was sent.
  bool Submit(std::vector<Request> requests, Completion done);
  // Blocking conveniences: a full queue or a stopped ledger answers kUnavailable.
  Reply Call(Request request);
  std::vector<Reply> CallBatch(std::vector<Request> requests);

  // Follows the durable events written after the call; a token for
  // RemoveObserver, after which the observer is not running and never
  // called again.
  uint64_t AddObserver(EventObserver observer);
  void RemoveObserver(uint64_t token);
  // Durable events from `from_sequence` (inclusive) on, read from the log.
  std::unique_ptr<EventReader> ReadEvents(uint64_t from_sequence);
  SideStore& side_store() { return *side_; }

  // Stops accepting, executes and syncs what is queued, writes a projection
  // checkpoint and joins the threads. Idempotent.
  void Stop();

  // Figures.
  bool failed() const;
  LedgerStats stats() const;
  const Histogram& fsync_histogram() const;       // synced log writes, µs
  const Histogram& group_size_histogram() const;  // commands per group commit
  const Histogram& execute_histogram() const;     // committer time per group, µs
  const Histogram& encode_histogram() const;      // log writer's encoding per group, µs
  // Requests answered, by type (RequestBody index) and result code, and the
  // time from Submit() to the answer by type (µs).
  uint64_t command_count(size_t type, ResultCode code) const;
  const Histogram& command_latency(size_t type) const;
  uint64_t recovered_tail_events() const;

  // Audit proofs (SPEC section 9), read from the tree stored beside the log:
  // thread-safe, run on the caller's thread (never the commit or log
  // thread), over durable events only.
  // The newest signed checkpoint (a signed note); NotFound before the first.
  Status LatestSignedCheckpoint(std::string* note);
  // Signed checkpoints whose time is at or after `since_us`, oldest first.
  Status SignedCheckpoints(int64_t since_us, size_t limit, std::vector<std::string>* notes);
  // `tree_size` 0: the newest signed checkpoint's.
  Status ProveInclusion(uint64_t sequence, uint64_t tree_size, InclusionProof* proof);
  Status ProveConsistency(uint64_t from, uint64_t to, ConsistencyProof* proof);
  // The accounts a durable event is about (for an event that names only a
  // reservation or a usage record, its account; both parties of a
  // transfer); none for the service's own events (prices, keys, webhooks).
  Status EventAccounts(uint64_t sequence, std::vector<std::string>* accounts);

  // Storage.
  // A consistent copy of the database in `directory` (which must not exist).
  Status CopyTo(const std::string& directory);
  // Reads every table file and checks its block checksums (a scrub).
  Status VerifyChecksums();
  // A RocksDB property ("rocksdb.background-errors", ...).
  std::string StorageProperty(const std::string& name);
  // Flushes and compacts the events (for measurements): then their bytes on disk.
  Status Compact();
  uint64_t EventsBytesOnDisk();

 private:
  explicit Ledger(std::unique_ptr<Sequencer> engine);
  std::unique_ptr<Sequencer> engine_;
  std::unique_ptr<SideStore> side_;
  std::function<std::optional<Reply>(const Request&)> admit_;
};

}  // namespace purser
