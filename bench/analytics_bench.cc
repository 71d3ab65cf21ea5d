// Read-time analytics over 10,000 agents (issue 7): burn rates, active runs,
// trends, the leaderboard and stats on the pure machine, with 30 days of
// daily spend on every agent and a busy last 24 hours (a usage every few
// seconds, 500 runs). Reports the mean and, per benchmark, the p50 and p99
// of single reads. Target: p99 <= 10 ms. Trends and the leaderboard keep
// their sums of past days between reads; the Cold variants read as if every
// read followed a change of the past.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ledger/machine/machine.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/state.h"

namespace purser {
namespace {

constexpr int kAgents = 10'000;
constexpr int64_t kNowUs = 1'795'428'000'000'000;  // 2026-11-23T10:00:00Z
constexpr int64_t kMinuteUs = 60'000'000;
constexpr int64_t kDayUs = 24 * 60 * kMinuteUs;

struct World {
  State state;
  Machine machine{&state};
  std::vector<Event> events;
  uint64_t usages = 0;

  void Run(RequestBody body, int64_t now_us) {
    Reply reply = machine.Execute(Request{Credentials::System(), std::move(body)}, now_us, &events);
    if (!reply.ok()) {
      std::fprintf(stderr, "setup refused: %s\n", reply.message.c_str());
      std::abort();
    }
    if (events.size() > 4096) events.clear();
  }

  void Usage(int agent, int64_t amount, int64_t now_us, int64_t occurred_at_us, const std::string& run) {
    cmd::RecordUsage c;
    c.usage_id = "u" + std::to_string(usages++);
    c.account = "agent-" + std::to_string(agent);
    c.amount_micros = amount;
    c.action = "search";
    c.outcome = Outcome::kSuccess;
    c.run_id = run;
    c.occurred_at_us = occurred_at_us;
    Run(std::move(c), now_us);
  }

  World() {
    const int64_t start = kNowUs - kDayUs;
    for (const ModelPrice& price : DefaultPriceTable()) Run(cmd::SetPrice{price.model, price.rates}, start);
    Run(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}}, start);
    for (int i = 0; i < 10; ++i) Run(cmd::Deposit{"d" + std::to_string(i), "org", 1'000'000'000'000, ""}, start);
    for (int t = 0; t < kAgents / 100; ++t) {
      Run(cmd::OpenAccount{"team-" + std::to_string(t), "org", AccountKind::kTeam, "", false, {}}, start);
    }
    for (int a = 0; a < kAgents; ++a) {
      Run(cmd::OpenAccount{"agent-" + std::to_string(a), "team-" + std::to_string(a / 100),
                           AccountKind::kAgent, "", false, {}},
          start);
    }
    // 29 days of history, imported: one usage per agent per day.
    for (int day = 29; day >= 1; --day) {
      for (int a = 0; a < kAgents; ++a) {
        Usage(a, 1'000 + a % 977, start, kNowUs - day * kDayUs, "");
      }
    }
    // The last 24 hours live: 30,000 usages, about one every 3 s, over 500 runs.
    for (int i = 0; i < 30'000; ++i) {
      int64_t now = start + static_cast<int64_t>(i) * (kDayUs / 30'000);
      Usage((i * 7919) % kAgents, 2'000 + i % 1'000, now, 0, "run-" + std::to_string(i % 500));
    }
    events.clear();
  }
};

World& TheWorld() {
  static World world;
  return world;
}

// Times each read; mean by Google Benchmark, p50/p99 as counters (µs).
// `cold`: every read finds the caches of past days invalid (as after an
// import or a refund of a past charge, or the first read of a day).
void Measure(benchmark::State& bench, RequestBody body, bool cold = false) {
  World& world = TheWorld();
  Request request{Credentials::System(), std::move(body)};
  std::vector<double> us;
  for (auto _ : bench) {
    if (cold) ++world.state.past_rows_version;
    auto t0 = std::chrono::steady_clock::now();
    Reply reply = world.machine.Execute(request, kNowUs, &world.events);
    auto t1 = std::chrono::steady_clock::now();
    if (!reply.ok()) bench.SkipWithError(reply.message.c_str());
    benchmark::DoNotOptimize(reply);
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  if (!us.empty()) {
    bench.counters["p50_us"] = us[us.size() / 2];
    bench.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  }
}

void BM_BurnRateOrgHour(benchmark::State& s) { Measure(s, query::GetBurnRate{"org", 3600}); }
void BM_BurnRateOrgDay(benchmark::State& s) { Measure(s, query::GetBurnRate{"org", 86400}); }
void BM_BurnRateAgentHour(benchmark::State& s) { Measure(s, query::GetBurnRate{"agent-42", 3600}); }
void BM_ActiveRunsHour(benchmark::State& s) { Measure(s, query::ListActiveRuns{"", 3600, 100}); }
void BM_TrendsOrg30Days(benchmark::State& s) { Measure(s, query::GetTrends{"org", 30}); }
void BM_TrendsTeam90Days(benchmark::State& s) { Measure(s, query::GetTrends{"team-7", 90}); }
void BM_LeaderboardSpend7Days(benchmark::State& s) {
  Measure(s, query::GetLeaderboard{"", LeaderboardMetric::kSpend, 7, 100});
}
void BM_LeaderboardEfficiency30Days(benchmark::State& s) {
  Measure(s, query::GetLeaderboard{"", LeaderboardMetric::kEfficiency, 30, 100});
}
void BM_Stats(benchmark::State& s) { Measure(s, query::GetStats{}); }
void BM_TrendsOrg30DaysCold(benchmark::State& s) { Measure(s, query::GetTrends{"org", 30}, true); }
void BM_LeaderboardSpend7DaysCold(benchmark::State& s) {
  Measure(s, query::GetLeaderboard{"", LeaderboardMetric::kSpend, 7, 100}, true);
}

BENCHMARK(BM_BurnRateOrgHour)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BurnRateOrgDay)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BurnRateAgentHour)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActiveRunsHour)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TrendsOrg30Days)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TrendsTeam90Days)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LeaderboardSpend7Days)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LeaderboardEfficiency30Days)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Stats)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TrendsOrg30DaysCold)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LeaderboardSpend7DaysCold)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace purser

BENCHMARK_MAIN();
