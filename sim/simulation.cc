#include "sim/simulation.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <vector>

#include "http/json_views.h"
#include "ledger/base/types.h"
#include "ledger/ledger.h"
#include "replay/replay.h"
#include "sim/fault_fs.h"

namespace purser::sim {

namespace {

constexpr int64_t kStartUs = 1'780'272'000'000'000;  // 2026-06-01T00:00:00Z
constexpr int64_t kSecondUs = 1'000'000;

// A command the ledger acknowledged, and how it answered: a retry with the
// same ids must be answered the same, before and after any crash.
struct Acknowledged {
  RequestBody body;
  std::string answer;
};

std::string Answer(const Reply& reply) {
  return std::string(ResultCodeName(reply.code)) + " " + (reply.ok() ? ReplyToJson(reply) : reply.message);
}

bool IsMoneyRefusal(ResultCode code) {
  return code == ResultCode::kInsufficientFunds || code == ResultCode::kDailyCapExceeded ||
         code == ResultCode::kMonthlyCapExceeded || code == ResultCode::kHardLimitExceeded;
}

class Simulation {
 public:
  Simulation(const SimOptions& options, SimReport* report)
      : options_(options), report_(report), random_(options.seed),
        dir_(options.dir + "/purser-sim-" + std::to_string(options.seed)),
        fs_(std::make_shared<FaultFs>(rocksdb::FileSystem::Default())), env_(NewFaultEnv(fs_)) {}

  ~Simulation() {
    ledger_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  Status Run() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    std::filesystem::create_directories(dir_);
    if (Status status = Open(); !status.ok()) return status;
    Setup();
    for (step_ = 1; step_ <= options_.steps && problem_.empty(); ++step_) {
      Step();
      ++report_->steps;
    }
    if (problem_.empty()) CheckEverythingAcknowledged();
    if (problem_.empty()) CheckAgainstRebuild();
    if (problem_.empty() && options_.faults && Chance(0.3)) FlipABit();
    if (!problem_.empty()) {
      const std::string where = failed_step_ > options_.steps ? "the final checks" : "step " + std::to_string(failed_step_);
      return Status::Error("seed " + std::to_string(options_.seed) + ", " + where + ": " + problem_);
    }
    return Status::Ok();
  }

 private:
  // ---- the ledger under test -------------------------------------------------

  Status Open() {
    LedgerOptions options;
    options.data_dir = dir_ + "/db";
    options.clock = [this] { return now_us_.load(); };
    options.storage_env = env_.get();
    options.wake_when_idle = false;  // groups for the workload's commands only
    // Small, so that checkpoints and the cold store are part of every seed.
    options.checkpoint_every_events = 300;
    options.sign_every_us = 60 * kSecondUs;
    Result<std::unique_ptr<Ledger>> opened = Ledger::Open(std::move(options));
    if (!opened.ok()) return opened.status();
    ledger_ = std::move(*opened);
    return Status::Ok();
  }

  Reply Call(RequestBody body) {
    ++report_->commands;
    Reply reply = ledger_->Call(Request{Credentials::System(), std::move(body)});
    if (reply.ok()) ++report_->acknowledged;
    return reply;
  }

  // A command whose acknowledgement is remembered for later retries.
  Reply Command(RequestBody body) {
    RequestBody copy = body;
    Reply reply = Call(std::move(body));
    if (reply.ok()) Remember(std::move(copy), reply);
    return reply;
  }

  void Remember(RequestBody body, const Reply& reply) {
    acknowledged_.push_back(Acknowledged{std::move(body), Answer(reply)});
  }

  void Fail(std::string problem) {
    if (!problem_.empty()) return;
    problem_ = std::move(problem);
    failed_step_ = step_;
  }

  void Trace(const std::string& line) {
    if (options_.trace != nullptr) *options_.trace << "step " << step_ << ": " << line << '\n';
  }

  // ---- random choices ----------------------------------------------------------

  bool Chance(double p) { return std::bernoulli_distribution(p)(random_); }
  static int64_t Draw(std::mt19937_64& random, int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(random);
  }
  int64_t Uniform(int64_t low, int64_t high) { return Draw(random_, low, high); }
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(Uniform(0, static_cast<int64_t>(items.size()) - 1))];
  }
  // Two hot agents take half of the calls.
  const std::string& Agent() { return Chance(0.5) ? agents_[static_cast<size_t>(Uniform(0, 1))] : Pick(agents_); }
  std::string Id(const char* prefix) { return std::string(prefix) + std::to_string(++ids_); }

  // ---- the workload ----------------------------------------------------------------

  void Setup() {
    auto open = [this](std::string id, std::string parent, AccountKind kind, bool wallet) {
      cmd::OpenAccount o;
      o.id = std::move(id);
      o.parent = std::move(parent);
      o.kind = kind;
      o.wallet = wallet;
      // Not remembered: a repeat answers the account as it is then.
      if (Reply reply = Call(o); !reply.ok()) Fail("opening " + o.id + ": " + reply.message);
    };
    open("org", "", AccountKind::kOrg, true);
    for (int t = 0; t < 3; ++t) {
      teams_.push_back("team-" + std::to_string(t));
      open(teams_.back(), "org", AccountKind::kTeam, t == 2);  // team-2 holds its own wallet
    }
    for (int a = 0; a < 12; ++a) {
      agents_.push_back("agent-" + std::to_string(a));
      open(agents_.back(), teams_[static_cast<size_t>(a % 3)], AccountKind::kAgent, false);
    }
    Deposit("org", 50'000'000);
    Deposit("team-2", 5'000'000);
    for (const std::string& team : teams_) SetCaps(team);
    for (int i = 0; i < 6; ++i) SetCaps(Pick(agents_));
  }

  void Deposit(const std::string& account, int64_t micros) {
    cmd::Deposit d;
    d.deposit_id = Id("d");
    d.account = account;
    d.amount_micros = micros;
    Command(d);
  }

  void SetCaps(const std::string& account) {
    cmd::SetCaps c;
    c.account = account;
    auto limit = [this](Patch<int64_t>* patch, int64_t low, int64_t high) {
      const int64_t roll = Uniform(0, 9);
      if (roll < 5) *patch = Patch<int64_t>::Set(Uniform(low, high));
      else if (roll < 7) *patch = Patch<int64_t>::Remove();
    };
    limit(&c.patch.daily_limit_micros, 500'000, 8'000'000);
    limit(&c.patch.monthly_limit_micros, 5'000'000, 40'000'000);
    if (Chance(0.2)) limit(&c.patch.hard_limit_micros, 10'000'000, 60'000'000);
    limit(&c.patch.max_inflight, 1, 6);
    if (Chance(0.3)) limit(&c.patch.max_calls_per_minute, 3, 30);
    if (Chance(0.2)) c.patch.on_expiry = Patch<OnExpiry>::Set(Chance(0.5) ? OnExpiry::kCharge : OnExpiry::kRelease);
    if (Chance(0.2)) c.patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
    // Not remembered: caps have no id, and a repeat sets them again.
    Call(c);
  }

  void Step() {
    const int64_t roll = Uniform(0, 999);
    now_us_ += Uniform(0, 3 * kSecondUs);
    if (roll < 330) return Reserve();
    if (roll < 560) return Settle();
    if (roll < 610) return VoidOne();
    if (roll < 640) return ExtendOne();
    if (roll < 720) return Usage();
    if (roll < 750) return RefundOne();
    if (roll < 775) return Deposit(Chance(0.7) ? "org" : "team-2", Uniform(1'000'000, 10'000'000));
    if (roll < 800) return TransferOne();
    if (roll < 820) return FreezeOrUnfreeze();
    if (roll < 850) return SetCaps(Chance(0.5) ? Pick(teams_) : Agent());
    if (roll < 880) return Batch();
    if (roll < 930) return Retry();
    if (roll < 955) return Jump();
    if (!options_.faults) return Reserve();
    if (roll < 975) return Crash(Chance(0.6));
    if (roll < 990) return FailTheDisk();
    return Restart();
  }

  void Reserve() {
    const std::string& agent = Agent();
    Reply balance = Call(query::GetBalance{agent});
    if (!balance.ok()) return Fail("balance of " + agent + ": " + balance.message);
    const BalanceView& before = std::get<BalanceView>(balance.body);
    // Near the edge of what fits, on both sides.
    const int64_t headroom = before.headroom_micros;
    const int64_t amount = Chance(0.4) && headroom > 0 ? std::max<int64_t>(1, headroom + Uniform(-2, 2))
                                                       : Uniform(1, std::max<int64_t>(2, headroom * 2));
    cmd::Reserve r;
    r.reservation_id = Id("r");
    r.account = agent;
    r.amount_micros = amount;
    r.ttl_s = Chance(0.3) ? Uniform(1, 120) : 0;
    r.run_id = Chance(0.3) ? "run-" + std::to_string(Uniform(1, 5)) : "";
    Reply reply = Command(r);
    ++report_->admissions_checked;
    if (reply.ok()) {
      if (amount > headroom) {
        Fail("reservation " + r.reservation_id + " of " + std::to_string(amount) + " on " + agent +
             " was admitted beyond the headroom of " + std::to_string(headroom) + " (a cap or the funds exceeded)");
      }
      pending_.push_back(r.reservation_id);
      amounts_[r.reservation_id] = amount;
    } else if (IsMoneyRefusal(reply.code) && amount <= headroom && !before.frozen) {
      Fail("reservation " + r.reservation_id + " of " + std::to_string(amount) + " on " + agent + " was refused (" +
           std::string(ResultCodeName(reply.code)) + ") within the headroom of " + std::to_string(headroom));
    }
  }

  // A reservation believed pending (it may have expired meanwhile).
  bool TakePending(std::string* id, bool remove) {
    if (pending_.empty()) return false;
    const size_t at = static_cast<size_t>(Uniform(0, static_cast<int64_t>(pending_.size()) - 1));
    *id = pending_[at];
    if (remove) {
      pending_[at] = pending_.back();
      pending_.pop_back();
    }
    return true;
  }

  void Settle() {
    std::string id;
    if (!TakePending(&id, true)) return Reserve();
    cmd::Settle s;
    s.reservation_id = id;
    const int64_t hold = amounts_[id];
    s.amount_micros = Chance(0.1) ? hold + Uniform(1, hold + 1) : Uniform(0, hold);  // overruns too
    s.outcome = Chance(0.1) ? Outcome::kError : Outcome::kSuccess;
    if (Command(s).ok()) settled_.push_back(id);
  }

  void VoidOne() {
    std::string id;
    if (!TakePending(&id, true)) return Reserve();
    cmd::Void v;
    v.reservation_id = id;
    v.reason = Chance(0.5) ? "cancelled" : "";
    Command(v);
  }

  void ExtendOne() {
    std::string id;
    if (!TakePending(&id, false)) return Reserve();
    cmd::Extend e;
    e.reservation_id = id;
    e.ttl_s = Uniform(1, 300);
    // The answer (now + ttl) is not a retry's: extending is not idempotent
    // by id, so it is not remembered.
    Call(e);
  }

  void Usage() {
    cmd::RecordUsage u;
    u.usage_id = Id("u");
    u.account = Agent();
    u.amount_micros = Uniform(1, 400'000);
    u.outcome = Chance(0.1) ? Outcome::kError : Outcome::kSuccess;
    if (Chance(0.1)) u.occurred_at_us = now_us_ - Uniform(1, 30) * 86'400 * kSecondUs;
    if (Command(u).ok()) usages_.push_back(u.usage_id);
  }

  void RefundOne() {
    const bool usage = !usages_.empty() && (settled_.empty() || Chance(0.5));
    if (!usage && settled_.empty()) return Usage();
    cmd::Refund f;
    f.refund_id = Id("f");
    f.target_kind = usage ? ChargeKind::kUsage : ChargeKind::kReservation;
    f.target_id = usage ? Pick(usages_) : Pick(settled_);
    f.amount_micros = Uniform(1, 200'000);
    Command(f);
  }

  void TransferOne() {
    cmd::Transfer t;
    t.transfer_id = Id("t");
    t.from = "org";
    t.to = "team-2";
    t.amount_micros = Uniform(1, 3'000'000);
    Command(t);
  }

  void FreezeOrUnfreeze() {
    const std::string& agent = Pick(agents_);
    if (Chance(0.5)) {
      Call(cmd::Freeze{agent, "simulated"});
    } else {
      Call(cmd::Unfreeze{agent});
    }
  }

  // Several commands in one submission (one group commit): each answered.
  void Batch() {
    std::vector<Request> requests;
    std::vector<RequestBody> bodies;
    const int64_t n = Uniform(2, 12);
    for (int64_t i = 0; i < n; ++i) {
      cmd::RecordUsage u;
      u.usage_id = Id("b");
      u.account = Agent();
      u.amount_micros = Uniform(1, 100'000);
      bodies.push_back(u);
      requests.push_back(Request{Credentials::System(), u});
    }
    report_->commands += requests.size();
    std::vector<Reply> replies = ledger_->CallBatch(std::move(requests));
    if (replies.size() != bodies.size()) return Fail("a batch of " + std::to_string(bodies.size()) + " got " +
                                                     std::to_string(replies.size()) + " answers");
    for (size_t i = 0; i < replies.size(); ++i) {
      if (!replies[i].ok()) continue;
      ++report_->acknowledged;
      Remember(bodies[i], replies[i]);
    }
  }

  // An acknowledged command again, with the same ids: the same answer.
  void Retry() {
    if (acknowledged_.empty()) return Reserve();
    CheckRetry(Pick(acknowledged_));
  }

  void CheckRetry(const Acknowledged& earlier) {
    ++report_->retries;
    Reply reply = Call(earlier.body);
    const std::string answer = Answer(reply);
    if (answer != earlier.answer) {
      Fail("a retry was answered differently (lost, or not idempotent): first `" + earlier.answer + "`, now `" +
           answer + "`");
    }
  }

  // Minutes to days: expiries, rate windows, new days and months.
  void Jump() {
    const int64_t roll = Uniform(0, 9);
    const int64_t by = roll < 6 ? Uniform(60, 900) : roll < 9 ? Uniform(3'600, 20'000) : 86'400;
    now_us_ += by * kSecondUs;
    Trace("the clock moves " + std::to_string(by) + " s");
    Call(query::GetStats{});  // gives the sequencer a chance to expire what fell due
  }

  // ---- faults ---------------------------------------------------------------------

  // Power cut: nothing more reaches the disk, the process dies, and what was
  // not synced is lost (or torn). Everything acknowledged must be there.
  void Crash(bool torn) {
    ++report_->crashes;
    fs_->Die();
    ledger_.reset();
    const uint64_t dropped = fs_->DropUnsynced(random_(), torn);  // one draw, however many files
    fs_->Revive();
    Trace(std::string("crash") + (torn ? " (torn)" : "") + ", " + std::to_string(dropped) + " unsynced bytes lost");
    if (Status status = Open(); !status.ok()) return Fail("cannot open after a crash: " + status.message());
    CheckSomeAcknowledged();
  }

  // A write or sync fails: the ledger must stop acknowledging at once
  // (fail-stop), and after the restart have everything it acknowledged.
  void FailTheDisk() {
    const uint64_t failures = fs_->failures();
    fs_->FailAfter(static_cast<uint64_t>(Uniform(1, 40)), Chance(0.5));
    bool stopped = false;
    for (int i = 0; i < 25 && problem_.empty(); ++i) {
      // Once the disk is dead, no new fact can be durable: nothing may be
      // acknowledged, whether or not the ledger noticed yet.
      const bool dead_before = fs_->dead();
      cmd::RecordUsage u;
      u.usage_id = Id("x");
      u.account = Agent();
      u.amount_micros = Uniform(1, 50'000);
      Reply reply = Command(u);
      if (dead_before && reply.ok()) Fail("usage " + u.usage_id + " was acknowledged after the storage failed");
      stopped = stopped || ledger_->failed();
    }
    if (fs_->failures() == failures) {  // the fault was never reached
      fs_->Revive();
      return;
    }
    ++report_->disk_failures;
    Trace(std::string("disk failure; the ledger ") + (stopped ? "stopped" : "had not written since"));
    Crash(Chance(0.5));
  }

  void Restart() {
    ++report_->restarts;
    ledger_->Stop();
    ledger_.reset();
    Trace("clean restart");
    if (Status status = Open(); !status.ok()) return Fail("cannot open after a clean stop: " + status.message());
    CheckSomeAcknowledged();
  }

  // A flipped bit in a stored table must be found: by the open, or by the
  // checksum scrub that purserd runs at start.
  void FlipABit() {
    ledger_->Stop();
    ledger_.reset();
    std::vector<std::filesystem::path> tables;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/db")) {
      if (entry.path().extension() == ".sst" && entry.file_size() > 0) tables.push_back(entry.path());
    }
    // Which tables exist depends on when RocksDB's compactions ran: one draw
    // from the workload's stream, whatever is on disk, keeps the rest of the
    // run the same on a rerun.
    std::mt19937_64 flip(random_());
    if (tables.empty()) return;
    std::sort(tables.begin(), tables.end());
    const std::filesystem::path& table = tables[Draw(flip, 0, static_cast<int64_t>(tables.size()) - 1)];
    // Not in the 53-byte footer: in RocksDB 7.8's table format its padding
    // is read by nothing and covered by no checksum, so a flip there damages
    // nothing and is not found (seed 197 of the soak met one).
    constexpr int64_t kFooterBytes = 53;
    const int64_t size = static_cast<int64_t>(std::filesystem::file_size(table));
    if (size <= kFooterBytes) return;
    const int64_t at = Draw(flip, 0, size - kFooterBytes - 1);
    std::fstream file(table, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(at);
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ (1 << Draw(flip, 0, 7)));
    file.seekp(at);
    file.write(&byte, 1);
    file.close();
    ++report_->bit_flips;
    Trace("bit flipped in " + table.filename().string() + " at " + std::to_string(at));
    Status opened = Open();
    if (!opened.ok()) return;  // found at the open
    // A table a crash left behind (written, never in the manifest) is
    // removed by the open: nothing of the database was damaged.
    if (!std::filesystem::exists(table)) return Trace("the flipped table was not part of the database");
    if (ledger_->VerifyChecksums().ok()) {
      Fail("a bit flipped in " + table.filename().string() + " (" + std::to_string(size) + " bytes) at byte " +
           std::to_string(at) + " was not detected by the open or the scrub");
    }
  }

  // ---- the promises ---------------------------------------------------------------

  void CheckSomeAcknowledged() {
    // The newest ones (the likeliest to be lost) and a sample of the rest.
    const size_t n = acknowledged_.size();
    for (size_t i = n > 60 ? n - 60 : 0; i < n && problem_.empty(); ++i) CheckRetry(acknowledged_[i]);
    for (int i = 0; i < 60 && n > 0 && problem_.empty(); ++i) CheckRetry(Pick(acknowledged_));
  }

  void CheckEverythingAcknowledged() {
    for (size_t i = 0; i < acknowledged_.size() && problem_.empty(); ++i) CheckRetry(acknowledged_[i]);
  }

  // The live state equals a rebuild of its log, and the log verifies
  // (checksums, chain, conservation of every wallet, the id index, the tree).
  void CheckAgainstRebuild() {
    const std::string copy = dir_ + "/copy";
    if (Status status = ledger_->CopyTo(copy); !status.ok()) return Fail("copy: " + status.message());
    Reply live = Call(query::GetDigest{});
    if (!live.ok()) return Fail("digest: " + live.message);
    const DigestView& digest = std::get<DigestView>(live.body);
    VerifyOptions verify;
    verify.data_dir = copy;
    VerifyReport verified;
    if (Status status = Verify(verify, &verified); !status.ok()) return Fail("verify: " + status.message());
    RebuildOptions rebuild;
    rebuild.data_dir = copy;
    RebuildReport rebuilt;
    if (Status status = Rebuild(rebuild, &rebuilt); !status.ok()) return Fail("rebuild: " + status.message());
    if (rebuilt.sequence != digest.sequence || rebuilt.digest != digest.digest) {
      Fail("the live digest at " + std::to_string(digest.sequence) + " differs from a rebuild of the log at " +
           std::to_string(rebuilt.sequence));
    }
  }

  const SimOptions& options_;
  SimReport* report_;
  std::mt19937_64 random_;
  std::string dir_;
  std::shared_ptr<FaultFs> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<Ledger> ledger_;
  std::atomic<int64_t> now_us_{kStartUs};
  int step_ = 0;
  int failed_step_ = 0;
  uint64_t ids_ = 0;
  std::string problem_;
  std::vector<std::string> teams_, agents_;
  std::vector<std::string> pending_, settled_, usages_;
  std::map<std::string, int64_t> amounts_;
  std::vector<Acknowledged> acknowledged_;
};

}  // namespace

Status RunSeed(const SimOptions& options, SimReport* report) {
  const auto start = std::chrono::steady_clock::now();
  Status status = Simulation(options, report).Run();
  report->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return status;
}

}  // namespace purser::sim
