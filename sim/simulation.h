// The simulator (purser-sim): one seed drives a random workload through the
// real ledger (sequencer, state machine, RocksDB log) on a simulated clock
// and a file system that fails and crashes on purpose (sim/fault_fs.h), and
// checks the ledger's promises after every step and every restart. A failing
// seed fails the same way again: `purser-sim --seed N`.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "ledger/base/status.h"

namespace purser::sim {

struct SimOptions {
  uint64_t seed = 1;
  // Workload steps (one command, a batch, a retry, a clock jump, a fault...).
  int steps = 2'000;
  // A scratch directory; the seed's database is made and removed under it.
  std::string dir = "/tmp";
  // Crashes, disk failures and bit flips. Default: true.
  bool faults = true;
  // One line per step and fault (null: quiet).
  std::ostream* trace = nullptr;
};

struct SimReport {
  uint64_t steps = 0;
  uint64_t commands = 0;      // submitted, retries included
  uint64_t acknowledged = 0;  // answered ok
  uint64_t retries = 0;       // acknowledged commands sent again and compared
  uint64_t crashes = 0;       // power cuts: unsynced data dropped (some torn)
  uint64_t disk_failures = 0; // failed writes or syncs injected
  uint64_t restarts = 0;      // clean stops and opens
  uint64_t bit_flips = 0;     // flipped bits that the ledger had to detect
  uint64_t admissions_checked = 0;
  double seconds = 0;
};

// Runs one seed. An error names the broken promise, the seed and the step.
Status RunSeed(const SimOptions& options, SimReport* report);

}  // namespace purser::sim
