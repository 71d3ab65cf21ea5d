// The projection checkpoint's store (ledger/log/event_log.h): a head and
// chunks of 4 MiB in the `checkpoint` column family, replaced as a whole,
// either in a synced write or written outside the write-ahead log and
// flushed in the background (docs/FORMAT.md). These tests write checkpoints
// of several chunks straight to the log, which the service reaches only with
// megabytes of state.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "ledger/base/crypto.h"
#include "ledger/log/event_log.h"
#include "sim/fault_fs.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

constexpr size_t kChunk = 4 << 20;  // the store's chunk size (event_log.cc)

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

  // The chunk keys in the column family, read with RocksDB alone (the log
  // closed): what a later checkpoint left behind, stale chunks included.
  std::vector<std::string> ChunkKeys() {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir_.path(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    size_t checkpoint = names.size();
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "checkpoint") checkpoint = i;
      families.emplace_back(names[i], rocksdb::ColumnFamilyOptions());
    }
    EXPECT_LT(checkpoint, names.size());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status status =
        rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir_.path(), families, &handles, &raw);
    EXPECT_TRUE(status.ok()) << status.ToString();
    std::vector<std::string> keys;
    if (!status.ok() || checkpoint == names.size()) return keys;
    std::unique_ptr<rocksdb::DB> db(raw);
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[checkpoint]));
      for (it->Seek("chunk"); it->Valid() && it->key().starts_with("chunk"); it->Next()) {
        keys.push_back(it->key().ToString());
      }
    }
    for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
    return keys;
  }

  static std::vector<std::string> FirstChunkKeys(uint32_t count) {
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < count; ++i) {
      std::string key = "chunk";
      for (int shift = 24; shift >= 0; shift -= 8) key.push_back(static_cast<char>((i >> shift) & 0xff));
      keys.push_back(key);
    }
    return keys;
  }

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
  EXPECT_EQ(ChunkKeys(), FirstChunkKeys(3));
  {
    auto log = OpenLog();  // counts the three stored chunks
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), three_chunks, "three chunks, after a reopen");
    two_chunks = Stored{log->last_sequence(), Sha256("two"), StateBytes(kChunk + 7, 'b')};
    Status status = log->WriteUnloggedCheckpoint(two_chunks.sequence, two_chunks.link, two_chunks.state);
    ASSERT_TRUE(status.ok()) << status.message();
    ExpectSame(Read(log.get()), two_chunks, "two chunks, outside the log");
  }
  EXPECT_EQ(ChunkKeys(), FirstChunkKeys(2)) << "the third chunk of the larger checkpoint is gone";
  {
    auto log = OpenLog();
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), two_chunks, "two chunks, after a reopen");
    one_chunk = Stored{log->last_sequence(), Sha256("one"), StateBytes(100, 'c')};
    WriteLogged(log.get(), one_chunk);
  }
  EXPECT_EQ(ChunkKeys(), FirstChunkKeys(1));
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
    // newer checkpoint stays in the memtable alone.
    ASSERT_TRUE(log->db()->PauseBackgroundWork().ok());
    lost = Stored{log->last_sequence(), Sha256("lost"), StateBytes(100, 'l')};
    Status status = log->WriteUnloggedCheckpoint(lost.sequence, lost.link, lost.state);
    ASSERT_TRUE(status.ok()) << status.message();
    ExpectSame(Read(log.get()), lost, "the newer checkpoint, before the power cut");
    fs->Die();  // the power cut: nothing more reaches the disk
    ASSERT_TRUE(log->db()->ContinueBackgroundWork().ok());
  }
  fs->DropUnsynced(/*seed=*/7, /*torn=*/true);
  fs->Revive();
  {
    auto log = OpenLog(env.get());
    ASSERT_NE(log, nullptr);
    ExpectSame(Read(log.get()), synced, "after the power cut");
    // The three chunks are counted again, so the next checkpoint still
    // deletes the two it does not overwrite.
    Stored next{log->last_sequence(), Sha256("next"), StateBytes(50, 'n')};
    Status status = log->WriteUnloggedCheckpoint(next.sequence, next.link, next.state);
    ASSERT_TRUE(status.ok()) << status.message();
    ExpectSame(Read(log.get()), next, "the next checkpoint");
  }
  EXPECT_EQ(ChunkKeys(), FirstChunkKeys(1));
}

}  // namespace
}  // namespace purser::testing
