// RocksDB write cost of one group commit, synced, for the two layouts an
// event log can use: one key per event, or one key per group (a segment).
// Each group holds `events` records of 200 bytes plus one id-index entry
// per two events (a reserve of each reserve+settle pair).

#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <filesystem>
#include <string>

namespace {

struct Db {
  std::unique_ptr<rocksdb::DB> db;
  std::string path;
  explicit Db(const std::string& name) : path("/work/log-bench-" + name) {
    std::filesystem::remove_all(path);
    rocksdb::Options options;
    options.create_if_missing = true;
    options.write_buffer_size = 64 << 20;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, path, &raw).ok()) std::abort();
    db.reset(raw);
  }
  ~Db() {
    db.reset();
    std::filesystem::remove_all(path);
  }
};

std::string Key(uint64_t n) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(n >> (56 - 8 * i));
  return key;
}

void BM_GroupKeyPerEvent(benchmark::State& bench) {
  Db db("per-event");
  const int events = static_cast<int>(bench.range(0));
  std::string record(200, 'r');
  uint64_t n = 0;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  for (auto _ : bench) {
    rocksdb::WriteBatch batch;
    for (int i = 0; i < events; ++i, ++n) {
      batch.Put(Key(n), record);
      if (i % 2 == 0) batch.Put("r" + std::to_string(n), Key(n));
    }
    if (!db.db->Write(sync, &batch).ok()) std::abort();
  }
  bench.SetItemsProcessed(bench.iterations() * events);
}
BENCHMARK(BM_GroupKeyPerEvent)->Arg(128)->Arg(512)->Arg(1024)->UseRealTime();

void BM_GroupOneSegment(benchmark::State& bench) {
  Db db("segment");
  const int events = static_cast<int>(bench.range(0));
  std::string record(200, 'r');
  uint64_t n = 0;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  for (auto _ : bench) {
    rocksdb::WriteBatch batch;
    std::string segment;
    uint64_t first = n;
    for (int i = 0; i < events; ++i, ++n) {
      segment += record;
      if (i % 2 == 0) batch.Put("r" + std::to_string(n), Key(n));
    }
    batch.Put(Key(first), segment);
    if (!db.db->Write(sync, &batch).ok()) std::abort();
  }
  bench.SetItemsProcessed(bench.iterations() * events);
}
BENCHMARK(BM_GroupOneSegment)->Arg(128)->Arg(512)->Arg(1024)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
