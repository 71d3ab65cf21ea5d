#include "bench/inproc_load.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "ledger/histogram.h"
#include "ledger/sequencer.h"

namespace purser::bench {

namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

constexpr int kAgentsPerTeam = 100;
constexpr int kRefillBatch = 64;

std::string AgentId(int agent) { return "agent-" + std::to_string(agent); }

Status Setup(Sequencer& sequencer, int agents) {
  std::vector<Request> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    for (const Reply& reply : sequencer.CallBatch(std::move(batch))) {
      if (!reply.ok()) return Status::Error("setup: " + reply.message);
    }
    batch.clear();
    return Status::Ok();
  };
  auto add = [&](RequestBody body) -> Status {
    batch.push_back(Request{Credentials::System(), std::move(body)});
    return batch.size() >= 4096 ? flush() : Status::Ok();
  };
  Status status = add(cmd::OpenAccount{"org", "", AccountKind::kOrg, "Bench Org", true,
                                       {"env", "feature"}});
  for (int i = 0; status.ok() && i < 10; ++i) {
    status = add(cmd::Deposit{"fund-" + std::to_string(i), "org", 1'000'000'000'000, ""});
  }
  int teams = (agents + kAgentsPerTeam - 1) / kAgentsPerTeam;
  for (int t = 0; status.ok() && t < teams; ++t) {
    std::string team = "team-" + std::to_string(t);
    status = add(cmd::OpenAccount{team, "org", AccountKind::kTeam, team, false, {}});
    CapsPatch caps;
    caps.daily_limit_micros = Patch<int64_t>::Set(1'000'000'000'000);
    caps.monthly_limit_micros = Patch<int64_t>::Set(1'000'000'000'000);
    if (status.ok()) status = add(cmd::SetCaps{team, caps});
  }
  for (int a = 0; status.ok() && a < agents; ++a) {
    status = add(cmd::OpenAccount{AgentId(a), "team-" + std::to_string(a / kAgentsPerTeam),
                                  AccountKind::kAgent, "", false, {}});
  }
  return status.ok() ? flush() : status;
}

// Reserve -> settle pairs: the settle is submitted only once the reserve was
// acknowledged (from the completion), so each pair is two durable round trips.
class PairDriver {
 public:
  PairDriver(Sequencer* sequencer, const InprocOptions& options)
      : sequencer_(sequencer), options_(options) {}

  // Starts one pair; `done` runs when it finished (settled, refused or failed).
  void StartPair(int producer, uint64_t number, int64_t start_us, std::mt19937_64& random,
                 std::function<void()> done) {
    std::string id = "p" + std::to_string(producer) + "-" + std::to_string(number);
    int agent = (options_.hot_fraction > 0 &&
                 std::uniform_real_distribution<double>(0, 1)(random) < options_.hot_fraction)
                    ? 0
                    : static_cast<int>(random() % static_cast<uint64_t>(options_.agents));
    cmd::Reserve reserve;
    reserve.reservation_id = id;
    reserve.account = AgentId(agent);
    reserve.amount_micros = 10'000;
    reserve.run_id = "run-" + std::to_string(agent);
    reserve.action = kActions[number % 4];
    reserve.tags = {{"env", "prod"}, {"feature", kFeatures[number % 3]}};
    std::vector<Request> requests;
    requests.push_back(Request{Credentials::System(), std::move(reserve)});
    bool submitted = sequencer_->Submit(
        std::move(requests), [this, id, start_us, done](std::vector<Reply>&& replies) mutable {
          if (!replies[0].ok()) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            done();
            return;
          }
          reserve_us_.Record(static_cast<uint64_t>(NowUs() - start_us));
          Settle(id, std::move(done));
        });
    if (!submitted) {
      rejected_by_queue_.fetch_add(1, std::memory_order_relaxed);
      done();
    }
  }

  uint64_t pairs() const { return pairs_.load(); }
  uint64_t refused() const { return refused_.load(); }
  const Histogram& reserve_latency() const { return reserve_us_; }

 private:
  static constexpr const char* kActions[4] = {"search", "summarize", "plan", "code"};
  static constexpr const char* kFeatures[3] = {"chat", "agent", "batch"};

  void Settle(const std::string& id, std::function<void()> done) {
    cmd::Settle settle;
    settle.reservation_id = id;
    settle.usage = UsageTokens{"gpt-4o", TokenCounts{500, 200, 0, 0, 0}};
    settle.outcome = Outcome::kSuccess;
    std::vector<Request> requests;
    requests.push_back(Request{Credentials::System(), std::move(settle)});
    bool submitted = sequencer_->Submit(std::move(requests),
                                        [this, done](std::vector<Reply>&& replies) {
                                          if (replies[0].ok()) {
                                            pairs_.fetch_add(1, std::memory_order_relaxed);
                                          }
                                          done();
                                        });
    if (!submitted) done();
  }

  Sequencer* sequencer_;
  const InprocOptions& options_;
  std::atomic<uint64_t> pairs_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> rejected_by_queue_{0};
  Histogram reserve_us_;
};

// Closed loop: keep `window` pairs in flight.
void ClosedLoopProducer(PairDriver* driver, int producer, int window, std::atomic<bool>* stop) {
  std::mutex mutex;
  std::condition_variable cv;
  int inflight = 0;
  std::mt19937_64 random(static_cast<uint64_t>(producer) * 7919 + 17);
  uint64_t number = 0;
  auto done = [&] {
    std::lock_guard lock(mutex);
    if (--inflight <= window - kRefillBatch) cv.notify_one();
  };
  while (!stop->load()) {
    int to_start;
    {
      std::unique_lock lock(mutex);
      cv.wait_for(lock, std::chrono::milliseconds(100),
                  [&] { return inflight <= window - kRefillBatch || stop->load(); });
      to_start = window - inflight;
      inflight = window;
    }
    for (int i = 0; i < to_start; ++i) driver->StartPair(producer, number++, NowUs(), random, done);
  }
  std::unique_lock lock(mutex);
  cv.wait(lock, [&] { return inflight == 0; });
}

// Open loop: start pairs on a fixed schedule; latency counts from the
// scheduled time, so a stall is not hidden (no coordinated omission).
void OpenLoopProducer(PairDriver* driver, int producer, int64_t rate, std::atomic<bool>* stop) {
  std::atomic<int64_t> inflight{0};
  std::mt19937_64 random(static_cast<uint64_t>(producer) * 7919 + 17);
  int64_t start = NowUs();
  for (uint64_t number = 0; !stop->load(); ++number) {
    int64_t scheduled = start + static_cast<int64_t>(number) * 1'000'000 / rate;
    int64_t wait = scheduled - NowUs();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::microseconds(wait));
    ++inflight;
    driver->StartPair(producer, number, scheduled, random, [&inflight] { --inflight; });
  }
  while (inflight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

int RunInproc(const InprocOptions& options, InprocReport* report) {
  std::filesystem::remove_all(options.data_dir);
  SequencerOptions sequencer_options;
  sequencer_options.data_dir = options.data_dir;
  // A projection checkpoint serializes the whole state on the sequencer
  // thread; at this load it would land mid-run, so the bench measures the
  // steady state and writes the checkpoint at the end (see RESULTS.md).
  sequencer_options.checkpoint_every_events = UINT64_MAX;
  Result<std::unique_ptr<Sequencer>> opened = Sequencer::Open(sequencer_options);
  if (!opened.ok()) {
    std::cerr << "open: " << opened.status().message() << '\n';
    return 1;
  }
  Sequencer& sequencer = **opened;
  if (Status status = Setup(sequencer, options.agents); !status.ok()) {
    std::cerr << status.message() << '\n';
    return 1;
  }
  const uint64_t events_before = sequencer.stats().events_total;
  PairDriver driver(&sequencer, options);
  std::atomic<bool> stop{false};
  std::vector<std::thread> producers;
  auto start = SteadyClock::now();
  for (int p = 0; p < options.producers; ++p) {
    if (options.rate > 0) {
      producers.emplace_back(OpenLoopProducer, &driver, p, options.rate / options.producers, &stop);
    } else {
      producers.emplace_back(ClosedLoopProducer, &driver, p, options.window, &stop);
    }
  }
  uint64_t last_pairs = 0;
  auto last = start;
  while (std::chrono::duration<double>(SteadyClock::now() - start).count() < options.seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto now = SteadyClock::now();
    if (options.progress != nullptr && now - last >= std::chrono::seconds(5)) {
      uint64_t pairs = driver.pairs();
      double elapsed = std::chrono::duration<double>(now - last).count();
      *options.progress << "  t=" << std::fixed << std::setprecision(0)
                        << std::chrono::duration<double>(now - start).count() << "s  "
                        << static_cast<uint64_t>(static_cast<double>(pairs - last_pairs) / elapsed)
                        << " pairs/s  reserve p99 " << driver.reserve_latency().Percentile(99)
                        << " us  rss " << ResidentBytes() / (1 << 20) << " MiB\n";
      options.progress->flush();
      last_pairs = pairs;
      last = now;
    }
  }
  stop = true;
  for (auto& producer : producers) producer.join();
  report->seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  report->pairs = driver.pairs();
  report->refused = driver.refused();
  report->pairs_per_second = static_cast<double>(report->pairs) / report->seconds;
  report->events = sequencer.stats().events_total - events_before;
  report->reserve_p50_us = driver.reserve_latency().Percentile(50);
  report->reserve_p99_us = driver.reserve_latency().Percentile(99);
  report->reserve_p999_us = driver.reserve_latency().Percentile(99.9);
  report->fsync_p50_us = sequencer.fsync_histogram().Percentile(50);
  report->fsync_p99_us = sequencer.fsync_histogram().Percentile(99);
  const Histogram& groups = sequencer.group_size_histogram();
  report->group_commit_mean =
      groups.count() == 0 ? 0 : static_cast<double>(groups.sum()) / static_cast<double>(groups.count());
  auto mean = [](const Histogram& h) {
    return h.count() == 0 ? 0.0 : static_cast<double>(h.sum()) / static_cast<double>(h.count());
  };
  report->group_commits = groups.count();
  report->execute_us_mean = mean(sequencer.execute_histogram());
  report->encode_us_mean = mean(sequencer.encode_histogram());
  report->write_us_mean = mean(sequencer.fsync_histogram());
  report->rss_bytes = ResidentBytes();
  if (options.compact) {
    if (Status status = sequencer.log()->FlushAll(); !status.ok()) std::cerr << status.message();
    if (Status status = sequencer.log()->CompactEvents(); !status.ok()) std::cerr << status.message();
    report->bytes_on_disk = sequencer.log()->EventsBytesOnDisk();
    uint64_t all_events = sequencer.stats().events_total;
    report->bytes_per_event =
        all_events == 0 ? 0 : static_cast<double>(report->bytes_on_disk) / static_cast<double>(all_events);
  }
  return 0;
}

void PrintInprocReport(const InprocOptions& options, const InprocReport& r, std::ostream& out) {
  out << std::fixed << std::setprecision(1);
  out << "inproc: agents=" << options.agents << " producers=" << options.producers
      << " window=" << options.window << " hot=" << options.hot_fraction
      << " rate=" << options.rate << " seconds=" << r.seconds << '\n';
  out << "  pairs            " << r.pairs << " (" << static_cast<uint64_t>(r.pairs_per_second)
      << " pairs/s, " << static_cast<uint64_t>(2 * r.pairs_per_second) << " commands/s)\n";
  double total = static_cast<double>(r.pairs + r.refused);
  double admitted = total == 0 ? 0 : 100.0 * static_cast<double>(r.pairs) / total;
  out << "  admitted         " << admitted << "% (" << r.refused << " refused)\n";
  out << "  events           " << r.events << " (" << static_cast<uint64_t>(static_cast<double>(r.events) / r.seconds)
      << " events/s)\n";
  out << "  reserve latency  p50 " << r.reserve_p50_us << " us, p99 " << r.reserve_p99_us
      << " us, p99.9 " << r.reserve_p999_us << " us\n";
  out << "  fsync            p50 " << r.fsync_p50_us << " us, p99 " << r.fsync_p99_us << " us\n";
  out << "  group commit     " << r.group_commit_mean << " commands on average, " << r.group_commits
      << " groups; per group: execute " << r.execute_us_mean << " us (sequencer), encode "
      << r.encode_us_mean << " us + write " << r.write_us_mean << " us (log thread)\n";
  if (options.compact) {
    out << "  on disk          " << r.bytes_on_disk << " bytes after compaction, "
        << r.bytes_per_event << " bytes/event\n";
  }
  out << "  resident memory  " << r.rss_bytes / (1 << 20) << " MiB\n";
}

}  // namespace purser::bench
