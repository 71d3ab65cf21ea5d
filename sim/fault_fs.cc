#include "sim/fault_fs.h"

#include <filesystem>

namespace purser::sim {

namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// A writable file that reports what it writes and syncs to its FaultFs.
class FaultFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultFile(FaultFs* fs, std::string path, std::unique_ptr<rocksdb::FSWritableFile> file)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs), path_(std::move(path)) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* debug) override {
    return Write(data, [&](const Slice& part) { return target()->Append(part, options, debug); });
  }
  IOStatus Append(const Slice& data, const IOOptions& options, const rocksdb::DataVerificationInfo& info,
                  IODebugContext* debug) override {
    return Write(data, [&](const Slice& part) { return target()->Append(part, options, info, debug); });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* debug) override {
    return Write(data, [&](const Slice& part) { return target()->PositionedAppend(part, offset, options, debug); });
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* debug) override {
    return SyncWith([&] { return target()->Sync(options, debug); });
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* debug) override {
    return SyncWith([&] { return target()->Fsync(options, debug); });
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* debug) override {
    if (fs_->dead()) return IOStatus::IOError("injected: the disk is gone");
    IOStatus status = target()->Truncate(size, options, debug);
    if (status.ok()) fs_->Truncated(path_, size);
    return status;
  }
  IOStatus RangeSync(uint64_t offset, uint64_t bytes, const IOOptions& options, IODebugContext* debug) override {
    // Writeback of a range, not a durability point: allowed while alive.
    if (fs_->dead()) return IOStatus::IOError("injected: the disk is gone");
    return target()->RangeSync(offset, bytes, options, debug);
  }

 private:
  template <typename Forward>
  IOStatus Write(const Slice& data, Forward forward) {
    size_t allowed = data.size();
    IOStatus fault = fs_->BeforeWrite(path_, data, &allowed);
    if (allowed > 0) {
      IOStatus written = forward(Slice(data.data(), allowed));
      if (!written.ok()) return written;
      fs_->Written(path_, allowed);
    }
    return fault;
  }
  template <typename Forward>
  IOStatus SyncWith(Forward forward) {
    if (IOStatus fault = fs_->BeforeSync(path_); !fault.ok()) return fault;
    IOStatus synced = forward();
    if (synced.ok()) fs_->Synced(path_);
    return synced;
  }

  FaultFs* fs_;
  std::string path_;
};

}  // namespace

FaultFs::FaultFs(std::shared_ptr<rocksdb::FileSystem> base) : FileSystemWrapper(std::move(base)) {}

void FaultFs::FailAfter(uint64_t n, bool short_write) {
  std::lock_guard lock(mutex_);
  countdown_ = std::max<uint64_t>(n, 1);
  short_write_ = short_write;
}

void FaultFs::Die() {
  std::lock_guard lock(mutex_);
  dead_ = true;
}

void FaultFs::Revive() {
  std::lock_guard lock(mutex_);
  dead_ = false;
  countdown_ = 0;
}

bool FaultFs::dead() const {
  std::lock_guard lock(mutex_);
  return dead_;
}

uint64_t FaultFs::failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

namespace {
// Write-ahead log files. The newest is written and synced by the ledger's
// own writes, in an order the workload alone decides; flushes and
// compactions write tables and the manifest, and sync closed logs, on
// RocksDB's background threads, whenever they run.
bool IsWriteAheadLog(const std::string& path) {
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".log") == 0;
}
}  // namespace

IOStatus FaultFs::NextOperation(const std::string& path, bool* planned) {
  *planned = false;
  if (!dead_ && (countdown_ == 0 || path != current_log_ || --countdown_ > 0)) return IOStatus::OK();
  *planned = !dead_;  // the planned failure, not one after it
  dead_ = true;
  ++failures_;
  return IOStatus::IOError("injected: the disk failed");
}

IOStatus FaultFs::BeforeWrite(const std::string& path, const Slice& data, size_t* allowed) {
  std::lock_guard lock(mutex_);
  bool planned = false;
  IOStatus status = NextOperation(path, &planned);
  if (!status.ok()) *allowed = planned && short_write_ ? data.size() / 2 : 0;
  return status;
}

void FaultFs::Written(const std::string& path, size_t bytes) {
  std::lock_guard lock(mutex_);
  files_[path].size += bytes;
}

IOStatus FaultFs::BeforeSync(const std::string& path) {
  std::lock_guard lock(mutex_);
  bool planned = false;
  return NextOperation(path, &planned);
}

void FaultFs::Truncated(const std::string& path, uint64_t size) {
  std::lock_guard lock(mutex_);
  Tracked& file = files_[path];
  file.size = size;
  file.synced = std::min(file.synced, size);
}

void FaultFs::Synced(const std::string& path) {
  std::lock_guard lock(mutex_);
  Tracked& file = files_[path];
  file.synced = file.size;
}

IOStatus FaultFs::NewWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                  std::unique_ptr<rocksdb::FSWritableFile>* file, IODebugContext* debug) {
  if (dead()) return IOStatus::IOError("injected: the disk is gone");
  IOStatus status = target()->NewWritableFile(path, options, file, debug);
  if (!status.ok()) return status;
  {
    std::lock_guard lock(mutex_);
    files_[path] = Tracked{};  // a new file: nothing of it is durable yet
    if (IsWriteAheadLog(path)) current_log_ = path;
  }
  *file = std::make_unique<FaultFile>(this, path, std::move(*file));
  return status;
}

IOStatus FaultFs::ReopenWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                     std::unique_ptr<rocksdb::FSWritableFile>* file, IODebugContext* debug) {
  if (dead()) return IOStatus::IOError("injected: the disk is gone");
  IOStatus status = target()->ReopenWritableFile(path, options, file, debug);
  if (!status.ok()) return status;
  {
    std::lock_guard lock(mutex_);
    std::error_code error;
    const uint64_t size = std::filesystem::file_size(path, error);
    // A file written in this run keeps what it knew was synced (RocksDB
    // reopens its last WAL at every open to trim it); an older one is
    // durable as it is.
    auto [it, inserted] = files_.try_emplace(path, Tracked{error ? 0 : size, error ? 0 : size});
    if (!inserted) it->second.size = error ? it->second.size : size;
  }
  *file = std::make_unique<FaultFile>(this, path, std::move(*file));
  return status;
}

IOStatus FaultFs::ReuseWritableFile(const std::string&, const std::string&, const rocksdb::FileOptions&,
                                    std::unique_ptr<rocksdb::FSWritableFile>*, IODebugContext*) {
  return IOStatus::NotSupported("the simulator's file system does not recycle files");
}

IOStatus FaultFs::NewRandomRWFile(const std::string&, const rocksdb::FileOptions&,
                                  std::unique_ptr<rocksdb::FSRandomRWFile>*, IODebugContext*) {
  return IOStatus::NotSupported("the simulator's file system has no random-write files");
}

IOStatus FaultFs::RenameFile(const std::string& from, const std::string& to, const IOOptions& options,
                             IODebugContext* debug) {
  if (dead()) return IOStatus::IOError("injected: the disk is gone");
  IOStatus status = target()->RenameFile(from, to, options, debug);
  if (status.ok()) {
    std::lock_guard lock(mutex_);
    auto it = files_.find(from);
    if (it != files_.end()) {
      files_[to] = it->second;
      files_.erase(it);
    } else {
      files_.erase(to);
    }
  }
  return status;
}

IOStatus FaultFs::DeleteFile(const std::string& path, const IOOptions& options, IODebugContext* debug) {
  if (dead()) return IOStatus::IOError("injected: the disk is gone");
  IOStatus status = target()->DeleteFile(path, options, debug);
  if (status.ok()) {
    std::lock_guard lock(mutex_);
    files_.erase(path);
  }
  return status;
}

uint64_t FaultFs::DropUnsynced(uint64_t seed, bool torn) {
  std::lock_guard lock(mutex_);
  uint64_t dropped = 0;
  for (const auto& [path, file] : files_) {
    std::error_code error;
    const uint64_t size = std::filesystem::file_size(path, error);
    if (error || size <= file.synced) continue;
    uint64_t keep = file.synced;
    // Each file's tear from the seed, its kind and its unsynced length: not
    // from its number or from which other files a background job left
    // unsynced, so that the write-ahead log tears the same way on a rerun.
    const uint64_t unsynced = size - file.synced;
    std::mt19937_64 random(seed ^ (unsynced * 0x9E3779B97F4A7C15ULL) ^
                           std::hash<std::string>{}(std::filesystem::path(path).extension().string()));
    if (torn) keep += std::uniform_int_distribution<uint64_t>(0, unsynced)(random);
    std::filesystem::resize_file(path, keep, error);
    if (!error) dropped += size - keep;
  }
  files_.clear();
  return dropped;
}

std::unique_ptr<rocksdb::Env> NewFaultEnv(const std::shared_ptr<FaultFs>& fs) { return rocksdb::NewCompositeEnv(fs); }

}  // namespace purser::sim
