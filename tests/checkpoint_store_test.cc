// The projection checkpoint's store (ledger/log/event_log.h): a head and
// chunks of 1 MiB under a generation of their own in the `checkpoint`
// column family, replaced as a whole, either in a synced write or written
// outside the write-ahead log a chunk at a time and flushed in the
// background (docs/FORMAT.md). These tests write checkpoints of several
// chunks straight to the log, which the service reaches only with megabytes
// of state.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <rocksdb/db.h>

#include "ledger/base/crypto.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "sim/fault_fs.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

constexpr size_t kChunk = EventLog::kCheckpointChunkBytes;

// Bytes that differ at every offset and between checkpoints: a chunk read
// from the wrong checkpoint, or at the wrong place, changes the result.
std::string StateBytes(size_t size, char tag) {
  std::string state(size, '\0');
  for (size_t i = 0; i < size; ++i) state[i] = static_cast<char>((i * 131 + (i >> 12) + tag) & 0xff);
  return state;
}

struct Stored {
  uint64_t sequence = 0;
  Sha256Digest link{};
  std::string state;
};

class CheckpointStore : public ::testing::Test {
 protected:
  void SetUp() override {
    // A few events; the clean stop leaves a checkpoint of one chunk.
    auto sequencer = OpenSequencer(dir_.path());
    ASSERT_NE(sequencer, nullptr);
    OpenTree(*sequencer, 2, 1'000'000);
  }

  std::unique_ptr<EventLog> OpenLog(rocksdb::Env* env = nullptr) {
    EventLogOptions options;
    options.path = dir_.path();
    options.env = env;
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
    EXPECT_TRUE(log.ok()) << log.status().message();
    return log.ok() ? std::move(*log) : nullptr;
  }

  static void WriteLogged(EventLog* log, const Stored& checkpoint) {
    LogBatch batch(checkpoint.state.size() + 4096);
    log->AddCheckpoint(checkpoint.sequence, checkpoint.link, checkpoint.state, &batch);
    Status status = log->Write(&batch, /*sync=*/true);
    ASSERT_TRUE(status.ok()) << status.message();
  }

  static Stored Read(EventLog* log) {
    Stored stored;
    Status status = log->ReadCheckpoint(&stored.sequence, &stored.link, &stored.state);
    EXPECT_TRUE(status.ok()) << status.message();
    return stored;
  }

  // Opens the database with RocksDB alone (the log closed) and calls `use`
  // with its `checkpoint` column family.
  void WithCheckpointFamily(const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*)>& use,
                            bool read_only = false) {
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir_.path(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    size_t checkpoint = names.size();
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "checkpoint") checkpoint = i;
      families.emplace_back(names[i], rocksdb::ColumnFamilyOptions());
    }
    ASSERT_LT(checkpoint, names.size());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status status =
        read_only ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir_.path(), families, &handles, &raw)
                  : rocksdb::DB::Open(rocksdb::DBOptions(), dir_.path(), families, &handles, &raw);
    ASSERT_TRUE(status.ok()) << status.ToString();
    std::unique_ptr<rocksdb::DB> db(raw);
    use(db.get(), handles[checkpoint]);
    for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
  }

  static std::vector<std::string> ChunkKeysIn(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) {
    std::vector<std::string> keys;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), family));
    for (it->Seek("chunk"); it->Valid() && it->key().starts_with("chunk"); it->Next()) {
      keys.push_back(it->key().ToString());
    }
    return keys;
  }

  // The chunk keys stored: what a later checkpoint left behind, stale
  // chunks included.
  std::vector<std::string> ChunkKeys() {
    std::vector<std::string> keys;
    WithCheckpointFamily(
        [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) { keys = ChunkKeysIn(db, family); },
        /*read_only=*/true);
    return keys;
  }

  // How many chunks are stored, under how many generations.
  static std::pair<size_t, size_t> Count(const std::vector<std::string>& keys) {
    std::set<std::string> generations;
    for (const std::string& key : keys) {
      EXPECT_EQ(key.size(), 5u + 8 + 4) << "a chunk key of the current format";
      generations.insert(key.substr(5, 8));
    }
    return {keys.size(), generations.size()};
  }
  static std::pair<size_t, size_t> Chunks(size_t count) { return {count, 1}; }

  static void ExpectSame(const Stored& got, const Stored& want, const char* what) {
    EXPECT_EQ(got.sequence, want.sequence) << what;
    EXPECT_EQ(got.link, want.link) << what;
    EXPECT_EQ(got.state.size(), want.state.size()) << what;
    EXPECT_TRUE(got.state == want.state) << what << ": the bytes differ";
  }

  TempDir dir_;
};

// A checkpoint replaces every chunk of the one before it: those past its own
// count are deleted, in the synced write and outside the log alike, and the
// count of stored chunks is found again at the next open.
TEST_F(CheckpointStore, ASmallerCheckpointLeavesNoChunkOfTheLargerOneBefore) {
  Stored three_chunks, two_chunks, one_chunk;
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    three_chunks = Stored{log->last_sequence(), log->last_link(), StateBytes(2 * kChunk + 5, 'a')};
    WriteLogged(log.get(), three_chunks);
    ExpectSame(Read(log.get()), three_chunks, "three chunks, read back");
  }
  EXPECT_EQ(Count(ChunkKeys()), Chunks(3)) << "the setup's checkpoint of one chunk is gone";
  {
    auto log = OpenLog();  // counts the three stored chunks
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), three_chunks, "three chunks, after a reopen");
    two_chunks = Stored{log->last_sequence(), Sha256("two"), StateBytes(kChunk + 7, 'b')};
    Status status = log->WriteUnloggedCheckpoint(two_chunks.sequence, two_chunks.link, two_chunks.state);
    ASSERT_TRUE(status.ok()) << status.message();
    ExpectSame(Read(log.get()), two_chunks, "two chunks, outside the log");
  }
  EXPECT_EQ(Count(ChunkKeys()), Chunks(2)) << "no chunk of the larger checkpoint is left";
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), two_chunks, "two chunks, after a reopen");
    one_chunk = Stored{log->last_sequence(), Sha256("one"), StateBytes(100, 'c')};
    WriteLogged(log.get(), one_chunk);
  }
  EXPECT_EQ(Count(ChunkKeys()), Chunks(1));
  auto log = OpenLog();
  ASSERT_NE(log, nullptr);
  ExpectSame(Read(log.get()), one_chunk, "one chunk, after a reopen");
}

// A checkpoint written outside the write-ahead log is durable only once its
// column family is flushed. A power cut before that loses it whole, chunk
// deletes included: the synced checkpoint before it comes back entire, never
// its head with the newer one's chunks. (Recovery then replays the log from
// that older checkpoint; tests/sequencer_test.cc checks the state it builds.)
TEST_F(CheckpointStore, ACheckpointOutsideTheLogLostBeforeItsFlushLeavesTheSyncedOneBeforeWhole) {
  auto fs = std::make_shared<sim::FaultFs>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = sim::NewFaultEnv(fs);
  Stored synced, lost;
  {
    auto log = OpenLog(env.get());
    ASSERT_NE(log, nullptr);
    synced = Stored{log->last_sequence(), Sha256("synced"), StateBytes(2 * kChunk + 5, 's')};
    WriteLogged(log.get(), synced);
    // Holds the background flush WriteUnloggedCheckpoint asks for: the
    // newer checkpoint stays in the memtable alone. (Resumed on every way
    // out of this block, after the power cut: the close waits for flushes.)
    ASSERT_TRUE(log->db()->PauseBackgroundWork().ok());
    struct Resume {
      sim::FaultFs* fs;
      rocksdb::DB* db;
      ~Resume() {
        fs->Die();  // the power cut: nothing more reaches the disk
        db->ContinueBackgroundWork().PermitUncheckedError();
      }
    } resume{fs.get(), log->db()};
    lost = Stored{log->last_sequence(), Sha256("lost"), StateBytes(2 * kChunk + 1, 'l')};
    Status status = log->WriteUnloggedCheckpoint(lost.sequence, lost.link, lost.state);
    ASSERT_TRUE(status.ok()) << status.message();
    ExpectSame(Read(log.get()), lost, "the newer checkpoint, before the power cut");
  }
  fs->DropUnsynced(/*seed=*/7, /*torn=*/true);
  fs->Revive();
  {
    auto log = OpenLog(env.get());
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), synced, "after the power cut");
    // The synced one's three chunks are found again, so the next
    // checkpoint deletes them.
    Stored next{log->last_sequence(), Sha256("next"), StateBytes(50, 'n')};
    Status status = log->WriteUnloggedCheckpoint(next.sequence, next.link, next.state);
    ASSERT_TRUE(status.ok()) << status.message();
    ExpectSame(Read(log.get()), next, "the next checkpoint");
  }
  EXPECT_EQ(Count(ChunkKeys()), Chunks(1));
}

// A close right after a checkpoint written outside the log keeps it: RocksDB's
// close skips a flush that is queued but not started, so the log waits for
// it first. Made certain here by holding every flush thread of RocksDB's
// (shared) environment until the close has begun.
TEST_F(CheckpointStore, ACloseRightAfterACheckpointOutsideTheLogKeepsIt) {
  struct Hold {
    std::mutex mutex;
    std::condition_variable changed;
    int started = 0;
    bool released = false;
    static void Run(void* arg) {
      auto* hold = static_cast<Hold*>(arg);
      std::unique_lock lock(hold->mutex);
      ++hold->started;
      hold->changed.notify_all();
      hold->changed.wait(lock, [&] { return hold->released; });
    }
    void Release() {
      std::lock_guard lock(mutex);
      released = true;
      changed.notify_all();
    }
  } hold;
  Stored kept;
  auto log = OpenLog();
  ASSERT_NE(log, nullptr);
  rocksdb::Env* env = rocksdb::Env::Default();
  const int threads = env->GetBackgroundThreads(rocksdb::Env::Priority::HIGH);
  ASSERT_GT(threads, 0) << "flushes run in the HIGH pool";
  for (int i = 0; i < threads; ++i) env->Schedule(&Hold::Run, &hold, rocksdb::Env::Priority::HIGH);
  struct ReleaseAtExit {  // declared after the log: released before it closes
    Hold* hold;
    ~ReleaseAtExit() { hold->Release(); }
  } release_at_exit{&hold};
  {
    std::unique_lock lock(hold.mutex);
    hold.changed.wait(lock, [&] { return hold.started == threads; });
  }
  kept = Stored{log->last_sequence(), Sha256("kept"), StateBytes(kChunk + 3, 'k')};
  Status status = log->WriteUnloggedCheckpoint(kept.sequence, kept.link, kept.state);
  ASSERT_TRUE(status.ok()) << status.message();  // its flush is queued behind the holds
  std::thread release([&hold] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the close has begun
    hold.Release();
  });
  log.reset();
  release.join();
  log = OpenLog();
  ASSERT_NE(log, nullptr);
  ExpectSame(Read(log.get()), kept, "after the close");
}

// A checkpoint cut short after some of its chunks, before its head (a stop
// or crash between the writes of the log thread): the stored checkpoint is
// untouched, since a new checkpoint's chunks never reuse a stored one's keys,
// and the next head deletes what the cut one left.
TEST_F(CheckpointStore, ChunksWrittenWithoutTheirHeadLeaveTheStoredCheckpointAndGoWithTheNextHead) {
  Stored stored;
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    stored = Stored{log->last_sequence(), Sha256("stored"), StateBytes(kChunk + 9, 's')};
    WriteLogged(log.get(), stored);
    const uint64_t generation = log->NewCheckpointGeneration();
    const std::string cut = StateBytes(3 * kChunk, 'x');
    for (uint32_t i = 0; i < 2; ++i) {
      Status status = log->WriteUnloggedCheckpointChunk(generation, cut, i);
      ASSERT_TRUE(status.ok()) << status.message();
    }
  }  // closed: the two chunks are flushed, durable, without a head
  EXPECT_EQ(Count(ChunkKeys()), std::make_pair(size_t{4}, size_t{2}));
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), stored, "after the cut checkpoint");
    Stored next{log->last_sequence(), Sha256("next"), StateBytes(10, 'n')};
    Status status = log->WriteUnloggedCheckpoint(next.sequence, next.link, next.state);
    ASSERT_TRUE(status.ok()) << status.message();
  }
  EXPECT_EQ(Count(ChunkKeys()), Chunks(1)) << "the cut checkpoint's chunks went with the next head";
}

// A database written before chunks had generations: a 56-byte head and
// "chunk" + 4-byte index keys. It is read as it is; the next checkpoint
// replaces it and deletes its chunks.
TEST_F(CheckpointStore, AHeadOfTheFormerLayoutIsReadAndItsChunksReplaced) {
  Stored legacy;
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    legacy = Stored{log->last_sequence(), log->last_link(), StateBytes(2 * kChunk + 3, 'o')};
  }
  WithCheckpointFamily([&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) {
    rocksdb::WriteBatch batch;
    for (const std::string& key : ChunkKeysIn(db, family)) batch.Delete(family, key);
    std::string head = SequenceKey(legacy.sequence);
    head.append(reinterpret_cast<const char*>(legacy.link.data()), legacy.link.size());
    head += SequenceKey(legacy.state.size());
    const size_t former_chunk = 4 << 20;  // the former layout's chunk size
    head += SequenceKey(1);
    batch.Put(family, "head", head);
    std::string key = "chunk";
    key.append(4, '\0');
    ASSERT_LE(legacy.state.size(), former_chunk);
    batch.Put(family, key, legacy.state);
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  });
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), legacy, "the former layout");
    Stored next{log->last_sequence(), Sha256("next"), StateBytes(10, 'n')};
    WriteLogged(log.get(), next);
    ExpectSame(Read(log.get()), next, "the next checkpoint");
  }
  EXPECT_EQ(Count(ChunkKeys()), Chunks(1)) << "the former layout's chunk is gone";
}

// Through the engine, with a state of several chunks: the log thread writes
// each checkpoint a chunk per turn between group commits, a newer one
// replaces one still being written, and the stop finishes the last. The
// service comes back from that checkpoint, whole, with the live state.
TEST_F(CheckpointStore, TheEngineWritesACheckpointOfSeveralChunksBetweenGroupsAndRecoversIt) {
  constexpr int kAgents = 16000;
  Sha256Digest live;
  size_t state_bytes = 0;
  {
    auto sequencer = OpenSequencer(dir_.path(), nullptr, /*checkpoint_every_events=*/300);
    ASSERT_NE(sequencer, nullptr);
    ASSERT_TRUE(Call(*sequencer, cmd::Deposit{"fund-2", "org", 1'000'000'000, ""}).ok());
    for (int first = 0; first < kAgents; first += 2000) {  // batches the queue takes
      std::vector<Request> accounts;
      for (int a = first; a < first + 2000; ++a) {
        accounts.push_back(Request{Credentials::System(), cmd::OpenAccount{"bulk-" + std::to_string(a), "team",
                                                                           AccountKind::kAgent, "", false, {}}});
      }
      for (const Reply& reply : sequencer->CallBatch(std::move(accounts))) ASSERT_TRUE(reply.ok()) << reply.message;
    }
    // Batches submitted without waiting: the log thread always has groups to
    // write between the pieces of a checkpoint, and checkpoints come faster
    // than it writes them.
    std::atomic<int> pending{0};
    std::atomic<int> failed{0};
    for (int round = 0; round < 20; ++round) {
      std::vector<Request> requests;
      for (int i = 0; i < 500; ++i) {
        const int n = round * 500 + i;
        requests.push_back(Request{Credentials::System(),
                                   ReserveCommand("bulk-r" + std::to_string(n), "bulk-" + std::to_string(n % kAgents), 1'000)});
      }
      ++pending;
      ASSERT_TRUE(sequencer->Submit(std::move(requests), [&](std::vector<Reply>&& replies) {
        for (const Reply& reply : replies) failed += reply.ok() ? 0 : 1;
        --pending;
      }));
    }
    while (pending.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(failed.load(), 0);
    live = LiveDigest(*sequencer);
    uint64_t sequence = 0;
    Sha256Digest link;
    std::string bytes;
    ASSERT_TRUE(sequencer->log()->ReadCheckpoint(&sequence, &link, &bytes).ok());
    state_bytes = bytes.size();
  }  // the stop writes the last checkpoint, all of it
  EXPECT_GT(state_bytes, 2 * kChunk) << "a checkpoint of three chunks or more";
  const auto [chunks, generations] = Count(ChunkKeys());
  EXPECT_EQ(generations, 1u) << "only the stop's checkpoint is left";
  EXPECT_GE(chunks, 3u);
  auto reopened = OpenSequencer(dir_.path(), nullptr, 300);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->recovered_tail_events(), 0u) << "recovered from the stop's checkpoint";
  EXPECT_EQ(LiveDigest(*reopened), live);
}

}  // namespace
}  // namespace purser::testing
