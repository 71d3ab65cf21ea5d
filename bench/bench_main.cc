#include "bench/bench_main.h"

#include <unistd.h>

#include <iostream>
#include <string>

#include "bench/inproc_load.h"
#include "bench/webhook_load.h"
#include "ledger/base/flags.h"

namespace purser::bench {

namespace {

constexpr char kUsage[] =
    "usage: purser-bench <command> [flags]\n"
    "  inproc   --data-dir D [--agents N] [--producers P] [--window W] [--seconds S]\n"
    "           [--hot-fraction F] [--rate R] [--no-compact] [--webhooks N [--alert-rate A]]\n"
    "           [--checkpoint-every E] [--no-merkle-tree] [--proofs N]\n"
    "      durable reserve -> settle pairs through the in-process sequencer (a projection\n"
    "      checkpoint every E events, default 1,000,000, as purserd); with\n"
    "      --webhooks, N webhooks deliver to a local receiver while an account is\n"
    "      frozen and unfrozen A times a second (default 100); --no-merkle-tree keeps no\n"
    "      Merkle tree (to measure its cost); --proofs N times N inclusion and N\n"
    "      consistency proofs on the log written, after the load\n"
    "  webhooks [--events N] [--webhooks W] [--data-dir D]\n"
    "      deliveries per second to a local receiver (kept-alive connections)\n"
    "  accounts [--count N]\n"
    "      resident memory per account with caps set (state machine only)\n"
    "  rpc      --key KEY [--connect HOST:PORT] [--mode batch|client|async|open|raw|ping] [--agents N]\n"
    "           [--hot-fraction F] [--connections C] [--inflight W] [--batch B] [--threads T]\n"
    "           [--seconds S] [--rate R] [--data-dir D] [--driver loop|clients]\n"
    "      load over RPC against a running purserd: explicit batches (batch), T threads\n"
    "      through one coalescing purser::Client (client), an open loop at --rate (open),\n"
    "      C connections with one call at a time (raw), or empty round trips (ping);\n"
    "      raw and ping drive every connection from one event loop (--driver loop) or\n"
    "      each through its own purser::Client and thread (--driver clients)\n"
    "  plan     [--target-pairs-per-second X] [--accounts N] [--retention-days D]\n"
    "           [--pairs-per-core P] [--bytes-per-event B] [--bytes-per-account M]\n"
    "           [--pairs-per-shard S] [--replicas R]\n"
    "      a capacity plan (cores, disk per day, memory, and the shards, nodes and\n"
    "      stream disk of cluster mode) from measured costs\n";

int Fail(const std::string& message) {
  std::cerr << "purser-bench: " << message << '\n';
  return 2;
}

int RunInprocCommand(Flags& flags) {
  InprocOptions options;
  options.data_dir = flags.Get("data-dir", "./bench-data");
  options.agents = static_cast<int>(flags.GetInt("agents").value_or(options.agents));
  options.producers = static_cast<int>(flags.GetInt("producers").value_or(options.producers));
  options.window = static_cast<int>(flags.GetInt("window").value_or(options.window));
  options.seconds = static_cast<double>(flags.GetInt("seconds").value_or(60));
  options.rate = flags.GetInt("rate").value_or(0);
  options.hot_fraction = std::stod(flags.Get("hot-fraction", "0"));
  options.compact = !flags.Has("no-compact");
  options.merkle_tree = !flags.Has("no-merkle-tree");
  options.proofs = static_cast<int>(flags.GetInt("proofs").value_or(0));
  options.webhooks = static_cast<int>(flags.GetInt("webhooks").value_or(0));
  options.alert_rate = static_cast<int>(flags.GetInt("alert-rate").value_or(100));
  options.checkpoint_every = flags.GetInt("checkpoint-every").value_or(options.checkpoint_every);
  // Progress every 5 s on a terminal; nothing in a log or a pipe.
  options.progress = isatty(STDERR_FILENO) == 1 ? &std::cerr : nullptr;
  if (!flags.error().empty()) return Fail(flags.error());
  if (options.agents < 1 || options.producers < 1 || options.window < 64 ||
      options.checkpoint_every < 1) {
    return Fail("--agents, --producers and --checkpoint-every must be positive, --window at least 64");
  }
  InprocReport report;
  if (int code = RunInproc(options, &report); code != 0) return code;
  PrintInprocReport(options, report, std::cout);
  return 0;
}

}  // namespace

int BenchMain(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string command = argv[1];
  Flags flags(argc, argv, 2, {"no-compact", "no-merkle-tree"});
  if (command == "inproc") return RunInprocCommand(flags);
  if (command == "accounts") return RunAccountsMemory(flags);
  if (command == "webhooks") return RunWebhookDeliveries(flags);
  if (command == "rpc") return RunRpcCommand(flags);
  if (command == "plan") return RunPlan(flags);
  std::cerr << kUsage;
  return 2;
}

}  // namespace purser::bench
