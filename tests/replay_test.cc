// purser-replay on real logs: corruption, tampering and truncation are
// named; rebuilds are deterministic and equal the live digest.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <map>
#include <set>
#include <sstream>

#include "http/json_views.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "replay/replay.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

// Direct access to the events column family, to damage a log on purpose.
// It loads every segment (ledger/event_log.h), lets a test change records,
// and writes the segments back when it goes out of scope.
class RawLog {
 public:
  explicit RawLog(const std::string& dir) {
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"events", {}}, {"ids", {}}, {"checkpoint", {}},
        {"records", {}}, {"listing", {}}, {"notify", {}}, {"merkle", {}}};
    rocksdb::DB* db = nullptr;
    rocksdb::Status status = rocksdb::DB::Open(rocksdb::DBOptions(), dir, families, &handles_, &db);
    EXPECT_TRUE(status.ok()) << status.ToString();
    db_.reset(db);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, handles_[1]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      uint64_t sequence = SequenceFromKey(std::string_view(it->key().data(), it->key().size()));
      std::string_view segment(it->value().data(), it->value().size());
      std::vector<std::string>& records = segments_[sequence];
      while (segment.size() >= 4) {
        uint32_t length = 0;
        for (int i = 0; i < 4; ++i) length |= uint32_t{static_cast<uint8_t>(segment[i])} << (8 * i);
        records.emplace_back(segment.substr(4, length));
        segment.remove_prefix(4 + length);
      }
    }
  }
  ~RawLog() {
    for (const auto& [first, records] : segments_) {
      if (records.empty()) {
        EXPECT_TRUE(db_->Delete({}, handles_[1], SequenceKey(first)).ok());
        continue;
      }
      std::string segment;
      for (const std::string& record : records) {
        auto length = static_cast<uint32_t>(record.size());
        for (int i = 0; i < 4; ++i) segment.push_back(static_cast<char>(length >> (8 * i)));
        segment += record;
      }
      EXPECT_TRUE(db_->Put({}, handles_[1], SequenceKey(first), segment).ok());
    }
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  std::string Get(uint64_t sequence) { return *Find(sequence); }
  void Put(uint64_t sequence, const std::string& record) { *Find(sequence) = record; }
  // Removes a record: the records after it in its segment move up one place.
  void Delete(uint64_t sequence) {
    auto it = std::prev(segments_.upper_bound(sequence));
    it->second.erase(it->second.begin() + static_cast<ptrdiff_t>(sequence - it->first));
  }
  void DropCheckpoint() { ASSERT_TRUE(db_->Delete({}, handles_[3], "head").ok()); }

 private:
  std::string* Find(uint64_t sequence) {
    auto it = std::prev(segments_.upper_bound(sequence));
    EXPECT_LT(sequence - it->first, it->second.size());
    return &it->second[sequence - it->first];
  }
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<uint64_t, std::vector<std::string>> segments_;
};

// A small log: the default prices, a tree, reservations and settles.
uint64_t WriteLog(const std::string& dir, Sha256Digest* head = nullptr) {
  auto sequencer = OpenSequencer(dir);
  OpenTree(*sequencer, 3, 50'000'000);
  for (int i = 0; i < 20; ++i) {
    std::string id = "r" + std::to_string(i);
    EXPECT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 3), 100'000)).ok());
    EXPECT_TRUE(Call(*sequencer, SettleCommand(id, 40'000 + i)).ok());
  }
  Reply reply = Call(*sequencer, query::GetChainHead{});
  const auto& chain = std::get<ChainHead>(reply.body);
  if (head != nullptr) *head = chain.hash;
  return chain.sequence;
}

TEST(Verify, AcceptsAnIntactLogAndBalancesEveryWallet) {
  TempDir dir;
  Sha256Digest head;
  uint64_t last = WriteLog(dir.path(), &head);
  VerifyReport report;
  Status status = Verify(VerifyOptions{dir.path(), last, head, nullptr}, &report);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(report.last_sequence, last);
  EXPECT_EQ(report.head, head);
  EXPECT_EQ(report.wallets_checked, 1u);
  EXPECT_TRUE(report.checkpoint_checked);
}

TEST(Verify, FlippingOneByteOfAStoredEventNamesItsSequence) {
  TempDir dir;
  uint64_t last = WriteLog(dir.path());
  const uint64_t victim = last - 7;
  {
    RawLog raw(dir.path());
    std::string record = raw.Get(victim);
    record[kRecordHeaderBytes + 3] ^= 0x10;
    raw.Put(victim, record);
  }
  VerifyReport report;
  Status status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &report);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(report.bad_sequence, victim);
  EXPECT_NE(status.message().find(std::to_string(victim)), std::string::npos) << status.message();
}

TEST(Verify, ARewrittenEventWithAFreshChecksumBreaksTheChainAfterIt) {
  TempDir dir;
  uint64_t last = WriteLog(dir.path());
  const uint64_t victim = last - 5;
  {
    RawLog raw(dir.path());
    RecordView previous;
    std::string previous_record = raw.Get(victim - 1);
    ASSERT_TRUE(DecodeRecord(victim - 1, previous_record, &previous).ok());
    RecordView view;
    std::string record = raw.Get(victim);
    ASSERT_TRUE(DecodeRecord(victim, record, &view).ok());
    Event event;
    ASSERT_TRUE(DecodePayload(view.payload, &event).ok());
    event.actor = "mallory";  // a forger re-encodes with a valid checksum and link
    std::string payload;
    EventEncoder().Encode(event, &payload);
    Sha256Digest link;
    raw.Put(victim, EncodeRecord(victim, previous.link, payload, &link));
  }
  VerifyReport report;
  Status status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &report);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(report.bad_sequence, victim + 1) << status.message();
  EXPECT_NE(status.message().find("hash chain"), std::string::npos);
}

TEST(Verify, AnEventHashedCorrectlyThatCannotBeAppliedIsAnErrorNamingItNotACrash) {
  TempDir dir;
  const uint64_t last = WriteLog(dir.path());
  {
    RawLog raw(dir.path());
    raw.DropCheckpoint();  // so that recovery replays it too
    RecordView previous;
    std::string previous_record = raw.Get(last - 1);
    ASSERT_TRUE(DecodeRecord(last - 1, previous_record, &previous).ok());
    RecordView view;
    std::string record = raw.Get(last);
    ASSERT_TRUE(DecodeRecord(last, record, &view).ok());
    Event event;
    ASSERT_TRUE(DecodePayload(view.payload, &event).ok());
    ASSERT_TRUE(std::holds_alternative<event::Settled>(event.body)) << "the log ends with a settle";
    event::Voided voided;
    voided.reservation_id = "r18";  // settled already: a void cannot apply
    event.body = voided;
    std::string payload;
    EventEncoder().Encode(event, &payload);
    Sha256Digest link;
    raw.Put(last, EncodeRecord(last, previous.link, payload, &link));
  }
  VerifyReport report;
  Status verified = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &report);
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(verified.IsCorruption()) << verified.message();
  EXPECT_EQ(report.bad_sequence, last) << verified.message();
  EXPECT_NE(verified.message().find("event " + std::to_string(last) + " (Voided) cannot be applied"),
            std::string::npos)
      << verified.message();
  RebuildReport rebuilt;
  EXPECT_FALSE(Rebuild(RebuildOptions{dir.path(), "", UINT64_MAX, INT64_MAX, nullptr}, &rebuilt).ok());
  SequencerOptions options;
  options.data_dir = dir.path();
  Result<std::unique_ptr<Sequencer>> opened = Sequencer::Open(options);
  ASSERT_FALSE(opened.ok()) << "the service refuses to start on it, and says why";
  EXPECT_NE(opened.status().message().find("cannot be applied"), std::string::npos)
      << opened.status().message();
}

// A copy of a running service holds records finished after its last
// projection checkpoint (the engine writes them with their groups): verify
// compares the checkpoint with the cold store as of the checkpoint.
TEST(Verify, ALiveCopyWithRecordsFinishedAfterItsCheckpointVerifies) {
  TempDir dir;
  auto sequencer = OpenSequencer(dir.Sub("live"), nullptr, /*checkpoint_every_events=*/50);
  OpenTree(*sequencer, 2, 100'000'000);
  for (int i = 0; i < 45; ++i) {  // a checkpoint, then finished records after it
    std::string id = "r" + std::to_string(i);
    ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 2), 1'000)).ok());
    ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 500)).ok());
  }
  ASSERT_TRUE(Call(*sequencer, cmd::Refund{"f1", ChargeKind::kReservation, "r1", 100, ""}).ok());
  ASSERT_TRUE(sequencer->log()->CreateCheckpointCopy(dir.Sub("copy")).ok());
  uint64_t sequence = 0;
  Sha256Digest live = LiveDigest(*sequencer, &sequence);
  VerifyReport report;
  Status status = Verify(VerifyOptions{dir.Sub("copy"), std::nullopt, std::nullopt, nullptr}, &report);
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(report.checkpoint_checked);
  RebuildReport rebuilt;
  ASSERT_TRUE(Rebuild(RebuildOptions{dir.Sub("copy"), "", UINT64_MAX, INT64_MAX, nullptr}, &rebuilt).ok());
  EXPECT_EQ(rebuilt.sequence, sequence);
  EXPECT_EQ(rebuilt.digest, live);
}

TEST(Verify, ReorderingTwoEventsIsDetected) {
  TempDir dir;
  uint64_t last = WriteLog(dir.path());
  {
    RawLog raw(dir.path());
    std::string a = raw.Get(last - 3);
    std::string b = raw.Get(last - 2);
    raw.Put(last - 3, b);
    raw.Put(last - 2, a);
  }
  VerifyReport report;
  EXPECT_FALSE(Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &report).ok());
  EXPECT_EQ(report.bad_sequence, last - 3);
}

TEST(Verify, ATruncatedLogFailsAgainstTheExpectedHead) {
  TempDir dir;
  Sha256Digest head;
  uint64_t last = WriteLog(dir.path(), &head);
  {
    RawLog raw(dir.path());
    raw.DropCheckpoint();  // the checkpoint would also reveal it; test the head alone
    raw.Delete(last);
    raw.Delete(last - 1);
  }
  VerifyReport report;
  Status plain = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &report);
  EXPECT_FALSE(plain.ok()) << "the head mark beside the log reveals a clean truncation too";
  EXPECT_NE(plain.message().find("missing"), std::string::npos) << plain.message();
  Status status = Verify(VerifyOptions{dir.path(), last, head, nullptr}, &report);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
}

TEST(Verify, AMissingEventInTheMiddleIsAGap) {
  TempDir dir;
  uint64_t last = WriteLog(dir.path());
  {
    RawLog raw(dir.path());
    raw.Delete(last - 4);
  }
  VerifyReport report;
  Status status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &report);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(report.bad_sequence, last - 4);
}

TEST(Rebuild, IsDeterministicAndEqualsTheLiveDigestAtEverySequence) {
  TempDir dir;
  std::vector<std::pair<uint64_t, Sha256Digest>> live;
  {
    auto sequencer = OpenSequencer(dir.path());
    OpenTree(*sequencer, 2, 10'000'000);
    for (int i = 0; i < 10; ++i) {
      std::string id = "r" + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 2), 300'000)).ok());
      ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 200'000 + i * 50'000)).ok());
      uint64_t sequence = 0;
      Sha256Digest digest = LiveDigest(*sequencer, &sequence);
      live.emplace_back(sequence, digest);
    }
  }
  for (const auto& [sequence, digest] : live) {
    RebuildReport first;
    RebuildReport second;
    ASSERT_TRUE(Rebuild(RebuildOptions{dir.path(), "", sequence, INT64_MAX, nullptr}, &first).ok());
    ASSERT_TRUE(Rebuild(RebuildOptions{dir.path(), "", sequence, INT64_MAX, nullptr}, &second).ok());
    EXPECT_EQ(first.sequence, sequence);
    EXPECT_EQ(first.digest, digest) << "at sequence " << sequence;
    EXPECT_EQ(second.digest, first.digest);
  }
}

TEST(Rebuild, IntoANewDirectoryGivesADatabaseTheServiceOpens) {
  TempDir dir;
  uint64_t last = WriteLog(dir.path());
  RebuildReport report;
  ASSERT_TRUE(
      Rebuild(RebuildOptions{dir.path(), dir.Sub("copy"), last - 10, INT64_MAX, nullptr}, &report).ok());
  {
    // The verified records are copied, byte for byte.
    EventLogOptions source_options, copy_options;
    source_options.path = dir.path();
    copy_options.path = dir.Sub("copy");
    source_options.read_only = copy_options.read_only = true;
    Result<std::unique_ptr<EventLog>> source = EventLog::Open(source_options);
    Result<std::unique_ptr<EventLog>> copy = EventLog::Open(copy_options);
    ASSERT_TRUE(source.ok() && copy.ok());
    uint64_t copied = 0;
    auto it = (*source)->NewIterator(1);
    for (auto jt = (*copy)->NewIterator(1); jt->Valid(); it->Next(), jt->Next(), ++copied) {
      ASSERT_TRUE(it->Valid());
      ASSERT_EQ(it->record(), jt->record()) << "event " << copied + 1;
    }
    EXPECT_EQ(copied, last - 10);
    EXPECT_EQ((*copy)->merkle_durable_size(), last - 10) << "the copy has its Merkle tree";
  }
  auto sequencer = OpenSequencer(dir.Sub("copy"));
  uint64_t sequence = 0;
  EXPECT_EQ(LiveDigest(*sequencer, &sequence), report.digest);
  EXPECT_EQ(sequence, last - 10);
  EXPECT_EQ(sequencer->recovered_tail_events(), 0u);
}

TEST(Rebuild, MovingFinishedRecordsOutOfMemoryChangesNothing) {
  TempDir dir;
  Sha256Digest live;
  uint64_t sequence = 0;
  {
    auto sequencer = OpenSequencer(dir.path());
    OpenTree(*sequencer, 2, 10'000'000);
    for (int i = 0; i < 30; ++i) {
      std::string id = (i < 10 ? "r0" : "r") + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 2), 1'000)).ok());
      ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 600)).ok());
    }
    // Late refunds of early reservations: a replay that moved them out of
    // memory must bring them back.
    ASSERT_TRUE(Call(*sequencer, cmd::Refund{"f1", ChargeKind::kReservation, "r01", 100, ""}).ok());
    ASSERT_TRUE(Call(*sequencer, cmd::Refund{"f2", ChargeKind::kReservation, "r01", 200, ""}).ok());
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("pending", "agent-0", 5)).ok());
    live = LiveDigest(*sequencer, &sequence);
  }
  RebuildReport in_memory;
  RebuildReport evicting;
  ASSERT_TRUE(Rebuild(RebuildOptions{dir.path(), "", UINT64_MAX, INT64_MAX, nullptr, 0}, &in_memory).ok());
  Status status =
      Rebuild(RebuildOptions{dir.path(), "", UINT64_MAX, INT64_MAX, nullptr, 7}, &evicting);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(in_memory.digest, live);
  EXPECT_EQ(evicting.digest, live);
  VerifyReport verified;
  status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr, 7}, &verified);
  EXPECT_TRUE(status.ok()) << status.message();

  RebuildReport copied;
  status = Rebuild(RebuildOptions{dir.path(), dir.Sub("copy"), UINT64_MAX, INT64_MAX, nullptr, 7},
                   &copied);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(copied.digest, live);
  auto sequencer = OpenSequencer(dir.Sub("copy"));
  EXPECT_EQ(LiveDigest(*sequencer), live);
  EXPECT_LT(sequencer->stats().reservations_in_memory, 5u) << "the copy keeps them cold";
  Reply listed = Call(*sequencer, query::ListReservations{"org", ReservationStatus::kSettled, 2});
  ASSERT_TRUE(listed.ok());
  const auto& rows = std::get<ReservationList>(listed.body).reservations;
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].reservation_id, "r00");
  EXPECT_EQ(rows[1].reservation_id, "r01");
  EXPECT_EQ(Call(*sequencer, cmd::Refund{"f3", ChargeKind::kReservation, "r01", 301, ""}).code,
            ResultCode::kRefundExceedsCharged)
      << "the cold record carries the refunds made before";
}

TEST(Rebuild, ReactionsRefusalsAndTransfersRebuildToTheLiveDigestAndAlerts) {
  TempDir dir;
  Sha256Digest live;
  std::string live_alerts;
  {
    auto sequencer = OpenSequencer(dir.path());
    OpenTree(*sequencer, 3, 50'000'000);
    ASSERT_TRUE(Call(*sequencer, cmd::OpenAccount{"worker", "org", AccountKind::kAgent, "", true, {}})
                    .ok());
    ASSERT_TRUE(Call(*sequencer, cmd::Transfer{"t1", "org", "worker", 5'000'000, "seed"}).ok());
    cmd::SetCaps caps;
    caps.account = "agent-0";
    caps.patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
    caps.patch.runaway_error_streak = Patch<int64_t>::Set(3);
    ASSERT_TRUE(Call(*sequencer, caps).ok());
    cmd::SetCaps rate;
    rate.account = "agent-1";
    rate.patch.max_calls_per_minute = Patch<int64_t>::Set(2);
    ASSERT_TRUE(Call(*sequencer, rate).ok());
    ASSERT_TRUE(Call(*sequencer, cmd::SetBaseline{"agent-2", 1'000, 10'000}).ok());
    for (int i = 0; i < 6; ++i) {
      std::string id = "e" + std::to_string(i);
      Reply reserved = Call(*sequencer, ReserveCommand(id, "agent-0", 10'000));
      if (!reserved.ok()) continue;  // frozen after the third error
      cmd::Settle settle = SettleCommand(id, 9'000);
      settle.outcome = Outcome::kError;
      ASSERT_TRUE(Call(*sequencer, settle).ok());
    }
    int limited = 0;
    for (int i = 0; i < 5; ++i) {
      limited += Call(*sequencer, ReserveCommand("l" + std::to_string(i), "agent-1", 1'000)).code ==
                 ResultCode::kRateLimited;
    }
    EXPECT_GE(limited, 1);
    cmd::RecordUsage usage;
    usage.usage_id = "spike";
    usage.account = "agent-2";
    usage.amount_micros = 1'000'000;
    usage.run_id = "run-x";
    ASSERT_TRUE(Call(*sequencer, usage).ok());
    Reply account = Call(*sequencer, query::GetAccount{"agent-0"});
    EXPECT_TRUE(std::get<AccountView>(account.body).frozen);
    live_alerts = ReplyToJson(Call(*sequencer, query::ListAlerts{}));
    EXPECT_NE(live_alerts.find("runaway"), std::string::npos);
    EXPECT_NE(live_alerts.find("anomaly"), std::string::npos);
    sequencer->Stop();  // appends the rejection counts, writes a checkpoint
  }
  {
    auto reopened = OpenSequencer(dir.path());  // from the checkpoint (format 2)
    live = LiveDigest(*reopened);
    EXPECT_EQ(ReplyToJson(Call(*reopened, query::ListAlerts{})), live_alerts);
  }
  VerifyReport verified;
  Status status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr, 0}, &verified);
  EXPECT_TRUE(status.ok()) << "the conservation law counts transfers: " << status.message();
  RebuildReport rebuilt;
  status = Rebuild(RebuildOptions{dir.path(), dir.Sub("copy"), UINT64_MAX, INT64_MAX, nullptr, 0},
                   &rebuilt);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(rebuilt.digest, live);
  auto copy = OpenSequencer(dir.Sub("copy"));
  EXPECT_EQ(ReplyToJson(Call(*copy, query::ListAlerts{})), live_alerts);
}

TEST(Export, WritesJsonLinesFilteredByAccountSubtree) {
  TempDir dir;
  WriteLog(dir.path());
  std::stringstream all;
  std::stringstream agent;
  uint64_t all_count = 0;
  uint64_t agent_count = 0;
  ASSERT_TRUE(Export(ExportOptions{dir.path(), "", INT64_MIN, INT64_MAX}, all, &all_count).ok());
  ASSERT_TRUE(Export(ExportOptions{dir.path(), "agent-1", INT64_MIN, INT64_MAX}, agent, &agent_count).ok());
  EXPECT_GT(all_count, agent_count);
  // agent-1 holds 7 of the 20 reservations: each is reserved and settled,
  // plus its own AccountOpened.
  EXPECT_EQ(agent_count, 7u * 2 + 1);
  std::string line;
  while (std::getline(agent, line)) {
    EXPECT_EQ(line.front(), '{');
    EXPECT_NE(line.find("agent-1"), std::string::npos) << line;
  }
  EXPECT_EQ(all.str().find("secret"), std::string::npos);
}

}  // namespace
}  // namespace purser::testing

namespace purser::testing {
namespace {

// The conservation check finds accounts of expired and refunded records in
// the replayed state (loaded back from the scratch store when evicted), so
// its memory does not grow with the number of reservations.
TEST(Verify, TheConservationLawHoldsWithAlmostEverythingEvicted) {
  TempDir dir;
  FakeClock clock;
  {
    auto sequencer = OpenSequencer(dir.path(), clock.Function(), /*checkpoint_every_events=*/20);
    OpenTree(*sequencer, 2, 100'000'000);
    CapsPatch charge_on_expiry;
    charge_on_expiry.on_expiry = Patch<OnExpiry>::Set(OnExpiry::kCharge);
    ASSERT_TRUE(Call(*sequencer, cmd::SetCaps{"team", charge_on_expiry}).ok());
    for (int i = 0; i < 40; ++i) {
      std::string id = "r" + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 2), 5'000, 60)).ok());
      if (i % 4 != 3) {
        ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 1'000 + i)).ok());
      }
      cmd::RecordUsage usage;
      usage.usage_id = "u" + std::to_string(i);
      usage.account = "agent-1";
      usage.amount_micros = 300;
      ASSERT_TRUE(Call(*sequencer, usage).ok());
    }
    clock.Advance(600);  // every fourth reservation expires, charged in full
    ASSERT_TRUE(Call(*sequencer, query::GetBalance{"org"}).ok());
    Reply expired = Call(*sequencer, query::GetReservation{"r3"});
    ASSERT_TRUE(expired.ok());
    ASSERT_EQ(std::get<ReservationView>(expired.body).cost_micros, 5'000) << "charged at expiry";
    for (int i = 0; i < 40; i += 5) {
      ASSERT_TRUE(Call(*sequencer, cmd::Refund{"fr" + std::to_string(i), ChargeKind::kReservation,
                                               "r" + std::to_string(i), 100, ""})
                      .ok());
      ASSERT_TRUE(Call(*sequencer, cmd::Refund{"fu" + std::to_string(i), ChargeKind::kUsage,
                                               "u" + std::to_string(i), 100, ""})
                      .ok());
    }
  }
  VerifyOptions options{dir.path(), std::nullopt, std::nullopt, nullptr};
  options.max_records_in_memory = 4;
  VerifyReport report;
  Status status = Verify(options, &report);
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_GE(report.wallets_checked, 1u);
}

// The answers of the live service at a moment, and the same reads answered
// later by `purser-replay query --as-of` from the log.
TEST(Query, AsOfASequenceOrATimeAnswersWhatTheServiceAnsweredThen) {
  TempDir dir;
  FakeClock clock;
  uint64_t then = 0;
  int64_t then_time = 0;
  std::string balance_then, spend_then, reservation_then, month_spend_then;
  {
    auto sequencer = OpenSequencer(dir.path(), clock.Function(), /*checkpoint_every_events=*/25);
    OpenTree(*sequencer, 2, 100'000'000);
    for (int i = 0; i < 30; ++i) {
      std::string id = "r" + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 2), 10'000)).ok());
      cmd::Settle settle = SettleCommand(id, 1'000 + i);
      settle.usage = UsageTokens{"gpt-4o", TokenCounts{100 + i, 50, 0, 0, 0}};
      settle.amount_micros.reset();
      ASSERT_TRUE(Call(*sequencer, settle).ok());
    }
    balance_then = ReplyToJson(Call(*sequencer, query::GetBalance{"org"}));
    query::GetSpend spend;
    spend.account = "org";
    spend.group_by = GroupBy::kModel;
    spend_then = ReplyToJson(Call(*sequencer, spend));
    reservation_then = ReplyToJson(Call(*sequencer, query::GetReservation{"r3"}));
    // As the CLI asks it: this month so far, as of the moment (the fake
    // clock's November, not the wall clock's month).
    query::GetSpend month = spend;
    month.to_day = DayOf(clock.now_us.load());
    month.from_day = FirstDayOfMonth(MonthOfDay(month.to_day));
    month_spend_then = ReplyToJson(Call(*sequencer, month));
    Reply head = Call(*sequencer, query::GetChainHead{});
    then = std::get<ChainHead>(head.body).sequence;
    then_time = clock.now_us.load();
    // A day later: more spend, and r3 refunded (its record changes after
    // it went to the cold store).
    clock.Advance(86'400);
    ASSERT_TRUE(Call(*sequencer, cmd::Refund{"f1", ChargeKind::kReservation, "r3", 500, ""}).ok());
    for (int i = 30; i < 40; ++i) {
      std::string id = "r" + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-0", 10'000)).ok());
      ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 2'000)).ok());
    }
    ASSERT_NE(ReplyToJson(Call(*sequencer, query::GetBalance{"org"})), balance_then);
  }
  for (uint64_t max_records : {uint64_t{0}, uint64_t{8}}) {  // all in memory; most in the scratch store
    QueryOptions options;
    options.data_dir = dir.path();
    options.until_sequence = then;
    options.max_records_in_memory = max_records;
    QueryReport report;
    ASSERT_TRUE(QueryAsOf(options, query::GetBalance{"org"}, &report).ok());
    EXPECT_EQ(report.sequence, then);
    EXPECT_EQ(ReplyToJson(report.reply), balance_then);
    query::GetSpend spend;
    spend.account = "org";
    spend.group_by = GroupBy::kModel;
    ASSERT_TRUE(QueryAsOf(options, spend, &report).ok());
    EXPECT_EQ(ReplyToJson(report.reply), spend_then);
    ASSERT_TRUE(QueryAsOf(options, query::GetReservation{"r3"}, &report).ok());
    EXPECT_EQ(ReplyToJson(report.reply), reservation_then) << "before its refund";
    // The same moment by time.
    QueryOptions by_time = options;
    by_time.until_sequence = UINT64_MAX;
    by_time.until_time_us = then_time + 1;
    ASSERT_TRUE(QueryAsOf(by_time, query::GetBalance{"org"}, &report).ok());
    EXPECT_EQ(ReplyToJson(report.reply), balance_then);
  }
  // The command line: the read as the CLI writes it, the answer on stdout.
  std::string sequence_text = std::to_string(then);
  std::vector<std::string> words = {"purser-replay", "query", "--data-dir", dir.path(),
                                    "--as-of", sequence_text, "balance", "org"};
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  ::testing::internal::CaptureStdout();
  int status = ReplayMain(static_cast<int>(argv.size()), argv.data());
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, balance_then + "\n");
  words = {"purser-replay", "query", "--data-dir", dir.path(), "--as-of", sequence_text,
           "spend", "org", "--group-by", "model"};
  argv.clear();
  for (std::string& word : words) argv.push_back(word.data());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(ReplayMain(static_cast<int>(argv.size()), argv.data()), 0);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), month_spend_then + "\n")
      << "the default range is the month of the moment, not of the wall clock";
  // Commands are refused, and change nothing.
  QueryReport refused;
  Status command = QueryAsOf(QueryOptions{dir.path()}, cmd::Deposit{"d9", "org", 1, ""}, &refused);
  EXPECT_EQ(command.code(), StatusCode::kInvalidArgument) << command.message();
  words = {"purser-replay", "query", "--data-dir", dir.path(), "deposit", "org", "1.00"};
  argv.clear();
  for (std::string& word : words) argv.push_back(word.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  EXPECT_NE(ReplayMain(static_cast<int>(argv.size()), argv.data()), 0);
  ::testing::internal::GetCapturedStdout();
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("reads only"), std::string::npos);
}

}  // namespace
}  // namespace purser::testing

namespace purser::testing {
namespace {

// A night's story: spend in two minutes of the window, the largest call, an
// expiry, a threshold alert, a freeze and counted rejections of the subtree;
// nothing of other accounts or from outside the window.
TEST(Explain, TellsASubtreesSpendPeakTopsAlertsFreezesAndRejectionsInTheWindow) {
  TempDir dir;
  FakeClock clock;
  const int64_t start = clock.now_us.load();
  {
    auto sequencer = OpenSequencer(dir.path(), clock.Function());
    OpenTree(*sequencer, 2, 100'000'000);  // org -> team -> agent-0, agent-1
    ASSERT_TRUE(Call(*sequencer, cmd::OpenAccount{"other", "org", AccountKind::kAgent, "", false, {}}).ok());
    CapsPatch caps;
    caps.daily_limit_micros = Patch<int64_t>::Set(1'000'000);
    caps.on_expiry = Patch<OnExpiry>::Set(OnExpiry::kCharge);
    ASSERT_TRUE(Call(*sequencer, cmd::SetCaps{"team", caps}).ok());
    auto spend = [&](const std::string& id, const std::string& account, int64_t cost) {
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, account, 400'000, 60)).ok());
      cmd::Settle settle = SettleCommand(id, cost);
      settle.action = "search";
      ASSERT_TRUE(Call(*sequencer, settle).ok());
    };
    spend("before", "agent-0", 1'000);  // before the window
    clock.Advance(120);
    spend("a1", "agent-0", 100'000);
    spend("a2", "agent-1", 250'000);
    spend("x1", "other", 300'000);  // outside the subtree
    clock.Advance(60);
    spend("a3", "agent-0", 500'000);  // crosses 80% of the team's daily cap: an alert
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("late", "agent-1", 100'000, 60)).ok());
    EXPECT_EQ(Call(*sequencer, ReserveCommand("refused", "agent-1", 400'000)).code,
              ResultCode::kDailyCapExceeded);
    ASSERT_TRUE(Call(*sequencer, cmd::Freeze{"agent-1", "runaway"}).ok());
    clock.Advance(120);  // "late" expires, charged; the rejection is counted
    ASSERT_TRUE(Call(*sequencer, query::ListPrices{}).ok());
  }
  ExplainOptions options{dir.path(), "team", start + 60 * kMicrosPerSecond, start + 3600 * kMicrosPerSecond};
  ExplainReport report;
  Status status = Explain(options, &report);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(report.calls, 3u) << "a1, a2, a3: not `before`, not `other`";
  EXPECT_EQ(report.expiries, 1u);
  EXPECT_EQ(report.expiry_charged_micros, 100'000);
  EXPECT_EQ(report.spend_micros, 100'000 + 250'000 + 500'000 + 100'000);
  EXPECT_EQ(report.per_minute.size(), 3u) << "two minutes of settles, one of the expiry";
  ASSERT_FALSE(report.largest.empty());
  EXPECT_EQ(report.largest.front().id, "a3");
  EXPECT_EQ(report.largest.front().micros, 500'000);
  EXPECT_EQ(report.actions.at("search").calls, 3u);
  ASSERT_FALSE(report.alerts.empty());
  EXPECT_EQ(report.alerts.front().kind, "budget_threshold");
  ASSERT_EQ(report.freezes.size(), 1u);
  EXPECT_EQ(report.freezes.front().account, "agent-1");
  EXPECT_EQ(report.rejections["daily_cap_exceeded"], 1u);
  std::ostringstream text;
  WriteExplainText(options, report, text);
  EXPECT_NE(text.str().find("spend 0.95 USD in 3 calls"), std::string::npos) << text.str();
  std::string json = ExplainJson(options, report);
  EXPECT_NE(json.find("\"spend_micros\":950000"), std::string::npos) << json;
  EXPECT_NE(json.find("\"daily_cap_exceeded\":1"), std::string::npos) << json;
  EXPECT_EQ(ExplainSvg(options, report).find("<rect") != std::string::npos, true);
  ExplainOptions unknown = options;
  unknown.account = "nobody";
  EXPECT_EQ(Explain(unknown, &report).code(), StatusCode::kNotFound);
}

// Three days of a team under a 1 USD daily cap: 12 calls a day on two
// agents (one by estimate and tokens), a void and a usage record a day.
int64_t WriteThreeDays(const std::string& dir, FakeClock& clock) {
  auto sequencer = OpenSequencer(dir, clock.Function(), /*checkpoint_every_events=*/40);
  OpenTree(*sequencer, 2, 100'000'000);
  CapsPatch caps;
  caps.daily_limit_micros = Patch<int64_t>::Set(1'000'000);
  EXPECT_TRUE(Call(*sequencer, cmd::SetCaps{"team", caps}).ok());
  clock.Advance(3600);
  const int64_t start = clock.now_us.load();
  for (int day = 0; day < 3; ++day) {
    for (int i = 0; i < 12; ++i) {
      std::string id = "d" + std::to_string(day) + "-" + std::to_string(i);
      std::string agent = "agent-" + std::to_string(i % 2);
      if (i == 5) {
        cmd::Reserve reserve = ReserveCommand(id, agent, 0);
        reserve.amount_micros.reset();
        reserve.estimate = Estimate{"gpt-4o", 1'000, 1'000};
        EXPECT_TRUE(Call(*sequencer, reserve).ok());
        cmd::Settle settle = SettleCommand(id, 0);
        settle.amount_micros.reset();
        settle.usage = UsageTokens{"gpt-4o", TokenCounts{1'000, 500, 0, 0, 0}};
        EXPECT_TRUE(Call(*sequencer, settle).ok());
      } else {
        EXPECT_TRUE(Call(*sequencer, ReserveCommand(id, agent, 100'000)).ok()) << id;
        if (i == 7) {
          EXPECT_TRUE(Call(*sequencer, cmd::Void{id, "cancelled"}).ok());
        } else {
          EXPECT_TRUE(Call(*sequencer, SettleCommand(id, 60'000 + i)).ok());
        }
      }
      clock.Advance(600);
    }
    cmd::RecordUsage usage;
    usage.usage_id = "u" + std::to_string(day);
    usage.account = "agent-1";
    usage.amount_micros = 20'000;
    EXPECT_TRUE(Call(*sequencer, usage).ok());
    clock.Advance(86'400 - 12 * 600);
  }
  return start;
}

WhatIfReport RunWhatIf(const std::string& dir, int64_t from, int64_t to, CapsPatch caps,
                       uint64_t max_records = 4'000'000) {
  WhatIfOptions options{dir, "team", from, to, std::move(caps), max_records, nullptr};
  WhatIfReport report;
  Status status = WhatIf(options, &report);
  EXPECT_TRUE(status.ok()) << status.message();
  return report;
}

std::set<std::string> RefusedIds(const WhatIfReport& report) {
  std::set<std::string> ids;
  for (const auto& refused : report.refused) ids.insert(refused.id);
  return ids;
}

TEST(WhatIf, TheActualCapsReproduceTheLogAndTighterOnesRefuseASuperset) {
  TempDir dir;
  FakeClock clock;
  const int64_t from = WriteThreeDays(dir.path(), clock);
  const int64_t to = clock.now_us.load();
  auto daily = [](int64_t micros) {
    CapsPatch caps;
    caps.daily_limit_micros = Patch<int64_t>::Set(micros);
    return caps;
  };
  for (uint64_t max_records : {uint64_t{4'000'000}, uint64_t{6}}) {  // in memory; mostly evicted
    WhatIfReport same = RunWhatIf(dir.path(), from, to, daily(1'000'000), max_records);
    EXPECT_TRUE(same.account_found);
    EXPECT_EQ(same.reservations, 36u);
    EXPECT_EQ(same.usages, 3u);
    EXPECT_TRUE(same.refused.empty());
    EXPECT_EQ(same.avoided_micros, 0);
    EXPECT_EQ(same.stopped_at_us, 0);
    EXPECT_GT(same.actual_micros, 3 * 600'000);
    EXPECT_EQ(same.hypothetical_micros, same.actual_micros);
    ASSERT_EQ(same.per_day.size(), 3u);
    for (const auto& [day, spend] : same.per_day) {
      EXPECT_EQ(spend.hypothetical_micros, spend.actual_micros) << FormatDate(day);
    }
    EXPECT_EQ(same.hypothetical_alerts.size(), same.actual_alerts);
  }

  WhatIfReport half = RunWhatIf(dir.path(), from, to, daily(500'000));
  ASSERT_FALSE(half.refused.empty());
  EXPECT_EQ(half.refused_by_code.at("daily_cap_exceeded"), half.refused_reservations);
  EXPECT_EQ(half.refused.front().code, "daily_cap_exceeded");
  EXPECT_NE(half.refused.front().message.find("team"), std::string::npos) << half.refused.front().message;
  EXPECT_GT(half.avoided_micros, 0);
  EXPECT_EQ(half.actual_micros, half.hypothetical_micros + half.avoided_micros);
  for (const auto& [day, spend] : half.per_day) {
    EXPECT_LE(spend.hypothetical_micros, 500'000) << FormatDate(day);
    EXPECT_LT(spend.hypothetical_micros, spend.actual_micros) << FormatDate(day);
  }
  // Each day admits again: the money stops only on the last one, at its
  // first refusal.
  ASSERT_NE(half.stopped_at_us, 0);
  EXPECT_EQ(DayOf(half.stopped_at_us), DayOf(half.refused.back().time_us));
  EXPECT_GT(half.stopped_at_us, half.refused.front().time_us);

  WhatIfReport tighter = RunWhatIf(dir.path(), from, to, daily(300'000));
  std::set<std::string> loose = RefusedIds(half);
  std::set<std::string> tight = RefusedIds(tighter);
  EXPECT_GT(tight.size(), loose.size());
  EXPECT_TRUE(std::includes(tight.begin(), tight.end(), loose.begin(), loose.end()));

  // A hard limit stops the money for good (smaller calls pass a while
  // after its first refusal).
  CapsPatch hard;
  hard.hard_limit_micros = Patch<int64_t>::Set(1'000'000);
  WhatIfReport stopped = RunWhatIf(dir.path(), from, to, hard);
  ASSERT_FALSE(stopped.refused.empty());
  EXPECT_EQ(stopped.refused.front().code, "hard_limit_exceeded");
  EXPECT_EQ(DayOf(stopped.refused.front().time_us), DayOf(from) + 1);
  EXPECT_GE(stopped.stopped_at_us, stopped.refused.front().time_us);
  // Usage records are not refused by caps (they record the truth).
  EXPECT_LE(stopped.hypothetical_micros, 1'000'000 + 3 * 20'000);

  // Through the command line, with the flag names.
  std::vector<std::string> words = {"purser-replay", "what-if", "--data-dir", dir.path(),
                                    "--account", "team", "--from", FormatTimestamp(from),
                                    "--to", FormatTimestamp(to), "--daily", "0.50", "--json"};
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  ::testing::internal::CaptureStdout();
  int status = ReplayMain(static_cast<int>(argv.size()), argv.data());
  std::string json = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(status, 0);
  EXPECT_NE(json.find("\"avoided_micros\":" + std::to_string(half.avoided_micros)), std::string::npos)
      << json;
  words = {"purser-replay", "what-if", "--data-dir", dir.path(), "--account", "team",
           "--from", FormatTimestamp(from), "--to", FormatTimestamp(to), "--daily", "-3"};
  argv.clear();
  for (std::string& word : words) argv.push_back(word.data());
  EXPECT_NE(ReplayMain(static_cast<int>(argv.size()), argv.data()), 0) << "a bad cap is refused";
}

TEST(WhatIf, ARunawayFreezeRefusesTheRunawaysLaterCallsAndUsage) {
  TempDir dir;
  FakeClock clock;
  const int64_t from = clock.now_us.load();
  {
    auto sequencer = OpenSequencer(dir.path(), clock.Function());
    OpenTree(*sequencer, 2, 100'000'000);
    for (int i = 0; i < 8; ++i) {
      std::string id = "e" + std::to_string(i);
      ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-0", 50'000)).ok());
      cmd::Settle settle = SettleCommand(id, 10'000);
      settle.outcome = Outcome::kError;
      ASSERT_TRUE(Call(*sequencer, settle).ok());
      clock.Advance(10);
    }
    cmd::RecordUsage usage;
    usage.usage_id = "late-usage";
    usage.account = "agent-0";
    usage.amount_micros = 7'000;
    ASSERT_TRUE(Call(*sequencer, usage).ok());
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("other", "agent-1", 50'000)).ok());
  }
  CapsPatch caps;
  caps.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
  caps.runaway_error_streak = Patch<int64_t>::Set(3);
  WhatIfReport report = RunWhatIf(dir.path(), from, clock.now_us.load(), caps);
  EXPECT_EQ(report.refused_reservations, 5u) << "e3..e7, after three errors in a row";
  EXPECT_EQ(report.refused_usages, 1u);
  EXPECT_EQ(report.refused_by_code.at("account_frozen"), 6u);
  EXPECT_EQ(report.refused.front().id, "e3");
  EXPECT_EQ(report.avoided_micros, 5 * 10'000 + 7'000);
  ASSERT_FALSE(report.hypothetical_alerts.empty());
  EXPECT_NE(report.hypothetical_alerts.front().find("runaway"), std::string::npos);
  EXPECT_EQ(report.stopped_at_us, 0) << "agent-1 still reserved at the end";
}

}  // namespace
}  // namespace purser::testing
