// A RocksDB FileSystem for the simulator: it passes every call to the real
// one and remembers, for each file written, how much of it a sync made
// durable. It can then fail writes and syncs on purpose (a failing disk), and
// at a simulated crash cut every file back to what was synced, keeping at
// most a random part of the rest (the page cache's torn tail).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

namespace purser::sim {

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(std::shared_ptr<rocksdb::FileSystem> base);
  const char* Name() const override { return "PurserFaultFs"; }

  // The write or sync of the newest write-ahead log `n` such operations
  // from now fails (n >= 1), as a dying disk: a failing append may write
  // part of its data first, and every write and sync after it, of any file,
  // fails too, until Revive(). Only that log's operations are counted: the
  // ledger's writes reach it in the order the workload decides, so a seed
  // fails the same write on every run (RocksDB's background flushes and
  // compactions write tables and the manifest, and sync closed logs,
  // whenever they run; they fail once the disk is dead).
  void FailAfter(uint64_t n, bool short_write);
  // Every write and sync fails from now on (the moment of a crash: nothing
  // more reaches the disk).
  void Die();
  void Revive();
  bool dead() const;
  // Writes and syncs that failed because of a fault.
  uint64_t failures() const;

  // After the database is closed: every file written since it was opened
  // loses what was not synced, except a random prefix of it (drawn from
  // `seed`) when `torn`. Returns the bytes dropped.
  uint64_t DropUnsynced(uint64_t seed, bool torn);

  // For the file wrappers.
  rocksdb::IOStatus BeforeWrite(const std::string& path, const rocksdb::Slice& data, size_t* allowed);
  void Written(const std::string& path, size_t bytes);
  rocksdb::IOStatus BeforeSync(const std::string& path);
  void Synced(const std::string& path);
  void Truncated(const std::string& path, uint64_t size);

  rocksdb::IOStatus NewWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* debug) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* file,
                                       rocksdb::IODebugContext* debug) override;
  // Refused, so that no write escapes the faults unseen (RocksDB needs
  // neither with Purser's options: no WAL recycling, no file ingestion).
  rocksdb::IOStatus ReuseWritableFile(const std::string& path, const std::string& old_path,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* file,
                                      rocksdb::IODebugContext* debug) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& path, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* file,
                                    rocksdb::IODebugContext* debug) override;
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* debug) override;
  rocksdb::IOStatus DeleteFile(const std::string& path, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* debug) override;

 private:
  struct Tracked {
    uint64_t size = 0;    // bytes written
    uint64_t synced = 0;  // bytes a sync made durable
  };
  // Under mutex_: whether the next write or sync of `path` fails (the disk
  // is dead, or this is the planned failure, which kills it); *planned for
  // the latter.
  rocksdb::IOStatus NextOperation(const std::string& path, bool* planned);

  mutable std::mutex mutex_;
  std::map<std::string, Tracked> files_;
  uint64_t countdown_ = 0;  // 0 = no fault planned; counts operations on current_log_
  std::string current_log_;  // the newest write-ahead log file
  bool short_write_ = false;
  bool dead_ = false;
  uint64_t failures_ = 0;
};

// An Env over `fs` (RocksDB's threads and clock, the simulator's files).
std::unique_ptr<rocksdb::Env> NewFaultEnv(const std::shared_ptr<FaultFs>& fs);

}  // namespace purser::sim
