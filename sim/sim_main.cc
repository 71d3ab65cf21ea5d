#include "sim/sim_main.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "ledger/base/flags.h"
#include "sim/simulation.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PURSER_SIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PURSER_SIM_SANITIZED 1
#endif
#endif
#ifdef PURSER_SIM_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

namespace purser::sim {

namespace {

constexpr char kUsage[] =
    "usage: purser-sim [--seed N | --seeds N [--first N]] [--steps S] [--dir D] [--no-faults] [--trace]\n"
    "  runs seeds through the real ledger on a simulated clock and a file system that fails\n"
    "  and crashes on purpose; checks the ledger's promises after every step and restart.\n"
    "  --seed N      one seed (a failing seed fails again the same way)\n"
    "  --seeds N     seeds first..first+N-1 (default 1 seed: 1)\n"
    "  --steps S     workload steps per seed (default 2000)\n"
    "  --dir D       scratch directory (default $TMPDIR or /tmp)\n"
    "  --no-faults   no crashes, disk failures or bit flips\n"
    "  --trace       print the faults and clock jumps of each step\n";

// Without --trace the ledger's log lines go to /dev/null, and with them an
// assertion's message: a fatal signal still says which seed died, here.
int g_progress_fd = STDERR_FILENO;
char g_dying_line[96] = "purser-sim: a fatal signal\n";

void OnFatalSignal(int signal_number) {
  ssize_t written = write(g_progress_fd, g_dying_line, strlen(g_dying_line));
  (void)written;
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

}  // namespace

int SimMain(int argc, char** argv) {
  Flags flags(argc, argv, 1, {"no-faults", "trace", "help"});
  if (flags.Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  const std::vector<std::string> unknown =
      flags.Unknown({"seed", "seeds", "first", "steps", "dir", "no-faults", "trace", "help"});
  const int64_t seed = flags.GetInt("seed").value_or(0);
  const int64_t count = flags.Has("seed") ? 1 : flags.GetInt("seeds").value_or(1);
  const int64_t first = flags.Has("seed") ? seed : flags.GetInt("first").value_or(1);
  const int64_t steps = flags.GetInt("steps").value_or(2'000);
  if (!flags.error().empty() || !unknown.empty() || !flags.positional().empty() || count < 1 || first < 0 ||
      steps < 1 || steps > 10'000'000) {
    std::cerr << (flags.error().empty() ? (unknown.empty() ? "purser-sim: bad arguments" : "purser-sim: unknown flag --" + unknown.front()) : "purser-sim: " + flags.error())
              << "\n" << kUsage;
    return 2;
  }
  const char* tmp = std::getenv("TMPDIR");
  SimOptions options;
  options.steps = static_cast<int>(steps);
  options.dir = flags.Get("dir", tmp != nullptr ? tmp : "/tmp");
  options.faults = !flags.Has("no-faults");
  options.trace = flags.Has("trace") ? &std::cerr : nullptr;
  // The ledger's own log lines (checkpoints, the fail-stops the faults
  // cause) only with --trace; progress goes to the real stderr.
  int progress = STDERR_FILENO;
  if (options.trace == nullptr) {
    progress = dup(STDERR_FILENO);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    close(null);
#ifdef PURSER_SIM_SANITIZED
    // A sanitizer's report goes where the progress goes, not to /dev/null.
    __sanitizer_set_report_fd(reinterpret_cast<void*>(static_cast<intptr_t>(progress)));
#endif
  }
  g_progress_fd = progress;
#ifdef PURSER_SIM_SANITIZED
  signal(SIGABRT, OnFatalSignal);  // the sanitizer reports the other signals itself
#else
  for (int fatal : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) signal(fatal, OnFatalSignal);
#endif
  SimReport total;
  int failed = 0;
  const bool terminal = isatty(progress) == 1;
  for (int64_t i = 0; i < count; ++i) {
    options.seed = static_cast<uint64_t>(first + i);
    // Before the seed runs: a crash (an assertion, a signal) must still
    // leave the seed to run again.
    if (!terminal) dprintf(progress, "seed %llu\n", static_cast<unsigned long long>(options.seed));
    snprintf(g_dying_line, sizeof(g_dying_line),
             "purser-sim: a fatal signal in seed %llu: rerun it with --trace for the ledger's log\n",
             static_cast<unsigned long long>(options.seed));
    if (Status status = RunSeed(options, &total); !status.ok()) {
      ++failed;
      std::cout << "FAILED " << status.message() << "\n  reproduce: purser-sim --seed " << options.seed
                << " --steps " << steps << (options.faults ? "" : " --no-faults") << std::endl;
    } else if (terminal && count > 1) {
      dprintf(progress, "\rseed %llu passed (%lld/%lld)", static_cast<unsigned long long>(options.seed),
              static_cast<long long>(i + 1), static_cast<long long>(count));
    }
  }
  if (terminal && count > 1) dprintf(progress, "\n");
  std::printf(
      "purser-sim: %lld seeds, %d failed; %llu steps, %llu commands (%llu acknowledged), %llu retries "
      "compared, %llu admissions checked, %llu crashes, %llu disk failures, %llu restarts, %llu bit flips; "
      "%.1f s: %.0f steps/s, %.1f seeds/min\n",
      static_cast<long long>(count), failed, static_cast<unsigned long long>(total.steps),
      static_cast<unsigned long long>(total.commands), static_cast<unsigned long long>(total.acknowledged),
      static_cast<unsigned long long>(total.retries), static_cast<unsigned long long>(total.admissions_checked),
      static_cast<unsigned long long>(total.crashes), static_cast<unsigned long long>(total.disk_failures),
      static_cast<unsigned long long>(total.restarts), static_cast<unsigned long long>(total.bit_flips),
      total.seconds, static_cast<double>(total.steps) / std::max(total.seconds, 1e-9),
      static_cast<double>(count) * 60.0 / std::max(total.seconds, 1e-9));
  return failed == 0 ? 0 : 1;
}

}  // namespace purser::sim
