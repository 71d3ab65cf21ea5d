// The rules of SPEC sections 2 and 3, checked on the pure state machine.

#include <set>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/base/money.h"
#include "ledger/base/status.h"
#include "tests/ledger_fixture.h"

namespace purser::testing {
namespace {

using Reserve = LedgerFixture;
using Settle = LedgerFixture;
using Expiry = LedgerFixture;
using Refund = LedgerFixture;
using UsageCharge = LedgerFixture;
using Idempotency = LedgerFixture;
using Accounts = LedgerFixture;
using CapsRules = LedgerFixture;
using Alerts = LedgerFixture;
using Keys = LedgerFixture;
using Money = LedgerFixture;
using Queries = LedgerFixture;

TEST_F(Reserve, HoldsTheAmountOnEveryAncestorAndTheWallet) {
  Tree(100'000'000);
  Reply reply = Hold("r1", "agent", 2'000'000);
  ASSERT_TRUE(reply.ok()) << reply.message;
  EXPECT_TRUE(reply.created);
  BalanceView org = Balance("org");
  EXPECT_EQ(org.held_micros, 2'000'000);
  EXPECT_EQ(org.available_micros, 98'000'000);
  EXPECT_EQ(org.inflight, 1);
  EXPECT_EQ(Balance("team").inflight, 1);
  EXPECT_EQ(Balance("agent").own_held_micros, 2'000'000);
  EXPECT_EQ(Balance("team").own_held_micros, 0);
}

// The engine's prefetch and the machine agree on which records a command
// needs: in debug builds (the ASan run), a record missed in memory that the
// prefetch did not look for trips an assertion.
TEST_F(Reserve, AMissThePrefetchDidNotLookForTripsTheDebugCheck) {
#ifdef NDEBUG
  GTEST_SKIP() << "the check is compiled into debug builds only";
#else
  Tree(100'000'000);
  std::set<std::string> looked_for = {"rr1", "rr2"};
  machine_.CheckMissesAgainst([&looked_for](char kind, std::string_view id) {
    return looked_for.contains(std::string(1, kind) + std::string(id));
  });
  ThrowOnAssertion throwing;
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  EXPECT_EQ(SettleWith("r2", 1).code, ResultCode::kNotFound) << "looked for, and absent";
  EXPECT_THROW(Hold("r3", "agent", 1'000'000), AssertionFailure) << "never looked for";
  EXPECT_THROW(SettleWith("r4", 1), AssertionFailure);
  looked_for.insert("rr3");
  EXPECT_TRUE(Hold("r3", "agent", 1'000'000).ok());
#endif
}

TEST_F(Reserve, RefusedWhenAnyAncestorDailyCapWouldBeExceeded) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 5'000'000)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 3'000'000).ok());
  Reply refused = Hold("r2", "agent", 2'500'000);
  EXPECT_EQ(refused.code, ResultCode::kDailyCapExceeded);
  EXPECT_EQ(refused.account, "team");
  EXPECT_EQ(refused.limit_micros, 5'000'000);
  EXPECT_EQ(refused.available_micros, 2'000'000);
  EXPECT_TRUE(Hold("r3", "agent", 2'000'000).ok()) << "exactly the limit is allowed";
}

TEST_F(Reserve, ChecksHardThenMonthlyThenDailyOnEachAccountFromTheLeafUp) {
  Tree(100'000'000);
  CapsPatch all;
  all.daily_limit_micros = Patch<int64_t>::Set(1'000'000);
  all.monthly_limit_micros = Patch<int64_t>::Set(1'000'000);
  all.hard_limit_micros = Patch<int64_t>::Set(1'000'000);
  ASSERT_TRUE(Caps("team", all).ok());
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, 500'000)).ok());
  // The agent's daily cap refuses first: the leaf is checked before its parent.
  EXPECT_EQ(Hold("r1", "agent", 700'000).code, ResultCode::kDailyCapExceeded);
  EXPECT_EQ(Hold("r1", "agent", 700'000).account, "agent");
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, 5'000'000)).ok());
  // On the team, the hard limit is checked before the monthly and daily ones.
  Reply refused = Hold("r1", "agent", 1'500'000);
  EXPECT_EQ(refused.code, ResultCode::kHardLimitExceeded);
  EXPECT_EQ(refused.account, "team");
}

TEST_F(Reserve, MonthlyCapRefusesWhenDailyIsFine) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("org", PatchOf(&CapsPatch::monthly_limit_micros, 1'000'000)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 600'000).ok());
  ASSERT_TRUE(SettleWith("r1", 600'000).ok());
  Reply refused = Hold("r2", "agent", 600'000);
  EXPECT_EQ(refused.code, ResultCode::kMonthlyCapExceeded);
  EXPECT_EQ(refused.account, "org");
}

TEST_F(Reserve, RefusedWithInsufficientFundsNamingTheFundingWallet) {
  Tree(1'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 800'000).ok());
  Reply refused = Hold("r2", "agent", 300'000);
  EXPECT_EQ(refused.code, ResultCode::kInsufficientFunds);
  EXPECT_EQ(refused.account, "org");
  EXPECT_EQ(refused.available_micros, 200'000);
}

TEST_F(Reserve, DrawsFromTheNearestWallet) {
  Tree(1'000'000);
  ASSERT_TRUE(Open("rich", "team", true).ok());
  ASSERT_TRUE(Open("rich-agent", "rich").ok());
  ASSERT_TRUE(Deposit("rich", 50'000'000).ok());
  ASSERT_TRUE(Hold("r1", "rich-agent", 10'000'000).ok());
  EXPECT_EQ(Balance("rich-agent").funding_account, "rich");
  EXPECT_EQ(Balance("org").held_micros, 0);
  EXPECT_EQ(Balance("rich").held_micros, 10'000'000);
}

TEST_F(Reserve, RefusedWhenAnAncestorIsFrozen) {
  Tree(10'000'000);
  ASSERT_TRUE(Run(cmd::Freeze{"team", "incident"}).ok());
  Reply refused = Hold("r1", "agent", 1);
  EXPECT_EQ(refused.code, ResultCode::kAccountFrozen);
  EXPECT_EQ(refused.account, "team");
  ASSERT_TRUE(Run(cmd::Unfreeze{"team"}).ok());
  EXPECT_TRUE(Hold("r1", "agent", 1).ok());
}

TEST_F(Reserve, InflightLimitCountsTheWholeSubtree) {
  Tree(10'000'000);
  ASSERT_TRUE(Open("agent2", "team").ok());
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::max_inflight, 2)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 1).ok());
  ASSERT_TRUE(Hold("r2", "agent2", 1).ok());
  Reply refused = Hold("r3", "agent", 1);
  EXPECT_EQ(refused.code, ResultCode::kInflightLimitReached);
  EXPECT_EQ(refused.account, "team");
  ASSERT_TRUE(SettleWith("r1", 1).ok());
  EXPECT_TRUE(Hold("r3", "agent", 1).ok());
}

TEST_F(Reserve, MaxInflightZeroAdmitsNothingAndOneIsAStrictLock) {
  Tree(10'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::max_inflight, 0)).ok());
  EXPECT_EQ(Hold("r1", "agent", 0).code, ResultCode::kInflightLimitReached);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::max_inflight, 1)).ok());
  EXPECT_TRUE(Hold("r1", "agent", 0).ok()) << "an amount of 0 is a lock";
  EXPECT_EQ(Hold("r2", "agent", 0).code, ResultCode::kInflightLimitReached);
}

TEST_F(Reserve, PendingHoldsCountAgainstCapsOfLaterCommands) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::hard_limit_micros, 10'000'000)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 6'000'000).ok());
  EXPECT_EQ(Hold("r2", "agent", 5'000'000).code, ResultCode::kHardLimitExceeded);
  EXPECT_EQ(Balance("agent").headroom_micros, 4'000'000);
}

TEST_F(Reserve, ByEstimateHoldsTheCostOfInputAndMaxOutput) {
  Tree(100'000'000);
  cmd::Reserve c;
  c.reservation_id = "r1";
  c.account = "agent";
  c.estimate = Estimate{"gpt-4o", 1'000'000, 100'000};
  Reply reply = Run(c);
  ASSERT_TRUE(reply.ok()) << reply.message;
  // 1M input x $2.50 + 100k output x $10.00 = $3.50
  EXPECT_EQ(std::get<ReserveResult>(reply.body).amount_micros, 3'500'000);
  c.reservation_id = "r2";
  c.estimate->model = "no-such-model";
  EXPECT_EQ(Run(c).code, ResultCode::kInvalidArgument);
}

TEST_F(Reserve, RefusesBadInputAndChangesNothing) {
  Tree(100'000'000);
  size_t before = events_.size();
  EXPECT_EQ(Hold("r1", "agent", -1).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Hold("r1", "agent", kInputValueMax + 1).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Hold("", "agent", 1).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Hold("r1", "agent", 1, kMaxReservationTtlS + 1).code, ResultCode::kInvalidArgument);
  cmd::Reserve tags;
  tags.reservation_id = "r1";
  tags.account = "agent";
  tags.amount_micros = 1;
  for (int i = 0; i < 17; ++i) tags.tags.push_back(Tag{"k" + std::to_string(i), "v"});
  EXPECT_EQ(Run(tags).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Hold("r1", "nobody", 1).code, ResultCode::kNotFound);
  EXPECT_EQ(events_.size(), before);
  EXPECT_EQ(state_.reservations.size(), 0u);
}

TEST_F(Reserve, TtlAboveTheEffectiveCapIsRefusedAndDefaultsToIt) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::reservation_ttl_s, 60)).ok());
  EXPECT_EQ(Hold("r1", "agent", 1, 61).code, ResultCode::kInvalidArgument);
  Reply reply = Hold("r1", "agent", 1);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<ReserveResult>(reply.body).expires_at_us, now_us_ + 60 * kMicrosPerSecond);
}

TEST_F(Settle, ReleasesTheRestAndChargesTheCost) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 3'000'000).ok());
  Reply reply = SettleWith("r1", 1'200'000);
  ASSERT_TRUE(reply.ok());
  auto result = std::get<SettleResult>(reply.body);
  EXPECT_EQ(result.cost_micros, 1'200'000);
  EXPECT_EQ(result.released_micros, 1'800'000);
  EXPECT_EQ(result.overrun_micros, 0);
  BalanceView org = Balance("org");
  EXPECT_EQ(org.balance_micros, 8'800'000);
  EXPECT_EQ(org.held_micros, 0);
  EXPECT_EQ(org.spent_today_micros, 1'200'000);
  EXPECT_EQ(Balance("agent").spent_total_micros, 1'200'000);
  EXPECT_EQ(Balance("team").spent_month_micros, 1'200'000);
}

TEST_F(Settle, AboveTheHoldIsRecordedAsAnOverrunWithAnAlert) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  Reply reply = SettleWith("r1", 1'500'000);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<SettleResult>(reply.body).overrun_micros, 500'000);
  EXPECT_EQ(std::get<SettleResult>(reply.body).released_micros, 0);
  EXPECT_EQ(Balance("org").balance_micros, 8'500'000);
  ASSERT_EQ(state_.alerts.size(), 1u);
  EXPECT_EQ(state_.alerts[0].type, AlertType::kOverrun);
  // A second overrun in the same hour is aggregated into the same alert.
  ASSERT_TRUE(Hold("r2", "agent", 1'000'000).ok());
  ASSERT_TRUE(SettleWith("r2", 1'200'000).ok());
  ASSERT_EQ(state_.alerts.size(), 1u);
  EXPECT_EQ(state_.alerts[0].count, 2);
  EXPECT_EQ(state_.alerts[0].value_micros, 700'000);
}

TEST_F(Settle, NeverFailsForLackOfMoneyAndCanDriveTheWalletNegative) {
  Tree(1'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  ASSERT_TRUE(SettleWith("r1", 5'000'000).ok());
  EXPECT_EQ(Balance("org").balance_micros, -4'000'000);
  EXPECT_EQ(Hold("r2", "agent", 0).code, ResultCode::kInsufficientFunds)
      << "a negative wallet refuses every new reservation, even a lock";
}

TEST_F(Settle, ByUsageCostsEachTokenClassAtItsRate) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  cmd::Settle c;
  c.reservation_id = "r1";
  c.usage = UsageTokens{"claude-sonnet-4", TokenCounts{10'000, 2'000, 50'000, 4'000, 0}};
  Reply reply = Run(c);
  ASSERT_TRUE(reply.ok()) << reply.message;
  // 10k x 3.00 + 2k x 15.00 + 50k x 0.30 + 4k x 3.75 per 1M = 0.03 + 0.03 + 0.015 + 0.015
  EXPECT_EQ(std::get<SettleResult>(reply.body).cost_micros, 90'000);
  EXPECT_EQ(events_.back().price_version, state_.price_version);
}

TEST_F(Settle, WithAnUnpricedModelIsRefusedAndTheReservationStaysPending) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  cmd::Settle c;
  c.reservation_id = "r1";
  c.usage = UsageTokens{"mystery", TokenCounts{1, 1, 0, 0, 0}};
  EXPECT_EQ(Run(c).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(state_.reservations.at("r1").status, ReservationStatus::kPending);
  EXPECT_TRUE(SettleWith("r1", 10).ok());
}

TEST_F(Settle, TwiceWithTheSamePayloadReturnsTheFirstResultAndWithAnotherIsRefused) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  ASSERT_TRUE(SettleWith("r1", 400'000).ok());
  size_t before = events_.size();
  Reply again = SettleWith("r1", 400'000);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.created);
  EXPECT_EQ(std::get<SettleResult>(again.body).released_micros, 600'000);
  EXPECT_EQ(events_.size(), before);
  EXPECT_EQ(SettleWith("r1", 500'000).code, ResultCode::kReservationNotPending);
}

TEST_F(Settle, InheritsRunActionAndTagsAndMergesTagsKeyByKey) {
  ASSERT_TRUE(Run(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {"env", "team"}}).ok());
  ASSERT_TRUE(Open("agent", "org").ok());
  ASSERT_TRUE(Deposit("org", 10'000'000).ok());
  cmd::Reserve r;
  r.reservation_id = "r1";
  r.account = "agent";
  r.amount_micros = 100;
  r.run_id = "run-7";
  r.action = "search";
  r.tags = {{"env", "prod"}, {"team", "blue"}};
  ASSERT_TRUE(Run(r).ok());
  cmd::Settle s;
  s.reservation_id = "r1";
  s.amount_micros = 80;
  s.tags = {{"team", "red"}};
  ASSERT_TRUE(Run(s).ok());
  const auto& settled = std::get<event::Settled>(events_.back().body);
  EXPECT_EQ(settled.dimensions.run_id, "run-7");
  EXPECT_EQ(settled.dimensions.action, "search");
  EXPECT_EQ(settled.dimensions.tags, (Tags{{"env", "prod"}, {"team", "red"}}));
}

TEST_F(Settle, AVoidedReservationAcceptsNothing) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000).ok());
  Reply voided = Run(cmd::Void{"r1", "cancelled"});
  ASSERT_TRUE(voided.ok());
  EXPECT_EQ(std::get<VoidResult>(voided.body).released_micros, 1'000);
  EXPECT_EQ(SettleWith("r1", 10).code, ResultCode::kReservationNotPending);
  EXPECT_EQ(Run(cmd::Extend{"r1", 10}).code, ResultCode::kReservationNotPending);
  Reply again = Run(cmd::Void{"r1", "cancelled"});
  EXPECT_TRUE(again.ok()) << "an identical retry answers again";
  EXPECT_FALSE(again.created);
  EXPECT_EQ(Run(cmd::Void{"r1", "another reason"}).code, ResultCode::kIdempotencyConflict)
      << "the same id with a different payload is a conflict";
  EXPECT_EQ(Balance("org").held_micros, 0);
}

TEST_F(Expiry, ReleasesTheHoldByDefault) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000, 30).ok());
  Advance(29);
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  EXPECT_EQ(state_.reservations.at("r1").status, ReservationStatus::kPending);
  Advance(1);
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  EXPECT_EQ(state_.reservations.at("r1").status, ReservationStatus::kExpired);
  EXPECT_EQ(Balance("org").held_micros, 0);
  EXPECT_EQ(Balance("org").balance_micros, 10'000'000);
}

TEST_F(Expiry, RunsInExpiresAtThenIdOrder) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("b", "agent", 1, 10).ok());
  ASSERT_TRUE(Hold("a", "agent", 1, 10).ok());
  ASSERT_TRUE(Hold("c", "agent", 1, 5).ok());
  Advance(20);
  size_t before = events_.size();
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  ASSERT_EQ(events_.size(), before + 3);
  EXPECT_EQ(std::get<event::Expired>(events_[before].body).reservation_id, "c");
  EXPECT_EQ(std::get<event::Expired>(events_[before + 1].body).reservation_id, "a");
  EXPECT_EQ(std::get<event::Expired>(events_[before + 2].body).reservation_id, "b");
}

TEST_F(Expiry, ChargePolicyChargesTheHoldAsUnreconciledWaste) {
  Tree(10'000'000);
  CapsPatch charge;
  charge.on_expiry = Patch<OnExpiry>::Set(OnExpiry::kCharge);
  ASSERT_TRUE(Caps("team", charge).ok());
  ASSERT_TRUE(Hold("r1", "agent", 2'000'000, 10).ok());
  Advance(10);
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  EXPECT_EQ(Balance("org").balance_micros, 8'000'000);
  EXPECT_EQ(Balance("agent").spent_today_micros, 2'000'000);
  query::GetSpend spend{"agent", DayOf(now_us_), DayOf(now_us_), GroupBy::kWaste, ""};
  auto report = std::get<SpendReport>(Run(spend).body);
  ASSERT_EQ(report.groups.size(), 1u);
  EXPECT_EQ(report.groups[0].key, "unreconciled");
}

TEST_F(Expiry, ALateSettleReversesTheExpiryChargeThenRecordsTheTruth) {
  Tree(10'000'000);
  CapsPatch charge;
  charge.on_expiry = Patch<OnExpiry>::Set(OnExpiry::kCharge);
  ASSERT_TRUE(Caps("agent", charge).ok());
  ASSERT_TRUE(Hold("r1", "agent", 2'000'000, 10).ok());
  Advance(10);
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  Reply late = SettleWith("r1", 500'000);
  ASSERT_TRUE(late.ok()) << late.message;
  auto result = std::get<SettleResult>(late.body);
  EXPECT_TRUE(result.late);
  EXPECT_EQ(result.released_micros, 0);
  EXPECT_EQ(result.overrun_micros, 0);
  EXPECT_EQ(Balance("org").balance_micros, 9'500'000);
  EXPECT_EQ(Balance("agent").spent_total_micros, 500'000);
  EXPECT_EQ(state_.reservations.at("r1").status, ReservationStatus::kSettled);
}

TEST_F(Expiry, ALateSettleBeyondTheRoomLeftIsAnOverrun) {
  Tree(10'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, 1'000'000)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 800'000, 10).ok());
  Advance(10);
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  ASSERT_TRUE(Hold("r2", "agent", 700'000).ok());
  Reply late = SettleWith("r1", 600'000);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(std::get<SettleResult>(late.body).overrun_micros, 300'000);  // room was 300k
}

TEST_F(Expiry, ExtendMovesTheExpiryWithinTheCap) {
  Tree(10'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::reservation_ttl_s, 100)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 1, 10).ok());
  Advance(5);
  EXPECT_EQ(Run(cmd::Extend{"r1", 101}).code, ResultCode::kInvalidArgument);
  Reply extended = Run(cmd::Extend{"r1", 100});
  ASSERT_TRUE(extended.ok());
  EXPECT_EQ(std::get<ExtendResult>(extended.body).expires_at_us, now_us_ + 100 * kMicrosPerSecond);
  Advance(50);
  ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
  EXPECT_EQ(state_.reservations.at("r1").status, ReservationStatus::kPending);
}

TEST_F(UsageCharge, RecordsTruthPastCapsAndFundsAsOverrun) {
  Tree(1'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 500'000)).ok());
  Reply reply = Usage("u1", "agent", 800'000);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<UsageResult>(reply.body).overrun_micros, 300'000);
  EXPECT_EQ(Balance("team").spent_today_micros, 800'000);
}

TEST_F(UsageCharge, IsRefusedOnlyWhenFrozen) {
  Tree(0);
  EXPECT_TRUE(Usage("u1", "agent", 5).ok()) << "no funds: still the truth";
  ASSERT_TRUE(Run(cmd::Freeze{"team", ""}).ok());
  Reply refused = Usage("u2", "agent", 5);
  EXPECT_EQ(refused.code, ResultCode::kAccountFrozen);
  EXPECT_EQ(refused.account, "team");
}

TEST_F(Refund, CreditsTheWalletAndReversesSpendInCurrentWindows) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  ASSERT_TRUE(SettleWith("r1", 1'000'000).ok());
  Reply refund = Run(cmd::Refund{"f1", ChargeKind::kReservation, "r1", 400'000, "bad output"});
  ASSERT_TRUE(refund.ok()) << refund.message;
  EXPECT_EQ(Balance("org").balance_micros, 9'400'000);
  EXPECT_EQ(Balance("agent").spent_today_micros, 600'000);
  EXPECT_EQ(Balance("team").spent_total_micros, 600'000);
}

TEST_F(Refund, IsBoundedByWhatWasCharged) {
  Tree(10'000'000);
  ASSERT_TRUE(Usage("u1", "agent", 1'000'000).ok());
  ASSERT_TRUE(Run(cmd::Refund{"f1", ChargeKind::kUsage, "u1", 700'000, ""}).ok());
  Reply over = Run(cmd::Refund{"f2", ChargeKind::kUsage, "u1", 300'001, ""});
  EXPECT_EQ(over.code, ResultCode::kRefundExceedsCharged);
  EXPECT_TRUE(Run(cmd::Refund{"f2", ChargeKind::kUsage, "u1", 300'000, ""}).ok());
  EXPECT_EQ(Balance("org").balance_micros, 10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 10).ok());
  EXPECT_EQ(Run(cmd::Refund{"f3", ChargeKind::kReservation, "r1", 1, ""}).code,
            ResultCode::kRefundExceedsCharged)
      << "a pending reservation has charged nothing";
}

TEST_F(Refund, OfAnEarlierDayFreesNoHeadroomToday) {
  Tree(10'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, 1'000'000)).ok());
  ASSERT_TRUE(Usage("u1", "agent", 1'000'000).ok());
  Advance(24 * 3600);
  ASSERT_TRUE(Usage("u2", "agent", 900'000).ok());
  ASSERT_TRUE(Run(cmd::Refund{"f1", ChargeKind::kUsage, "u1", 1'000'000, ""}).ok());
  EXPECT_EQ(Balance("agent").spent_today_micros, 900'000);
  EXPECT_EQ(Balance("agent").spent_total_micros, 900'000);
}

TEST_F(Idempotency, SameIdAndPayloadReturnsTheOriginalResult) {
  Tree(10'000'000);
  Reply first = Hold("r1", "agent", 1'000);
  Advance(3);
  Reply again = Hold("r1", "agent", 1'000);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.created);
  EXPECT_EQ(std::get<ReserveResult>(again.body).expires_at_us,
            std::get<ReserveResult>(first.body).expires_at_us);
  EXPECT_EQ(Balance("org").held_micros, 1'000) << "the hold is taken once";
}

TEST_F(Idempotency, SameIdWithAnotherPayloadIsAConflict) {
  Tree(10'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000).ok());
  EXPECT_EQ(Hold("r1", "agent", 2'000).code, ResultCode::kIdempotencyConflict);
  ASSERT_TRUE(Usage("u1", "agent", 5).ok());
  EXPECT_EQ(Usage("u1", "agent", 6).code, ResultCode::kIdempotencyConflict);
  ASSERT_TRUE(Deposit("org", 5, "d1").ok());
  EXPECT_EQ(Deposit("org", 6, "d1").code, ResultCode::kIdempotencyConflict);
  Reply repeat = Deposit("org", 5, "d1");
  EXPECT_TRUE(repeat.ok());
  EXPECT_FALSE(repeat.created);
}

TEST_F(Idempotency, ARefusedCommandDoesNotConsumeItsId) {
  Tree(1'000);
  EXPECT_EQ(Hold("r1", "agent", 5'000).code, ResultCode::kInsufficientFunds);
  ASSERT_TRUE(Deposit("org", 10'000).ok());
  EXPECT_TRUE(Hold("r1", "agent", 5'000).ok());
}

TEST_F(Idempotency, SettingAValueThatIsAlreadySetAppendsNoEvent) {
  Tree(1'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, 5)).ok());
  ASSERT_TRUE(Run(cmd::Freeze{"agent", ""}).ok());
  size_t before = events_.size();
  EXPECT_FALSE(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, 5)).created);
  EXPECT_FALSE(Run(cmd::Freeze{"agent", "again"}).created);
  EXPECT_EQ(events_.size(), before);
}

TEST_F(Accounts, RefuseBadIdsUnknownParentsAndDepthBeyondEight) {
  EXPECT_EQ(Open("Bad").code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Open("-x").code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Open(std::string(65, 'a')).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Open("x", "missing").code, ResultCode::kNotFound);
  ASSERT_TRUE(Open("l0").ok());
  for (int depth = 1; depth < kAccountDepthMax; ++depth) {
    ASSERT_TRUE(Open("l" + std::to_string(depth), "l" + std::to_string(depth - 1)).ok());
  }
  EXPECT_EQ(Open("l8", "l7").code, ResultCode::kInvalidArgument);
}

TEST_F(Accounts, ReopeningWithTheSamePayloadIsIdempotentAndOtherwiseAlreadyExists) {
  ASSERT_TRUE(Open("org", "", true, AccountKind::kOrg).ok());
  Reply again = Open("org", "", true, AccountKind::kOrg);
  EXPECT_TRUE(again.ok());
  EXPECT_FALSE(again.created);
  EXPECT_EQ(Open("org", "", false, AccountKind::kOrg).code, ResultCode::kAlreadyExists);
}

TEST_F(Accounts, DepositNeedsAWallet) {
  Tree(0);
  EXPECT_EQ(Deposit("team", 5).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Deposit("org", 0).code, ResultCode::kInvalidArgument);
}

TEST_F(Accounts, AdjustmentsChangeTheBalanceOnlyAndNeedAReason) {
  Tree(1'000);
  EXPECT_EQ(Run(cmd::Adjust{"a1", "org", -500, ""}).code, ResultCode::kInvalidArgument);
  ASSERT_TRUE(Run(cmd::Adjust{"a1", "org", -5'000, "chargeback"}).ok());
  EXPECT_EQ(Balance("org").balance_micros, -4'000);
  EXPECT_EQ(Balance("org").spent_total_micros, 0);
}

TEST_F(CapsRules, PatchKeepsAbsentFieldsAndRemovesNulls) {
  Tree(0);
  CapsPatch both;
  both.daily_limit_micros = Patch<int64_t>::Set(10);
  both.monthly_limit_micros = Patch<int64_t>::Set(20);
  ASSERT_TRUE(Caps("agent", both).ok());
  CapsPatch remove_daily;
  remove_daily.daily_limit_micros = Patch<int64_t>::Remove();
  Reply reply = Caps("agent", remove_daily);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<CapsView>(reply.body).caps.daily_limit_micros, kNoLimit);
  EXPECT_EQ(std::get<CapsView>(reply.body).caps.monthly_limit_micros, 20);
  EXPECT_EQ(Caps("agent", PatchOf(&CapsPatch::daily_limit_micros, -1)).code,
            ResultCode::kInvalidArgument);
}

TEST_F(Alerts, ThresholdFiresOncePerWindowAndACapChangeReArmsIt) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 10'000'000)).ok());
  ASSERT_TRUE(Usage("u1", "agent", 5'000'000).ok());
  ASSERT_EQ(state_.alerts.size(), 1u);
  EXPECT_EQ(state_.alerts[0].threshold_pct, 50);
  EXPECT_EQ(state_.account(state_.alerts[0].account).id, "team");
  ASSERT_TRUE(Usage("u2", "agent", 100).ok());
  EXPECT_EQ(state_.alerts.size(), 1u) << "50% fires once";
  ASSERT_TRUE(Usage("u3", "agent", 4'000'000).ok());  // 90.001%: 75 and 90 at once
  EXPECT_EQ(state_.alerts.size(), 3u);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 20'000'000)).ok());
  ASSERT_TRUE(Usage("u4", "agent", 1'000'000).ok());
  EXPECT_EQ(state_.alerts.size(), 4u) << "re-armed: 50% of the new limit";
  Advance(24 * 3600);
  ASSERT_TRUE(Usage("u5", "agent", 10'000'000).ok());
  EXPECT_EQ(state_.alerts.size(), 5u) << "a new day is a new window instance";
}

// A dashboard asks for the newest: past the list's bound, oldest-first keeps
// the oldest (for paging forward by `since`) and newest-first the newest, and
// both say the list was cut.
TEST_F(Alerts, PastTheBoundNewestFirstKeepsTheNewestAndBothSayTruncated) {
  Tree(100'000'000);
  ASSERT_TRUE(Usage("u1", "agent", 5'000'000).ok());
  // Each cap change below the spend re-arms the thresholds and raises them at once.
  for (int64_t limit = 1'000; state_.alerts.size() <= kListLimitMax + 10 && limit < 20'000;
       ++limit) {
    ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, limit)).ok());
    Advance(1);
  }
  const size_t total = state_.alerts.size();
  ASSERT_GT(total, kListLimitMax);
  auto list = [&](bool newest_first, int64_t since_us) {
    query::ListAlerts q;
    q.since_us = since_us;
    q.newest_first = newest_first;
    Reply reply = Run(q);
    EXPECT_TRUE(reply.ok()) << reply.message;
    return reply.ok() ? std::get<AlertList>(reply.body) : AlertList{};
  };
  AlertList oldest = list(false, 0);
  AlertList newest = list(true, 0);
  ASSERT_EQ(oldest.alerts.size(), kListLimitMax);
  ASSERT_EQ(newest.alerts.size(), kListLimitMax);
  EXPECT_TRUE(oldest.truncated);
  EXPECT_TRUE(newest.truncated);
  EXPECT_EQ(oldest.alerts.front().id, state_.alerts.front().id);
  EXPECT_EQ(oldest.alerts.back().id, state_.alerts[kListLimitMax - 1].id);
  EXPECT_EQ(newest.alerts.front().id, state_.alerts.back().id);
  EXPECT_EQ(newest.alerts.back().id, state_.alerts[total - kListLimitMax].id);
  bool descending = true;
  for (size_t i = 1; i < newest.alerts.size(); ++i) {
    descending = descending && newest.alerts[i - 1].id > newest.alerts[i].id;
  }
  EXPECT_TRUE(descending);

  // Under the bound: the same alerts, one order the other's reverse.
  const int64_t last_change_us = state_.alerts.back().created_us;
  AlertList recent = list(false, last_change_us);
  AlertList recent_newest = list(true, last_change_us);
  ASSERT_GE(recent.alerts.size(), 2u);
  EXPECT_FALSE(recent.truncated);
  EXPECT_FALSE(recent_newest.truncated);
  ASSERT_EQ(recent_newest.alerts.size(), recent.alerts.size());
  for (size_t i = 0; i < recent.alerts.size(); ++i) {
    EXPECT_EQ(recent_newest.alerts[i].id, recent.alerts[recent.alerts.size() - 1 - i].id);
  }
}

TEST_F(Keys, RolesAndScopesAreEnforced) {
  Tree(10'000'000);
  Sha256Digest reader_hash = Credentials::FromApiKey("reader-secret").key_sha256;
  Sha256Digest admin_hash = Credentials::FromApiKey("admin-secret").key_sha256;
  ASSERT_TRUE(Run(cmd::IssueKey{"", "k-reader", "team", Role::kReader, "", reader_hash, "", 0}).ok());
  ASSERT_TRUE(Run(cmd::IssueKey{"", "k-admin", "team", Role::kAdmin, "", admin_hash, "", 0}).ok());
  Credentials reader = Credentials::FromApiKey("reader-secret");
  Credentials admin = Credentials::FromApiKey("admin-secret");
  EXPECT_TRUE(Run(query::GetBalance{"agent"}, reader).ok());
  EXPECT_EQ(Run(query::GetBalance{"org"}, reader).code, ResultCode::kPermissionDenied);
  EXPECT_EQ(Run(query::GetBalance{"ghost"}, reader).code, ResultCode::kPermissionDenied);
  cmd::Reserve r;
  r.reservation_id = "r1";
  r.account = "agent";
  r.amount_micros = 1;
  EXPECT_EQ(Run(r, reader).code, ResultCode::kPermissionDenied) << "a reader cannot write";
  EXPECT_TRUE(Run(r, admin).ok());
  EXPECT_EQ(Run(cmd::SetCaps{"team", {}}, admin).code, ResultCode::kPermissionDenied)
      << "no key raises its own caps";
  EXPECT_TRUE(Run(cmd::SetCaps{"agent", PatchOf(&CapsPatch::daily_limit_micros, 5)}, admin).ok());
  EXPECT_EQ(Run(cmd::SetPrice{"m", {1, 1, -1, -1, -1}}, admin).code,
            ResultCode::kPermissionDenied);
  EXPECT_EQ(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("wrong")).code,
            ResultCode::kUnauthenticated);
}

TEST_F(Keys, RevocationAndRotationWithGrace) {
  Tree(0);
  Sha256Digest old_hash = Credentials::FromApiKey("old").key_sha256;
  Sha256Digest new_hash = Credentials::FromApiKey("new").key_sha256;
  ASSERT_TRUE(Run(cmd::IssueKey{"", "k1", "team", Role::kReader, "", old_hash, "", 0}).ok());
  ASSERT_TRUE(Run(cmd::IssueKey{"", "k2", "", Role::kReader, "", new_hash, "k1", 60}).ok());
  EXPECT_EQ(state_.keys.at("k2").account, state_.FindAccount("team")) << "rotation keeps scope";
  EXPECT_TRUE(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("old")).ok());
  Advance(60);
  EXPECT_EQ(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("old")).code,
            ResultCode::kUnauthenticated);
  EXPECT_TRUE(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("new")).ok());
  ASSERT_TRUE(Run(cmd::RevokeKey{"k2"}).ok());
  EXPECT_EQ(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("new")).code,
            ResultCode::kUnauthenticated);
}

TEST_F(Keys, ARotatedKeyCannotBeRotatedAgainNorResurrected) {
  Tree(0);
  auto hash = [](const char* secret) { return Credentials::FromApiKey(secret).key_sha256; };
  ASSERT_TRUE(Run(cmd::IssueKey{"", "k1", "team", Role::kReader, "", hash("one"), "", 0}).ok());
  ASSERT_TRUE(Run(cmd::IssueKey{"", "k2", "", Role::kReader, "", hash("two"), "k1", 60}).ok());
  int64_t expiry = state_.keys.at("k1").valid_until_us;
  Advance(30);
  Reply again = Run(cmd::IssueKey{"", "k3", "", Role::kReader, "", hash("three"), "k1", 3600});
  EXPECT_EQ(again.code, ResultCode::kAlreadyExists) << "re-rotating during grace would extend it";
  EXPECT_EQ(state_.keys.at("k1").valid_until_us, expiry);
  Advance(31);
  EXPECT_EQ(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("one")).code,
            ResultCode::kUnauthenticated);
  Reply dead = Run(cmd::IssueKey{"", "k4", "", Role::kReader, "", hash("four"), "k1", 3600});
  EXPECT_EQ(dead.code, ResultCode::kAlreadyExists) << "a secret past its grace stays dead";
  EXPECT_EQ(Run(query::GetBalance{"agent"}, Credentials::FromApiKey("one")).code,
            ResultCode::kUnauthenticated);
  EXPECT_TRUE(Run(cmd::IssueKey{"", "k5", "", Role::kReader, "", hash("five"), "k2", 10}).ok())
      << "the successor rotates";
}

TEST_F(Keys, AScopedKeyCannotTellAnotherSubtreesReservationFromAMissingOne) {
  Tree(10'000'000);
  ASSERT_TRUE(Open("team2", "org", false, AccountKind::kTeam).ok());
  ASSERT_TRUE(Hold("theirs", "team2", 1'000).ok());
  Sha256Digest hash = Credentials::FromApiKey("team-writer").key_sha256;
  ASSERT_TRUE(Run(cmd::IssueKey{"", "kw", "team", Role::kWriter, "", hash, "", 0}).ok());
  Credentials key = Credentials::FromApiKey("team-writer");
  for (const char* id : {"theirs", "nobody-has-this"}) {
    EXPECT_EQ(Run(query::GetReservation{id}, key).code, ResultCode::kPermissionDenied) << id;
    cmd::Settle settle;
    settle.reservation_id = id;
    settle.amount_micros = 1;
    EXPECT_EQ(Run(settle, key).code, ResultCode::kPermissionDenied) << id;
    EXPECT_EQ(Run(cmd::Void{id, ""}, key).code, ResultCode::kPermissionDenied) << id;
    EXPECT_EQ(Run(cmd::Extend{id, 10}, key).code, ResultCode::kPermissionDenied) << id;
  }
  EXPECT_EQ(Run(query::GetReservation{"nobody-has-this"}).code, ResultCode::kNotFound)
      << "the global admin sees what exists";
}

TEST_F(Money, CommandsThatWouldOverflowAreRefusedAndChangeNothing) {
  Tree(0);
  // Reaching int64 limits through 10^12-bounded inputs takes millions of
  // commands; put the wallet near the edge directly instead (white box).
  Account& org = state_.accounts[state_.FindAccount("org")];
  org.balance_micros = INT64_MAX - 5;
  org.deposited_micros = INT64_MAX - 5;
  size_t before = events_.size();
  EXPECT_EQ(Deposit("org", 6).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Run(cmd::Adjust{"a1", "org", 6, "fix"}).code, ResultCode::kInvalidArgument);
  EXPECT_TRUE(Deposit("org", 5).ok());
  org.balance_micros = INT64_MIN + 5;
  EXPECT_EQ(Usage("u1", "agent", 6).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(events_.size(), before + 1);
  EXPECT_EQ(org.balance_micros, INT64_MIN + 5);
}

TEST_F(Queries, SpendGroupsByModelActionTagAndChildSortedByCost) {
  ASSERT_TRUE(Run(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {"env"}}).ok());
  ASSERT_TRUE(Open("a1", "org").ok());
  ASSERT_TRUE(Open("a2", "org").ok());
  ASSERT_TRUE(Deposit("org", 100'000'000).ok());
  auto usage = [&](const char* id, const char* account, int64_t cost, const char* model,
                   const char* env) {
    cmd::RecordUsage c;
    c.usage_id = id;
    c.account = account;
    c.usage = UsageTokens{model, TokenCounts{cost, 0, 0, 0, 0}};
    if (env[0] != '\0') c.tags = {{"env", env}};
    ASSERT_TRUE(Run(c).ok());
  };
  usage("u1", "a1", 1'000'000, "gpt-4o", "prod");         // $2.50
  usage("u2", "a2", 1'000'000, "gpt-4o-mini", "dev");     // $0.15
  usage("u3", "a2", 2'000'000, "gpt-4o", "");             // $5.00
  usage("u4", "org", 1'000'000, "gpt-4o-mini", "prod");   // $0.15
  int64_t today = DayOf(now_us_);
  auto spend = [&](GroupBy by, std::string tag = "") {
    Reply reply = Run(query::GetSpend{"org", today, today, by, tag});
    EXPECT_TRUE(reply.ok()) << reply.message;
    return std::get<SpendReport>(reply.body);
  };
  SpendReport by_model = spend(GroupBy::kModel);
  EXPECT_EQ(by_model.total_micros, 7'800'000);
  EXPECT_EQ(by_model.calls, 4);
  ASSERT_EQ(by_model.groups.size(), 2u);
  EXPECT_EQ(by_model.groups[0].key, "gpt-4o");
  EXPECT_EQ(by_model.groups[0].cost_micros, 7'500'000);
  EXPECT_EQ(by_model.groups[0].input_tokens, 3'000'000);
  SpendReport by_child = spend(GroupBy::kChild);
  ASSERT_EQ(by_child.groups.size(), 3u);
  EXPECT_EQ(by_child.groups[0].key, "a2");
  EXPECT_EQ(by_child.groups[2].key, "(self)");
  SpendReport by_tag = spend(GroupBy::kTag, "env");
  ASSERT_EQ(by_tag.groups.size(), 3u);
  EXPECT_EQ(by_tag.groups[0].key, "(none)");
  EXPECT_EQ(by_tag.groups[0].cost_micros, 5'000'000);
  EXPECT_EQ(by_tag.groups[1].key, "prod");
  EXPECT_EQ(by_tag.groups[1].cost_micros, 2'650'000);
  EXPECT_EQ(Run(query::GetSpend{"org", today, today, GroupBy::kTag, "nope"}).code,
            ResultCode::kInvalidArgument);
}

TEST_F(Queries, HeadroomIsTheSmallestRoomOnThePathAndZeroWhenFrozen) {
  Tree(50'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 20'000'000)).ok());
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::monthly_limit_micros, 30'000'000)).ok());
  EXPECT_EQ(Balance("agent").headroom_micros, 20'000'000);
  ASSERT_TRUE(Usage("u1", "agent", 5'000'000).ok());
  EXPECT_EQ(Balance("agent").headroom_micros, 15'000'000);
  ASSERT_TRUE(Run(cmd::Freeze{"team", ""}).ok());
  EXPECT_EQ(Balance("agent").headroom_micros, 0);
}

TEST_F(Queries, PnlReportsMarginOnlyWithRevenue) {
  Tree(10'000'000);
  int64_t today = DayOf(now_us_);
  ASSERT_TRUE(Usage("u1", "agent", 1'000'000).ok());
  auto pnl = std::get<PnlView>(Run(query::GetPnl{"org", today, today}).body);
  EXPECT_EQ(pnl.cost_micros, 1'000'000);
  EXPECT_FALSE(pnl.margin_bp.has_value());
  ASSERT_TRUE(Run(cmd::RecordRevenue{"v1", "team", 3'000'000, "sales", ""}).ok());
  pnl = std::get<PnlView>(Run(query::GetPnl{"org", today, today}).body);
  EXPECT_EQ(pnl.profit_micros, 2'000'000);
  EXPECT_EQ(pnl.margin_bp, 6'667);
}

}  // namespace
}  // namespace purser::testing
