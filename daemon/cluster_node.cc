#include "daemon/cluster_node.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cluster/follower.h"
#include "cluster/shard_directory.h"
#include "ledger/log/event_log.h"

namespace purser {

namespace {

using Clock = std::chrono::steady_clock;

// Connects, retrying for up to 30 s while the NATS servers come up.
std::unique_ptr<NatsShard> ConnectShard(const ClusterOptions& cluster, const ClusterNodeHooks& hooks) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (int attempt = 0;; ++attempt) {
    Result<std::unique_ptr<NatsShard>> connected = NatsShard::Connect(cluster);
    if (connected.ok()) return std::move(*connected);
    const bool retry = connected.status().code() != StatusCode::kInvalidArgument;
    if (attempt == 0 && retry) {
      hooks.warn("cluster: " + connected.status().message() + " (retrying for 30 s)");
    }
    if (!retry || hooks.stopping() || Clock::now() > deadline) {
      hooks.warn("cluster: " + connected.status().message());
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Result<std::unique_ptr<EventLog>> OpenLocalLog(const std::string& data_dir) {
  EventLogOptions options;
  options.path = data_dir;
  return EventLog::Open(options);
}

enum class Standing { kLead, kStop, kFailed };

// Starts the standby's edges for its life (they answer who leads).
class StandbyEdges {
 public:
  StandbyEdges(const ClusterNodeHooks& hooks, const LeaderLookup& route)
      : hooks_(hooks), status_(hooks_.standby_edges(route)) {}
  ~StandbyEdges() { (void)hooks_.standby_edges(nullptr); }

  const Status& status() const { return status_; }

 private:
  const ClusterNodeHooks& hooks_;
  Status status_;
};

// Follows the stream until this node holds the lease, has caught up with
// the stream's end and published its term (*position: the term's).
Standing Standby(NatsShard& shard, const std::string& data_dir, const std::string& lease_value,
                 const LeaderLookup& route, const ClusterNodeHooks& hooks, uint64_t* position) {
  Result<std::unique_ptr<EventLog>> log = OpenLocalLog(data_dir);
  if (!log.ok()) {
    hooks.warn("cluster: cannot open " + data_dir + ": " + log.status().message());
    return Standing::kFailed;
  }
  Follower follower(log->get(), &shard);
  hooks.info("cluster: standby of shard " + shard.options().shard + " at stream position " +
             std::to_string(follower.position()) + ", event " +
             std::to_string((*log)->last_sequence()));
  StandbyEdges edges(hooks, route);
  if (!edges.status().ok()) {
    hooks.warn("cluster: a standby must listen where its lease would send clients, and cannot: " +
               edges.status().message());
    return Standing::kFailed;
  }
  while (!hooks.stopping()) {
    if (Status status = follower.Poll(200); !status.ok()) {
      hooks.warn("cluster: following: " + status.message());
      if (status.IsCorruption()) return Standing::kFailed;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    Result<bool> lead = shard.TryLead(lease_value);
    if (!lead.ok()) hooks.warn("cluster: " + lead.status().message());
    if (!lead.ok() || !*lead) continue;
    // The lease is ours: everything published before it, then our term.
    const auto start = Clock::now();
    Result<uint64_t> last = shard.LastPosition();
    Status caught = last.ok() ? follower.CatchUp(*last) : last.status();
    if (caught.ok()) {
      Result<uint64_t> term = shard.PublishTerm(follower.position());
      if (term.ok()) {
        LogBatch batch;
        (*log)->SetReplicaPosition(*term, &batch);
        caught = (*log)->Write(&batch, /*sync=*/true);  // syncs the records followed, too
        if (caught.ok()) {
          *position = *term;
          hooks.info("cluster: leading shard " + shard.options().shard + " from stream position " +
                     std::to_string(*term) + ", event " + std::to_string((*log)->last_sequence()) +
                     " (caught up in " +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        Clock::now() - start).count()) + " ms)");
          return Standing::kLead;
        }
      } else {
        caught = term.status();
      }
    }
    hooks.warn("cluster: taking over failed: " + caught.message());
    shard.Resign();
    if (caught.IsCorruption()) return Standing::kFailed;
  }
  return Standing::kStop;
}

// Renews the lease every third of its TTL until stopped; steps the node
// down when it was lost, or not renewed for a whole TTL.
class LeaseKeeper {
 public:
  LeaseKeeper(NatsShard* shard, std::string value, const ClusterNodeHooks& hooks)
      : shard_(shard), value_(std::move(value)), hooks_(hooks), thread_([this] { Loop(); }) {}
  ~LeaseKeeper() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    const auto every = std::chrono::milliseconds(std::max<int64_t>(shard_->options().lease_ms / 3, 50));
    auto renewed = Clock::now();
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, every, [this] { return done_; })) {
      lock.unlock();
      Result<bool> kept = shard_->Renew(value_);
      lock.lock();
      if (kept.ok() && *kept) {
        renewed = Clock::now();
        continue;
      }
      // NATS unreachable for a moment (a server failing over): keep trying
      // while the lease can still be ours.
      if (!kept.ok() && Clock::now() - renewed < std::chrono::milliseconds(shard_->options().lease_ms)) {
        continue;
      }
      hooks_.warn("cluster: the lease is lost (" +
                  (kept.ok() ? std::string("taken or lapsed") : kept.status().message()) +
                  "): stepping down");
      hooks_.step_down();
      return;
    }
  }

  NatsShard* const shard_;
  const std::string value_;
  const ClusterNodeHooks& hooks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the rest is set
};

// Serves one term: every write published first, expecting the stream to
// end at the last position this node published.
// Opening a root account (a tenant) on this shard is refused when the map
// gives it to another shard. One the map does not name yet is opened here,
// and claimed for this shard once opened (ShardDirectory::Claim).
std::optional<Reply> AdmitTenant(const std::string& own, ShardDirectory& directory, const Request& request) {
  const auto* open = std::get_if<cmd::OpenAccount>(&request.body);
  if (open == nullptr || !open->parent.empty()) return std::nullopt;
  std::optional<std::string> held = directory.ShardOf(open->id);
  if (!held || *held == own) return std::nullopt;
  LeaderView leader = directory.Route(open->id);
  return Reply::Error(ResultCode::kNotLeader,
                      "tenant " + open->id + " is on shard " + *held +
                          (leader.node.empty() ? ", which no node leads now"
                                               : ", led by " + leader.node + " at rpc=" + leader.rpc +
                                                     " http=" + leader.http));
}

int Lead(NatsShard& shard, ShardDirectory& directory, const LedgerOptions& base, uint64_t position,
         const std::string& lease_value, const LeaderLookup& route, const ClusterNodeHooks& hooks) {
  hooks.new_term();
  LeaseKeeper keeper(&shard, lease_value, hooks);
  // Opening tenants needs the shard map read whole.
  if (!directory.WaitReady(std::chrono::seconds(10))) {
    hooks.warn("cluster: the shard map is not read yet; serving anyway (roots another shard holds may be opened)");
  }
  LedgerOptions options = base;
  auto expected = std::make_shared<uint64_t>(position);  // the log thread's alone
  options.replicate = [&shard, expected](uint64_t first, size_t count,
                                         std::string_view records) -> Result<uint64_t> {
    Result<uint64_t> published = shard.PublishWrite(*expected, first, count, records);
    if (published.ok()) *expected = *published;
    return published;
  };
  options.on_fatal_error = [&hooks](const Status& status) {
    hooks.warn("cluster: " + status.message() + ": stepping down");
    hooks.step_down();
  };
  options.admit = [&shard, &directory](const Request& request) {
    return AdmitTenant(shard.options().shard, directory, request);
  };
  // Tenants opened here are claimed for this shard in the map (by the
  // directory's thread: the log thread that runs observers never waits on NATS).
  auto opened = [&directory](Ledger& ledger) {
    // And those an earlier leader opened but did not live to claim.
    Reply tree = ledger.Call(Request{Credentials::System(), query::AccountTree{}});
    if (tree.ok()) {
      for (const auto& [account, parent] : std::get<AccountTreeView>(tree.body).accounts) {
        if (parent.empty() && !directory.ShardOf(account)) directory.Claim(account);
      }
    }
    ledger.AddObserver([&directory](const std::vector<Event>& events) {
      for (const Event& event : events) {
        const auto* open = std::get_if<event::AccountOpened>(&event.body);
        if (open != nullptr && open->parent.empty()) directory.Claim(open->account);
      }
    });
  };
  return hooks.serve(std::move(options), route, opened);
}

}  // namespace

int RunClusterNode(const ClusterOptions& cluster, const LedgerOptions& ledger,
                   const std::string& lease_value, const ClusterNodeHooks& hooks) {
  std::unique_ptr<NatsShard> shard = ConnectShard(cluster, hooks);
  if (!shard) return hooks.stopping() ? 0 : 1;
  ShardDirectory directory(shard.get(), hooks.warn);
  const LeaderLookup route = [&directory](std::string_view tenant) { return directory.Route(tenant); };
  int status = 0;
  while (!hooks.stopping()) {
    uint64_t position = 0;
    Standing standing = Standby(*shard, ledger.data_dir, lease_value, route, hooks, &position);
    if (standing == Standing::kFailed) return 1;
    if (standing == Standing::kStop) break;
    status = Lead(*shard, directory, ledger, position, lease_value, route, hooks);
    // Let another node (or this one, once it caught up again) lead now
    // rather than after the lease's TTL.
    shard->Resign();
    if (hooks.stopping()) break;
    // A term that ended in a step-down (a refused publish included) is not
    // the node's failure: it goes on as a standby. One that ended otherwise
    // (its ledger did not open) would fail again at every takeover: exit.
    if (!hooks.stepped_down()) {
      hooks.warn("cluster: the term ended without a step-down (exit status " + std::to_string(status) +
                 "): exiting");
      return status == 0 ? 1 : status;
    }
    status = 0;
    hooks.info("cluster: stepped down; standby again");
  }
  return status;
}

int AssignTenant(const ClusterOptions& cluster, const std::string& tenant, const ClusterNodeHooks& hooks) {
  std::unique_ptr<NatsShard> shard = ConnectShard(cluster, hooks);
  if (!shard) return 1;
  if (Status status = shard->Assign(tenant, cluster.shard); !status.ok()) {
    hooks.warn("cluster: " + status.message());
    return 1;
  }
  hooks.info("cluster: tenant " + tenant + " is on shard " + cluster.shard);
  return 0;
}

int CatchUpOnce(const ClusterOptions& cluster, const std::string& data_dir, const ClusterNodeHooks& hooks) {
  std::unique_ptr<NatsShard> shard = ConnectShard(cluster, hooks);
  if (!shard) return 1;
  Result<std::unique_ptr<EventLog>> log = OpenLocalLog(data_dir);
  if (!log.ok()) {
    hooks.warn("cluster: cannot open " + data_dir + ": " + log.status().message());
    return 1;
  }
  Follower follower(log->get(), shard.get());
  // NATS may be electing leaders (a server just died): retry for 30 s.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  Status status;
  do {
    if (!status.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Result<uint64_t> last = shard->LastPosition();
    status = last.ok() ? follower.CatchUp(*last) : last.status();
  } while (!status.ok() && !status.IsCorruption() && Clock::now() < deadline && !hooks.stopping());
  if (status.ok()) {
    LogBatch batch;
    (*log)->SetReplicaPosition(follower.position(), &batch);
    status = (*log)->Write(&batch, /*sync=*/true);
  }
  if (!status.ok()) {
    hooks.warn("cluster: catching up: " + status.message());
    return 1;
  }
  hooks.info("cluster: caught up to stream position " + std::to_string(follower.position()) +
             ", event " + std::to_string((*log)->last_sequence()));
  return 0;
}

}  // namespace purser
