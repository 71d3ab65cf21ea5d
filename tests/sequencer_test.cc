// The sequencer with the real RocksDB log: durability, recovery, group
// commit under concurrency, expiry and rejection counting by the service.

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include "ledger/base/limits.h"
#include "ledger/engine/command_queue.h"
#include "replay/replay.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

TEST(Sequencer, AcknowledgedCommandsSurviveARestart) {
  TempDir dir;
  Sha256Digest before;
  {
    auto sequencer = OpenSequencer(dir.path());
    OpenTree(*sequencer, 2, 10'000'000);
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("r1", "agent-0", 1'000'000)).ok());
    ASSERT_TRUE(Call(*sequencer, SettleCommand("r1", 250'000)).ok());
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("r2", "agent-1", 500'000)).ok());
    before = LiveDigest(*sequencer);
  }
  auto reopened = OpenSequencer(dir.path());
  EXPECT_EQ(LiveDigest(*reopened), before);
  Reply balance = Call(*reopened, query::GetBalance{"agent-1"});
  ASSERT_TRUE(balance.ok());
  EXPECT_EQ(std::get<BalanceView>(balance.body).balance_micros, 9'750'000);
  EXPECT_EQ(std::get<BalanceView>(balance.body).held_micros, 500'000);
  EXPECT_EQ(reopened->recovered_tail_events(), 0u) << "a clean stop leaves a checkpoint";
}

TEST(Sequencer, PeriodicCheckpointsRecoverTheSameStateAsARebuild) {
  TempDir dir;
  Sha256Digest live;
  uint64_t last = 0;
  {
    auto sequencer = OpenSequencer(dir.path(), nullptr, /*checkpoint_every_events=*/40);
    OpenTree(*sequencer, 3, 100'000'000);
    for (int i = 0; i < 60; ++i) {
      ASSERT_TRUE(Call(*sequencer, ReserveCommand("r" + std::to_string(i), "agent-1", 1'000)).ok());
    }
    live = LiveDigest(*sequencer, &last);
  }
  // (Recovery of a tail after the last checkpoint is covered by the crash
  // tests, which kill the process before any final checkpoint.)
  auto reopened = OpenSequencer(dir.path());
  EXPECT_EQ(LiveDigest(*reopened), live);
  RebuildReport rebuilt;
  reopened->Stop();
  reopened.reset();
  ASSERT_TRUE(Rebuild(RebuildOptions{dir.path(), "", UINT64_MAX, INT64_MAX, nullptr}, &rebuilt).ok());
  EXPECT_EQ(rebuilt.sequence, last);
  EXPECT_EQ(rebuilt.digest, live);
}

TEST(Sequencer, ManyThreadsAgainstOneCapNeverOverspend) {
  TempDir dir;
  auto sequencer = OpenSequencer(dir.path());
  OpenTree(*sequencer, 8, 1'000'000'000);
  CapsPatch cap;
  cap.daily_limit_micros = Patch<int64_t>::Set(10'000'000);  // admits exactly 100 x 100k
  ASSERT_TRUE(Call(*sequencer, cmd::SetCaps{"team", cap}).ok());
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string id = "r-" + std::to_string(t) + "-" + std::to_string(i);
        Reply reply = Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(t), 100'000));
        if (reply.ok()) {
          ++admitted;
          // Settle half at cost, so spend and holds both count.
          if (i % 2 == 0) {
            EXPECT_TRUE(Call(*sequencer, SettleCommand(id, 100'000)).ok());
          }
        } else {
          EXPECT_EQ(reply.code, ResultCode::kDailyCapExceeded);
          ++refused;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 100);
  EXPECT_EQ(refused.load(), 300);
  Reply team = Call(*sequencer, query::GetBalance{"team"});
  const auto& view = std::get<BalanceView>(team.body);
  EXPECT_EQ(view.spent_today_micros + view.held_micros - 0, 10'000'000)
      << "spent + held equals the cap exactly";
}

TEST(Sequencer, ConcurrentBatchesAreAnsweredInOrderWithOneReplyEach) {
  TempDir dir;
  auto sequencer = OpenSequencer(dir.path());
  OpenTree(*sequencer, 1, 1'000'000'000);
  std::vector<Request> batch;
  for (int i = 0; i < 1000; ++i) {
    batch.push_back(Request{Credentials::System(), ReserveCommand("b" + std::to_string(i), "agent-0", 1)});
  }
  batch.push_back(Request{Credentials::System(), ReserveCommand("b0", "agent-0", 2)});  // conflict
  std::vector<Reply> replies = sequencer->CallBatch(std::move(batch));
  ASSERT_EQ(replies.size(), 1001u);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(replies[i].ok());
    EXPECT_EQ(std::get<ReserveResult>(replies[i].body).reservation_id, "b" + std::to_string(i));
  }
  EXPECT_EQ(replies[1000].code, ResultCode::kIdempotencyConflict);
  std::vector<Request> too_many(kBatchCommandsMax + 1,
                                Request{Credentials::System(), query::ListPrices{}});
  EXPECT_FALSE(sequencer->Submit(std::move(too_many), [](std::vector<Reply>&&) {}));
}

TEST(Sequencer, TheIdleTimerExpiresReservationsWithinASecond) {
  TempDir dir;
  FakeClock clock;
  auto sequencer = OpenSequencer(dir.path(), clock.Function());
  OpenTree(*sequencer, 1, 10'000'000);
  ASSERT_TRUE(Call(*sequencer, ReserveCommand("r1", "agent-0", 1'000, 5)).ok());
  clock.Advance(6);
  ReservationStatus status = ReservationStatus::kPending;
  for (int i = 0; i < 40 && status == ReservationStatus::kPending; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Reply reply = Call(*sequencer, query::GetReservation{"r1"});
    status = std::get<ReservationView>(reply.body).status;
  }
  EXPECT_EQ(status, ReservationStatus::kExpired);
}

TEST(Sequencer, RejectionsAreAppendedOnceAMinuteAsCounts) {
  TempDir dir;
  FakeClock clock;
  {
    auto sequencer = OpenSequencer(dir.path(), clock.Function());
    OpenTree(*sequencer, 1, 1'000);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(Call(*sequencer, ReserveCommand("x" + std::to_string(i), "agent-0", 5'000)).code,
                ResultCode::kInsufficientFunds);
    }
    clock.Advance(61);
    ASSERT_TRUE(Call(*sequencer, query::ListPrices{}).ok());  // any group commit flushes
  }
  std::stringstream out;
  uint64_t exported = 0;
  ASSERT_TRUE(Export(ExportOptions{dir.path(), "", INT64_MIN, INT64_MAX}, out, &exported).ok());
  std::string log = out.str();
  size_t at = log.find("\"type\":\"RejectionsCounted\"");
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_NE(log.find("\"count\":3", at), std::string::npos);
  EXPECT_EQ(log.find("RejectionsCounted", at + 10), std::string::npos) << "one event per minute";
}

// What the write-ahead log holds of the projection checkpoints: the
// sequence of each checkpoint head written through it, and whether the same
// write rewrote the cold record `record_key`.
struct LoggedCheckpoints : rocksdb::WriteBatch::Handler {
  std::string record_key;
  std::vector<std::pair<uint64_t, bool>> heads;  // (sequence, with the record)
  bool record_in_batch = false;
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    if (key == rocksdb::Slice(record_key)) record_in_batch = true;
    if (key == "head" && value.size() >= 56) {
      uint64_t sequence = 0;
      for (size_t i = 0; i < 8; ++i) sequence = sequence << 8 | static_cast<unsigned char>(value[i]);
      heads.emplace_back(sequence, false);
    }
    return rocksdb::Status::OK();
  }
  // A head deletes the chunks of the checkpoint it replaces.
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  // Writes outside the log leave gaps in its sequence numbers, where
  // RocksDB's iterator stops: it starts again after each.
  void Read(rocksdb::DB* db) {
    rocksdb::SequenceNumber next = 1;
    for (bool progress = true; progress;) {
      progress = false;
      std::unique_ptr<rocksdb::TransactionLogIterator> it;
      rocksdb::Status status = db->GetUpdatesSince(next, &it);
      if (status.IsNotFound() && next > 1) break;  // past the last write
      ASSERT_TRUE(status.ok()) << status.ToString();
      for (; it->Valid(); it->Next()) {
        rocksdb::BatchResult batch = it->GetBatch();
        if (batch.sequence < next) continue;  // the batch `next` fell in, read already
        next = batch.sequence + batch.writeBatchPtr->Count();
        progress = true;
        record_in_batch = false;
        const size_t before = heads.size();
        ASSERT_TRUE(batch.writeBatchPtr->Iterate(this).ok());
        for (size_t i = before; i < heads.size(); ++i) heads[i].second = record_in_batch;
      }
    }
  }
};

// A checkpoint leaves finished records to the cold store, which must hold
// them as of the checkpoint recovery starts from. So a checkpoint that
// rewrote a changed record (a refund of an evicted reservation) is durable
// with it, in the synced write; one that rewrote none is written after its
// batch, outside the write-ahead log (bench/RESULTS.md, "The checkpoint pause").
TEST(Sequencer, ACheckpointThatRewroteAColdRecordIsLoggedWithItAndNoOtherIs) {
  TempDir dir;
  auto sequencer = OpenSequencer(dir.path(), nullptr, /*checkpoint_every_events=*/25);
  OpenTree(*sequencer, 2, 100'000'000);
  for (int i = 0; i < 30; ++i) {  // checkpoints; r0 is stored and leaves memory
    std::string id = "r" + std::to_string(i);
    ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-0", 1'000)).ok());
    ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 700)).ok());
  }
  ASSERT_TRUE(Call(*sequencer, query::GetStats{}).ok());  // after the write set aside
  uint64_t unlogged = 0;
  Sha256Digest link;
  std::string bytes;
  ASSERT_TRUE(sequencer->log()->ReadCheckpoint(&unlogged, &link, &bytes).ok());
  ASSERT_GT(unlogged, 0u);
  Reply refund = Call(*sequencer, cmd::Refund{"f0", ChargeKind::kReservation, "r0", 100, ""});
  ASSERT_TRUE(refund.ok()) << refund.message;
  for (int i = 30; i < 45; ++i) {  // the next checkpoint rewrites r0
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("r" + std::to_string(i), "agent-1", 1'000)).ok());
  }
  LoggedCheckpoints logged;
  logged.record_key = "rr0";  // ColdKey('r', "r0")
  logged.Read(sequencer->log()->db());
  ASSERT_EQ(logged.heads.size(), 1u) << "one checkpoint rewrote r0; it alone goes through the log";
  EXPECT_TRUE(logged.heads[0].second) << "the checkpoint at " << logged.heads[0].first
                                      << " went through the log without rewriting r0";
  EXPECT_GT(logged.heads[0].first, unlogged);
  uint64_t stored = 0;
  ASSERT_TRUE(sequencer->log()->ReadCheckpoint(&stored, &link, &bytes).ok());
  EXPECT_GE(stored, logged.heads[0].first);
}

TEST(Sequencer, FinishedRecordsMoveToTheColdStoreAndBehaveTheSame) {
  TempDir dir;
  Sha256Digest live;
  uint64_t sequence = 0;
  {
    auto sequencer = OpenSequencer(dir.path(), nullptr, /*checkpoint_every_events=*/25);
    OpenTree(*sequencer, 2, 100'000'000);
    for (int i = 0; i < 60; ++i) {
      std::string id = "r" + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-0", 1'000)).ok());
      ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 700)).ok());
      cmd::RecordUsage usage;
      usage.usage_id = "u" + std::to_string(i);
      usage.account = "agent-1";
      usage.amount_micros = 300;
      ASSERT_TRUE(Call(*sequencer, usage).ok());
    }
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("pending", "agent-0", 5)).ok());
    EXPECT_LT(sequencer->stats().reservations_in_memory, 40u)
        << "finished reservations left memory at the checkpoints";
    // Old records answer from the cold store exactly as from memory.
    Reply repeat = Call(*sequencer, ReserveCommand("r3", "agent-0", 1'000));
    ASSERT_TRUE(repeat.ok()) << repeat.message;
    EXPECT_FALSE(repeat.created);
    EXPECT_EQ(Call(*sequencer, ReserveCommand("r4", "agent-0", 2'000)).code,
              ResultCode::kIdempotencyConflict);
    Reply settled = Call(*sequencer, SettleCommand("r5", 700));
    ASSERT_TRUE(settled.ok());
    EXPECT_EQ(std::get<SettleResult>(settled.body).released_micros, 300);
    EXPECT_EQ(Call(*sequencer, SettleCommand("r6", 701)).code, ResultCode::kReservationNotPending);
    Reply view = Call(*sequencer, query::GetReservation{"r7"});
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(std::get<ReservationView>(view.body).cost_micros, 700);
    ASSERT_TRUE(Call(*sequencer, cmd::Refund{"f1", ChargeKind::kReservation, "r8", 700, ""}).ok());
    EXPECT_EQ(Call(*sequencer, cmd::Refund{"f2", ChargeKind::kReservation, "r8", 1, ""}).code,
              ResultCode::kRefundExceedsCharged);
    ASSERT_TRUE(Call(*sequencer, cmd::Refund{"f3", ChargeKind::kUsage, "u9", 300, ""}).ok());
    live = LiveDigest(*sequencer, &sequence);
  }
  RebuildReport rebuilt;
  ASSERT_TRUE(Rebuild(RebuildOptions{dir.path(), "", UINT64_MAX, INT64_MAX, nullptr}, &rebuilt).ok());
  EXPECT_EQ(rebuilt.digest, live) << "the digest does not depend on what is in memory";
  VerifyReport verified;
  Status status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &verified);
  EXPECT_TRUE(status.ok()) << status.message();
  auto reopened = OpenSequencer(dir.path(), nullptr, 25);
  EXPECT_EQ(LiveDigest(*reopened), live);
  EXPECT_EQ(Call(*reopened, cmd::Refund{"f4", ChargeKind::kReservation, "r8", 1, ""}).code,
            ResultCode::kRefundExceedsCharged)
      << "the refund made before the restart is remembered";
  EXPECT_TRUE(Call(*reopened, cmd::Refund{"f5", ChargeKind::kReservation, "r10", 200, ""}).ok());
  Reply balance = Call(*reopened, query::GetBalance{"org"});
  EXPECT_EQ(std::get<BalanceView>(balance.body).balance_micros,
            100'000'000 - 60 * 700 - 60 * 300 + 700 + 300 + 200);
}

std::vector<std::string> ListedIds(Sequencer& sequencer, const std::string& account,
                                   std::optional<ReservationStatus> status, size_t limit) {
  Reply reply = Call(sequencer, query::ListReservations{account, status, limit});
  std::vector<std::string> ids;
  if (!reply.ok()) return {"error: " + reply.message};
  for (const ReservationView& r : std::get<ReservationList>(reply.body).reservations) {
    ids.push_back(r.reservation_id);
  }
  return ids;
}

TEST(Sequencer, ListingFinishedReservationsIncludesTheColdStore) {
  TempDir dir;
  auto check = [](Sequencer& sequencer) {
    EXPECT_EQ(ListedIds(sequencer, "org", ReservationStatus::kSettled, 5),
              (std::vector<std::string>{"r00", "r02", "r04", "r06", "r08"}));
    EXPECT_EQ(ListedIds(sequencer, "agent-1", ReservationStatus::kVoided, 3),
              (std::vector<std::string>{"r01", "r03", "r05"}));
    EXPECT_EQ(ListedIds(sequencer, "agent-0", ReservationStatus::kVoided, 3),
              std::vector<std::string>{})
        << "agent-0's reservations were all settled";
    EXPECT_EQ(ListedIds(sequencer, "team", std::nullopt, 4),
              (std::vector<std::string>{"r00", "r01", "r02", "r03"}));
    EXPECT_EQ(ListedIds(sequencer, "org", std::nullopt, 100).size(), 41u);
    EXPECT_EQ(ListedIds(sequencer, "org", ReservationStatus::kPending, 100),
              std::vector<std::string>{"zz-pending"});
  };
  {
    auto sequencer = OpenSequencer(dir.path(), nullptr, /*checkpoint_every_events=*/25);
    OpenTree(*sequencer, 2, 100'000'000);
    for (int i = 0; i < 40; ++i) {
      std::string id = (i < 10 ? "r0" : "r") + std::to_string(i);
      std::string agent = i % 2 == 0 ? "agent-0" : "agent-1";
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, agent, 1'000)).ok());
      if (i % 2 == 0) {
        ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 700)).ok());
      } else {
        ASSERT_TRUE(Call(*sequencer, cmd::Void{id, ""}).ok());
      }
    }
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("zz-pending", "agent-0", 5)).ok());
    ASSERT_LT(sequencer->stats().reservations_in_memory, 20u)
        << "the oldest reservations are only in the cold store";
    check(*sequencer);
    // A settle of a listed (reloaded) reservation is refused, and the
    // listing still says settled after the next checkpoints.
    EXPECT_EQ(Call(*sequencer, SettleCommand("r02", 1)).code, ResultCode::kReservationNotPending);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(Call(*sequencer, cmd::Deposit{"d" + std::to_string(i), "org", 1, ""}).ok());
    }
    check(*sequencer);
  }
  auto reopened = OpenSequencer(dir.path(), nullptr, 25);
  check(*reopened);
}

TEST(Sequencer, ANewDatabaseTakesAFewMegabytesOfDisk) {
  TempDir dir;
  auto sequencer = OpenSequencer(dir.path());
  ASSERT_NE(sequencer, nullptr);
  OpenTree(*sequencer, 2, 1'000'000);
  // Blocks allocated, not file sizes: a preallocated write-ahead log once
  // took ~286 MB of an empty database.
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    struct stat info {};
    if (stat(entry.path().c_str(), &info) == 0) bytes += static_cast<uint64_t>(info.st_blocks) * 512;
  }
  EXPECT_LT(bytes, 8u << 20) << bytes << " bytes on disk";
}

TEST(Sequencer, StartingAgainAppendsNoEventOfItsOwn) {
  TempDir dir;
  uint64_t sequence = 0;
  {
    auto sequencer = OpenSequencer(dir.path());
    OpenTree(*sequencer, 1, 1'000);
    LiveDigest(*sequencer, &sequence);
  }
  auto reopened = OpenSequencer(dir.path());
  uint64_t again = 0;
  LiveDigest(*reopened, &again);
  EXPECT_EQ(again, sequence);
}

}  // namespace
}  // namespace purser::testing

namespace purser::testing {
namespace {

// The queue's refusals when full are counted (purser_command_queue_full_total);
// a refusal because it closed is not.
TEST(CommandQueue, RefusalsWhenFullAreCountedAndClosingIsNot) {
  CommandQueue queue(3);
  auto requests = [](size_t n) {
    std::vector<Request> batch;
    for (size_t i = 0; i < n; ++i) batch.push_back(Request{Credentials::System(), query::GetStats{}});
    return batch;
  };
  Completion done = [](std::vector<Reply>&&) {};
  std::vector<Request> two = requests(2);
  EXPECT_TRUE(queue.Push(two, done));
  std::vector<Request> more = requests(2);
  EXPECT_FALSE(queue.Push(more, done));
  EXPECT_EQ(more.size(), 2u) << "a refused submission is left to its caller";
  EXPECT_EQ(queue.refused_full(), 1u);
  EXPECT_EQ(queue.queued_commands(), 2u);
  EXPECT_EQ(queue.capacity(), 3u);
  queue.Close();
  std::vector<Request> one = requests(1);
  EXPECT_FALSE(queue.Push(one, done));
  EXPECT_EQ(queue.refused_full(), 1u);
}

}  // namespace
}  // namespace purser::testing
