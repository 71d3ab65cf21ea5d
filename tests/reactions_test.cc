// The rules that make Purser react (SPEC sections 2 and 4), on the pure
// state machine: burn rates, runs, anomalies, runaways and freezes, rate
// caps, degrade advice, transfers, imported history and the analytics.

#include <gtest/gtest.h>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/log/snapshot.h"
#include "tests/ledger_fixture.h"

namespace purser::testing {
namespace {

class ReactionFixture : public LedgerFixture {
 protected:
  Reply Spend(const std::string& id, const std::string& account, int64_t cost,
              Outcome outcome = Outcome::kNone, const std::string& run = "") {
    cmd::RecordUsage c;
    c.usage_id = id;
    c.account = account;
    c.amount_micros = cost;
    c.outcome = outcome;
    c.run_id = run;
    return Run(c);
  }

  Reply ReserveTokens(const std::string& id, const std::string& account, int64_t input,
                      int64_t max_output) {
    cmd::Reserve c;
    c.reservation_id = id;
    c.account = account;
    c.estimate = Estimate{"gpt-4o-mini", input, max_output};
    return Run(c);
  }

  BurnRateView Burn(const std::string& account, int64_t window_s) {
    Reply reply = Run(query::GetBurnRate{account, window_s});
    EXPECT_TRUE(reply.ok()) << reply.message;
    return std::get<BurnRateView>(reply.body);
  }

  std::vector<AlertView> AlertsOf(const std::string& account, AlertType type) {
    Reply reply = Run(query::ListAlerts{account, 0, type});
    EXPECT_TRUE(reply.ok()) << reply.message;
    std::vector<AlertView> out;
    for (const AlertView& a : std::get<AlertList>(reply.body).alerts) {
      if (a.account == account) out.push_back(a);
    }
    return out;
  }

  bool Frozen(const std::string& account) {
    return Answer<AccountView>(query::GetAccount{account}).frozen;
  }

  // The body of a query's reply, by value (a reply is a temporary).
  template <typename T>
  T Answer(RequestBody body) {
    Reply reply = Run(std::move(body));
    EXPECT_TRUE(reply.ok()) << reply.message;
    if (!reply.ok()) return T{};
    return std::get<T>(reply.body);
  }

  // Moves the clock to the start of the next UTC minute, plus `second` seconds.
  void NextMinute(int64_t second = 0) {
    now_us_ = (MinuteOf(now_us_) + 1) * kMicrosPerMinute + second * kMicrosPerSecond;
  }
};

using BurnRate = ReactionFixture;
using Runs = ReactionFixture;
using Anomaly = ReactionFixture;
using Runaway = ReactionFixture;
using RateCaps = ReactionFixture;
using Degrade = ReactionFixture;
using Transfers = ReactionFixture;
using History = ReactionFixture;
using Analytics = ReactionFixture;
using Contract = ReactionFixture;
using Determinism = ReactionFixture;

TEST_F(BurnRate, SumsWholeMinutesOfTheSubtreeAsSpendPerHour) {
  Tree(100'000'000);
  ASSERT_TRUE(Spend("u1", "agent", 1'000'000).ok());
  Advance(5 * 60);
  ASSERT_TRUE(Spend("u2", "agent", 2'000'000).ok());
  BurnRateView five = Burn("team", 300);
  EXPECT_EQ(five.spend_micros, 2'000'000) << "the first spend is 6 minutes old";
  EXPECT_EQ(five.calls, 1);
  EXPECT_EQ(five.micros_per_hour, 24'000'000);
  BurnRateView hour = Burn("org", 3600);
  EXPECT_EQ(hour.spend_micros, 3'000'000);
  EXPECT_EQ(hour.micros_per_hour, 3'000'000);
  EXPECT_EQ(Run(query::GetBurnRate{"team", 90}).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Run(query::GetBurnRate{"team", 86'460}).code, ResultCode::kInvalidArgument);
}

TEST_F(BurnRate, ForgetsMinutesOlderThanADayAndReportsTheBaseline) {
  Tree(100'000'000);
  ASSERT_TRUE(Spend("u1", "agent", 5'000'000).ok());
  Advance(25 * 3600);
  ASSERT_TRUE(Spend("u2", "agent", 1'000'000).ok());
  EXPECT_EQ(Burn("agent", 86'400).spend_micros, 1'000'000);
  EXPECT_LE(state_.account(state_.FindAccount("agent")).burn.buckets().size(), 1u)
      << "older minutes fold away";
  ASSERT_TRUE(Run(cmd::SetBaseline{"agent", 500'000, 20'000}).ok());
  BurnRateView view = Burn("agent", 3600);
  EXPECT_EQ(view.baseline_micros_per_hour, 500'000);
  EXPECT_EQ(view.ratio_pct, 200);
}

TEST_F(Runs, ActiveRunsAreTheOnesThatSpentInTheWindowFastestFirst) {
  Tree(100'000'000);
  ASSERT_TRUE(Spend("u1", "agent", 1'000'000, Outcome::kSuccess, "slow").ok());
  ASSERT_TRUE(Spend("u2", "agent", 4'000'000, Outcome::kSuccess, "fast").ok());
  ASSERT_TRUE(Spend("u3", "team", 2'000'000, Outcome::kSuccess, "other").ok());
  Reply reply = Run(query::ListActiveRuns{"agent", 600, 100});
  ASSERT_TRUE(reply.ok());
  const auto& runs = std::get<RunList>(reply.body).runs;
  ASSERT_EQ(runs.size(), 2u) << "the run of the team is outside the agent's subtree";
  EXPECT_EQ(runs[0].run_id, "fast");
  EXPECT_EQ(runs[0].spend_micros, 4'000'000);
  EXPECT_EQ(runs[1].run_id, "slow");
  Advance(11 * 60);
  EXPECT_TRUE(Answer<RunList>(query::ListActiveRuns{"", 600, 100}).runs.empty());
  // Spend by run is a grouping of the day books too.
  query::GetSpend spend{"org", DayOf(now_us_), DayOf(now_us_), GroupBy::kRun, ""};
  const SpendReport report = Answer<SpendReport>(spend);
  ASSERT_EQ(report.groups.size(), 3u);
  EXPECT_EQ(report.groups[0].key, "fast");
}

TEST_F(Runs, TheTableIsBoundedAndTheOldestRunsFoldAway) {
  Tree(100'000'000'000);
  for (size_t i = 0; i < kActiveRunsMax + 10; ++i) {
    ASSERT_TRUE(Spend("u" + std::to_string(i), "agent", 1, Outcome::kSuccess,
                      "run-" + std::to_string(i))
                    .ok());
    if (i % 1000 == 0) Advance(1);
  }
  EXPECT_EQ(state_.runs.size(), kActiveRunsMax);
  EXPECT_EQ(state_.runs_by_last.size(), kActiveRunsMax);
  EXPECT_FALSE(state_.strings.Find("run-0") && state_.runs.contains(*state_.strings.Find("run-0")));
}

TEST_F(Anomaly, OneAlertPerTransitionClearingWhenTheRateFallsBack) {
  Tree(100'000'000);
  ASSERT_TRUE(Run(cmd::SetBaseline{"agent", 1'000'000, 30'000}).ok());  // 3 USD/h
  ASSERT_TRUE(Spend("u1", "agent", 200'000).ok());                      // 2.4 USD/h: calm
  EXPECT_TRUE(AlertsOf("agent", AlertType::kAnomaly).empty());
  ASSERT_TRUE(Spend("u2", "agent", 200'000).ok());  // 4.8 USD/h over 5 minutes
  ASSERT_EQ(AlertsOf("agent", AlertType::kAnomaly).size(), 1u);
  ASSERT_TRUE(Spend("u3", "agent", 500'000).ok());
  EXPECT_EQ(AlertsOf("agent", AlertType::kAnomaly).size(), 1u) << "still the same anomaly";
  auto active = Answer<AnomalyList>(query::ListAnomalies{""}).anomalies;
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].account, "agent");
  EXPECT_EQ(active[0].threshold_micros_per_hour, 3'000'000);
  EXPECT_EQ(active[0].since_us, kTestEpochUs);
  Advance(10 * 60);
  EXPECT_TRUE(Answer<AnomalyList>(query::ListAnomalies{""}).anomalies.empty())
      << "the rate fell back";
  ASSERT_TRUE(Spend("u4", "agent", 10'000).ok());
  EXPECT_EQ(AlertsOf("agent", AlertType::kAnomaly).size(), 1u);
  ASSERT_TRUE(Spend("u5", "agent", 1'000'000).ok());
  EXPECT_EQ(AlertsOf("agent", AlertType::kAnomaly).size(), 2u) << "a new rise is a new anomaly";
  EXPECT_TRUE(AlertsOf("team", AlertType::kAnomaly).empty()) << "the team has no baseline";
}

TEST_F(Anomaly, BaselinesReadBackAndNeedAPositiveRate) {
  Tree(0);
  EXPECT_EQ(Run(query::GetBaseline{"agent"}).code, ResultCode::kNotFound);
  EXPECT_EQ(Run(cmd::SetBaseline{"agent", 0, 30'000}).code, ResultCode::kInvalidArgument);
  ASSERT_TRUE(Run(cmd::SetBaseline{"agent", 2'500'000, 25'000}).ok());
  Reply reply = Run(query::GetBaseline{"agent"});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<BaselineView>(reply.body).micros_per_hour, 2'500'000);
  EXPECT_EQ(std::get<BaselineView>(reply.body).multiplier_bp, 25'000);
}

TEST_F(Runaway, AnErrorStreakRaisesOneAlertPerEpisode) {
  Tree(100'000'000);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Spend("e" + std::to_string(i), "agent", 1'000, Outcome::kError).ok());
  }
  EXPECT_TRUE(AlertsOf("agent", AlertType::kRunaway).empty()) << "4 of 5";
  ASSERT_TRUE(Spend("e4", "agent", 1'000, Outcome::kError).ok());
  ASSERT_EQ(AlertsOf("agent", AlertType::kRunaway).size(), 1u);
  EXPECT_EQ(AlertsOf("agent", AlertType::kRunaway)[0].severity, "critical");
  ASSERT_TRUE(Spend("e5", "agent", 1'000, Outcome::kError).ok());
  EXPECT_EQ(AlertsOf("agent", AlertType::kRunaway).size(), 1u) << "the same episode";
  ASSERT_TRUE(Spend("ok", "agent", 1'000, Outcome::kSuccess).ok());  // the episode ends
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Spend("f" + std::to_string(i), "agent", 1'000, Outcome::kError).ok());
  }
  EXPECT_EQ(AlertsOf("agent", AlertType::kRunaway).size(), 2u);
  EXPECT_FALSE(Frozen("agent")) << "the default policy only alerts";
}

TEST_F(Runaway, TheFreezePolicyFreezesTheSpenderInTheSameCommit) {
  Tree(100'000'000);
  CapsPatch patch;
  patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
  patch.runaway_error_streak = Patch<int64_t>::Set(3);
  ASSERT_TRUE(Caps("team", patch).ok());
  ASSERT_TRUE(Hold("r1", "agent", 10'000).ok());
  ASSERT_TRUE(Spend("e0", "agent", 1'000, Outcome::kError).ok());
  ASSERT_TRUE(Spend("e1", "agent", 1'000, Outcome::kError).ok());
  events_.clear();
  Reply third = Spend("e2", "agent", 1'000, Outcome::kError);
  ASSERT_TRUE(third.ok()) << "recorded truth is never refused for it";
  // One command, one commit: the spend, the alerts and the freeze.
  EXPECT_EQ(EventsOf("UsageCharged"), 1u);
  EXPECT_EQ(EventsOf("AccountFrozen"), 1u);
  EXPECT_GE(EventsOf("AlertRaised"), 1u);
  const event::AccountFrozen* found = nullptr;
  for (const Event& e : events_) {
    if (const auto* f = std::get_if<event::AccountFrozen>(&e.body)) found = f;
  }
  ASSERT_NE(found, nullptr);
  const event::AccountFrozen& frozen = *found;
  EXPECT_EQ(frozen.account, "agent") << "the deepest account that revealed it";
  EXPECT_NE(frozen.reason.find("3 consecutive error"), std::string::npos) << frozen.reason;
  EXPECT_TRUE(Frozen("agent"));
  EXPECT_FALSE(Frozen("team")) << "the spender is stopped; its team keeps working";
  EXPECT_EQ(Hold("r2", "agent", 1'000).code, ResultCode::kAccountFrozen);
  EXPECT_EQ(Spend("e3", "agent", 1'000).code, ResultCode::kAccountFrozen);
  EXPECT_TRUE(SettleWith("r1", 5'000).ok()) << "a call already made still records its truth";
  ASSERT_TRUE(Run(cmd::Unfreeze{"agent"}).ok());
  EXPECT_TRUE(Hold("r3", "agent", 1'000).ok()) << "until an admin unfreezes it";
}

TEST_F(Runaway, TheBurnRuleComparesFiveMinutesWithTheHourBefore) {
  Tree(1'000'000'000);
  CapsPatch off;
  off.runaway_error_streak = Patch<int64_t>::Set(0);
  ASSERT_TRUE(Caps("team", off).ok());
  // A new agent spending fast is not a runaway: it has no hour before.
  ASSERT_TRUE(Spend("burst", "agent", 50'000'000).ok());
  EXPECT_TRUE(AlertsOf("agent", AlertType::kRunaway).empty());
  Advance(2 * 3600);
  for (int minute = 0; minute < 70; ++minute) {  // a steady 6 USD/h
    ASSERT_TRUE(Spend("m" + std::to_string(minute), "agent", 100'000).ok());
    NextMinute(1);
  }
  // The ramp-up from idle to 6 USD/h is itself a runaway by the rule (5
  // minutes at 6 USD/h against an hour that averaged 1 USD/h); that episode
  // is over once the hour before catches up.
  size_t before = AlertsOf("agent", AlertType::kRunaway).size();
  EXPECT_EQ(before, 1u);
  ASSERT_TRUE(Spend("spike", "agent", 3'000'000).ok());  // 5 minutes at 42 USD/h > 3 x 6
  auto alerts = AlertsOf("agent", AlertType::kRunaway);
  ASSERT_EQ(alerts.size(), before + 1);
  EXPECT_GT(alerts.back().value_micros, 3 * 6'000'000);
  EXPECT_NE(alerts.back().message.find("hour before"), std::string::npos) << alerts.back().message;
}

TEST_F(Runaway, TheMinimumRateOfTheHourBeforeArmsTheBurnRule) {
  Tree(1'000'000'000);
  CapsPatch patch;
  patch.runaway_error_streak = Patch<int64_t>::Set(0);
  patch.runaway_min_micros_per_hour = Patch<int64_t>::Set(10'000'000);  // 10 USD/h
  ASSERT_TRUE(Caps("org", patch).ok());
  for (int minute = 0; minute < 70; ++minute) {  // 6 USD/h: below the minimum
    ASSERT_TRUE(Spend("m" + std::to_string(minute), "agent", 100'000).ok());
    NextMinute(1);
  }
  ASSERT_TRUE(Spend("spike", "agent", 3'000'000).ok());
  EXPECT_TRUE(AlertsOf("agent", AlertType::kRunaway).empty());
}

TEST_F(RateCaps, CallsPerMinuteRefuseWithTheSecondsToTheNextMinute) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::max_calls_per_minute, 2)).ok());
  NextMinute(50);
  ASSERT_TRUE(Hold("r1", "agent", 1'000).ok());
  ASSERT_TRUE(Hold("r2", "agent", 1'000).ok());
  Reply refused = Hold("r3", "agent", 1'000);
  EXPECT_EQ(refused.code, ResultCode::kRateLimited);
  EXPECT_EQ(refused.account, "team");
  EXPECT_EQ(refused.retry_after_s, 10);
  EXPECT_TRUE(Spend("u1", "agent", 1'000).ok()) << "usage is counted, never refused for rate";
  Advance(9);
  EXPECT_EQ(Hold("r3", "agent", 1'000).code, ResultCode::kRateLimited) << "second 59";
  Advance(1);
  EXPECT_TRUE(Hold("r3", "agent", 1'000).ok()) << "a new minute";
}

TEST_F(RateCaps, TokensCountEstimatesUntilTheSettleRecordsTheRealTokens) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::max_tokens_per_minute, 1'000)).ok());
  NextMinute(1);
  ASSERT_TRUE(ReserveTokens("r1", "agent", 600, 300).ok());  // 900 estimated
  EXPECT_EQ(ReserveTokens("r2", "agent", 100, 100).code, ResultCode::kRateLimited);
  cmd::Settle settle;
  settle.reservation_id = "r1";
  settle.usage = UsageTokens{"gpt-4o-mini", TokenCounts{500, 100, 0, 0, 0}};
  ASSERT_TRUE(Run(settle).ok());  // 600 real tokens replace the 900
  EXPECT_TRUE(ReserveTokens("r2", "agent", 100, 100).ok());
  EXPECT_TRUE(Hold("r3", "agent", 5'000).ok()) << "a reservation by amount counts no tokens";
  EXPECT_EQ(Run(query::GetAccount{"agent"}).code, ResultCode::kOk);
}

TEST_F(RateCaps, RefusalsAreCountedAndChangeNothing) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("agent", PatchOf(&CapsPatch::max_calls_per_minute, 0)).ok());
  size_t before = events_.size();
  EXPECT_EQ(Hold("r1", "agent", 1'000).code, ResultCode::kRateLimited);
  EXPECT_EQ(events_.size(), before);
  EXPECT_EQ(Balance("org").held_micros, 0);
  auto counts = machine_.TakeRejectionCounts(INT64_MAX);
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->counts[0].code, static_cast<uint32_t>(ResultCode::kRateLimited));
}

TEST_F(Degrade, AdvisesPastTheShareOfACapWithoutRefusing) {
  Tree(100'000'000);
  CapsPatch patch;
  patch.daily_limit_micros = Patch<int64_t>::Set(10'000'000);
  patch.degrade_at_pct = Patch<int64_t>::Set(80);
  ASSERT_TRUE(Caps("team", patch).ok());
  Reply first = Hold("r1", "agent", 5'000'000);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(std::get<ReserveResult>(first.body).advice_account.empty());
  Reply second = Hold("r2", "agent", 3'500'000);
  ASSERT_TRUE(second.ok()) << "advice, not a refusal";
  EXPECT_EQ(std::get<ReserveResult>(second.body).advice_account, "team");
  Reply repeat = Hold("r2", "agent", 3'500'000);
  EXPECT_EQ(std::get<ReserveResult>(repeat.body).advice_account, "team") << "a retry answers the same";
}

TEST_F(Degrade, ASettingWithoutACapIsRefused) {
  Tree(0);
  EXPECT_EQ(Caps("team", PatchOf(&CapsPatch::degrade_at_pct, 80)).code,
            ResultCode::kInvalidArgument);
  EXPECT_EQ(Caps("team", PatchOf(&CapsPatch::degrade_at_pct, 0)).code,
            ResultCode::kInvalidArgument);
}

TEST_F(Transfers, MoveFundsAtomicallyAndIdempotently) {
  Tree(100'000'000);
  ASSERT_TRUE(Open("worker", "team", true).ok());
  Reply moved = Run(cmd::Transfer{"t1", "org", "worker", 30'000'000, "fund the worker"});
  ASSERT_TRUE(moved.ok()) << moved.message;
  EXPECT_TRUE(moved.created);
  EXPECT_EQ(std::get<TransferResult>(moved.body).from_balance_micros, 70'000'000);
  EXPECT_EQ(std::get<TransferResult>(moved.body).to_balance_micros, 30'000'000);
  Reply again = Run(cmd::Transfer{"t1", "org", "worker", 30'000'000, "fund the worker"});
  EXPECT_TRUE(again.ok());
  EXPECT_FALSE(again.created);
  EXPECT_EQ(std::get<TransferResult>(again.body).from_balance_micros, 70'000'000);
  EXPECT_EQ(Run(cmd::Transfer{"t1", "org", "worker", 1, ""}).code,
            ResultCode::kIdempotencyConflict);
  const Account& worker = state_.account(state_.FindAccount("worker"));
  EXPECT_EQ(worker.transferred_in_micros, 30'000'000);
  EXPECT_EQ(state_.account(state_.FindAccount("org")).transferred_out_micros, 30'000'000);
}

TEST_F(Transfers, RefusedWhenTheSourcesAvailableFundsAreShort) {
  Tree(100'000'000);
  ASSERT_TRUE(Open("worker", "team", true).ok());
  ASSERT_TRUE(Hold("r1", "agent", 60'000'000).ok());
  size_t before = events_.size();
  Reply refused = Run(cmd::Transfer{"t1", "org", "worker", 50'000'000, ""});
  EXPECT_EQ(refused.code, ResultCode::kInsufficientFunds);
  EXPECT_EQ(refused.available_micros, 40'000'000);
  EXPECT_EQ(events_.size(), before);
  EXPECT_EQ(Run(cmd::Transfer{"t2", "org", "team", 1, ""}).code, ResultCode::kInvalidArgument)
      << "the team has no wallet";
  EXPECT_EQ(Run(cmd::Transfer{"t3", "org", "org", 1, ""}).code, ResultCode::kInvalidArgument);
}

TEST_F(History, OccurredAtCountsInItsOwnDayAndLeavesTodayAlone) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 1'000'000)).ok());
  cmd::RecordUsage past;
  past.usage_id = "import-1";
  past.account = "agent";
  past.amount_micros = 5'000'000;
  past.occurred_at_us = now_us_ - 3 * kMicrosPerDay;
  Reply imported = Run(past);
  ASSERT_TRUE(imported.ok()) << imported.message;
  EXPECT_EQ(Balance("team").spent_today_micros, 0);
  EXPECT_EQ(Balance("team").spent_total_micros, 5'000'000);
  EXPECT_TRUE(Hold("r1", "agent", 1'000'000).ok()) << "today's daily cap is untouched";
  EXPECT_TRUE(AlertsOf("team", AlertType::kBudgetThreshold).empty())
      << "a closed window's thresholds are not re-opened";
  int64_t day = DayOf(past.occurred_at_us);
  const SpendReport& report =
      Answer<SpendReport>(query::GetSpend{"org", day, day, GroupBy::kNone, ""});
  EXPECT_EQ(report.total_micros, 5'000'000);
  EXPECT_EQ(Run(past).code, ResultCode::kOk) << "an identical import answers again";
  past.occurred_at_us = now_us_ - 36 * kMicrosPerDay;
  past.usage_id = "import-2";
  EXPECT_EQ(Run(past).code, ResultCode::kInvalidArgument);
  past.occurred_at_us = now_us_ + kMicrosPerSecond;
  EXPECT_EQ(Run(past).code, ResultCode::kInvalidArgument);
  // A retry of the first import once its day has left the 35-day window:
  // still its original answer (purser-sim found it refused as too old).
  past.usage_id = "import-1";
  past.occurred_at_us = now_us_ - 3 * kMicrosPerDay;
  now_us_ += 33 * kMicrosPerDay;
  Reply late = Run(past);
  ASSERT_EQ(late.code, ResultCode::kOk) << late.message;
  EXPECT_EQ(std::get<UsageResult>(late.body).seq, std::get<UsageResult>(imported.body).seq);
}

// The overview lists the first 1,000 frozen accounts and counts them all,
// so the dashboard's tile is the true count and its list says how many more.
TEST_F(Analytics, TheOverviewCountsEveryFrozenAccountPastTheOnesItLists) {
  Tree(1'000'000);
  for (int i = 0; i < 1'003; ++i) {
    const std::string id = "frozen-" + std::to_string(i);
    ASSERT_TRUE(Open(id, "team").ok());
    ASSERT_TRUE(Run(cmd::Freeze{id, "incident"}).ok());
  }
  query::GetOverview q;
  q.account = "org";
  OverviewView view = Answer<OverviewView>(q);
  EXPECT_EQ(view.frozen.size(), 1'000u);
  EXPECT_EQ(view.frozen_count, 1'003);
  ASSERT_TRUE(Run(cmd::Unfreeze{"frozen-0"}).ok());
  EXPECT_EQ(Answer<OverviewView>(q).frozen_count, 1'002);
  q.account = "agent";
  EXPECT_EQ(Answer<OverviewView>(q).frozen_count, 0) << "only the subtree";
}

TEST_F(Analytics, TrendsEfficiencyLeaderboardAndStats) {
  Tree(100'000'000);
  ASSERT_TRUE(Open("bot2", "team").ok());
  cmd::RecordUsage c;
  c.usage_id = "u1";
  c.account = "agent";
  c.usage = UsageTokens{"claude-sonnet-4", TokenCounts{10'000, 2'000, 50'000, 4'000, 0}};
  c.action = "plan";
  c.waste = "retries";
  ASSERT_TRUE(Run(c).ok());
  ASSERT_TRUE(Spend("u2", "bot2", 1'000'000).ok());
  const TrendsView trends = Answer<TrendsView>(query::GetTrends{"org", 7});
  ASSERT_EQ(trends.days.size(), 7u);
  EXPECT_EQ(trends.days.back().day, DayOf(now_us_));
  EXPECT_EQ(trends.days.back().cost_micros, 1'090'000);
  EXPECT_EQ(trends.days.back().calls, 2);
  EXPECT_EQ(trends.days.back().by_model[0].first, "claude-sonnet-4");
  EXPECT_EQ(trends.days.back().by_waste[0].first, "retries");
  EXPECT_EQ(trends.days.front().cost_micros, 0);

  const EfficiencyView efficiency = Answer<EfficiencyView>(query::GetEfficiency{"agent", DayOf(now_us_), DayOf(now_us_)});
  EXPECT_EQ(efficiency.total.score_bp, 0) << "all of the agent's spend was waste";
  ASSERT_EQ(efficiency.by_model.size(), 1u);
  // 50,000 cached tokens x (3.00 - 0.30) USD/M = 0.135 USD saved; 4,000 cache
  // writes x (3.75 - 3.00) USD/M = 0.003 USD extra.
  EXPECT_EQ(efficiency.by_model[0].cache_savings_micros, 135'000);
  EXPECT_EQ(efficiency.by_model[0].cache_write_extra_micros, 3'000);
  EXPECT_EQ(efficiency.by_model[0].cache_net_savings_micros, 132'000);
  EXPECT_EQ(efficiency.by_model[0].cache_hit_rate_bp, 7'812);  // 50,000 / 64,000
  bool waste_rule = false;
  for (const Recommendation& r : efficiency.recommendations) waste_rule |= r.rule == "waste_high";
  EXPECT_TRUE(waste_rule);

  const LeaderboardView spend = Answer<LeaderboardView>(query::GetLeaderboard{"org", LeaderboardMetric::kSpend, 7, 10});
  ASSERT_EQ(spend.entries.size(), 2u);
  EXPECT_EQ(spend.entries[0].account, "bot2");
  EXPECT_EQ(spend.entries[1].account, "agent");
  const LeaderboardView efficient = Answer<LeaderboardView>(query::GetLeaderboard{"org", LeaderboardMetric::kEfficiency, 7, 10});
  EXPECT_EQ(efficient.entries[0].account, "agent") << "the least efficient first";

  const StatsView stats = Answer<StatsView>(query::GetStats{});
  EXPECT_EQ(stats.accounts, 4);
  EXPECT_EQ(stats.active_accounts_today, 2);
  EXPECT_EQ(stats.calls_today, 2);
  EXPECT_EQ(stats.spend_today_micros, 1'090'000);
}

// Trends and the leaderboard keep their sums of past days between reads;
// what changes the past (a new day, imported history, a refund of a past
// charge) shows in the next read.
TEST_F(Analytics, TrendsAndLeaderboardFollowTheDayAndChangesOfThePast) {
  Tree(100'000'000);
  auto trends = [&] { return Answer<TrendsView>(query::GetTrends{"org", 7}).days; };
  auto top = [&] {
    return Answer<LeaderboardView>(query::GetLeaderboard{"org", LeaderboardMetric::kSpend, 7, 10})
        .entries.at(0)
        .value;
  };
  ASSERT_TRUE(Spend("u1", "agent", 1'000'000).ok());
  EXPECT_EQ(trends()[6].cost_micros, 1'000'000);
  EXPECT_EQ(top(), 1'000'000);
  Advance(24 * 3600);
  ASSERT_TRUE(Spend("u2", "agent", 500'000).ok());
  EXPECT_EQ(trends()[6].cost_micros, 500'000);
  EXPECT_EQ(trends()[5].cost_micros, 1'000'000) << "yesterday, now a past day";
  EXPECT_EQ(top(), 1'500'000);
  cmd::RecordUsage past;
  past.usage_id = "import-1";
  past.account = "agent";
  past.amount_micros = 2'000'000;
  past.occurred_at_us = now_us_ - 3 * kMicrosPerDay;
  ASSERT_TRUE(Run(past).ok());
  EXPECT_EQ(trends()[3].cost_micros, 2'000'000);
  EXPECT_EQ(top(), 3'500'000);
  ASSERT_TRUE(Run(cmd::Refund{"refund-1", ChargeKind::kUsage, "u1", 400'000, "bad answer"}).ok());
  EXPECT_EQ(trends()[5].cost_micros, 600'000);
  EXPECT_EQ(top(), 3'100'000);
}

TEST_F(Contract, ARepeatedCreateAnswersTheOriginalBody) {
  Tree(0);
  Reply first = Open("late", "team");
  ASSERT_TRUE(first.created);
  ASSERT_TRUE(Deposit("org", 7'000'000).ok());
  Reply again = Open("late", "team");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.created);
  EXPECT_EQ(std::get<AccountView>(again.body).balance.balance_micros, 0)
      << "the balance as the create answered it, not as it is now";
  EXPECT_EQ(std::get<AccountView>(again.body).balance.headroom_micros,
            std::get<AccountView>(first.body).balance.headroom_micros);
}

TEST_F(Contract, LoweringACapBelowSpendRaisesItsAlertsAtOnce) {
  Tree(100'000'000);
  ASSERT_TRUE(Spend("u1", "agent", 6'000'000).ok());
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::daily_limit_micros, 5'000'000)).ok());
  auto alerts = AlertsOf("team", AlertType::kBudgetThreshold);
  EXPECT_EQ(alerts.size(), 4u) << "50, 75, 90 and 100% at the cap change";
}

TEST_F(Contract, AnAggregatedOverrunAlertStatesItsCurrentTotals) {
  Tree(100'000'000);
  ASSERT_TRUE(Hold("r1", "agent", 1'000'000).ok());
  ASSERT_TRUE(SettleWith("r1", 3'000'000).ok());  // 2 USD over
  ASSERT_TRUE(Hold("r2", "agent", 1'000'000).ok());
  ASSERT_TRUE(SettleWith("r2", 1'200'000).ok());  // 0.20 USD over
  auto alerts = AlertsOf("agent", AlertType::kOverrun);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].count, 2);
  EXPECT_EQ(alerts[0].value_micros, 2'200'000);
  EXPECT_NE(alerts[0].message.find("2.2 USD"), std::string::npos) << alerts[0].message;
  EXPECT_NE(alerts[0].message.find("2 overruns"), std::string::npos) << alerts[0].message;
}

TEST_F(Contract, AnUnchangedPriceAnswersTheModelsOwnVersion) {
  const auto& table = DefaultPriceTable();
  uint64_t model_version = 0;
  for (const auto& [model, versions] : state_.prices) {
    if (model == table.front().model) model_version = versions.back().version;
  }
  ASSERT_TRUE(Run(cmd::SetPrice{"new-model", PriceRates{1, 2, -1, -1, -1}}).ok());
  Reply same = Run(cmd::SetPrice{table.front().model, table.front().rates});
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same.created);
  EXPECT_EQ(std::get<PriceList>(same.body).prices[0].version, model_version);
}

TEST_F(Contract, ADatedSnapshotNameCostsWhatItsModelCosts) {
  Tree(100'000'000);
  cmd::RecordUsage c;
  c.usage_id = "u1";
  c.account = "agent";
  c.usage = UsageTokens{"gpt-4o-2024-08-06", TokenCounts{1'000'000, 0, 0, 0, 0}};
  Reply reply = Run(c);
  ASSERT_TRUE(reply.ok()) << reply.message;
  EXPECT_EQ(std::get<UsageResult>(reply.body).cost_micros, 2'500'000);
  c.usage_id = "u2";
  c.usage->model = "claude-sonnet-4-20250514";
  ASSERT_TRUE(Run(c).ok());
  c.usage_id = "u3";
  c.usage->model = "nobody-2024-08-06";
  EXPECT_EQ(Run(c).code, ResultCode::kInvalidArgument);
}

TEST_F(Contract, AnExtendChecksItsOwnValuesBeforeTheStateItMeets) {
  Tree(100'000'000);
  ASSERT_TRUE(Caps("team", PatchOf(&CapsPatch::reservation_ttl_s, 600)).ok());
  ASSERT_TRUE(Hold("r1", "agent", 1'000).ok());
  ASSERT_TRUE(SettleWith("r1", 1'000).ok());
  EXPECT_EQ(Run(cmd::Extend{"r1", 3600}).code, ResultCode::kInvalidArgument);
  EXPECT_EQ(Run(cmd::Extend{"r1", 60}).code, ResultCode::kReservationNotPending);
}

TEST_F(Contract, TagKeysAreAddedToARootAndNeverRemoved) {
  ASSERT_TRUE(Run(cmd::OpenAccount{"org", "", AccountKind::kOrg, "org", true, {"env"}}).ok());
  ASSERT_TRUE(Open("agent", "org").ok());
  Reply added = Run(cmd::IndexTagKeys{"org", {"env", "customer"}});
  ASSERT_TRUE(added.ok()) << added.message;
  EXPECT_EQ(std::get<TagKeysView>(added.body).keys, (std::vector<std::string>{"env", "customer"}));
  EXPECT_EQ(Run(cmd::IndexTagKeys{"agent", {"x"}}).code, ResultCode::kInvalidArgument);
  ASSERT_TRUE(Deposit("org", 10'000'000).ok());
  cmd::RecordUsage c;
  c.usage_id = "u1";
  c.account = "agent";
  c.amount_micros = 1'000;
  c.tags = {{"customer", "acme"}};
  ASSERT_TRUE(Run(c).ok());
  int64_t day = DayOf(now_us_);
  const SpendReport report = Answer<SpendReport>(query::GetSpend{"org", day, day, GroupBy::kTag, "customer"});
  ASSERT_FALSE(report.groups.empty());
  EXPECT_EQ(report.groups[0].key, "acme");
}

TEST_F(Determinism, ARebuildOfTheEventsReachesTheSameReactionsAndDigest) {
  Tree(1'000'000'000);
  ASSERT_TRUE(Open("worker", "team", true).ok());
  CapsPatch patch;
  patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
  patch.max_calls_per_minute = Patch<int64_t>::Set(50);
  ASSERT_TRUE(Caps("team", patch).ok());
  ASSERT_TRUE(Run(cmd::SetBaseline{"team", 1'000'000, 20'000}).ok());
  ASSERT_TRUE(Run(cmd::Transfer{"t1", "org", "worker", 5'000'000, ""}).ok());
  for (int i = 0; i < 200; ++i) {
    Reply reply = Hold("r" + std::to_string(i), i % 3 == 0 ? "worker" : "agent", 1'000);
    if (reply.ok()) {
      cmd::Settle settle;
      settle.reservation_id = "r" + std::to_string(i);
      settle.amount_micros = 2'000 + i;
      settle.outcome = i % 7 < 5 ? Outcome::kError : Outcome::kSuccess;
      Run(settle);
    }
    Advance(7);
  }
  EXPECT_GT(EventsOf("AlertRaised"), 0u);
  State rebuilt;
  for (const Event& event : events_) rebuilt.Apply(event);
  EXPECT_EQ(HexEncode(StateDigest(rebuilt)), HexEncode(StateDigest(state_)));
  EXPECT_EQ(rebuilt.runs.size(), state_.runs.size());
  EXPECT_EQ(rebuilt.anomalous_accounts, state_.anomalous_accounts);
  // The checkpoint form loads to the same state too.
  State loaded;
  ASSERT_TRUE(DeserializeState(SerializeState(state_, SnapshotOptions{}), &loaded).ok());
  EXPECT_EQ(HexEncode(StateDigest(loaded)), HexEncode(StateDigest(state_)));
  // A damaged checkpoint (of version 2, which wrote them as text) whose
  // threshold bits are not 0s and 1s is refused, not thrown (std::bitset's
  // invalid_argument ended the process; found by purser_fuzz_decoders).
  SnapshotOptions version_two;
  version_two.version = 2;
  std::string bytes = SerializeState(state_, version_two);
  const size_t bits = bytes.find(std::string(128, '0'));
  ASSERT_NE(bits, std::string::npos);
  bytes[bits + 5] = 'x';
  State damaged;
  EXPECT_FALSE(DeserializeState(bytes, &damaged).ok());
}

}  // namespace
}  // namespace purser::testing
