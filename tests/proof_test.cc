// Audit proofs (SPEC section 9): the log's Merkle tree, signed checkpoints,
// inclusion and consistency proofs, from the pure verifiers to the real
// purserd over HTTP and purser-replay's offline commands.

#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "http/proof_json.h"
#include "ledger/base/merkle.h"
#include "ledger/base/signed_note.h"
#include "ledger/ledger.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "ledger/log/merkle_store.h"
#include "replay/replay.h"
#include "tests/daemon_util.h"
#include "tests/http_client.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

Sha256Digest Leaf(int i) { return MerkleLeafHash("leaf " + std::to_string(i)); }

TEST(Merkle, TheFrontiersRootIsTheRfcRootAtEverySize) {
  MerkleFrontier frontier;
  std::vector<Sha256Digest> leaves;
  std::vector<MerkleNode> completed;
  EXPECT_EQ(frontier.Root(), MerkleRootOf({}));
  for (int i = 0; i < 300; ++i) {
    leaves.push_back(Leaf(i));
    frontier.Append(leaves.back(), &completed);
    ASSERT_EQ(frontier.Root(), MerkleRootOf(leaves)) << "size " << leaves.size();
  }
  // Nodes of 64 leaves and up: 4 of level 6, 2 of 7, 1 of 8 in 300 leaves.
  EXPECT_EQ(completed.size(), 7u);
  std::vector<Sha256Digest> first64(leaves.begin(), leaves.begin() + 64);
  EXPECT_EQ(completed.front().level, 6);
  EXPECT_EQ(completed.front().hash, MerkleRootOf(first64));
  // RFC 6962's shape: three leaves are ((a, b), c).
  std::vector<Sha256Digest> three(leaves.begin(), leaves.begin() + 3);
  EXPECT_EQ(MerkleRootOf(three), MerkleNodeHash(MerkleNodeHash(leaves[0], leaves[1]), leaves[2]));
}

// A real log of ~230 events and its stored tree.
class StoredTree : public ::testing::Test {
 protected:
  void SetUp() override {
    {
      auto sequencer = OpenSequencer(dir_.path());
      OpenTree(*sequencer, 3, 50'000'000);
      for (int i = 0; i < 100; ++i) {
        std::string id = "r" + std::to_string(i);
        ASSERT_TRUE(Call(*sequencer, ReserveCommand(id, "agent-" + std::to_string(i % 3), 1'000)).ok());
        ASSERT_TRUE(Call(*sequencer, SettleCommand(id, 500)).ok());
      }
    }
    EventLogOptions options;
    options.path = dir_.path();
    options.read_only = true;
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status().message();
    log_ = std::move(*log);
    for (auto it = log_->NewIterator(1); it->Valid(); it->Next()) leaves_.push_back(MerkleLeafHash(it->record()));
    ASSERT_EQ(leaves_.size(), log_->last_sequence());
    ASSERT_EQ(log_->merkle_durable_size(), leaves_.size());
  }
  Sha256Digest RootOf(uint64_t size) const {
    return MerkleRootOf(std::vector<Sha256Digest>(leaves_.begin(), leaves_.begin() + static_cast<ptrdiff_t>(size)));
  }

  TempDir dir_;
  std::unique_ptr<EventLog> log_;
  std::vector<Sha256Digest> leaves_;
};

TEST_F(StoredTree, InclusionProofsVerifyAndAChangedLeafPathOrRootFails) {
  const uint64_t n = leaves_.size();
  for (uint64_t size : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{63}, uint64_t{64}, uint64_t{65},
                        uint64_t{127}, uint64_t{128}, uint64_t{129}, n}) {
    Result<Sha256Digest> root = MerkleRoot(log_.get(), size);
    ASSERT_TRUE(root.ok()) << root.status().message();
    ASSERT_EQ(*root, RootOf(size)) << "size " << size;
    for (uint64_t sequence = 1; sequence <= size; sequence += (size > 70 ? 7 : 1)) {
      InclusionProof proof;
      Status built = BuildInclusionProof(log_.get(), sequence, size, &proof);
      ASSERT_TRUE(built.ok()) << built.message();
      EXPECT_EQ(proof.leaf_hash, leaves_[sequence - 1]);
      EXPECT_EQ(MerkleLeafHash(proof.record), proof.leaf_hash);
      ASSERT_TRUE(VerifyInclusion(proof.leaf_index, size, proof.leaf_hash, proof.path, *root))
          << sequence << " in " << size;
      if (size > 1) {
        EXPECT_FALSE(VerifyInclusion(proof.leaf_index, size, leaves_[sequence % size], proof.path, *root));
        EXPECT_FALSE(VerifyInclusion((proof.leaf_index + 1) % size, size, proof.leaf_hash, proof.path, *root));
        std::vector<Sha256Digest> changed = proof.path;
        changed[changed.size() / 2][0] ^= 1;
        EXPECT_FALSE(VerifyInclusion(proof.leaf_index, size, proof.leaf_hash, changed, *root));
        EXPECT_FALSE(VerifyInclusion(proof.leaf_index, size, proof.leaf_hash, proof.path, RootOf(size - 1)));
      }
    }
  }
  InclusionProof beyond;
  EXPECT_EQ(BuildInclusionProof(log_.get(), 5, n + 1, &beyond).code(), StatusCode::kInvalidArgument)
      << "no proof against a tree larger than the durable log";
}

TEST_F(StoredTree, ConsistencyProofsVerifyBetweenAnyTwoSizesAndAnotherRootFails) {
  const uint64_t n = leaves_.size();
  for (uint64_t from : {uint64_t{1}, uint64_t{2}, uint64_t{7}, uint64_t{64}, uint64_t{65}, uint64_t{100}, n}) {
    for (uint64_t to : {from, from + 1, uint64_t{128}, uint64_t{129}, n}) {
      if (to < from || to > n) continue;
      ConsistencyProof proof;
      Status built = BuildConsistencyProof(log_.get(), from, to, &proof);
      ASSERT_TRUE(built.ok()) << built.message();
      ASSERT_TRUE(VerifyConsistency(from, to, RootOf(from), RootOf(to), proof.path)) << from << " -> " << to;
      if (from < to) {
        EXPECT_FALSE(VerifyConsistency(from, to, RootOf(from), RootOf(to - 1), proof.path));
        if (from > 1) {
          EXPECT_FALSE(VerifyConsistency(from, to, RootOf(from - 1), RootOf(to), proof.path));
        }
        if (!proof.path.empty()) {
          std::vector<Sha256Digest> changed = proof.path;
          changed.back()[31] ^= 1;
          EXPECT_FALSE(VerifyConsistency(from, to, RootOf(from), RootOf(to), changed));
        }
      }
    }
  }
}

// A group commit longer than a block is cut into segments of about 16 KiB
// (one RocksDB value each), so that a proof decompresses one block, not the
// whole commit; the records read back in order and prove as before.
TEST(Segments, ALongGroupCommitIsCutIntoBlockSizedSegmentsThatReadBackWhole) {
  TempDir dir;
  constexpr uint64_t kEvents = 2'000;
  EventLogOptions options;
  options.path = dir.path();
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status().message();
  EventEncoder encoder;
  LogBatch batch;
  for (uint64_t i = 0; i < kEvents; ++i) {
    Event event;
    event.sequence = (*log)->last_sequence() + 1;
    event.timestamp_us = 1'700'000'000'000'000 + static_cast<int64_t>(i);
    event::AccountOpened opened;
    opened.account = "account-" + std::to_string(i);
    opened.name = std::string(80, 'n');
    event.body = opened;
    std::string payload;
    encoder.Encode(event, &payload);
    (*log)->Append(event, payload, &batch);
  }
  ASSERT_GT(batch.bytes(), 150'000u);
  ASSERT_TRUE((*log)->Write(&batch, /*sync=*/true).ok());

  std::vector<Sha256Digest> leaves;
  std::vector<uint64_t> segment_starts;
  uint64_t expected = 1;
  for (auto it = (*log)->NewIterator(1); it->Valid(); it->Next(), ++expected) {
    ASSERT_EQ(it->sequence(), expected);
    if (segment_starts.empty() || segment_starts.back() != it->segment_first()) {
      segment_starts.push_back(it->segment_first());
      EXPECT_EQ(it->segment_first(), it->sequence()) << "a segment starts at its key's sequence";
    }
    leaves.push_back(MerkleLeafHash(it->record()));
  }
  ASSERT_EQ(leaves.size(), kEvents);
  // About 150 bytes a record: 16 KiB holds ~100, so ~20 segments, not one.
  EXPECT_GE(segment_starts.size(), 10u);
  EXPECT_LE(segment_starts.size(), 40u);
  // Any record is read alone, from the middle of a segment or its edges.
  for (uint64_t sequence : {uint64_t{1}, segment_starts[3] - 1, segment_starts[3], segment_starts[3] + 1, kEvents}) {
    std::string record;
    ASSERT_TRUE((*log)->ReadRecord(sequence, &record).ok()) << sequence;
    EXPECT_EQ(MerkleLeafHash(record), leaves[sequence - 1]) << sequence;
    InclusionProof proof;
    ASSERT_TRUE(BuildInclusionProof(log->get(), sequence, kEvents, &proof).ok()) << sequence;
    EXPECT_TRUE(VerifyInclusion(proof.leaf_index, kEvents, leaves[sequence - 1], proof.path, MerkleRootOf(leaves)));
  }
}

TEST(SignedNote, ACheckpointVerifiesWithThePublicKeyAloneAndNothingElseDoes) {
  TempDir dir;
  Result<NoteSigner> signer = LoadOrCreateLogKey(dir.path());
  ASSERT_TRUE(signer.ok()) << signer.status().message();
  struct stat info {};
  ASSERT_EQ(stat((dir.path() + "/log.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u) << "the private key is the owner's alone";
  // The second start loads the same key.
  Result<NoteSigner> again = LoadOrCreateLogKey(dir.path());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->VerifierKeyText(), signer->VerifierKeyText());
  std::ifstream pub_file(dir.path() + "/log.pub");
  std::string pub;
  std::getline(pub_file, pub);
  EXPECT_EQ(pub, signer->VerifierKeyText());

  LogCheckpoint checkpoint{signer->name(), 42, Leaf(1), 1'795'428'000'000'000};
  std::string note = signer->Sign(CheckpointText(checkpoint));
  EXPECT_NE(note.find("\n\n\u2014 " + signer->name() + " "), std::string::npos) << note;
  Result<NoteVerifier> verifier = NoteVerifier::FromVerifierKey(pub);
  ASSERT_TRUE(verifier.ok()) << verifier.status().message();
  Result<std::string> text = verifier->Open(note);
  ASSERT_TRUE(text.ok()) << text.status().message();
  LogCheckpoint parsed;
  ASSERT_TRUE(ParseCheckpointText(*text, &parsed).ok());
  EXPECT_EQ(parsed.tree_size, 42u);
  EXPECT_EQ(parsed.root, Leaf(1));
  EXPECT_EQ(parsed.time_us, checkpoint.time_us);

  std::string changed = note;
  changed[changed.find("42")] = '5';  // a larger tree size
  EXPECT_FALSE(verifier->Open(changed).ok());
  Result<NoteSigner> other = NoteSigner::Generate(signer->name());
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(verifier->Open(other->Sign(CheckpointText(checkpoint))).ok())
      << "the same name with another key is refused";
  EXPECT_FALSE(NoteVerifier::FromVerifierKey(pub.substr(0, pub.size() - 4) + "AAAA").ok() &&
               NoteVerifier::FromVerifierKey(pub.substr(0, pub.size() - 4) + "AAAA")->Open(note).ok());
}

// The JSON of an answer: one unsigned field.
uint64_t Field(const std::string& json, const char* name) {
  simdjson::dom::parser parser;
  uint64_t value = 0;
  EXPECT_FALSE(parser.parse(json)[name].get_uint64().get(value)) << json;
  return value;
}

int Replay(std::vector<std::string> words, std::string* out = nullptr) {
  words.insert(words.begin(), "purser-replay");
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  ::testing::internal::CaptureStdout();
  int status = ReplayMain(static_cast<int>(argv.size()), argv.data());
  std::string printed = ::testing::internal::GetCapturedStdout();
  if (out != nullptr) *out = printed;
  return status;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A clock that steps back neither pauses signing nor dates a checkpoint
// before the previous one; the list from a time starts exactly at the first
// checkpoint at or after it (found by bisection), at every boundary.
TEST(SignedCheckpoints, TimesNeverGoBackAndTheListFromATimeIsExact) {
  TempDir dir;
  std::atomic<int64_t> now{1'800'000'000'000'000};
  LedgerOptions options;
  options.data_dir = dir.Sub("data");
  options.clock = [&now] { return now.load(); };
  options.sign_every_us = 1;  // every write that moves the clock is signed
  std::vector<int64_t> stepped_times;
  {
    Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    Ledger& ledger = **opened;
    ASSERT_TRUE(ledger.Call(Request{Credentials::System(),
                                    cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}}})
                    .ok());
    auto latest_size = [&ledger] {
      std::string note;
      LogCheckpoint checkpoint;
      if (!ledger.LatestSignedCheckpoint(&note).ok()) return uint64_t{0};  // none signed yet
      if (!ParseSignedCheckpoint(note, &checkpoint).ok()) return uint64_t{0};
      return checkpoint.tree_size;
    };
    for (int i = 0; i < 30; ++i) {
      const uint64_t before = latest_size();
      now += i == 20 ? -10 * kMicrosPerSecond : kMicrosPerSecond;
      Reply reply = ledger.Call(
          Request{Credentials::System(), cmd::Deposit{"d" + std::to_string(i), "org", 1, ""}});
      ASSERT_TRUE(reply.ok()) << reply.message;
      // The log thread signs after the write that answered: wait for it.
      for (int wait = 0; wait < 500 && latest_size() <= before; ++wait) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  std::vector<std::string> all;
  ASSERT_TRUE((*reopened)->SignedCheckpoints(0, 1000, &all).ok());
  std::vector<int64_t> times;
  for (const std::string& note : all) {
    LogCheckpoint checkpoint;
    ASSERT_TRUE(ParseSignedCheckpoint(note, &checkpoint).ok());
    times.push_back(checkpoint.time_us);
  }
  ASSERT_GE(times.size(), 30u) << "one checkpoint per write, the ten after the step back too";
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end())) << "never dated before the previous one";
  for (size_t i = 0; i < times.size(); ++i) {
    for (int64_t since : {times[i] - 1, times[i], times[i] + 1}) {
      for (size_t limit : {size_t{1}, size_t{3}, size_t{1000}}) {
        std::vector<std::string> expected;
        for (size_t j = 0; j < all.size() && expected.size() < limit; ++j) {
          if (times[j] >= since) expected.push_back(all[j]);
        }
        std::vector<std::string> listed;
        ASSERT_TRUE((*reopened)->SignedCheckpoints(since, limit, &listed).ok());
        EXPECT_EQ(listed, expected) << "since " << since << ", limit " << limit;
      }
    }
  }
  std::vector<std::string> none;
  ASSERT_TRUE((*reopened)->SignedCheckpoints(times.back() + 1, 10, &none).ok());
  EXPECT_TRUE(none.empty());
  reopened->reset();
  // The auditor's check refuses checkpoints dated before the one they follow.
  std::string printed;
  EXPECT_EQ(Replay({"verify-checkpoints", "--data-dir", options.data_dir, "--pub", options.data_dir + "/log.pub"},
                   &printed),
            0)
      << printed;
}

TEST(ProofsOverHttp, AKeyProvesItsOwnEventsAndTheAdminProvesTheLogOnlyGrew) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(data, {"--sign-every-s", "1"}));
  HttpClient client(daemon.http_port());
  const std::string admin = daemon.admin_key();
  auto call = [&](const std::string& method, const std::string& target, const std::string& body = "",
                  const std::string& idempotency = "") {
    return client.Call(method, target, body, admin, idempotency);
  };
  ASSERT_EQ(call("POST", "/v1/accounts", R"({"id":"org","kind":"org","wallet":true})").status, 201);
  ASSERT_EQ(call("POST", "/v1/accounts", R"({"id":"agent","parent":"org","kind":"agent"})").status, 201);
  ASSERT_EQ(call("POST", "/v1/accounts", R"({"id":"rival","kind":"org","wallet":true})").status, 201);
  ASSERT_EQ(call("POST", "/v1/accounts/org/deposits", R"({"amount_micros":10000000})", "f1").status, 201);
  Response reserved =
      call("POST", "/v1/reservations", R"({"reservation_id":"r1","account":"agent","amount_micros":5000})");
  ASSERT_EQ(reserved.status, 201);
  const uint64_t sequence = Field(reserved.body, "seq");
  Response settled = call("POST", "/v1/reservations/r1/settle", R"({"amount_micros":4000})");
  ASSERT_EQ(settled.status, 200) << settled.body;
  const uint64_t settle_sequence = Field(settled.body, "seq");
  ASSERT_GT(settle_sequence, sequence);

  // A checkpoint that covers the settle is signed within a second or two.
  auto latest = [&](uint64_t at_least, std::string* note) {
    for (int i = 0; i < 50; ++i) {
      Response answer = call("GET", "/v1/admin/checkpoints/latest");
      if (answer.status == 200) {
        LogCheckpoint checkpoint;
        EXPECT_TRUE(ParseSignedCheckpoint(answer.body, &checkpoint).ok()) << answer.body;
        EXPECT_EQ(answer.content_type.rfind("text/plain", 0), 0u);
        if (checkpoint.tree_size >= at_least) {
          *note = answer.body;
          return checkpoint.tree_size;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no signed checkpoint covers " << at_least;
    return uint64_t{0};
  };
  std::string first_note;
  const uint64_t first_size = latest(settle_sequence, &first_note);
  ASSERT_GT(first_size, 0u);

  Result<NoteVerifier> verifier = LoadVerifier(data + "/log.pub");
  ASSERT_TRUE(verifier.ok()) << verifier.status().message();
  // The agent's writer key proves its own reserve; a key of another tenant
  // may not, and neither may anyone without a key.
  std::string key_body = call("POST", "/v1/keys", R"({"account":"org","role":"reader"})").body;
  std::string reader = key_body.substr(key_body.find("pk_"), 67);
  std::string rival_body = call("POST", "/v1/keys", R"({"account":"rival","role":"admin"})").body;
  std::string rival = rival_body.substr(rival_body.find("pk_"), 67);
  const std::string target = "/v1/proofs/inclusion?seq=" + std::to_string(sequence) +
                             "&tree_size=" + std::to_string(first_size);
  Response proof = client.Call("GET", target, "", reader);
  ASSERT_EQ(proof.status, 200) << proof.body;
  EXPECT_EQ(Field(proof.body, "leaf_index"), sequence - 1);
  std::string event_json;
  Status verified = VerifyProof(*verifier, first_note, proof.body, std::nullopt, &event_json);
  ASSERT_TRUE(verified.ok()) << verified.message();
  EXPECT_NE(event_json.find("\"r1\""), std::string::npos) << event_json;
  EXPECT_EQ(client.Call("GET", target, "", rival).status, 403);
  EXPECT_EQ(client.Call("GET", target, "").status, 401);
  EXPECT_EQ(client.Call("GET", "/v1/admin/checkpoints/latest", "", reader).status, 403);
  EXPECT_EQ(call("GET", "/v1/proofs/inclusion?seq=0").status, 400);
  EXPECT_EQ(call("GET", "/v1/proofs/inclusion?seq=999999").status, 404);
  // A forged proof does not verify: one hash of its path changed.
  std::string forged = proof.body;
  size_t path_at = forged.find("\"path\":[\"") + 9;
  forged[path_at] = forged[path_at] == '0' ? '1' : '0';
  EXPECT_FALSE(VerifyProof(*verifier, first_note, forged, std::nullopt, &event_json).ok());
  // Nor against a checkpoint of another size.
  EXPECT_FALSE(VerifyProof(*verifier, first_note,
                           client.Call("GET", "/v1/proofs/inclusion?seq=" + std::to_string(sequence) +
                                                  "&tree_size=" + std::to_string(sequence), "", reader).body,
                           std::nullopt, &event_json).ok());

  // More events, a later checkpoint, and the proof that it extends the first.
  for (int i = 2; i < 6; ++i) {
    std::string id = "r" + std::to_string(i);
    ASSERT_EQ(call("POST", "/v1/reservations",
                   R"({"reservation_id":")" + id + R"(","account":"agent","amount_micros":100})").status,
              201);
  }
  std::string second_note;
  const uint64_t second_size = latest(first_size + 4, &second_note);
  ASSERT_GT(second_size, first_size);
  const std::string consistency_target = "/v1/admin/proofs/consistency?from=" + std::to_string(first_size) +
                                         "&to=" + std::to_string(second_size);
  Response consistency = call("GET", consistency_target);
  ASSERT_EQ(consistency.status, 200) << consistency.body;
  verified = VerifyProof(*verifier, second_note, consistency.body, first_note, &event_json);
  ASSERT_TRUE(verified.ok()) << verified.message();
  EXPECT_FALSE(VerifyProof(*verifier, first_note, consistency.body, second_note, &event_json).ok());
  EXPECT_EQ(client.Call("GET", consistency_target, "", reader).status, 403);
  Response listed = call("GET", "/v1/admin/checkpoints?since=2000-01-01T00:00:00Z");
  ASSERT_EQ(listed.status, 200);
  EXPECT_NE(listed.body.find("\"tree_size\":" + std::to_string(second_size)), std::string::npos) << listed.body;
  ASSERT_EQ(daemon.Stop(), 0);

  // Offline: the same proof from the database, verified with log.pub alone.
  std::string printed;
  ASSERT_EQ(Replay({"prove", "--data-dir", data, "--seq", std::to_string(sequence), "--tree-size",
                    std::to_string(first_size)}, &printed), 0);
  EXPECT_EQ(printed, proof.body + "\n");
  WriteFile(dir.Sub("proof.json"), proof.body);
  WriteFile(dir.Sub("first.note"), first_note);
  WriteFile(dir.Sub("second.note"), second_note);
  WriteFile(dir.Sub("consistency.json"), consistency.body);
  EXPECT_EQ(Replay({"verify-proof", "--pub", data + "/log.pub", "--checkpoint", dir.Sub("first.note"),
                    "--proof", dir.Sub("proof.json")}, &printed), 0) << printed;
  EXPECT_NE(printed.find("\"r1\""), std::string::npos) << printed;
  EXPECT_EQ(Replay({"verify-proof", "--pub", data + "/log.pub", "--checkpoint", dir.Sub("second.note"),
                    "--old-checkpoint", dir.Sub("first.note"), "--proof", dir.Sub("consistency.json")},
                   &printed), 0) << printed;
  EXPECT_EQ(Replay({"verify-checkpoints", "--data-dir", data, "--pub", data + "/log.pub"}, &printed), 0)
      << printed;
  EXPECT_EQ(Replay({"verify", "--data-dir", data}, &printed), 0) << printed;
  EXPECT_NE(printed.find("signed checkpoints match"), std::string::npos) << printed;
  // Another key (same name) proves nothing.
  Result<NoteSigner> impostor = NoteSigner::Generate(verifier->name());
  ASSERT_TRUE(impostor.ok());
  WriteFile(dir.Sub("impostor.pub"), impostor->VerifierKeyText() + "\n");
  EXPECT_NE(Replay({"verify-proof", "--pub", dir.Sub("impostor.pub"), "--checkpoint", dir.Sub("first.note"),
                    "--proof", dir.Sub("proof.json")}, &printed), 0);
  EXPECT_NE(Replay({"verify-checkpoints", "--data-dir", data, "--pub", dir.Sub("impostor.pub")}, &printed), 0);
}

TEST(ProofsOffline, ACheckpointSignedOverAnotherLogFailsVerification) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  {
    auto sequencer = OpenSequencer(data);
    OpenTree(*sequencer, 1, 1'000'000);
  }
  std::string printed;
  ASSERT_EQ(Replay({"verify-checkpoints", "--data-dir", data, "--pub", data + "/log.pub"}, &printed), 0)
      << printed;
  // A valid signature over a root that is not the log's: the key's holder
  // signed something else (or the log was rewritten after it was signed).
  std::string private_key;
  std::ifstream(data + "/log.key") >> private_key;
  Result<NoteSigner> signer = NoteSigner::FromPrivateKey(private_key);
  ASSERT_TRUE(signer.ok()) << signer.status().message();
  {
    EventLogOptions options;
    options.path = data;
    Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
    ASSERT_TRUE(log.ok());
    LogCheckpoint wrong{signer->name(), 3, Leaf(7), 1'795'428'000'000'000};
    ASSERT_TRUE((*log)->AddSignedCheckpoint(3, signer->Sign(CheckpointText(wrong))).ok());
  }
  EXPECT_NE(Replay({"verify-checkpoints", "--data-dir", data, "--pub", data + "/log.pub"}, &printed), 0);
  EXPECT_NE(printed.find("does not match the log's records"), std::string::npos) << printed;
  EXPECT_NE(Replay({"verify", "--data-dir", data}, &printed), 0) << "verify checks them too";
}


Sha256Digest DigestOf(const std::string& bytes) {
  Sha256Digest digest{};
  EXPECT_EQ(bytes.size(), digest.size());
  std::copy_n(bytes.begin(), std::min(bytes.size(), digest.size()), digest.begin());
  return digest;
}

std::vector<Sha256Digest> DigestsOf(const std::vector<std::string>& path) {
  std::vector<Sha256Digest> digests;
  for (const std::string& node : path) digests.push_back(DigestOf(node));
  return digests;
}

// The same proofs over Cap'n Proto RPC, with the scope rules of HTTP.
TEST(ProofsOverRpc, AReceiptsSeqIsProvedToItsTenantAndTheLogOnlyGrew) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(data, {"--sign-every-s", "1"}));
  auto admin = daemon.Admin();
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(admin->Call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}}).ok());
  ASSERT_TRUE(admin->Call(cmd::OpenAccount{"agent", "org", AccountKind::kAgent, "", false, {}}).ok());
  ASSERT_TRUE(admin->Call(cmd::OpenAccount{"rival", "", AccountKind::kOrg, "", true, {}}).ok());
  ASSERT_TRUE(admin->Call(cmd::Deposit{"f1", "org", 10'000'000, ""}).ok());
  Reply reserved = admin->Call(ReserveCommand("r1", "agent", 5000));
  ASSERT_TRUE(reserved.ok()) << reserved.message;
  const uint64_t sequence = std::get<ReserveResult>(reserved.body).seq;
  ASSERT_GT(sequence, 0u);

  Result<NoteVerifier> verifier = LoadVerifier(data + "/log.pub");
  ASSERT_TRUE(verifier.ok()) << verifier.status().message();
  auto signed_checkpoint = [&](uint64_t at_least, std::string* note, LogCheckpoint* checkpoint) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      Reply reply = admin->LatestCheckpoint(note);
      if (reply.ok()) {
        Result<std::string> text = verifier->Open(*note);
        EXPECT_TRUE(text.ok()) << text.status().message();
        if (text.ok() && ParseCheckpointText(*text, checkpoint).ok() && checkpoint->tree_size >= at_least) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no signed checkpoint covers " << at_least;
  };
  std::string first_note;
  LogCheckpoint first;
  signed_checkpoint(sequence, &first_note, &first);
  ASSERT_GE(first.tree_size, sequence);

  cmd::IssueKey issue;
  issue.account = "org";
  issue.role = Role::kReader;
  Reply key = admin->Call(issue);
  ASSERT_TRUE(key.ok());
  auto reader = daemon.Connect(std::get<KeyResult>(key.body).api_key);
  issue.account = "rival";
  issue.role = Role::kAdmin;
  key = admin->Call(issue);
  ASSERT_TRUE(key.ok());
  auto rival = daemon.Connect(std::get<KeyResult>(key.body).api_key);
  ASSERT_NE(reader, nullptr);
  ASSERT_NE(rival, nullptr);

  InclusionProofView proof;
  Reply proved = reader->InclusionProof(sequence, first.tree_size, &proof);
  ASSERT_TRUE(proved.ok()) << proved.message;
  EXPECT_EQ(proof.leaf_index, sequence - 1);
  EXPECT_EQ(proof.tree_size, first.tree_size);
  // The record is the leaf, and the path leads from it to the signed root.
  EXPECT_EQ(MerkleLeafHash(proof.record), DigestOf(proof.leaf_hash));
  EXPECT_TRUE(VerifyInclusion(proof.leaf_index, proof.tree_size, MerkleLeafHash(proof.record),
                              DigestsOf(proof.path), first.root));
  std::vector<Sha256Digest> forged = DigestsOf(proof.path);
  if (!forged.empty()) {
    forged[0][0] ^= 1;
    EXPECT_FALSE(VerifyInclusion(proof.leaf_index, proof.tree_size, MerkleLeafHash(proof.record), forged,
                                 first.root));
  }
  EXPECT_EQ(rival->InclusionProof(sequence, first.tree_size, &proof).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(reader->LatestCheckpoint(&first_note).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(admin->InclusionProof(999999, 0, &proof).code, ResultCode::kNotFound);
  EXPECT_EQ(admin->InclusionProof(0, 0, &proof).code, ResultCode::kInvalidArgument);

  for (int i = 2; i < 6; ++i) ASSERT_TRUE(admin->Call(ReserveCommand("r" + std::to_string(i), "agent", 100)).ok());
  std::string second_note;
  LogCheckpoint second;
  signed_checkpoint(first.tree_size + 4, &second_note, &second);
  ConsistencyProofView consistency;
  Reply extended = admin->ConsistencyProof(first.tree_size, second.tree_size, &consistency);
  ASSERT_TRUE(extended.ok()) << extended.message;
  EXPECT_TRUE(VerifyConsistency(first.tree_size, second.tree_size, first.root, second.root,
                                DigestsOf(consistency.path)));
  EXPECT_FALSE(VerifyConsistency(first.tree_size, second.tree_size, second.root, first.root,
                                 DigestsOf(consistency.path)));
  EXPECT_EQ(reader->ConsistencyProof(first.tree_size, second.tree_size, &consistency).code,
            ResultCode::kPermissionDenied);

  // Proofs run on a few threads per loop, not a thread each: each of those
  // kept its stack mapped (8 MiB) until the daemon stopped, so 400 proofs
  // grew the daemon by over 3 GiB of address space.
  auto address_space_kib = [&daemon] {
    std::ifstream status("/proc/" + std::to_string(daemon.pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmSize:", 0) == 0) return std::stoll(line.substr(7));
    }
    return -1LL;
  };
  ASSERT_TRUE(reader->InclusionProof(sequence, first.tree_size, &proof).ok());
  const long long before_kib = address_space_kib();
  ASSERT_GT(before_kib, 0);
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(reader->InclusionProof(sequence, first.tree_size, &proof).ok()) << i;
  }
  EXPECT_LT(address_space_kib() - before_kib, 256 * 1024) << "KiB grown by 400 proofs";
  ASSERT_EQ(daemon.Stop(), 0);
}

}  // namespace
}  // namespace purser::testing
