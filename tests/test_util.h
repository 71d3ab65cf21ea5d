// Helpers shared by the tests that use a real RocksDB directory.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "ledger/base/clock.h"
#include "ledger/engine/sequencer.h"

namespace purser::testing {

// A fresh directory under the test temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("purser-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string path() const { return path_.string(); }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A controllable service clock.
struct FakeClock {
  std::atomic<int64_t> now_us{1'795'428'000'000'000};  // 2026-11-23T10:00:00Z
  void Advance(int64_t seconds) { now_us += seconds * kMicrosPerSecond; }
  std::function<int64_t()> Function() {
    return [this] { return now_us.load(); };
  }
};

inline std::unique_ptr<Sequencer> OpenSequencer(const std::string& dir,
                                                std::function<int64_t()> clock = nullptr,
                                                uint64_t checkpoint_every_events = 5'000'000) {
  SequencerOptions options;
  options.data_dir = dir;
  options.clock = std::move(clock);
  options.checkpoint_every_events = checkpoint_every_events;
  Result<std::unique_ptr<Sequencer>> sequencer = Sequencer::Open(std::move(options));
  EXPECT_TRUE(sequencer.ok()) << sequencer.status().message();
  return sequencer.ok() ? std::move(*sequencer) : nullptr;
}

inline Reply Call(Sequencer& sequencer, RequestBody body) {
  return sequencer.Call(Request{Credentials::System(), std::move(body)});
}

inline cmd::Reserve ReserveCommand(const std::string& id, const std::string& account,
                                   int64_t amount, int64_t ttl_s = 0) {
  cmd::Reserve c;
  c.reservation_id = id;
  c.account = account;
  c.amount_micros = amount;
  c.ttl_s = ttl_s;
  return c;
}

inline cmd::Settle SettleCommand(const std::string& id, int64_t cost) {
  cmd::Settle c;
  c.reservation_id = id;
  c.amount_micros = cost;
  return c;
}

inline Sha256Digest LiveDigest(Sequencer& sequencer, uint64_t* sequence = nullptr) {
  Reply reply = Call(sequencer, query::GetDigest{});
  EXPECT_TRUE(reply.ok()) << reply.message;
  const auto& digest = std::get<DigestView>(reply.body);
  if (sequence != nullptr) *sequence = digest.sequence;
  return digest.digest;
}

// org (wallet) -> team -> agent-0..n-1
inline void OpenTree(Sequencer& sequencer, int agents, int64_t funds) {
  ASSERT_TRUE(Call(sequencer, cmd::OpenAccount{"org", "", AccountKind::kOrg, "Org", true, {"env"}}).ok());
  ASSERT_TRUE(Call(sequencer, cmd::OpenAccount{"team", "org", AccountKind::kTeam, "Team", false, {}}).ok());
  for (int i = 0; i < agents; ++i) {
    ASSERT_TRUE(Call(sequencer, cmd::OpenAccount{"agent-" + std::to_string(i), "team",
                                                 AccountKind::kAgent, "", false, {}})
                    .ok());
  }
  if (funds > 0) {
    ASSERT_TRUE(Call(sequencer, cmd::Deposit{"fund-1", "org", funds, ""}).ok());
  }
}

}  // namespace purser::testing
