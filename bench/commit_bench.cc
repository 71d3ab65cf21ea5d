// The pure commit path (no I/O): one reserve or settle through
// Machine::Execute on a realistic tree (org -> 100 teams -> 10,000 agents),
// with model, action and two tags on every settle. Target: >= 1,000,000
// commits per second on one core.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ledger/engine/cold_manager.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/snapshot.h"
#include "ledger/machine/machine.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/state.h"

namespace purser {
namespace {

constexpr int kAgents = 10'000;
constexpr int64_t kNowUs = 1'795'428'000'000'000;

struct World {
  State state;
  Machine machine{&state};
  std::vector<Event> events;
  std::vector<std::string> agents;

  World() {
    auto run = [&](RequestBody body) {
      Reply reply = machine.Execute(Request{Credentials::System(), std::move(body)}, kNowUs, &events);
      if (!reply.ok()) std::abort();
    };
    for (const ModelPrice& price : DefaultPriceTable()) run(cmd::SetPrice{price.model, price.rates});
    run(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {"env", "feature"}});
    for (int i = 0; i < 10; ++i) run(cmd::Deposit{"d" + std::to_string(i), "org", 1'000'000'000'000, ""});
    for (int t = 0; t < kAgents / 100; ++t) {
      std::string team = "team-" + std::to_string(t);
      run(cmd::OpenAccount{team, "org", AccountKind::kTeam, "", false, {}});
      CapsPatch caps;
      caps.daily_limit_micros = Patch<int64_t>::Set(1'000'000'000'000);
      run(cmd::SetCaps{team, caps});
    }
    for (int a = 0; a < kAgents; ++a) {
      agents.push_back("agent-" + std::to_string(a));
      run(cmd::OpenAccount{agents.back(), "team-" + std::to_string(a / 100), AccountKind::kAgent, "",
                           false, {}});
    }
    events.clear();
  }

  Request ReserveRequest(uint64_t n) {
    cmd::Reserve c;
    c.reservation_id = "r" + std::to_string(n);
    c.account = agents[n % kAgents];
    c.amount_micros = 10'000;
    c.run_id = "run-1";
    c.action = "search";
    c.tags = {{"env", "prod"}, {"feature", "chat"}};
    return Request{Credentials::System(), std::move(c)};
  }

  Request SettleRequest(uint64_t n) {
    cmd::Settle c;
    c.reservation_id = "r" + std::to_string(n);
    c.usage = UsageTokens{"gpt-4o", TokenCounts{500, 200, 0, 0, 0}};
    c.outcome = Outcome::kSuccess;
    return Request{Credentials::System(), std::move(c)};
  }
};

// The requests are built before the timed loop, so that only commit is
// timed (PauseTiming would cost more than a commit).
std::vector<Request> Build(World& world, uint64_t count, bool settle) {
  std::vector<Request> requests;
  requests.reserve(count);
  for (uint64_t n = 0; n < count; ++n) {
    requests.push_back(settle ? world.SettleRequest(n) : world.ReserveRequest(n));
  }
  return requests;
}

constexpr uint64_t kOps = 1'000'000;

void BM_CommitReserve(benchmark::State& bench) {
  World world;
  std::vector<Request> requests = Build(world, kOps, false);
  uint64_t n = 0;
  for (auto _ : bench) {
    Reply reply = world.machine.Execute(requests[n++], kNowUs, &world.events);
    benchmark::DoNotOptimize(reply);
    if (world.events.size() >= 4096) world.events.clear();
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_CommitReserve)->Iterations(kOps);

void BM_CommitSettle(benchmark::State& bench) {
  World world;
  for (const Request& request : Build(world, kOps, false)) {
    world.machine.Execute(request, kNowUs, &world.events);
    if (world.events.size() >= 4096) world.events.clear();
  }
  std::vector<Request> requests = Build(world, kOps, true);
  uint64_t n = 0;
  for (auto _ : bench) {
    Reply reply = world.machine.Execute(requests[n++], kNowUs, &world.events);
    benchmark::DoNotOptimize(reply);
    if (world.events.size() >= 4096) world.events.clear();
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_CommitSettle)->Iterations(kOps);

// Reserve and settle including building the requests, untimed nothing: the
// whole per-command cost a sequencer pays before encoding.
void BM_CommitPairWithRequests(benchmark::State& bench) {
  World world;
  uint64_t n = 0;
  for (auto _ : bench) {
    world.machine.Execute(world.ReserveRequest(n), kNowUs, &world.events);
    world.machine.Execute(world.SettleRequest(n), kNowUs, &world.events);
    ++n;
    if (world.events.size() > 4096) world.events.clear();
  }
  bench.SetItemsProcessed(2 * bench.iterations());
}
BENCHMARK(BM_CommitPairWithRequests)->Iterations(500'000);

// The same pairs as the engine's committer runs them: in groups of 256
// pairs, each group's finished reservations encoded into cold records
// (ColdStoreManager::Retire) and dropped from memory once the group before
// last is durable (Release). What it leaves out: the prefetch's reads, the
// log writer's encoding and the sync. Roughly the engine: a reserve and its
// settle share a group here, where the service's settle usually comes in a
// later one, and the engine's release lag follows the log writer's progress
// instead of one group. Unlike the pair above, state stays the
// size of the records in flight, as in the service, so memory is reused
// instead of first touched.
void BM_CommitPairAsTheEngineDoes(benchmark::State& bench) {
  World world;
  ColdStoreManager cold(nullptr, &world.state);  // Retire and Release do no I/O
  constexpr uint64_t kPairsPerGroup = 256;
  uint64_t n = 0;
  uint64_t pushed = 0;
  ColdWrites writes;
  size_t cold_bytes = 0;
  for (auto _ : bench) {
    if (n % kPairsPerGroup == 0) cold.Release(pushed > 0 ? pushed - 1 : 0);
    world.machine.Execute(world.ReserveRequest(n), kNowUs, &world.events);
    world.machine.Execute(world.SettleRequest(n), kNowUs, &world.events);
    ++n;
    if (n % kPairsPerGroup == 0) {
      cold.Retire(world.events, &writes);
      cold.Pushed(++pushed);
      for (const auto& [key, value] : writes.records) cold_bytes += key.size() + value.size();
      writes = ColdWrites{};
      world.events.clear();
    }
  }
  bench.SetItemsProcessed(2 * bench.iterations());
  bench.counters["reservations_in_memory"] = static_cast<double>(world.state.reservations.size());
  bench.counters["cold_bytes_per_pair"] = static_cast<double>(cold_bytes) / static_cast<double>(n);
}
BENCHMARK(BM_CommitPairAsTheEngineDoes)->Iterations(500'000);

// Encoding an event into its record: capnp packing, XXH3 and the SHA-256 link.
void BM_EncodeSettledRecord(benchmark::State& bench) {
  World world;
  world.machine.Execute(world.ReserveRequest(1), kNowUs, &world.events);
  world.machine.Execute(world.SettleRequest(1), kNowUs, &world.events);
  const Event& settled = world.events.back();
  EventEncoder encoder;
  std::string payload;
  Sha256Digest link{};
  for (auto _ : bench) {
    encoder.Encode(settled, &payload);
    std::string record = EncodeRecord(settled.sequence, link, payload, &link);
    benchmark::DoNotOptimize(record);
  }
  bench.SetItemsProcessed(bench.iterations());
  bench.counters["payload_bytes"] = static_cast<double>(payload.size());
}
BENCHMARK(BM_EncodeSettledRecord);

void BM_EncodeSettledPayloadOnly(benchmark::State& bench) {
  World world;
  world.machine.Execute(world.ReserveRequest(1), kNowUs, &world.events);
  world.machine.Execute(world.SettleRequest(1), kNowUs, &world.events);
  const Event& settled = world.events.back();
  EventEncoder encoder;
  std::string payload;
  for (auto _ : bench) {
    encoder.Encode(settled, &payload);
    benchmark::DoNotOptimize(payload);
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_EncodeSettledPayloadOnly);

// The projection checkpoint's serialization, which the committer does
// inline (the pause of issue 11): 10,000 agents that each settled 10 pairs,
// 2,048 reservations pending, finished reservations left out as the engine
// leaves them to the cold store.
void BM_SerializeCheckpoint(benchmark::State& bench) {
  World world;
  for (uint64_t n = 0; n < 10 * kAgents; ++n) {
    world.machine.Execute(world.ReserveRequest(n), kNowUs, &world.events);
    world.machine.Execute(world.SettleRequest(n), kNowUs, &world.events);
    if (world.events.size() > 4096) world.events.clear();
  }
  // And 2,048 pending, as the engine has in flight at saturation.
  for (uint64_t n = 10 * kAgents; n < 10 * kAgents + 2048; ++n) {
    world.machine.Execute(world.ReserveRequest(n), kNowUs, &world.events);
  }
  SnapshotOptions options;
  options.finished_records = false;
  std::string buffer;
  for (auto _ : bench) {
    SerializeState(world.state, options, &buffer);
    benchmark::DoNotOptimize(buffer);
  }
  bench.counters["bytes"] = static_cast<double>(buffer.size());
}
BENCHMARK(BM_SerializeCheckpoint)->Unit(benchmark::kMillisecond);

void BM_ChainLink(benchmark::State& bench) {
  std::string payload(155, 'x');
  Sha256Digest link{};
  for (auto _ : bench) {
    link = ChainLink(link, 12345, payload);
    benchmark::DoNotOptimize(link);
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_ChainLink);

}  // namespace
}  // namespace purser

BENCHMARK_MAIN();
