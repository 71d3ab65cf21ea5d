// The real purserd over real Cap'n Proto RPC: commands and their result
// codes, keys and scopes, batches, subscriptions, shutdown and kill -9.

#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/base/crypto.h"
#include "ledger/ledger.h"
#include "purser.capnp.h"
#include "rpc/rpc_codec.h"
#include "rpc/rpc_server.h"
#include "replay/replay.h"
#include "tests/daemon_util.h"
#include "tests/test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

namespace purser::testing {
namespace {

cmd::Reserve Reserve(const std::string& id, const std::string& account, int64_t amount) {
  return ReserveCommand(id, account, amount);
}

// org (wallet, $100) -> team -> agent-1, agent-2
void Tree(Client& admin) {
  ASSERT_TRUE(admin.Call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "Org", true, {"env"}}).ok());
  ASSERT_TRUE(admin.Call(cmd::OpenAccount{"team", "org", AccountKind::kTeam, "", false, {}}).ok());
  ASSERT_TRUE(admin.Call(cmd::OpenAccount{"agent-1", "team", AccountKind::kAgent, "", false, {}}).ok());
  ASSERT_TRUE(admin.Call(cmd::OpenAccount{"agent-2", "team", AccountKind::kAgent, "", false, {}}).ok());
  ASSERT_TRUE(admin.Call(cmd::Deposit{"d1", "org", 100'000'000, ""}).ok());
}

std::string IssueKey(Client& admin, const std::string& account, Role role) {
  cmd::IssueKey issue;
  issue.account = account;
  issue.role = role;
  Reply reply = admin.Call(issue);
  EXPECT_TRUE(reply.ok()) << reply.message;
  return reply.ok() ? std::get<KeyResult>(reply.body).api_key : "";
}

class RpcService : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.Start(dir_.Sub("data")));
    admin_ = daemon_.Admin();
    ASSERT_NE(admin_, nullptr);
  }
  TempDir dir_;
  Daemon daemon_;
  std::unique_ptr<Client> admin_;
};

TEST_F(RpcService, EveryCommandAndQueryAnswersWithItsTypedResult) {
  Tree(*admin_);
  Client& c = *admin_;
  CapsPatch caps;
  caps.daily_limit_micros = Patch<int64_t>::Set(5'000'000);
  EXPECT_EQ(std::get<CapsView>(c.Call(cmd::SetCaps{"team", caps}).body).caps.daily_limit_micros,
            5'000'000);
  Reply reserved = c.Call(Reserve("r1", "agent-1", 1'000'000));
  ASSERT_TRUE(reserved.ok()) << reserved.message;
  EXPECT_TRUE(reserved.created);
  EXPECT_EQ(std::get<ReserveResult>(reserved.body).headroom_after_micros, 4'000'000);
  cmd::Settle settle;
  settle.reservation_id = "r1";
  settle.usage = UsageTokens{"gpt-4o", TokenCounts{1'000, 500, 0, 0, 0}};
  Reply settled = c.Call(settle);
  ASSERT_TRUE(settled.ok()) << settled.message;
  EXPECT_EQ(std::get<SettleResult>(settled.body).cost_micros, 7'500);
  EXPECT_EQ(std::get<SettleResult>(settled.body).released_micros, 992'500);
  ASSERT_TRUE(c.Call(Reserve("r2", "agent-2", 10)).ok());
  EXPECT_EQ(std::get<VoidResult>(c.Call(cmd::Void{"r2", "no"}).body).released_micros, 10);
  ASSERT_TRUE(c.Call(Reserve("r3", "agent-2", 10)).ok());
  EXPECT_TRUE(c.Call(cmd::Extend{"r3", 60}).ok());
  cmd::RecordUsage usage;
  usage.usage_id = "u1";
  usage.account = "agent-2";
  usage.amount_micros = 2'000;
  EXPECT_EQ(std::get<UsageResult>(c.Call(usage).body).cost_micros, 2'000);
  EXPECT_TRUE(c.Call(cmd::Refund{"f1", ChargeKind::kUsage, "u1", 500, "sorry"}).ok());
  EXPECT_TRUE(c.Call(cmd::RecordRevenue{"v1", "team", 1'000'000, "sales", ""}).ok());
  EXPECT_TRUE(c.Call(cmd::Adjust{"a1", "org", -1, "rounding"}).ok());
  EXPECT_TRUE(c.Call(cmd::SetPrice{"my-model", PriceRates{1'000'000, 2'000'000, -1, -1, -1}}).ok());
  EXPECT_TRUE(c.Call(cmd::SetBaseline{"team", 1'000'000, 20'000}).ok());
  EXPECT_TRUE(c.Call(cmd::Freeze{"agent-2", "incident"}).ok());
  EXPECT_EQ(c.Call(Reserve("r4", "agent-2", 1)).code, ResultCode::kAccountFrozen);
  EXPECT_TRUE(c.Call(cmd::Unfreeze{"agent-2"}).ok());

  BalanceView balance = std::get<BalanceView>(c.Call(query::GetBalance{"agent-1"}).body);
  EXPECT_EQ(balance.balance_micros, 100'000'000 - 7'500 - 2'000 + 500 - 1);
  EXPECT_EQ(std::get<AccountView>(c.Call(query::GetAccount{"team"}).body).caps.daily_limit_micros,
            5'000'000);
  EXPECT_EQ(std::get<AccountList>(c.Call(query::ListAccounts{"team"}).body).accounts.size(), 2u);
  EXPECT_EQ(std::get<ReservationView>(c.Call(query::GetReservation{"r1"}).body).status,
            ReservationStatus::kSettled);
  query::ListReservations pending{"org", ReservationStatus::kPending, 100};
  EXPECT_EQ(std::get<ReservationList>(c.Call(pending).body).reservations.size(), 1u);
  int64_t today = DayOf(WallClockMicros());
  SpendReport spend = std::get<SpendReport>(
      c.Call(query::GetSpend{"org", today, today, GroupBy::kModel, ""}).body);
  EXPECT_EQ(spend.total_micros, 7'500 + 1'500);
  EXPECT_EQ(spend.groups.front().key, "gpt-4o");
  EXPECT_GE(std::get<PriceList>(c.Call(query::ListPrices{}).body).prices.size(), 10u);
  Reply estimate = c.Call(query::EstimateCost{UsageTokens{"gpt-4o", TokenCounts{1'000'000, 0, 0, 0, 0}}});
  EXPECT_EQ(std::get<CostResult>(estimate.body).cost_micros, 2'500'000);
  EXPECT_TRUE(std::get<PnlView>(c.Call(query::GetPnl{"team", today, today}).body).margin_bp);
  EXPECT_GT(std::get<ChainHead>(c.Call(query::GetChainHead{}).body).sequence, 20u);
  EXPECT_TRUE(c.Call(query::GetDigest{}).ok());
  EXPECT_TRUE(c.Call(query::ListAlerts{"", 0, std::nullopt}).ok());
}

TEST_F(RpcService, RefusalsComeBackAsNumberedCodesNamingTheAccount) {
  Tree(*admin_);
  Client& c = *admin_;
  Reply poor = c.Call(Reserve("x1", "agent-1", 200'000'000));
  EXPECT_EQ(poor.code, ResultCode::kInsufficientFunds);
  EXPECT_EQ(poor.account, "org");
  EXPECT_EQ(poor.available_micros, 100'000'000);
  CapsPatch one;
  one.max_inflight = Patch<int64_t>::Set(1);
  ASSERT_TRUE(c.Call(cmd::SetCaps{"agent-1", one}).ok());
  ASSERT_TRUE(c.Call(Reserve("x2", "agent-1", 1)).ok());
  EXPECT_EQ(c.Call(Reserve("x3", "agent-1", 1)).code, ResultCode::kInflightLimitReached);
  EXPECT_EQ(c.Call(Reserve("x2", "agent-1", 2)).code, ResultCode::kIdempotencyConflict);
  EXPECT_EQ(c.Call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "Other", false, {}}).code,
            ResultCode::kAlreadyExists);
  EXPECT_EQ(c.Call(query::GetBalance{"nobody"}).code, ResultCode::kNotFound);
  EXPECT_EQ(c.Call(Reserve("x4", "agent-1", -5)).code, ResultCode::kInvalidArgument);
  ASSERT_TRUE(c.Call(cmd::Void{"x2", ""}).ok());
  EXPECT_EQ(c.Call(SettleCommand("x2", 1)).code, ResultCode::kReservationNotPending);
  EXPECT_EQ(c.Call(cmd::Refund{"f", ChargeKind::kReservation, "x2", 1, ""}).code,
            ResultCode::kRefundExceedsCharged);
  EXPECT_EQ(daemon_.Connect("pk_not_a_key"), nullptr) << "an unknown key gets no session";
}

TEST_F(RpcService, AReaderSessionHasNoWayToWrite) {
  Tree(*admin_);
  std::string reader_key = IssueKey(*admin_, "team", Role::kReader);
  // Raw Cap'n Proto: the session of a reader carries no Ledger capability,
  // and its Reader capability does not implement Ledger's methods.
  auto io = kj::setupAsyncIo();
  auto stream = io.provider->getNetwork()
                    .parseAddress("127.0.0.1", static_cast<unsigned>(daemon_.port()))
                    .wait(io.waitScope)
                    ->connect()
                    .wait(io.waitScope);
  capnp::TwoPartyClient client(*stream);
  auto gate = client.bootstrap().castAs<rpc::Gate>();
  auto request = gate.authenticateRequest();
  request.setApiKey(reader_key);
  auto response = request.send().wait(io.waitScope);
  auto session = response.getSession();
  EXPECT_EQ(session.getRole(), schema::Role::READER);
  EXPECT_FALSE(session.hasLedger());
  auto forged = session.getReader().castAs<rpc::Ledger>();
  auto write = forged.callRequest();
  auto reserve = write.initCommand().initReserve();
  reserve.setReservationId("sneaky");
  reserve.setAccount("agent-1");
  reserve.getAmount().setMicros(1);
  EXPECT_ANY_THROW(write.send().wait(io.waitScope));
  // And the service holds no such reservation.
  EXPECT_EQ(admin_->Call(query::GetReservation{"sneaky"}).code, ResultCode::kNotFound);
  // Reading works.
  auto read = session.getReader().queryRequest();
  read.initQuery().setGetBalance("agent-1");
  EXPECT_EQ(read.send().wait(io.waitScope).getResult().getCode(), rpc::ResultCode::OK);
}

TEST_F(RpcService, AKeyOutsideItsSubtreeIsRefused) {
  Tree(*admin_);
  ASSERT_TRUE(admin_->Call(cmd::OpenAccount{"other", "", AccountKind::kOrg, "", true, {}}).ok());
  auto writer = daemon_.Connect(IssueKey(*admin_, "team", Role::kWriter));
  ASSERT_NE(writer, nullptr);
  EXPECT_TRUE(writer->Call(Reserve("w1", "agent-1", 1)).ok());
  EXPECT_EQ(writer->Call(Reserve("w2", "other", 1)).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(writer->Call(query::GetBalance{"org"}).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(writer->Call(query::GetBalance{"ghost"}).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(writer->Call(cmd::Deposit{"d9", "team", 5, ""}).code, ResultCode::kPermissionDenied)
      << "a writer does not fund";
  auto team_admin = daemon_.Connect(IssueKey(*admin_, "team", Role::kAdmin));
  CapsPatch raise;
  raise.daily_limit_micros = Patch<int64_t>::Set(1);
  EXPECT_EQ(team_admin->Call(cmd::SetCaps{"team", raise}).code, ResultCode::kPermissionDenied)
      << "no key raises its own caps";
  EXPECT_TRUE(team_admin->Call(cmd::SetCaps{"agent-1", raise}).ok());
  EXPECT_EQ(team_admin->Call(cmd::SetPrice{"m", PriceRates{1, 1, -1, -1, -1}}).code,
            ResultCode::kPermissionDenied);
}

TEST_F(RpcService, RevocationStopsOpenSessionsAndRotationKeepsTheOldKeyForItsGrace) {
  Tree(*admin_);
  cmd::IssueKey issue;
  issue.account = "team";
  issue.role = Role::kWriter;
  Reply issued = admin_->Call(issue);
  ASSERT_TRUE(issued.ok());
  const KeyResult& key = std::get<KeyResult>(issued.body);
  auto old_session = daemon_.Connect(key.api_key);
  ASSERT_NE(old_session, nullptr);
  cmd::IssueKey rotate;
  rotate.rotate_of = key.key_id;
  rotate.grace_s = 3600;
  Reply rotated = admin_->Call(rotate);
  ASSERT_TRUE(rotated.ok()) << rotated.message;
  auto new_session = daemon_.Connect(std::get<KeyResult>(rotated.body).api_key);
  ASSERT_NE(new_session, nullptr);
  EXPECT_TRUE(old_session->Call(query::GetBalance{"agent-1"}).ok()) << "within the grace period";
  ASSERT_TRUE(admin_->Call(cmd::RevokeKey{key.key_id}).ok());
  EXPECT_EQ(old_session->Call(query::GetBalance{"agent-1"}).code, ResultCode::kUnauthenticated)
      << "a capability handed out before the revocation stops working";
  EXPECT_TRUE(new_session->Call(query::GetBalance{"agent-1"}).ok());
}

TEST_F(RpcService, ABatchOfCommandsAnswersEachInOrder) {
  Tree(*admin_);
  std::vector<RequestBody> batch;
  for (int i = 0; i < 2000; ++i) batch.push_back(Reserve("b" + std::to_string(i), "agent-1", 1));
  batch.push_back(Reserve("b5", "agent-1", 2));              // conflict
  batch.push_back(query::GetReservation{"b1999"});           // sees the writes before it
  std::vector<Reply> replies = admin_->CallBatch(std::move(batch));
  ASSERT_EQ(replies.size(), 2002u);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(replies[i].ok()) << i;
    EXPECT_EQ(std::get<ReserveResult>(replies[i].body).reservation_id, "b" + std::to_string(i));
  }
  EXPECT_EQ(replies[2000].code, ResultCode::kIdempotencyConflict);
  EXPECT_EQ(std::get<ReservationView>(replies[2001].body).reservation_id, "b1999");
  std::vector<RequestBody> too_many(kBatchCommandsMax + 1, query::ListPrices{});
  EXPECT_EQ(admin_->CallBatch(std::move(too_many))[0].code, ResultCode::kInvalidArgument);
}

TEST_F(RpcService, ManyThreadsCallingOneAtATimeShareBatches) {
  Tree(*admin_);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (admin_->Call(Reserve(id, "agent-1", 1)).ok() && admin_->Call(SettleCommand(id, 1)).ok()) {
          ++ok;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 800);
  EXPECT_EQ(std::get<BalanceView>(admin_->Call(query::GetBalance{"team"}).body).spent_today_micros,
            800);
}

TEST_F(RpcService, ASubscriberReceivesThresholdAlertsAndFreezes) {
  Tree(*admin_);
  std::mutex mutex;
  std::vector<AlertNotice> notices;
  auto watcher = daemon_.Connect(IssueKey(*admin_, "team", Role::kReader));
  ASSERT_TRUE(watcher->Subscribe("team", [&](const AlertNotice& notice) {
                       std::lock_guard lock(mutex);
                       notices.push_back(notice);
                     }).ok());
  CapsPatch caps;
  caps.daily_limit_micros = Patch<int64_t>::Set(1'000'000);
  ASSERT_TRUE(admin_->Call(cmd::SetCaps{"team", caps}).ok());
  cmd::RecordUsage usage;
  usage.usage_id = "u1";
  usage.account = "agent-1";
  usage.amount_micros = 600'000;
  ASSERT_TRUE(admin_->Call(usage).ok());
  ASSERT_TRUE(admin_->Call(cmd::Freeze{"agent-2", "runaway"}).ok());
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mutex);
      if (notices.size() >= 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard lock(mutex);
  ASSERT_GE(notices.size(), 2u);
  EXPECT_EQ(notices[0].kind, "budget_threshold");
  EXPECT_EQ(notices[0].account, "team");
  EXPECT_EQ(notices[0].threshold_pct, 50);
  EXPECT_EQ(notices[1].kind, "account_frozen");
  EXPECT_EQ(notices[1].account, "agent-2");
}

TEST_F(RpcService, ASubscriptionEndsWhenItsKeyIsRevokedOrItsGraceEnds) {
  Tree(*admin_);
  auto issue = [&](const std::string& rotate_of) {
    cmd::IssueKey command;
    command.account = "team";
    command.role = Role::kReader;
    command.rotate_of = rotate_of;
    Reply reply = admin_->Call(command);
    EXPECT_TRUE(reply.ok()) << reply.message;
    return std::get<KeyResult>(reply.body);
  };
  std::mutex mutex;
  std::map<std::string, std::vector<std::string>> seen;  // subscriber -> alert accounts
  auto subscribe = [&](Client& client, const std::string& name) {
    return client.Subscribe("team", [&, name](const AlertNotice& notice) {
      std::lock_guard lock(mutex);
      seen[name].push_back(notice.account);
    });
  };
  KeyResult revoked = issue("");
  KeyResult rotated = issue("");
  auto revoked_session = daemon_.Connect(revoked.api_key);
  auto rotated_session = daemon_.Connect(rotated.api_key);
  auto control_session = daemon_.Connect(IssueKey(*admin_, "team", Role::kReader));
  ASSERT_TRUE(subscribe(*revoked_session, "revoked").ok());
  ASSERT_TRUE(subscribe(*rotated_session, "rotated").ok());
  ASSERT_TRUE(subscribe(*control_session, "control").ok());
  ASSERT_TRUE(admin_->Call(cmd::RevokeKey{revoked.key_id}).ok());
  issue(rotated.key_id);  // grace 0: the old key ends now
  ASSERT_TRUE(admin_->Call(cmd::Freeze{"agent-2", "runaway"}).ok());
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mutex);
      if (!seen["control"].empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let any stray notice land
  std::lock_guard lock(mutex);
  EXPECT_EQ(seen["control"], std::vector<std::string>{"agent-2"}) << "the freeze was announced";
  EXPECT_TRUE(seen["revoked"].empty()) << "a revoked key hears nothing more";
  EXPECT_TRUE(seen["rotated"].empty()) << "a rotated key hears nothing after its grace";
}

TEST_F(RpcService, CheckpointGivesACopyThatVerifiesAndRebuilds) {
  Tree(*admin_);
  ASSERT_TRUE(admin_->Call(Reserve("c1", "agent-1", 5)).ok());
  Reply head = admin_->Call(query::GetChainHead{});
  Reply done = admin_->Checkpoint(dir_.Sub("copy"));
  ASSERT_TRUE(done.ok()) << done.message;
  VerifyReport report;
  const auto& chain = std::get<ChainHead>(head.body);
  Status status = Verify(VerifyOptions{dir_.Sub("copy"), chain.sequence, chain.hash, nullptr}, &report);
  EXPECT_TRUE(status.ok()) << status.message();
  auto writer = daemon_.Connect(IssueKey(*admin_, "team", Role::kAdmin));
  EXPECT_EQ(writer->Checkpoint(dir_.Sub("copy2")).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(admin_->Checkpoint(dir_.Sub("copy")).code, ResultCode::kInvalidArgument)
      << "never over an existing directory";
  EXPECT_TRUE(admin_->Call(query::GetChainHead{}).ok()) << "the loop serves after a checkpoint";
}

TEST_F(RpcService, GracefulShutdownAnswersWhatWasQueuedAndLosesNothing) {
  Tree(*admin_);
  std::mutex mutex;
  std::vector<std::string> acknowledged;
  std::atomic<bool> go{true};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; go.load(); ++i) {
        std::string id = "g" + std::to_string(t) + "-" + std::to_string(i);
        Reply reply = admin_->Call(Reserve(id, "agent-1", 1));
        if (!reply.ok()) break;  // the service went away
        std::lock_guard lock(mutex);
        acknowledged.push_back(id);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(daemon_.Stop(), 0) << "SIGTERM: finish, sync, exit 0";
  go = false;
  for (auto& thread : threads) thread.join();
  admin_.reset();
  ASSERT_FALSE(acknowledged.empty());
  Daemon again;
  ASSERT_TRUE(again.Start(dir_.Sub("data")));
  auto admin = again.Admin();
  for (const std::string& id : acknowledged) {
    ASSERT_TRUE(admin->Call(query::GetReservation{id}).ok()) << id << " was lost";
  }
}

TEST(RpcCrash, KillNineUnderConcurrentLoadLosesNothingAcknowledgedTwentyTimes) {
  TempDir dir;
  std::mt19937 random(7);
  std::set<std::string> acknowledged;
  std::set<std::string> settled;
  {
    Daemon daemon;
    ASSERT_TRUE(daemon.Start(dir.Sub("data")));
    auto admin = daemon.Admin();
    Tree(*admin);
  }
  std::string admin_key;
  for (int round = 0; round < 20; ++round) {
    Daemon daemon;
    ASSERT_TRUE(daemon.Start(dir.Sub("data"))) << "round " << round;
    admin_key = daemon.admin_key();
    auto admin = daemon.Admin();
    ASSERT_NE(admin, nullptr);
    // Everything acknowledged in earlier rounds is still there.
    for (const std::string& id : acknowledged) {
      Reply reply = admin->Call(query::GetReservation{id});
      ASSERT_TRUE(reply.ok()) << "round " << round << ": " << id << " was lost";
      if (settled.contains(id)) {
        ASSERT_EQ(std::get<ReservationView>(reply.body).status, ReservationStatus::kSettled) << id;
      }
    }
    std::mutex mutex;
    std::atomic<bool> go{true};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; go.load(); ++i) {
          std::string id = "k" + std::to_string(round) + "-" + std::to_string(t) + "-" + std::to_string(i);
          if (!admin->Call(Reserve(id, t % 2 == 0 ? "agent-1" : "agent-2", 100)).ok()) break;
          {
            std::lock_guard lock(mutex);
            acknowledged.insert(id);
          }
          if (!admin->Call(SettleCommand(id, 60)).ok()) break;
          std::lock_guard lock(mutex);
          settled.insert(id);
        }
      });
    }
    // Some work in every round, however slow the build (TSan) or the
    // machine: at least 15 reservations acknowledged, then the kill at a
    // random moment.
    const size_t at_start = [&] {
      std::lock_guard lock(mutex);
      return acknowledged.size();
    }();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      {
        std::lock_guard lock(mutex);
        if (acknowledged.size() >= at_start + 15) break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "round " << round << " acknowledged too little";
        break;  // still kill and join below
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 400)(random)));
    daemon.Kill();
    go = false;
    for (auto& thread : threads) thread.join();
  }
  // Finally: the recovered state equals a rebuild of the log.
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(dir.Sub("data")));
  auto admin = daemon.Admin();
  Reply digest = admin->Call(query::GetDigest{});
  ASSERT_TRUE(digest.ok());
  admin.reset();
  ASSERT_EQ(daemon.Stop(), 0);
  RebuildReport rebuilt;
  const auto& live = std::get<DigestView>(digest.body);
  ASSERT_TRUE(Rebuild(RebuildOptions{dir.Sub("data"), "", live.sequence, INT64_MAX, nullptr}, &rebuilt).ok());
  EXPECT_EQ(rebuilt.digest, live.digest);
  EXPECT_GT(acknowledged.size(), 200u);
}

TEST_F(RpcService, AsynchronousCallsWithSeveralBatchesInFlightRunInTheOrderSent) {
  Tree(*admin_);
  ClientOptions options;
  options.address = daemon_.address();
  options.api_key = daemon_.admin_key();
  options.batch_max = 7;  // many small batches, several in flight
  options.batches_in_flight = 8;
  Result<std::unique_ptr<Client>> client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status().message();
  constexpr int kPairs = 300;
  std::mutex mutex;
  std::condition_variable all_done;
  int answered = 0;
  int settled = 0;
  std::vector<int> order;
  for (int i = 0; i < kPairs; ++i) {
    std::string id = "async-" + std::to_string(i);
    // The settle is sent before the reserve is answered: it may go in a
    // later batch, which must not overtake the reserve's.
    (*client)->CallAsync(Reserve(id, "agent-1", 1'000), [&, i](Reply&& reply) {
      std::lock_guard lock(mutex);
      EXPECT_TRUE(reply.ok()) << reply.message;
      order.push_back(i);
      ++answered;
      all_done.notify_all();
    });
    (*client)->CallAsync(SettleCommand(id, 600), [&](Reply&& reply) {
      std::lock_guard lock(mutex);
      if (reply.ok()) ++settled;
      ++answered;
      all_done.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  ASSERT_TRUE(all_done.wait_for(lock, std::chrono::seconds(30), [&] { return answered == 2 * kPairs; }));
  EXPECT_EQ(settled, kPairs);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << "replies come back in the order sent";
  ClientOptions bad = options;
  bad.batches_in_flight = 0;
  EXPECT_FALSE(Client::Connect(bad).ok()) << "a setting that would hang every call is refused";
  bad = options;
  bad.batch_max = 0;
  EXPECT_FALSE(Client::Connect(bad).ok());
}

TEST(RpcLoops, ConnectionsGoToTheLoopsInTurnAndEveryLoopServesAndNotifies) {
  TempDir dir;
  LedgerOptions ledger_options;
  ledger_options.data_dir = dir.path();
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(ledger_options);
  ASSERT_TRUE(ledger.ok()) << ledger.status().message();
  std::string secret = NewApiKeySecret();
  cmd::IssueKey issue;
  issue.key_id = "k_admin";
  issue.role = Role::kAdmin;
  issue.secret_sha256 = Sha256(secret);
  ASSERT_TRUE((*ledger)->Call(Request{Credentials::System(), issue}).ok());
  RpcServerOptions options;
  options.address = "127.0.0.1:0";
  options.loops = 3;
  RpcServer server(ledger->get(), options);
  ASSERT_TRUE(server.Start().ok());
  ClientOptions client_options;
  client_options.address = "127.0.0.1:" + std::to_string(server.port());
  client_options.api_key = secret;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 6; ++i) {
    Result<std::unique_ptr<Client>> client = Client::Connect(client_options);
    ASSERT_TRUE(client.ok()) << client.status().message();
    clients.push_back(std::move(*client));
  }
  EXPECT_EQ(server.connections_by_loop(), (std::vector<uint64_t>{2, 2, 2}));
  Tree(*clients[0]);
  // A subscriber on every loop hears the freeze made through another.
  std::mutex mutex;
  std::set<int> heard;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(clients[static_cast<size_t>(i)]
                    ->Subscribe("org", [&mutex, &heard, i](const AlertNotice& notice) {
                      std::lock_guard lock(mutex);
                      if (notice.kind == "account_frozen") heard.insert(i);
                    })
                    .ok());
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    Reply reply = clients[i]->Call(Reserve("r" + std::to_string(i), "agent-1", 1'000));
    EXPECT_TRUE(reply.ok()) << "connection " << i << ": " << reply.message;
  }
  ASSERT_TRUE(clients[5]->Call(cmd::Freeze{"agent-2", "test"}).ok());
  for (int k = 0; k < 100; ++k) {
    {
      std::lock_guard lock(mutex);
      if (heard.size() == 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(heard, (std::set<int>{0, 1, 2}));
}

TEST(RpcSecurity, ANonLoopbackAddressWithoutTlsIsRefused) {
  TempDir dir;
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    execl(PURSERD_BINARY, PURSERD_BINARY, "--data-dir", dir.Sub("data").c_str(), "--rpc",
          "0.0.0.0:0", "--http", "127.0.0.1:0", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

TEST(RpcSecurity, TlsConnectionsWorkWithTheServersCertificate) {
  TempDir dir;
  std::string cert = dir.Sub("cert.pem");
  std::string key = dir.Sub("key.pem");
  std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                        "-addext subjectAltName=DNS:localhost -keyout " + key + " -out " + cert +
                        " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(dir.Sub("data"), {"--tls-cert", cert, "--tls-key", key}));
  ClientOptions options;
  options.address = "localhost:" + std::to_string(daemon.port());
  options.api_key = daemon.admin_key();
  options.tls_ca_file = cert;
  Result<std::unique_ptr<Client>> client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status().message();
  EXPECT_TRUE((*client)->Call(query::ListPrices{}).ok());
  options.tls_ca_file.clear();  // plaintext to a TLS port fails
  EXPECT_FALSE(Client::Connect(options).ok());
}


// The codec carries both: a list cut at its bound, a query for the newest.
TEST(RpcCodec, AnAlertListSaysItWasCutAndAQueryAsksForTheNewest) {
  Reply reply;
  AlertList list;
  list.alerts.push_back(AlertView{});
  list.truncated = true;
  reply.body = list;
  capnp::MallocMessageBuilder result;
  EncodeReply(reply, result.initRoot<rpc::Result>());
  Reply decoded = DecodeReply(result.getRoot<rpc::Result>().asReader());
  ASSERT_TRUE(std::holds_alternative<AlertList>(decoded.body));
  EXPECT_TRUE(std::get<AlertList>(decoded.body).truncated);

  query::ListAlerts newest;
  for (bool newest_first : {true, false}) {
    newest.newest_first = newest_first;
    capnp::MallocMessageBuilder message;
    ASSERT_TRUE(EncodeQuery(newest, message.initRoot<rpc::Query>()));
    RequestBody body;
    ASSERT_EQ(DecodeQuery(message.getRoot<rpc::Query>().asReader(), &body), "");
    EXPECT_EQ(std::get<query::ListAlerts>(body).newest_first, newest_first);
  }
}

// Newest first crosses the wire.
TEST_F(RpcService, AlertsComeNewestFirstOnRequest) {
  Tree(*admin_);
  ASSERT_TRUE(
      admin_->Call(cmd::OpenAccount{"agent-3", "team", AccountKind::kAgent, "", false, {}}).ok());
  cmd::SetCaps daily;
  daily.account = "agent-3";
  daily.patch.daily_limit_micros = Patch<int64_t>::Set(100'000);
  ASSERT_TRUE(admin_->Call(daily).ok());
  cmd::RecordUsage usage;
  usage.usage_id = "u-half";
  usage.account = "agent-3";
  usage.amount_micros = 60'000;  // 50%, then 95%: 75 and 90
  ASSERT_TRUE(admin_->Call(usage).ok());
  usage.usage_id = "u-most";
  usage.amount_micros = 35'000;
  ASSERT_TRUE(admin_->Call(usage).ok());
  Reply newest = admin_->Call(query::ListAlerts{"agent-3", 0, std::nullopt, true});
  ASSERT_TRUE(newest.ok()) << newest.message;
  const AlertList& listed = std::get<AlertList>(newest.body);
  ASSERT_EQ(listed.alerts.size(), 3u);
  EXPECT_EQ(listed.alerts.front().threshold_pct, 90);
  EXPECT_EQ(listed.alerts.back().threshold_pct, 50);
  EXPECT_FALSE(listed.truncated);
}

TEST_F(RpcService, ALoopingAgentIsFrozenAndRateCapsSayWhenToRetry) {
  Tree(*admin_);
  cmd::SetCaps caps;
  caps.account = "team";
  caps.patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
  caps.patch.max_calls_per_minute = Patch<int64_t>::Set(100);
  ASSERT_TRUE(admin_->Call(caps).ok());
  for (int i = 0; i < 5; ++i) {
    std::string id = "loop-" + std::to_string(i);
    ASSERT_TRUE(admin_->Call(Reserve(id, "agent-1", 10'000)).ok());
    cmd::Settle settle;
    settle.reservation_id = id;
    settle.amount_micros = 9'000;
    settle.outcome = Outcome::kError;
    Reply settled = admin_->Call(settle);
    ASSERT_TRUE(settled.ok()) << settled.message;
    EXPECT_GT(std::get<SettleResult>(settled.body).seq, 0u);
  }
  Reply account = admin_->Call(query::GetAccount{"agent-1"});
  ASSERT_TRUE(account.ok());
  EXPECT_TRUE(std::get<AccountView>(account.body).frozen);
  EXPECT_NE(std::get<AccountView>(account.body).frozen_reason.find("runaway"), std::string::npos);
  EXPECT_EQ(admin_->Call(Reserve("after", "agent-1", 1'000)).code, ResultCode::kAccountFrozen);
  Reply alerts = admin_->Call(query::ListAlerts{"agent-1", 0, AlertType::kRunaway});
  ASSERT_TRUE(alerts.ok());
  EXPECT_FALSE(std::get<AlertList>(alerts.body).alerts.empty());

  cmd::SetCaps tight;
  tight.account = "agent-2";
  tight.patch.max_calls_per_minute = Patch<int64_t>::Set(0);
  ASSERT_TRUE(admin_->Call(tight).ok());
  Reply limited = admin_->Call(Reserve("r-limited", "agent-2", 1'000));
  EXPECT_EQ(limited.code, ResultCode::kRateLimited);
  EXPECT_GE(limited.retry_after_s, 1);
  EXPECT_EQ(limited.account, "agent-2");

  Reply burn = admin_->Call(query::GetBurnRate{"team", 600});
  ASSERT_TRUE(burn.ok()) << burn.message;
  EXPECT_EQ(std::get<BurnRateView>(burn.body).spend_micros, 45'000);
  cmd::OpenAccount worker{"worker", "team", AccountKind::kAgent, "", true, {}};
  ASSERT_TRUE(admin_->Call(worker).ok());
  Reply moved = admin_->Call(cmd::Transfer{"t1", "org", "worker", 1'000'000, "seed"});
  ASSERT_TRUE(moved.ok()) << moved.message;
  EXPECT_EQ(std::get<TransferResult>(moved.body).to_balance_micros, 1'000'000);
  Reply stats = admin_->Call(query::GetStats{});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(std::get<StatsView>(stats.body).frozen_accounts, 1);
}


// Opens a plain TCP connection to `port`; -1 when refused.
int OpenSocket(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the server closed `fd` (a read returns end of file) within `timeout_ms`.
bool ClosedByServer(int fd, int timeout_ms) {
  pollfd wait_for{fd, POLLIN, 0};
  if (poll(&wait_for, 1, timeout_ms) <= 0) return false;
  char byte;
  return read(fd, &byte, 1) <= 0;
}

TEST(RpcLimits, ConnectionsThatNeverAuthenticateAreClosedAtTheDeadline) {
  TempDir dir;
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(dir.Sub("data"), {"--rpc-handshake-timeout-ms", "300"}));
  int idle = OpenSocket(daemon.port());
  ASSERT_GE(idle, 0);
  EXPECT_FALSE(ClosedByServer(idle, 100)) << "not before the deadline";
  EXPECT_TRUE(ClosedByServer(idle, 2'000)) << "closed at the deadline";
  close(idle);
  auto admin = daemon.Admin();
  ASSERT_NE(admin, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_TRUE(admin->Call(query::Authenticate{}).ok()) << "an authenticated session stays";
}

TEST(RpcLimits, IdleSessionsTimeOutUnlessTheyHoldASubscription) {
  TempDir dir;
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(dir.Sub("data"), {"--rpc-idle-timeout-s", "1"}));
  auto idle = daemon.Admin();
  auto watcher = daemon.Admin();
  ASSERT_NE(idle, nullptr);
  ASSERT_NE(watcher, nullptr);
  ASSERT_TRUE(watcher->Subscribe("", [](const AlertNotice&) {}).ok());
  ASSERT_TRUE(idle->Call(query::Authenticate{}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2'500));
  EXPECT_FALSE(idle->Call(query::Authenticate{}).ok()) << "closed after a second without calls";
  EXPECT_TRUE(watcher->Call(query::Authenticate{}).ok()) << "a subscriber is not idle";
}

TEST(RpcLimits, RunningOutOfDescriptorsRefusesConnectionsNeverTheLedger) {
  TempDir dir;
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(dir.Sub("data"), {}, 300));
  auto admin = daemon.Admin();
  ASSERT_NE(admin, nullptr);
  Tree(*admin);
  std::vector<int> sockets;
  for (int i = 0; i < 400; ++i) {
    int fd = OpenSocket(daemon.port());
    if (fd >= 0) sockets.push_back(fd);
  }
  // The ledger keeps working through the flood: commands, and enough of
  // them to roll RocksDB files.
  for (int i = 0; i < 2'000; ++i) {
    std::string id = "f" + std::to_string(i);
    ASSERT_TRUE(admin->Call(Reserve(id, "agent-1", 1)).ok()) << i;
  }
  Reply checkpoint = admin->Checkpoint(dir.Sub("copy"));
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.message;
  for (int fd : sockets) close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto later = daemon.Admin();
  ASSERT_NE(later, nullptr) << "connections are accepted again";
  EXPECT_TRUE(later->Call(query::Authenticate{}).ok());
  EXPECT_EQ(daemon.Stop(), 0) << "the ledger never failed";
}

}  // namespace
}  // namespace purser::testing
