// In-process load through the real sequencer and RocksDB log: the figure
// the RPC and HTTP edges can at best approach.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "ledger/base/flags.h"

namespace purser::bench {

struct InprocOptions {
  std::string data_dir;          // a fresh directory (removed first)
  int agents = 10'000;           // org -> team (100 agents each) -> agent
  int producers = 2;             // threads generating reserve -> settle pairs
  int window = 1'024;            // pairs in flight per producer (closed loop)
  double seconds = 60;
  double hot_fraction = 0;       // share of pairs on agent-0
  int64_t rate = 0;              // open loop: reserves per second in total (0 = closed loop)
  bool compact = true;           // compact at the end and report bytes per event
  int webhooks = 0;              // webhooks delivering to a local receiver during the run
  int alert_rate = 100;          // freezes and unfreezes a second while webhooks run
  int64_t checkpoint_every = 1'000'000;  // events between projection checkpoints
  bool merkle_tree = true;       // false: measure what the tree costs
  int proofs = 0;                // inclusion and consistency proofs timed after the load, each
  std::ostream* progress = nullptr;
};

struct InprocReport {
  double seconds = 0;
  uint64_t pairs = 0;            // reserve admitted and settled
  uint64_t refused = 0;          // reserves refused by an admission check
  uint64_t events = 0;
  double pairs_per_second = 0;
  uint64_t reserve_p50_us = 0, reserve_p99_us = 0, reserve_p999_us = 0;
  uint64_t fsync_p50_us = 0, fsync_p99_us = 0;
  double group_commit_mean = 0;
  uint64_t group_commits = 0;
  double execute_us_mean = 0;   // sequencer thread, per group
  double encode_us_mean = 0;    // log thread, per group
  double write_us_mean = 0;     // log thread, per group (RocksDB write + fsync)
  uint64_t bytes_on_disk = 0;
  double bytes_per_event = 0;
  uint64_t rss_bytes = 0;
  uint64_t alarms = 0;           // freeze/unfreeze events made for the webhooks
  uint64_t deliveries = 0;       // requests the receiver got
  uint64_t webhook_backlog = 0;  // deliveries still queued at the end
  uint64_t proof_tree_size = 0;
  uint64_t inclusion_p50_us = 0, inclusion_p99_us = 0, inclusion_max_us = 0;
  uint64_t consistency_p50_us = 0, consistency_p99_us = 0, consistency_max_us = 0;
  uint64_t proofs_not_verified = 0;  // must be 0: every inclusion path leads to one root
};

int RunInproc(const InprocOptions& options, InprocReport* report);
void PrintInprocReport(const InprocOptions& options, const InprocReport& report, std::ostream& out);

// `purser-bench accounts`: resident memory per account (bench/accounts_memory.cc).
int RunAccountsMemory(Flags& flags);

// `purser-bench rpc` and `purser-bench plan` (bench/rpc_load.cc).
int RunRpcCommand(Flags& flags);
int RunPlan(Flags& flags);

// Resident memory of this process, in bytes (from /proc/self/statm).
uint64_t ResidentBytes();

}  // namespace purser::bench
