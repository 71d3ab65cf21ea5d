#include "ledger/log/event_log.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "ledger/log/event_codec.h"
#include "ledger/log/merkle_store.h"

namespace purser {

namespace {

constexpr char kFormatKey[] = "format";
constexpr char kReplicaPositionKey[] = "replica_position";
constexpr char kFormatValue[] = "purser-log-2";
constexpr char kCheckpointHeadKey[] = "head";
// A head of this size names chunks by index alone (builds before 2026-12-03);
// kChunksByGeneration and an 8-byte generation more, by generation and index.
constexpr size_t kLegacyHeadBytes = 8 + 32 + 8 + 8;
constexpr char kChunksByGeneration = 1;
constexpr size_t kHeadBytes = kLegacyHeadBytes + 1 + 8;
constexpr uint64_t kLegacyChunkBytes = 4 << 20;
constexpr char kMerkleSizeKey[] = "size";
// A segment is cut once it holds this much (the events' block size).
constexpr size_t kSegmentBytes = 16 << 10;

std::string MerkleNodeKey(int level, uint64_t index) {
  std::string key = "n";
  key.push_back(static_cast<char>(level));
  key += SequenceKey(index);
  return key;
}

std::string SignedCheckpointKey(uint64_t tree_size) { return "c" + SequenceKey(tree_size); }

Status FromRocks(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return Status::Ok();
  std::string message = std::string(what) + ": " + status.ToString();
  if (status.IsCorruption()) return Status::Corruption(std::move(message));
  if (status.IsNotFound()) return Status::NotFound(std::move(message));
  if (status.IsInvalidArgument()) return Status::InvalidArgument(std::move(message));
  return Status::IOError(std::move(message));
}

rocksdb::Slice Slice(std::string_view text) { return rocksdb::Slice(text.data(), text.size()); }
rocksdb::Slice Slice(const Sha256Digest& hash) {
  return rocksdb::Slice(reinterpret_cast<const char*>(hash.data()), hash.size());
}

bool Supports(rocksdb::CompressionType type) {
  auto supported = rocksdb::GetSupportedCompressions();
  return std::find(supported.begin(), supported.end(), type) != supported.end();
}

rocksdb::ColumnFamilyOptions EventsOptions(const EventLogOptions& options) {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.write_buffer_bytes;
  cf.max_write_buffer_number = 4;
  cf.target_file_size_base = 64 << 20;
  cf.max_bytes_for_level_base = 256 << 20;
  // Keys only grow; level compaction merely moves files down. Compress cheaply
  // in upper levels and well at the bottom, where events spend their life.
  cf.compression = Supports(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                                      : rocksdb::kSnappyCompression;
  if (Supports(rocksdb::kZSTD)) cf.bottommost_compression = rocksdb::kZSTD;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = kSegmentBytes;
  // A segment is about one block, but databases written before segments
  // were cut hold one segment of up to a few hundred KiB per commit: the
  // default 8 MiB cache would hold a few dozen of those, and a proof or an
  // id lookup that misses decompresses its segment again.
  table.block_cache = rocksdb::NewLRUCache(64 << 20);
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

rocksdb::ColumnFamilyOptions IdsOptions() {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = 32 << 20;
  // Most lookups are misses (a new id is checked against every id ever
  // used): a Bloom filter over the memtable's keys answers them without
  // searching its skip list.
  cf.memtable_whole_key_filtering = true;
  cf.memtable_prefix_bloom_size_ratio = 0.05;
  cf.compression = Supports(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                                      : rocksdb::kSnappyCompression;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

// The cold store takes a checkpoint's worth of records in one batch: large
// memtables so that such a batch does not stall on flushes.
rocksdb::ColumnFamilyOptions RecordsOptions(const EventLogOptions& options) {
  rocksdb::ColumnFamilyOptions cf = IdsOptions();
  cf.write_buffer_size = options.cold_write_buffer_bytes;
  cf.max_write_buffer_number = 4;
  return cf;
}

// Each checkpoint is flushed on its own (WriteUnloggedCheckpoint): room for
// a few in flight before a flush request would wait.
rocksdb::ColumnFamilyOptions CheckpointOptions() {
  rocksdb::ColumnFamilyOptions cf;
  cf.max_write_buffer_number = 4;
  return cf;
}

// The listing index is only ever scanned by prefix: no Bloom filter.
rocksdb::ColumnFamilyOptions ListingOptions() {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = 64 << 20;
  cf.compression = Supports(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                                      : rocksdb::kSnappyCompression;
  return cf;
}

constexpr char kChunkPrefix[] = "chunk";
constexpr size_t kLegacyChunkKeyBytes = 5 + 4;
constexpr size_t kChunkKeyBytes = 5 + 8 + 4;

void AppendIndex(uint32_t index, std::string* key) {
  for (int i = 3; i >= 0; --i) key->push_back(static_cast<char>(index >> (8 * i)));
}

// "chunk" + index: the chunks of a legacy head.
std::string LegacyChunkKey(uint32_t index) {
  std::string key = kChunkPrefix;
  AppendIndex(index, &key);
  return key;
}

// "chunk" + the checkpoint's generation + index.
std::string ChunkKey(uint64_t generation, uint32_t index) {
  std::string key = kChunkPrefix + SequenceKey(generation);
  AppendIndex(index, &key);
  return key;
}

// Chunk `index` of a checkpoint's `state`.
std::string_view ChunkOf(std::string_view state, uint32_t index) {
  return state.substr(index * EventLog::kCheckpointChunkBytes, EventLog::kCheckpointChunkBytes);
}

uint32_t IndexOfChunkKey(std::string_view key) {
  uint32_t index = 0;
  for (size_t i = key.size() - 4; i < key.size(); ++i) index = index << 8 | static_cast<unsigned char>(key[i]);
  return index;
}

}  // namespace

LogBatch::LogBatch() : batch_(std::make_unique<rocksdb::WriteBatch>()) {}
LogBatch::LogBatch(size_t reserved_bytes)
    : batch_(std::make_unique<rocksdb::WriteBatch>(reserved_bytes)) {}
LogBatch::~LogBatch() = default;
LogBatch::LogBatch(LogBatch&&) noexcept = default;
LogBatch& LogBatch::operator=(LogBatch&&) noexcept = default;
void LogBatch::PutSegment(rocksdb::ColumnFamilyHandle* events) {
  if (segment_.empty()) return;
  batch_->Put(events, Slice(SequenceKey(segment_first_)), Slice(segment_)).PermitUncheckedError();
  segment_.clear();
}
size_t LogBatch::bytes() const {
  size_t ids = 0;
  for (const auto& [key, value] : ids_) ids += key.size() + value.size();
  return batch_->GetDataSize() + segment_.size() + ids;
}

Result<std::unique_ptr<EventLog>> EventLog::Open(const EventLogOptions& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !options.read_only;
  db_options.create_missing_column_families = !options.read_only;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.keep_log_file_num = 4;
  db_options.max_total_wal_size = 512 << 20;
  // RocksDB preallocates each WAL file at 1.1 x the largest write buffer
  // (~286 MB here), so a new, empty database took that much disk. Without
  // fallocate it takes what it holds; measured in bench/RESULTS.md.
  db_options.allow_fallocate = false;
  db_options.max_open_files = options.max_open_files;
  if (options.env != nullptr) db_options.env = options.env;
  // A torn tail after a crash is tolerated (nothing in it was acknowledged:
  // acknowledgement follows the sync); damage anywhere else in the
  // write-ahead log stops the open with a Corruption error instead of
  // silently ending the log at the damage (RocksDB's default).
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"events", EventsOptions(options)},
      {"ids", IdsOptions()},
      {"checkpoint", CheckpointOptions()},
      {"records", RecordsOptions(options)},
      {"listing", ListingOptions()},
      // The notifier's own records (notify/): webhook secrets, its cursor
      // and the deliveries. Operational data, never part of the log.
      {"notify", rocksdb::ColumnFamilyOptions()},
      // The Merkle tree and the signed checkpoints (SPEC section 9).
      {"merkle", rocksdb::ColumnFamilyOptions()},
  };
  if (options.read_only) {
    // A database of an older build may lack the newer families: open what it has.
    std::vector<std::string> existing;
    rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).PermitUncheckedError();
    std::erase_if(families, [&](const rocksdb::ColumnFamilyDescriptor& family) {
      return (family.name == "notify" || family.name == "merkle") &&
             std::find(existing.begin(), existing.end(), family.name) == existing.end();
    });
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, families, &handles, &raw)
          : rocksdb::DB::Open(db_options, options.path, families, &handles, &raw);
  if (!status.ok()) return FromRocks(status, "opening " + options.path);
  std::unique_ptr<EventLog> log(new EventLog());
  log->db_.reset(raw);
  log->default_ = handles[0];
  log->events_ = handles[1];
  log->ids_ = handles[2];
  log->checkpoint_ = handles[3];
  log->records_ = handles[4];
  log->listing_ = handles[5];
  for (size_t i = 6; i < handles.size(); ++i) {
    (handles[i]->GetName() == "notify" ? log->notify_ : log->merkle_) = handles[i];
  }
  if (!options.merkle_tree && log->merkle_ != nullptr) {
    raw->DestroyColumnFamilyHandle(log->merkle_).PermitUncheckedError();
    log->merkle_ = nullptr;
  }
  log->read_only_ = options.read_only;
  if (Status recovered = log->Recover(); !recovered.ok()) return recovered;
  return log;
}

EventLog::~EventLog() {
  if (db_ == nullptr) return;
  if (!read_only_) {
    // A checkpoint written outside the write-ahead log is only in memtables
    // until its background flush, and RocksDB's close skips a flush that was
    // scheduled but has not started: without this wait, a clean stop lost
    // the checkpoint it had just written (tests/checkpoint_store_test.cc).
    // On a failed disk the flush fails at once; that checkpoint is then lost,
    // as at a crash, and recovery starts from the one before.
    rocksdb::FlushOptions flush;
    flush.wait = true;
    flush.allow_write_stall = true;
    db_->Flush(flush, checkpoint_).PermitUncheckedError();
  }
  for (auto* handle : {events_, ids_, checkpoint_, records_, listing_, notify_, merkle_}) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->DestroyColumnFamilyHandle(default_).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
}

Status EventLog::Recover() {
  std::string format;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), default_, kFormatKey, &format);
  if (status.IsNotFound()) {
    if (read_only_) return Status::InvalidArgument("not a Purser log (no format marker)");
    rocksdb::WriteOptions write;
    write.sync = true;
    status = db_->Put(write, default_, kFormatKey, kFormatValue);
    if (!status.ok()) return FromRocks(status, "writing the format marker");
  } else if (!status.ok()) {
    return FromRocks(status, "reading the format marker");
  } else if (format != kFormatValue) {
    return Status::InvalidArgument("unknown log format " + format);
  }
  std::unique_ptr<rocksdb::Iterator> last(db_->NewIterator(rocksdb::ReadOptions(), events_));
  last->SeekToLast();
  if (!last->Valid()) return FromRocks(last->status(), "reading the last event");
  // The head is the last record of the last segment.
  auto it = NewIterator(SequenceFromKey(std::string_view(last->key().data(), last->key().size())));
  if (!it->Valid()) return Status::Corruption("the last segment of the log is empty");
  std::string_view record;
  uint64_t sequence = 0;
  for (; it->Valid(); it->Next()) {
    sequence = it->sequence();
    record = it->record();
  }
  RecordView view;
  if (Status decoded = DecodeRecord(sequence, record, &view); !decoded.ok()) return decoded;
  last_sequence_ = sequence;
  last_link_ = view.link;
  if (Status iterated = it->status(); !iterated.ok()) return iterated;
  if (Status chunks = RecoverCheckpointChunks(); !chunks.ok()) return chunks;
  return RecoverMerkle();
}

Status EventLog::RecoverCheckpointChunks() {
  // Every set of chunks stored, the head's and any left by a checkpoint a
  // crash cut short: the next head written deletes all but its own. New
  // generations start above all of them and the head's.
  std::string head;
  if (db_->Get(rocksdb::ReadOptions(), checkpoint_, kCheckpointHeadKey, &head).ok() &&
      head.size() == kHeadBytes && head[kLegacyHeadBytes] == kChunksByGeneration) {
    next_generation_ = SequenceFromKey(std::string_view(head).substr(kLegacyHeadBytes + 1, 8)) + 1;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), checkpoint_));
  for (it->Seek(kChunkPrefix); it->Valid() && it->key().starts_with(kChunkPrefix); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    const uint32_t count = IndexOfChunkKey(key) + 1;
    if (key.size() == kLegacyChunkKeyBytes) {
      legacy_chunks_ = std::max(legacy_chunks_, count);
    } else if (key.size() == kChunkKeyBytes) {
      const uint64_t generation = SequenceFromKey(key.substr(5, 8));
      uint32_t& stored = chunk_sets_[generation];
      stored = std::max(stored, count);
      next_generation_ = std::max(next_generation_, generation + 1);
    }
  }
  // The checkpoint is derived data: a damaged one must not stop the open
  // (recovery replays the log instead). Chunks this could not count stay
  // behind, unread: the head says how many a checkpoint has.
  if (!it->status().ok()) {
    std::fprintf(stderr, "purser: cannot count the checkpoint's chunks: %s\n",
                 it->status().ToString().c_str());
  }
  return Status::Ok();
}

Status EventLog::RecoverMerkle() {
  if (merkle_ == nullptr) return Status::Ok();  // read-only, an older build's database
  std::string value;
  uint64_t size = 0;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), merkle_, kMerkleSizeKey, &value);
  if (status.ok() && value.size() == 8) {
    size = SequenceFromKey(value);
  } else if (!status.IsNotFound()) {
    return status.ok() ? Status::Corruption("the Merkle tree's size is malformed")
                       : FromRocks(status, "reading the Merkle tree's size");
  }
  // A log shorter than its tree lost events (the head mark tells the engine,
  // which refuses to start unless told to accept it): the tree's nodes over
  // the events that remain still stand, and the ones beyond are written
  // again as the log grows back over them.
  size = std::min(size, last_sequence_);
  std::vector<Sha256Digest> peaks;
  if (Status loaded = MerklePeaks(this, size, &peaks); !loaded.ok()) {
    // Damage under the tree: the tools' replay names it; a writable open
    // builds the tree again from the log (whose records recovery checks).
    if (read_only_) return Status::Ok();
    std::fprintf(stderr, "purser: the Merkle tree cannot be read (%s); building it again from the log\n",
                 loaded.message().c_str());
    size = 0;
    peaks.clear();
  }
  frontier_.Reset(size, peaks);
  merkle_durable_size_.store(size, std::memory_order_release);
  if (read_only_ || size == last_sequence_) return Status::Ok();
  // A database of an older build: the tree grows over its events now.
  if (last_sequence_ - size > 100'000) {
    std::fprintf(stderr, "purser: building the Merkle tree over events %llu..%llu\n",
                 static_cast<unsigned long long>(size + 1), static_cast<unsigned long long>(last_sequence_));
  }
  rocksdb::WriteBatch batch;
  for (auto it = NewIterator(size + 1); it->Valid(); it->Next()) {
    if (it->sequence() != frontier_.size() + 1) break;
    frontier_.Append(MerkleLeafHash(it->record()), &completed_);
    for (const MerkleNode& node : completed_) {
      batch.Put(merkle_, MerkleNodeKey(node.level, node.index), Slice(node.hash)).PermitUncheckedError();
    }
    completed_.clear();
    if (batch.Count() >= 100'000 || it->sequence() == last_sequence_) {
      batch.Put(merkle_, kMerkleSizeKey, SequenceKey(frontier_.size())).PermitUncheckedError();
      rocksdb::WriteOptions options;
      options.sync = it->sequence() == last_sequence_;
      if (Status written = FromRocks(db_->Write(options, &batch), "writing the Merkle tree");
          !written.ok()) {
        return written;
      }
      batch.Clear();
    }
  }
  if (frontier_.size() != last_sequence_) {
    return Status::Corruption("event " + std::to_string(frontier_.size() + 1) +
                              " is missing from the log (building the Merkle tree)");
  }
  merkle_durable_size_.store(frontier_.size(), std::memory_order_release);
  return Status::Ok();
}

Status EventLog::GetMerkleNode(int level, uint64_t index, Sha256Digest* hash) {
  if (merkle_ == nullptr) return Status::NotFound("this database has no Merkle tree");
  std::string value;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), merkle_, MerkleNodeKey(level, index), &value);
  if (status.ok() && value.size() == hash->size()) {
    std::memcpy(hash->data(), value.data(), hash->size());
    return Status::Ok();
  }
  if (!status.ok() && !status.IsNotFound()) return FromRocks(status, "reading the Merkle tree");
  return Status::Corruption("the Merkle tree's node " + std::to_string(level) + "/" +
                            std::to_string(index) + (status.ok() ? " is malformed" : " is missing"));
}

Status EventLog::AddSignedCheckpoint(uint64_t tree_size, std::string_view note) {
  if (merkle_ == nullptr) return Status::Error("this database has no Merkle tree");
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(db_->Put(options, merkle_, SignedCheckpointKey(tree_size), Slice(note)),
                   "writing a signed checkpoint");
}

Status EventLog::ForEachSignedCheckpoint(
    uint64_t from_size, const std::function<bool(uint64_t tree_size, std::string_view note)>& visit) {
  if (merkle_ == nullptr) return Status::Ok();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), merkle_));
  for (it->Seek(SignedCheckpointKey(from_size)); it->Valid() && it->key().starts_with("c"); it->Next()) {
    uint64_t size = SequenceFromKey(std::string_view(it->key().data() + 1, it->key().size() - 1));
    if (!visit(size, std::string_view(it->value().data(), it->value().size()))) break;
  }
  return FromRocks(it->status(), "reading the signed checkpoints");
}

Status EventLog::LatestSignedCheckpoint(uint64_t* tree_size, std::string* note) {
  *tree_size = 0;
  if (merkle_ == nullptr) return Status::Ok();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), merkle_));
  it->SeekForPrev(SignedCheckpointKey(UINT64_MAX));
  if (it->Valid() && it->key().starts_with("c")) {
    *tree_size = SequenceFromKey(std::string_view(it->key().data() + 1, it->key().size() - 1));
    note->assign(it->value().data(), it->value().size());
  }
  return FromRocks(it->status(), "reading the signed checkpoints");
}

size_t EventLog::BeginRecord(const Event& event, LogBatch* batch) {
  PURSER_ASSERT(event.sequence == last_sequence_ + 1);
  // A long group commit is cut into segments of about one block each, so
  // that reading one record (a proof's) decompresses a block, not the whole
  // commit. The segments are written in the commit's one atomic batch.
  if (batch->segment_.size() >= kSegmentBytes) batch->PutSegment(events_);
  if (batch->segment_.empty()) batch->segment_first_ = event.sequence;
  // Reserve the length prefix; Appended() fills it in after the record.
  size_t at = batch->segment_.size();
  batch->segment_.append(4, '\0');
  return at;
}

void EventLog::Append(const Event& event, std::string_view payload, LogBatch* batch) {
  const size_t at = BeginRecord(event, batch);
  purser::AppendRecord(event.sequence, last_link_, payload, &last_link_, &batch->segment_);
  Appended(event, at, static_cast<uint32_t>(batch->segment_.size() - at - 4), batch);
}

void EventLog::AppendRecord(const Event& event, std::string_view record, LogBatch* batch) {
  PURSER_ASSERT(record.size() >= kRecordHeaderBytes);
  const size_t at = BeginRecord(event, batch);
  batch->segment_.append(record);
  std::memcpy(last_link_.data(), record.data() + kRecordLinkOffset, last_link_.size());
  Appended(event, at, static_cast<uint32_t>(record.size()), batch);
}

void EventLog::Appended(const Event& event, size_t at, uint32_t length, LogBatch* batch) {
  for (int i = 0; i < 4; ++i) batch->segment_[at + i] = static_cast<char>(length >> (8 * i));
  if (batch->capture_ != nullptr) batch->capture_->append(batch->segment_, at, kSegmentLengthBytes + length);
  char kind;
  std::string id;
  if (IdIndexEntry(event.body, &kind, &id)) {
    std::string id_key(1, kind);
    id_key += id;
    batch->ids_.emplace_back(std::move(id_key), SequenceKey(event.sequence));
  }
  ++batch->records_;
  last_sequence_ = event.sequence;
  if (merkle_ != nullptr) {
    frontier_.Append(MerkleLeafHash(std::string_view(batch->segment_).substr(at + 4, length)),
                     &completed_);
    for (const MerkleNode& node : completed_) {
      batch->batch_->Put(merkle_, MerkleNodeKey(node.level, node.index), Slice(node.hash))
          .PermitUncheckedError();
    }
    completed_.clear();
  }
}

Status EventLog::Write(LogBatch* batch, bool sync) {
  const bool events = batch->records_ > 0;
  if (events && merkle_ != nullptr) {
    batch->batch_->Put(merkle_, kMerkleSizeKey, SequenceKey(frontier_.size())).PermitUncheckedError();
  }
  if (batch->records_ > 0) {
    batch->PutSegment(events_);
    batch->records_ = 0;
    ++batch->extra_;
  }
  std::sort(batch->ids_.begin(), batch->ids_.end());
  for (const auto& [key, value] : batch->ids_) {
    batch->batch_->Put(ids_, Slice(key), Slice(value)).PermitUncheckedError();
  }
  batch->ids_.clear();
  rocksdb::WriteOptions options;
  options.sync = sync;
  options.disableWAL = false;
  Status status = FromRocks(db_->Write(options, batch->batch_.get()), "writing the log");
  // Proofs read only what a synced write made durable.
  if (status.ok() && events && sync) {
    merkle_durable_size_.store(frontier_.size(), std::memory_order_release);
  }
  return status;
}

void EventLog::AddCheckpoint(uint64_t sequence, const Sha256Digest& link, std::string_view state,
                             LogBatch* batch) {
  const uint64_t generation = NewCheckpointGeneration();
  const uint32_t chunks = CheckpointChunks(state.size());
  for (uint32_t i = 0; i < chunks; ++i) {
    batch->batch_->Put(checkpoint_, ChunkKey(generation, i), Slice(ChunkOf(state, i))).PermitUncheckedError();
  }
  chunk_sets_[generation] = chunks;
  AddCheckpointHead(generation, sequence, link, state.size(), chunks, batch);
}

void EventLog::AddCheckpointHead(uint64_t generation, uint64_t sequence, const Sha256Digest& link,
                                 uint64_t size, uint32_t chunks, LogBatch* batch) {
  rocksdb::WriteBatch* b = batch->batch_.get();
  // Every other set of chunks goes with the head that replaces them, in its
  // batch. Point deletes, not a range: a memtable with a range tombstone
  // trips an assertion of Debian's RocksDB 7.8 when a flush fails on a dead
  // disk (purser-sim found it).
  for (uint32_t i = 0; i < legacy_chunks_; ++i) b->Delete(checkpoint_, LegacyChunkKey(i)).PermitUncheckedError();
  legacy_chunks_ = 0;
  for (auto set = chunk_sets_.begin(); set != chunk_sets_.end();) {
    if (set->first == generation) {
      ++set;
      continue;
    }
    for (uint32_t i = 0; i < set->second; ++i) b->Delete(checkpoint_, ChunkKey(set->first, i)).PermitUncheckedError();
    set = chunk_sets_.erase(set);
  }
  std::string head = SequenceKey(sequence);
  head.append(reinterpret_cast<const char*>(link.data()), link.size());
  head += SequenceKey(size);
  head += SequenceKey(chunks);
  head.push_back(kChunksByGeneration);
  head += SequenceKey(generation);
  b->Put(checkpoint_, kCheckpointHeadKey, head).PermitUncheckedError();
  ++batch->extra_;
}

uint32_t EventLog::CheckpointChunks(size_t bytes) {
  return static_cast<uint32_t>((bytes + kCheckpointChunkBytes - 1) / kCheckpointChunkBytes);
}

uint64_t EventLog::NewCheckpointGeneration() { return next_generation_++; }

Status EventLog::WriteUnloggedCheckpointChunk(uint64_t generation, std::string_view state, uint32_t index) {
  PURSER_ASSERT(index < CheckpointChunks(state.size()));
  rocksdb::WriteOptions options;
  options.disableWAL = true;
  uint32_t& stored = chunk_sets_[generation];  // before the write: a failed one may have stored it
  stored = std::max(stored, index + 1);
  return FromRocks(db_->Put(options, checkpoint_, ChunkKey(generation, index), Slice(ChunkOf(state, index))),
                   "writing a checkpoint chunk");
}

Status EventLog::WriteUnloggedCheckpointHead(uint64_t generation, uint64_t sequence, const Sha256Digest& link,
                                             uint64_t size, uint32_t chunks) {
  LogBatch batch;
  AddCheckpointHead(generation, sequence, link, size, chunks, &batch);
  rocksdb::WriteOptions options;
  options.disableWAL = true;
  Status status = FromRocks(db_->Write(options, batch.batch_.get()), "writing the checkpoint head");
  if (!status.ok()) return status;
  rocksdb::FlushOptions flush;
  flush.wait = false;  // durable within a flush's time, off this thread
  // A flush refused now (TryAgain while writes are stopped) is not a failed
  // log: the checkpoint is derived data, and a later flush, the stop or the
  // close persists it. Until then a crash loses it, as documented.
  if (rocksdb::Status flushed = db_->Flush(flush, checkpoint_); !flushed.ok()) {
    std::fprintf(stderr, "purser: the checkpoint's flush was not started: %s\n", flushed.ToString().c_str());
  }
  return Status::Ok();
}

Status EventLog::WriteUnloggedCheckpoint(uint64_t sequence, const Sha256Digest& link,
                                         std::string_view state) {
  const uint64_t generation = NewCheckpointGeneration();
  const uint32_t chunks = CheckpointChunks(state.size());
  for (uint32_t i = 0; i < chunks; ++i) {
    if (Status status = WriteUnloggedCheckpointChunk(generation, state, i); !status.ok()) return status;
  }
  return WriteUnloggedCheckpointHead(generation, sequence, link, state.size(), chunks);
}

void EventLog::AddColdRecord(std::string_view key, std::string_view record, LogBatch* batch) {
  batch->batch_->Put(records_, Slice(key), Slice(record)).PermitUncheckedError();
  ++batch->extra_;
}

void EventLog::AddListingEntry(std::string_view key, std::string_view value, LogBatch* batch) {
  batch->batch_->Put(listing_, Slice(key), Slice(value)).PermitUncheckedError();
  ++batch->extra_;
}

Status EventLog::ScanListing(
    const std::vector<std::string>& prefixes,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), listing_));
  for (const std::string& prefix : prefixes) {
    for (it->Seek(Slice(prefix)); it->Valid() && it->key().starts_with(Slice(prefix));
         it->Next()) {
      if (!visit(std::string_view(it->key().data(), it->key().size()),
                 std::string_view(it->value().data(), it->value().size()))) {
        break;
      }
    }
    if (!it->status().ok()) break;
  }
  return FromRocks(it->status(), "scanning the listing index");
}

Status EventLog::GetColdRecords(const std::vector<std::string>& keys,
                                std::vector<std::string>* values, std::vector<bool>* found) {
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (const std::string& key : keys) slices.push_back(Slice(key));
  std::vector<rocksdb::ColumnFamilyHandle*> families(keys.size(), records_);
  values->clear();
  std::vector<rocksdb::Status> statuses =
      db_->MultiGet(rocksdb::ReadOptions(), families, slices, values);
  found->assign(keys.size(), false);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].ok()) {
      (*found)[i] = true;
    } else if (!statuses[i].IsNotFound()) {
      return FromRocks(statuses[i], "reading the cold store");
    }
  }
  return Status::Ok();
}

Status EventLog::ForEachColdRecord(
    char kind, const std::function<Status(std::string_view, std::string_view)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), records_));
  std::string prefix(1, kind);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    Status status = visit(std::string_view(it->key().data(), it->key().size()),
                          std::string_view(it->value().data(), it->value().size()));
    if (!status.ok()) return status;
  }
  return FromRocks(it->status(), "iterating the cold store");
}

Status EventLog::ReadCheckpoint(uint64_t* sequence, Sha256Digest* link, std::string* state) {
  // A head replaced while its chunks are read (the log thread writes
  // checkpoints while a test or tool reads) deletes them: read again. Not
  // under a snapshot: releasing one can schedule a compaction, which on a
  // damaged table stops every later write (tests/damage_test.cc).
  Status status;
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool replaced = false;
    status = ReadCheckpointOnce(sequence, link, state, &replaced);
    if (!replaced) break;
  }
  return status;
}

Status EventLog::ReadCheckpointOnce(uint64_t* sequence, Sha256Digest* link, std::string* state,
                                    bool* replaced) {
  *sequence = 0;
  std::string head;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), checkpoint_, kCheckpointHeadKey, &head);
  if (status.IsNotFound()) return Status::Ok();
  if (!status.ok()) return FromRocks(status, "reading the checkpoint head");
  const bool by_generation = head.size() == kHeadBytes && head[kLegacyHeadBytes] == kChunksByGeneration;
  if (head.size() != kLegacyHeadBytes && !by_generation) return Status::Corruption("checkpoint head is malformed");
  const uint64_t generation = by_generation ? SequenceFromKey(head.substr(kLegacyHeadBytes + 1, 8)) : 0;
  uint64_t checkpoint_sequence = SequenceFromKey(head.substr(0, 8));
  std::memcpy(link->data(), head.data() + 8, 32);
  uint64_t size = SequenceFromKey(head.substr(40, 8));
  uint64_t chunks = SequenceFromKey(head.substr(48, 8));
  const uint64_t chunk_bytes = by_generation ? kCheckpointChunkBytes : kLegacyChunkBytes;
  if (chunks > UINT32_MAX || size > chunks * chunk_bytes) return Status::Corruption("checkpoint head is malformed");
  state->clear();
  // Room to grow: the engine serializes its next checkpoint into this
  // memory (LoadCheckpoint's buffer), and a string that outgrows its
  // capacity moves to twice as many fresh pages.
  state->reserve(size + size / 8);
  for (uint32_t i = 0; i < chunks; ++i) {
    std::string chunk;
    status = db_->Get(rocksdb::ReadOptions(), checkpoint_,
                      by_generation ? ChunkKey(generation, i) : LegacyChunkKey(i), &chunk);
    if (status.IsNotFound()) {
      std::string now;
      *replaced = db_->Get(rocksdb::ReadOptions(), checkpoint_, kCheckpointHeadKey, &now).ok() && now != head;
    }
    if (!status.ok()) return FromRocks(status, "reading checkpoint chunk " + std::to_string(i));
    *state += chunk;
  }
  if (state->size() != size) return Status::Error("checkpoint is truncated");
  *sequence = checkpoint_sequence;
  return Status::Ok();
}

void EventLog::SetReplicaPosition(uint64_t position, LogBatch* batch) {
  batch->batch_->Put(default_, kReplicaPositionKey, SequenceKey(position)).PermitUncheckedError();
  ++batch->extra_;
}

uint64_t EventLog::ReplicaPosition() {
  std::string value;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), default_, kReplicaPositionKey, &value);
  return status.ok() && value.size() == 8 ? SequenceFromKey(value) : 0;
}

Status EventLog::ReadRecord(uint64_t sequence, std::string* record) {
  auto it = NewIterator(sequence);
  if (!it->status().ok()) return it->status();
  if (!it->Valid() || it->sequence() != sequence) {
    return Status::Error("event " + std::to_string(sequence) + " is not in the log");
  }
  record->assign(it->record());
  return Status::Ok();
}

uint64_t EventLog::FindId(char kind, std::string_view id) {
  std::string key(1, kind);
  key += id;
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), ids_, key, &value).ok()) return 0;
  return SequenceFromKey(value);
}

EventLog::Iterator::~Iterator() = default;

void EventLog::Iterator::LoadSegment() {
  while (it_->Valid() && it_->value().size() == 0) it_->Next();
  if (!it_->Valid()) {
    valid_ = false;
    return;
  }
  sequence_ = SequenceFromKey(std::string_view(it_->key().data(), it_->key().size()));
  segment_first_ = sequence_;
  segment_ = std::string_view(it_->value().data(), it_->value().size());
  ParseRecord();
}

void EventLog::Iterator::ParseRecord() {
  valid_ = true;
  if (segment_.size() < 4) {
    record_ = segment_;
    segment_ = {};
    return;
  }
  uint32_t length = SegmentRecordLength(segment_);
  segment_.remove_prefix(kSegmentLengthBytes);
  if (length > segment_.size()) length = static_cast<uint32_t>(segment_.size());
  record_ = segment_.substr(0, length);
  segment_.remove_prefix(length);
}

void EventLog::Iterator::Next() {
  if (!segment_.empty()) {
    ++sequence_;
    ParseRecord();
    return;
  }
  it_->Next();
  LoadSegment();
}

Status EventLog::Iterator::status() const { return FromRocks(it_->status(), "iterating the log"); }

std::unique_ptr<EventLog::Iterator> EventLog::NewIterator(uint64_t from_sequence, bool scan) {
  rocksdb::ReadOptions options;
  if (scan) {
    options.readahead_size = 2 << 20;
    options.fill_cache = false;
  }
  auto iterator = std::unique_ptr<Iterator>(new Iterator());
  iterator->it_.reset(db_->NewIterator(options, events_));
  // The segment holding `from_sequence` starts at or before it.
  iterator->it_->SeekForPrev(SequenceKey(from_sequence));
  if (!iterator->it_->Valid()) iterator->it_->SeekToFirst();
  iterator->LoadSegment();
  while (iterator->Valid() && iterator->sequence() < from_sequence) iterator->Next();
  return iterator;
}

Status EventLog::CreateCheckpointCopy(const std::string& directory) {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status status = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!status.ok()) return FromRocks(status, "creating a checkpoint object");
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: flush the memtables so the copy needs no WAL replay.
  return FromRocks(checkpoint->CreateCheckpoint(directory, 0), "checkpoint to " + directory);
}

uint64_t EventLog::EventsBytesOnDisk() {
  uint64_t bytes = 0;
  db_->GetIntProperty(events_, "rocksdb.total-sst-files-size", &bytes);
  return bytes;
}

Status EventLog::ForEachId(
    const std::function<void(std::string_view key, uint64_t sequence)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), ids_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view value(it->value().data(), it->value().size());
    visit(std::string_view(it->key().data(), it->key().size()),
          value.size() == 8 ? SequenceFromKey(value) : UINT64_MAX);
  }
  return FromRocks(it->status(), "reading the id index");
}

Status EventLog::VerifyChecksums() {
  rocksdb::Status status = db_->VerifyChecksum();
  if (!status.ok()) return FromRocks(status, "scrubbing the database");
  uint64_t background_errors = 0;
  if (db_->GetIntProperty("rocksdb.background-errors", &background_errors) &&
      background_errors > 0) {
    return Status::Error("RocksDB reported " + std::to_string(background_errors) +
                         " background errors (flush or compaction)");
  }
  return Status::Ok();
}

Status EventLog::CompactEvents() {
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return FromRocks(db_->CompactRange(options, events_, nullptr, nullptr), "compacting events");
}

Status EventLog::FlushAll() {
  rocksdb::FlushOptions options;
  options.wait = true;
  return FromRocks(db_->Flush(options, {default_, events_, ids_, checkpoint_, records_, listing_}),
                   "flushing");
}

std::string EventLog::Property(const std::string& name) {
  std::string value;
  db_->GetProperty(events_, name, &value);
  return value;
}

namespace {

struct IdIndexVisitor {
  char* kind;
  std::string* id;
  bool Set(char k, const std::string& value) {
    *kind = k;
    *id = value;
    return true;
  }
  bool operator()(const event::AccountOpened& e) { return Set('a', e.account); }
  bool operator()(const event::Deposited& e) { return Set('d', e.deposit_id); }
  bool operator()(const event::Reserved& e) { return Set('r', e.reservation_id); }
  bool operator()(const event::UsageCharged& e) { return Set('u', e.usage_id); }
  bool operator()(const event::Refunded& e) { return Set('f', e.refund_id); }
  bool operator()(const event::RevenueRecorded& e) { return Set('v', e.revenue_id); }
  bool operator()(const event::Adjusted& e) { return Set('j', e.adjustment_id); }
  bool operator()(const event::ApiKeyIssued& e) { return Set('k', e.key_id); }
  bool operator()(const event::WebhookRegistered& e) { return Set('w', e.webhook_id); }
  bool operator()(const event::DailyReportIngested& e) { return Set('p', e.report_id); }
  bool operator()(const event::Transferred& e) { return Set('t', e.transfer_id); }
  template <typename T>
  bool operator()(const T&) {
    return false;
  }
};

}  // namespace

bool IdIndexEntry(const EventBody& body, char* kind, std::string* id) {
  return std::visit(IdIndexVisitor{kind, id}, body);
}

}  // namespace purser
