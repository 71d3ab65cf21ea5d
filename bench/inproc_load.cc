#include "bench/inproc_load.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "bench/webhook_load.h"
#include "ledger/base/histogram.h"
#include "ledger/base/merkle.h"
#include "ledger/ledger.h"

namespace purser::bench {

namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

constexpr int kAgentsPerTeam = 100;

std::string AgentId(int agent) { return "agent-" + std::to_string(agent); }

Status Setup(Ledger& sequencer, int agents) {
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

// One producer thread generating reserve -> settle pairs. The settle is
// submitted only once the reserve was acknowledged. Completions arrive on the
// sequencer's log thread and only queue an acknowledgement here, so the
// client's work (building requests, counting) stays on the producer thread,
// as it would in a client process.
class Producer {
 public:
  Producer(Ledger* sequencer, const InprocOptions& options, int index, Histogram* reserve_us)
      : sequencer_(sequencer), options_(options), index_(index), reserve_us_(reserve_us),
        random_(static_cast<uint64_t>(index) * 7919 + 17) {
    for (int a = 0; a < options.agents; ++a) agents_.push_back(AgentId(a));
  }

  // Closed loop (`rate` == 0): keep `window` pairs in flight. Open loop:
  // start `rate` pairs per second on a fixed schedule; latency counts from
  // the scheduled time, so a stall is not hidden (no coordinated omission).
  void Run(int window, int64_t rate, const std::atomic<bool>* stop) {
    const size_t capacity = rate > 0 ? (1u << 16) : static_cast<size_t>(window);
    slots_.resize(capacity);
    const int64_t start = NowUs();
    uint64_t started = 0;
    std::vector<Ack> acks;
    while (!stop->load() || inflight_ > 0) {
      int64_t now = NowUs();
      while (!stop->load() && inflight_ < capacity) {
        int64_t scheduled = rate > 0 ? start + static_cast<int64_t>(started) * 1'000'000 / rate : now;
        if (scheduled > now) break;
        StartPair(started++, scheduled);
      }
      {
        // Sleep until an acknowledgement arrives or, in open loop, exactly
        // until the next pair is due (a late start would count as latency).
        int64_t next_due = rate > 0 ? start + static_cast<int64_t>(started) * 1'000'000 / rate
                                    : NowUs() + 20'000;
        std::unique_lock lock(mutex_);
        if (inbox_.empty()) {
          int64_t wait_us = std::max<int64_t>(0, next_due - NowUs());
          cv_.wait_for(lock, std::chrono::microseconds(wait_us), [&] { return !inbox_.empty(); });
        }
        acks.swap(inbox_);
      }
      for (const Ack& ack : acks) Handle(ack);
      acks.clear();
    }
  }

  uint64_t pairs() const { return pairs_.load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::string id;
    int64_t start_us = 0;
  };
  struct Ack {
    uint32_t slot;
    bool reserve;
    bool ok;
  };
  static constexpr const char* kActions[4] = {"search", "summarize", "plan", "code"};
  static constexpr const char* kFeatures[3] = {"chat", "agent", "batch"};

  void Deliver(Ack ack) {
    std::lock_guard lock(mutex_);
    inbox_.push_back(ack);
    if (inbox_.size() == 1) cv_.notify_one();
  }

  void StartPair(uint64_t number, int64_t start_us) {
    auto slot = static_cast<uint32_t>(number % slots_.size());
    slots_[slot].id = "p" + std::to_string(index_) + "-" + std::to_string(number);
    slots_[slot].start_us = start_us;
    int agent = (options_.hot_fraction > 0 &&
                 std::uniform_real_distribution<double>(0, 1)(random_) < options_.hot_fraction)
                    ? 0
                    : static_cast<int>(random_() % static_cast<uint64_t>(options_.agents));
    cmd::Reserve reserve;
    reserve.reservation_id = slots_[slot].id;
    reserve.account = agents_[agent];
    reserve.amount_micros = 10'000;
    reserve.run_id = "run-1";
    reserve.action = kActions[number % 4];
    reserve.tags = {{"env", "prod"}, {"feature", kFeatures[number % 3]}};
    std::vector<Request> requests;
    requests.push_back(Request{Credentials::System(), std::move(reserve)});
    ++inflight_;
    bool submitted = sequencer_->Submit(std::move(requests), [this, slot](std::vector<Reply>&& r) {
      Deliver(Ack{slot, true, r[0].ok()});
    });
    if (!submitted) --inflight_;
  }

  void Handle(const Ack& ack) {
    if (!ack.reserve) {
      if (ack.ok) pairs_.fetch_add(1, std::memory_order_relaxed);
      --inflight_;
      return;
    }
    if (!ack.ok) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      --inflight_;
      return;
    }
    reserve_us_->Record(static_cast<uint64_t>(NowUs() - slots_[ack.slot].start_us));
    cmd::Settle settle;
    settle.reservation_id = slots_[ack.slot].id;
    settle.usage = UsageTokens{"gpt-4o", TokenCounts{500, 200, 0, 0, 0}};
    settle.outcome = Outcome::kSuccess;
    std::vector<Request> requests;
    requests.push_back(Request{Credentials::System(), std::move(settle)});
    uint32_t slot = ack.slot;
    bool submitted = sequencer_->Submit(std::move(requests), [this, slot](std::vector<Reply>&& r) {
      Deliver(Ack{slot, false, r[0].ok()});
    });
    if (!submitted) --inflight_;
  }

  Ledger* sequencer_;
  const InprocOptions& options_;
  const int index_;
  Histogram* reserve_us_;
  std::mt19937_64 random_;
  std::vector<std::string> agents_;
  std::vector<Slot> slots_;
  size_t inflight_ = 0;  // producer thread only
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Ack> inbox_;
  std::atomic<uint64_t> pairs_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

namespace {

// Inclusion proofs of random events and consistency proofs from random
// sizes, all in the tree of every event written, timed one by one. Every
// inclusion proof must lead to the same root and every consistency proof
// must verify against it.
Status MeasureProofs(Ledger& ledger, int count, InprocReport* report) {
  const uint64_t size = ledger.stats().last_sequence;
  report->proof_tree_size = size;
  if (size < 2) return Status::Ok();
  std::mt19937_64 random(7);
  Histogram inclusion_us, consistency_us;
  uint64_t inclusion_max = 0, consistency_max = 0;
  // `prove` timed into `histogram` and `max`.
  auto timed = [](Histogram* histogram, uint64_t* max, const std::function<Status()>& prove) {
    auto start = SteadyClock::now();
    Status status = prove();
    auto us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - start).count());
    histogram->Record(us);
    *max = std::max(*max, us);
    return status;
  };
  std::optional<Sha256Digest> root;
  for (int i = 0; i < count; ++i) {
    const uint64_t sequence = std::uniform_int_distribution<uint64_t>(1, size)(random);
    InclusionProof proof;
    if (Status status = timed(&inclusion_us, &inclusion_max,
                              [&] { return ledger.ProveInclusion(sequence, size, &proof); });
        !status.ok()) {
      return status;
    }
    Sha256Digest leads_to{};
    if (!RootFromInclusionProof(proof.leaf_index, proof.tree_size, MerkleLeafHash(proof.record), proof.path,
                                &leads_to) ||
        (root && *root != leads_to)) {
      ++report->proofs_not_verified;
    }
    if (!root) root = leads_to;
  }
  for (int i = 0; i < count; ++i) {
    const uint64_t from = std::uniform_int_distribution<uint64_t>(1, size - 1)(random);
    ConsistencyProof proof;
    if (Status status = timed(&consistency_us, &consistency_max,
                              [&] { return ledger.ProveConsistency(from, size, &proof); });
        !status.ok()) {
      return status;
    }
    // The old root is that of the first `from` leaves: an inclusion proof's
    // path in that tree leads to it.
    InclusionProof in_old;
    Sha256Digest old_root{};
    if (!ledger.ProveInclusion(from, from, &in_old).ok() ||
        !RootFromInclusionProof(in_old.leaf_index, from, MerkleLeafHash(in_old.record), in_old.path, &old_root) ||
        !VerifyConsistency(from, size, old_root, *root, proof.path)) {
      ++report->proofs_not_verified;
    }
  }
  report->inclusion_p50_us = inclusion_us.Percentile(50);
  report->inclusion_p99_us = inclusion_us.Percentile(99);
  report->inclusion_max_us = inclusion_max;
  report->consistency_p50_us = consistency_us.Percentile(50);
  report->consistency_p99_us = consistency_us.Percentile(99);
  report->consistency_max_us = consistency_max;
  return Status::Ok();
}

}  // namespace

int RunInproc(const InprocOptions& options, InprocReport* report) {
  std::filesystem::remove_all(options.data_dir);
  LedgerOptions sequencer_options;
  sequencer_options.data_dir = options.data_dir;
  // Checkpoints as the service takes them: their cost is part of the figure.
  sequencer_options.checkpoint_every_events = static_cast<uint64_t>(options.checkpoint_every);
  sequencer_options.merkle_tree = options.merkle_tree;
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(sequencer_options);
  if (!opened.ok()) {
    std::cerr << "open: " << opened.status().message() << '\n';
    return 1;
  }
  Ledger& sequencer = **opened;
  if (Status status = Setup(sequencer, options.agents); !status.ok()) {
    std::cerr << status.message() << '\n';
    return 1;
  }
  std::unique_ptr<WebhookLoad> webhooks;
  if (options.webhooks > 0) {
    Reply alarm = sequencer.Call(Request{Credentials::System(),
                                         cmd::OpenAccount{"alarm", "team-0", AccountKind::kAgent, "", false, {}}});
    Result<std::unique_ptr<WebhookLoad>> started = WebhookLoad::Start(&sequencer, options.webhooks, "org");
    if (!alarm.ok() || !started.ok()) {
      std::cerr << "webhooks: " << (alarm.ok() ? started.status().message() : alarm.message) << '\n';
      return 1;
    }
    webhooks = std::move(*started);
    webhooks->StartAlarms("alarm", options.alert_rate);
  }
  const uint64_t events_before = sequencer.stats().events_total;
  Histogram reserve_us;
  std::vector<std::unique_ptr<Producer>> producers;
  for (int p = 0; p < options.producers; ++p) {
    producers.push_back(std::make_unique<Producer>(&sequencer, options, p, &reserve_us));
  }
  auto total_pairs = [&] {
    uint64_t n = 0;
    for (const auto& producer : producers) n += producer->pairs();
    return n;
  };
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto start = SteadyClock::now();
  for (auto& producer : producers) {
    threads.emplace_back([&, p = producer.get()] {
      p->Run(options.window, options.rate / options.producers, &stop);
    });
  }
  uint64_t last_pairs = 0;
  auto last = start;
  while (std::chrono::duration<double>(SteadyClock::now() - start).count() < options.seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto now = SteadyClock::now();
    if (options.progress != nullptr && now - last >= std::chrono::seconds(5)) {
      uint64_t pairs = total_pairs();
      double elapsed = std::chrono::duration<double>(now - last).count();
      *options.progress << "  t=" << std::fixed << std::setprecision(0)
                        << std::chrono::duration<double>(now - start).count() << "s  "
                        << static_cast<uint64_t>(static_cast<double>(pairs - last_pairs) / elapsed)
                        << " pairs/s  reserve p99 " << reserve_us.Percentile(99)
                        << " us  rss " << ResidentBytes() / (1 << 20) << " MiB\n";
      options.progress->flush();
      last_pairs = pairs;
      last = now;
    }
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  if (webhooks) {
    webhooks->Stop();
    report->alarms = webhooks->alarms();
    report->deliveries = webhooks->receiver().requests();
    report->webhook_backlog = webhooks->notifier().stats().backlog;
  }
  report->seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  report->pairs = total_pairs();
  for (const auto& producer : producers) report->refused += producer->refused();
  report->pairs_per_second = static_cast<double>(report->pairs) / report->seconds;
  report->events = sequencer.stats().events_total - events_before;
  report->reserve_p50_us = reserve_us.Percentile(50);
  report->reserve_p99_us = reserve_us.Percentile(99);
  report->reserve_p999_us = reserve_us.Percentile(99.9);
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
    if (Status status = sequencer.Compact(); !status.ok()) std::cerr << status.message();
    report->bytes_on_disk = sequencer.EventsBytesOnDisk();
    uint64_t all_events = sequencer.stats().events_total;
    report->bytes_per_event =
        all_events == 0 ? 0 : static_cast<double>(report->bytes_on_disk) / static_cast<double>(all_events);
  }
  // After the compaction (when there is one): the proofs' own cost, not
  // the flushes and compactions that follow a load.
  if (options.proofs > 0 && options.merkle_tree) {
    if (Status status = MeasureProofs(sequencer, options.proofs, report); !status.ok()) {
      std::cerr << "proofs: " << status.message() << '\n';
      return 1;
    }
  }
  return 0;
}

void PrintInprocReport(const InprocOptions& options, const InprocReport& r, std::ostream& out) {
  out << std::fixed << std::setprecision(1);
  out << "inproc: agents=" << options.agents << " producers=" << options.producers
      << " window=" << options.window << " hot=" << options.hot_fraction
      << " rate=" << options.rate << (options.merkle_tree ? "" : " merkle-tree=off")
      << " seconds=" << r.seconds << '\n';
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
  if (options.proofs > 0 && options.merkle_tree) {
    out << "  proofs           tree of " << r.proof_tree_size << " events, " << options.proofs
        << " of each: inclusion p50 " << r.inclusion_p50_us << " us, p99 " << r.inclusion_p99_us
        << " us, max " << r.inclusion_max_us << " us; consistency p50 " << r.consistency_p50_us
        << " us, p99 " << r.consistency_p99_us << " us, max " << r.consistency_max_us << " us; "
        << r.proofs_not_verified << " did not verify\n";
  }
  if (options.webhooks > 0) {
    out << "  webhooks         " << options.webhooks << " on every event kind; " << r.alarms
        << " freezes/unfreezes made, " << r.deliveries << " deliveries, backlog " << r.webhook_backlog
        << " at the end\n";
  }
}

}  // namespace purser::bench
