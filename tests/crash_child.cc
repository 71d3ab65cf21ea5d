// A child process for the crash tests: runs the sequencer on a directory and
// drives concurrent reserve -> settle traffic from several threads, printing
// "R <id>" once a reserve is acknowledged (durable) and "S <id> <cost>" once
// its settle is. The parent kills it with SIGKILL at a random moment and
// checks that every printed command survived.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ledger/engine/sequencer.h"

using namespace purser;

namespace {

std::mutex out_mutex;

void Print(const std::string& line) {
  std::lock_guard lock(out_mutex);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

Reply Call(Sequencer& s, RequestBody body) { return s.Call(Request{Credentials::System(), std::move(body)}); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: purser_crash_child DIR ROUND [CHECKPOINT_EVERY]\n");
    return 2;
  }
  SequencerOptions options;
  options.data_dir = argv[1];
  options.checkpoint_every_events = argc > 3 ? std::stoull(argv[3]) : 300;
  auto opened = Sequencer::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().message().c_str());
    return 1;
  }
  Sequencer& s = **opened;
  std::string round = argv[2];
  Call(s, cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}});
  for (int t = 0; t < 4; ++t) {
    Call(s, cmd::OpenAccount{"agent-" + std::to_string(t), "org", AccountKind::kAgent, "", false, {}});
  }
  Call(s, cmd::Deposit{"fund-" + round, "org", 1'000'000'000, ""});
  Print("READY\n");
  std::vector<std::thread> threads;
  // Settled reservations, for the refunder: a refund of a finished record
  // loads it back from the cold store and changes it there, which a restart
  // must not apply twice.
  std::mutex settled_mutex;
  std::vector<std::string> settled;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, &round, &settled_mutex, &settled, t] {
      for (int i = 0;; ++i) {
        std::string id = "r-" + round + "-" + std::to_string(t) + "-" + std::to_string(i);
        cmd::Reserve reserve;
        reserve.reservation_id = id;
        reserve.account = "agent-" + std::to_string(t);
        reserve.amount_micros = 1'000;
        if (!Call(s, reserve).ok()) continue;
        Print("R " + id + "\n");
        cmd::Settle settle;
        settle.reservation_id = id;
        settle.amount_micros = 100 + i % 900;
        if (Call(s, settle).ok()) {
          Print("S " + id + " " + std::to_string(100 + i % 900) + "\n");
          std::lock_guard lock(settled_mutex);
          settled.push_back(id);
        }
      }
    });
  }
  threads.emplace_back([&s, &round, &settled_mutex, &settled] {
    for (int k = 0;; ++k) {
      std::string target;
      {
        std::lock_guard lock(settled_mutex);
        if (settled.size() > 200) target = settled[static_cast<size_t>(k * 7919) % (settled.size() - 200)];
      }
      if (target.empty()) {
        usleep(1000);
        continue;
      }
      Call(s, cmd::Refund{"f-" + round + "-" + std::to_string(k), ChargeKind::kReservation, target, 1, ""});
      usleep(200);
    }
  });
  for (auto& thread : threads) thread.join();
  return 0;
}
