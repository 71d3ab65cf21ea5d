// The event log on RocksDB.
//
// Column families (docs/FORMAT.md):
//   default     metadata: "format" -> "purser-log-2"
//   events      8-byte big-endian sequence of the first event of a group
//               commit -> a segment: the group's records in sequence order,
//               each as a 4-byte little-endian length and the record
//               (ledger/event_codec.h). One key per group instead of one per
//               event cuts RocksDB's write cost per event by ~2.7x here
//               (bench/RESULTS.md); every record keeps its own checksum and
//               link, so damage is still named event by event.
//   ids         kind byte + client id -> 8-byte big-endian sequence of the
//               event that established the id (the idempotency index)
//   checkpoint  "head" -> projection checkpoint header; "chunk" + 8-byte
//               big-endian generation + 4-byte big-endian index -> serialized
//               state (ledger/snapshot.h); "chunk" + 4-byte index alone
//               under a head of an older build (docs/FORMAT.md)
//   records     the cold store: 'r' + reservation id / 'u' + usage id ->
//               a finished record as of the last projection checkpoint
//               (ledger/cold_record.h), written in the checkpoint's batch
//   merkle      the log's Merkle tree (ledger/base/merkle.h): 'n' + level
//               byte + 8-byte big-endian index -> the 32-byte hash of a
//               node at kMerkleStoredLevel or above, and "size" -> the
//               number of leaves, both written with the events' batch;
//               'c' + 8-byte big-endian tree size -> a signed checkpoint
//               (ledger/base/signed_note.h)
//
// A group commit's events and id-index entries go into one WriteBatch,
// written with sync = true: nothing is acknowledged before it is durable.
//
// Thread-safety: Write() is called by one writer thread; readers
// (iterators, Get) may run concurrently, as RocksDB allows.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/merkle.h"
#include "ledger/machine/events.h"
#include "ledger/base/status.h"
#include "ledger/base/types.h"

namespace rocksdb {
class ColumnFamilyHandle;
class Env;
class DB;
class Iterator;
class WriteBatch;
}  // namespace rocksdb

namespace purser {

struct EventLogOptions {
  std::string path;
  // Open an existing log only (replay tools, audits). Default: false.
  bool read_only = false;
  // Memtable size of the events column family. Default: 64 MiB.
  size_t write_buffer_bytes = 64 << 20;
  // Memtable size of the cold store, which takes a checkpoint's worth of
  // records in one batch. Default: 256 MiB.
  size_t cold_write_buffer_bytes = 256 << 20;
  // Files RocksDB keeps open (table cache); -1 = as many as it wants. The
  // service sets a number so that its own connections can never take the
  // descriptors RocksDB needs (a full descriptor table would fail-stop the
  // log at its next file). Default: -1.
  int max_open_files = -1;
  // Keep the Merkle tree (SPEC section 9). false only to measure its cost:
  // the family is left as it is, and the next open with the tree grows it
  // over the events written meanwhile. Default: true.
  bool merkle_tree = true;
  // RocksDB's environment (files, threads, clock); null = the default. The
  // simulator's injects storage faults (sim/fault_fs.h).
  rocksdb::Env* env = nullptr;
};

// A batch of records and index entries for one group commit: its records
// form one or more segments of about 16 KiB, written atomically.
class LogBatch {
 public:
  LogBatch();
  // With room for `reserved_bytes` (a batch carrying a checkpoint): a
  // write batch grown by doubling touches twice its size in fresh pages.
  explicit LogBatch(size_t reserved_bytes);
  ~LogBatch();
  LogBatch(LogBatch&&) noexcept;
  LogBatch& operator=(LogBatch&&) noexcept;

  bool empty() const { return records_ == 0 && extra_ == 0; }
  size_t records() const { return records_; }
  size_t bytes() const;
  // Every record appended from now on is also appended to *out, as in a
  // segment (a 4-byte little-endian length, then the record): what a
  // replicated log publishes (cluster/). Null stops it.
  void CaptureRecords(std::string* out) { capture_ = out; }

 private:
  friend class EventLog;
  // Puts the segment being built (records from segment_first_ on) into the
  // batch and starts the next one.
  void PutSegment(rocksdb::ColumnFamilyHandle* events);
  std::unique_ptr<rocksdb::WriteBatch> batch_;
  std::string segment_;
  // Id-index entries (key, value) of the segment, put in key order at Write:
  // the memtable's skip list inserts neighbours far faster than random keys.
  std::vector<std::pair<std::string, std::string>> ids_;
  uint64_t segment_first_ = 0;
  size_t records_ = 0;
  size_t extra_ = 0;
  std::string* capture_ = nullptr;
};

class EventLog {
 public:
  static Result<std::unique_ptr<EventLog>> Open(const EventLogOptions& options);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // The last sequence in the log (0 when empty) and its chain link, as found
  // at Open and advanced by Append().
  uint64_t last_sequence() const { return last_sequence_; }
  const Sha256Digest& last_link() const { return last_link_; }

  // Encodes `event` (whose sequence must be last_sequence() + 1) into
  // `batch`, with its id-index entry, and advances the in-memory head.
  // `payload` is the event's encoding (ledger/event_codec.h).
  void Append(const Event& event, std::string_view payload, LogBatch* batch);
  // The same with the record of another log, copied byte for byte: the
  // caller has checked its checksum and that its link follows last_link()
  // (rebuild --out, from a verified log). Its link becomes the head's.
  void AppendRecord(const Event& event, std::string_view record, LogBatch* batch);

  // Writes a batch. `sync` = fsync the WAL before returning.
  Status Write(LogBatch* batch, bool sync);

  // A projection checkpoint is stored as chunks of at most this many bytes
  // under a generation of its own, and a head that names it.
  static constexpr size_t kCheckpointChunkBytes = 1 << 20;
  // The number of chunks of a state of `bytes`.
  static uint32_t CheckpointChunks(size_t bytes);
  // Projection checkpoint: replaces the stored one in one atomic batch.
  void AddCheckpoint(uint64_t sequence, const Sha256Digest& link, std::string_view state,
                     LogBatch* batch);
  // The same in writes that skip the write-ahead log, one chunk at a time
  // (each a short write, so the caller can interleave its own), then the
  // head, which deletes every other checkpoint's chunks and asks for a
  // background flush of the column family. Memtables flush in order, so a
  // crash keeps a prefix of these writes: with the head, every chunk before
  // it; without, the checkpoint before, whole (its chunks are deleted only
  // with the new head). Recovery then starts from that one; the caller makes
  // sure that is safe (no cold record was rewritten for this one) and that
  // `sequence` is durable.
  // `generation` from NewCheckpointGeneration(), one per checkpoint: never
  // that of a stored head, whose chunks stay as they are until replaced.
  uint64_t NewCheckpointGeneration();
  // Chunk `index` of `state`.
  Status WriteUnloggedCheckpointChunk(uint64_t generation, std::string_view state, uint32_t index);
  Status WriteUnloggedCheckpointHead(uint64_t generation, uint64_t sequence, const Sha256Digest& link,
                                     uint64_t size, uint32_t chunks);
  // Every chunk, then the head.
  Status WriteUnloggedCheckpoint(uint64_t sequence, const Sha256Digest& link, std::string_view state);
  // A cold-store record (key from ColdKey()), written with the batch.
  void AddColdRecord(std::string_view key, std::string_view record, LogBatch* batch);
  // A listing-index entry (key from ListingKey()), written with the batch.
  void AddListingEntry(std::string_view key, std::string_view value, LogBatch* batch);
  // For each prefix in turn, visits the listing entries whose keys start with
  // it, in key order, while `visit` returns true.
  Status ScanListing(const std::vector<std::string>& prefixes,
                     const std::function<bool(std::string_view key, std::string_view value)>& visit);
  // Reads cold records: (*values)[i] is set and (*found)[i] true for each key found.
  Status GetColdRecords(const std::vector<std::string>& keys, std::vector<std::string>* values,
                        std::vector<bool>* found);
  // Visits the cold records whose keys start with `kind`, in key order.
  Status ForEachColdRecord(char kind,
                           const std::function<Status(std::string_view key, std::string_view value)>& visit);
  // The stored checkpoint; *sequence = 0 when there is none.
  Status ReadCheckpoint(uint64_t* sequence, Sha256Digest* link, std::string* state);

  // Reads the record of one event.
  Status ReadRecord(uint64_t sequence, std::string* record);

  // The position in a replicated log (cluster/: a JetStream stream
  // sequence) of the last message whose records this log holds, written
  // with the batch that holds them; 0 when none (the embedded default).
  void SetReplicaPosition(uint64_t position, LogBatch* batch);
  uint64_t ReplicaPosition();

  // The Merkle tree (SPEC section 9). Leaves the tree holds durably (any
  // thread): every event written, once its batch is; in a read-only open
  // of a database from an older build, what its tree covers (0 without).
  uint64_t merkle_durable_size() const { return merkle_durable_size_.load(std::memory_order_acquire); }
  // The root of every event appended so far (the writer's thread).
  Sha256Digest merkle_root() const { return frontier_.Root(); }
  uint64_t merkle_size() const { return frontier_.size(); }
  // A stored node (level >= kMerkleStoredLevel); Corruption when absent.
  Status GetMerkleNode(int level, uint64_t index, Sha256Digest* hash);
  // Signed checkpoints, kept forever: one written now, synced.
  Status AddSignedCheckpoint(uint64_t tree_size, std::string_view note);
  // Visits the signed checkpoints of tree sizes >= `from_size`, in order,
  // while `visit` returns true.
  Status ForEachSignedCheckpoint(uint64_t from_size,
                                 const std::function<bool(uint64_t tree_size, std::string_view note)>& visit);
  // The newest one; *tree_size = 0 when there is none.
  Status LatestSignedCheckpoint(uint64_t* tree_size, std::string* note);

  // The sequence that established `id` of `kind`, or 0.
  uint64_t FindId(char kind, std::string_view id);
  // Visits every id-index entry: its key (kind byte + id) and sequence.
  Status ForEachId(const std::function<void(std::string_view key, uint64_t sequence)>& visit);

  // Iterates records from `from_sequence` (inclusive) in order. A record's
  // sequence is its segment's key plus its position; a record whose length
  // prefix is damaged is yielded with the rest of its segment, so that its
  // checksum names it.
  class Iterator {
   public:
    ~Iterator();
    bool Valid() const { return valid_; }
    void Next();
    uint64_t sequence() const { return sequence_; }
    std::string_view record() const { return record_; }
    // The first sequence of the segment holding the current record.
    uint64_t segment_first() const { return segment_first_; }
    Status status() const;

   private:
    friend class EventLog;
    void LoadSegment();
    void ParseRecord();
    std::unique_ptr<rocksdb::Iterator> it_;
    std::string_view segment_;  // the unread rest of the current segment
    std::string_view record_;
    uint64_t sequence_ = 0;
    uint64_t segment_first_ = 0;
    bool valid_ = false;
  };
  // `scan`: a long read (read-ahead, no block cache); otherwise a few
  // records (a proof's).
  std::unique_ptr<Iterator> NewIterator(uint64_t from_sequence, bool scan = true);

  // A consistent copy of the database in `directory` (RocksDB Checkpoint).
  Status CreateCheckpointCopy(const std::string& directory);
  // Size of the events column family's SST files and its live keys.
  uint64_t EventsBytesOnDisk();
  Status CompactEvents();
  Status FlushAll();
  // Reads every SST file and checks its block checksums (a scrub). An
  // error names the file; RocksDB's own background errors (a compaction
  // that met corruption) are reported too.
  Status VerifyChecksums();
  std::string Property(const std::string& name);

  rocksdb::DB* db() { return db_.get(); }
  // The notifier's column family (null in a read-only open of an older database).
  rocksdb::ColumnFamilyHandle* notify_family() { return notify_; }

 private:
  EventLog() = default;
  Status Recover();
  // Loads the tree's right edge and, in a writable open, extends the tree
  // over events it does not cover yet (a database of an older build).
  Status RecoverMerkle();
  Status RecoverCheckpointChunks();
  // One read of the head and its chunks; *replaced when a chunk was missing
  // because the head changed meanwhile.
  Status ReadCheckpointOnce(uint64_t* sequence, Sha256Digest* link, std::string* state, bool* replaced);
  // The head of the checkpoint at `sequence` whose `chunks` are written
  // under `generation`, and the deletes of every other set of chunks.
  void AddCheckpointHead(uint64_t generation, uint64_t sequence, const Sha256Digest& link, uint64_t size,
                         uint32_t chunks, LogBatch* batch);
  // Before a record of `event` is appended to the batch's segment: its
  // length prefix reserved, at the returned offset.
  size_t BeginRecord(const Event& event, LogBatch* batch);
  // After a record of `event` was appended to the batch's segment at `at`
  // (its length prefix) and `length` bytes on: the prefix, the id-index
  // entry, the new head and the Merkle leaf.
  void Appended(const Event& event, size_t at, uint32_t length, LogBatch* batch);

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* ids_ = nullptr;
  rocksdb::ColumnFamilyHandle* checkpoint_ = nullptr;
  // The sets of checkpoint chunks written or found stored: generation ->
  // the highest index + 1; legacy_chunks_ for "chunk" + index keys. These
  // three: at Open, then on the log thread alone (the engine's writes).
  std::map<uint64_t, uint32_t> chunk_sets_;
  uint32_t legacy_chunks_ = 0;
  uint64_t next_generation_ = 1;  // above every stored one
  rocksdb::ColumnFamilyHandle* listing_ = nullptr;
  rocksdb::ColumnFamilyHandle* records_ = nullptr;
  rocksdb::ColumnFamilyHandle* notify_ = nullptr;
  rocksdb::ColumnFamilyHandle* merkle_ = nullptr;
  MerkleFrontier frontier_;
  std::vector<MerkleNode> completed_;  // Append's scratch
  std::atomic<uint64_t> merkle_durable_size_{0};
  uint64_t last_sequence_ = 0;
  Sha256Digest last_link_{};
  bool read_only_ = false;
};

// The id-index entry of an event, if it establishes a client id:
// kind byte ('a' account, 'd' deposit, 'r' reservation, 'u' usage, 'f'
// refund, 'v' revenue, 'j' adjustment, 'k' key, 'w' webhook, 'p' daily
// report, 't' transfer) and the id. Returns false when the event has none.
bool IdIndexEntry(const EventBody& body, char* kind, std::string* id);

}  // namespace purser
