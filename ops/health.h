// Storage health of a running purserd: a background scrub of RocksDB's
// checksums at start and then periodically, and what it found. /healthz
// answers 503 and /metrics reports it once corruption is seen, and purserd
// exits non-zero at stop, so that a damaged database is never "stopped
// cleanly".
//
// Thread-safety: every method from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "ledger/ledger.h"

namespace purser {

class StorageHealth {
 public:
  StorageHealth() = default;
  ~StorageHealth() { Stop(); }
  StorageHealth(const StorageHealth&) = delete;
  StorageHealth& operator=(const StorageHealth&) = delete;

  // Scrubs `*sequencer`'s database shortly after start and every
  // `interval_s` (0 = at start only). `*sequencer` must outlive Stop().
  void Start(Ledger* sequencer, int64_t interval_s);
  void Stop();

  // Marks the database corrupt (the scrub does; so may anything else that
  // meets a Corruption status). The first message is kept.
  void ReportCorruption(const std::string& message);
  bool corrupt() const { return corrupt_.load(); }
  std::string message() const;
  uint64_t scrubs() const { return scrubs_.load(); }

 private:
  void Loop(Ledger* sequencer, int64_t interval_s);

  std::atomic<bool> corrupt_{false};
  std::atomic<uint64_t> scrubs_{0};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string message_;
  std::thread thread_;
};

}  // namespace purser
