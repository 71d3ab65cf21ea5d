// What a cluster node knows of every shard: which shard holds each tenant
// (the shard map, watched as it changes) and who leads each shard (the
// leases, read every half second). The edges route with it: Gate.leader
// answers by tenant, and a leader refuses to open a tenant another shard
// holds (docs/CLUSTER.md).
//
// Thread-safe; a thread of its own follows the map and the leases.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <vector>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cluster/nats_shard.h"
#include "ledger/base/replicator.h"

namespace purser {

class ShardDirectory {
 public:
  // `shard` (this node's connection) must outlive the directory.
  explicit ShardDirectory(NatsShard* shard, std::function<void(const std::string&)> warn);
  ~ShardDirectory();
  ShardDirectory(const ShardDirectory&) = delete;
  ShardDirectory& operator=(const ShardDirectory&) = delete;

  // Whether the map was read whole once, waiting up to `timeout` for it.
  bool WaitReady(std::chrono::milliseconds timeout);
  // The shard the map assigns `tenant` to, if any.
  std::optional<std::string> ShardOf(std::string_view tenant) const;
  // Who leads the shard of `tenant`: its assigned shard, else this node's
  // (a tenant not yet assigned may be opened on any shard, which assigns it).
  // `leading` stays false: only a serving node says it serves (daemon.cc).
  LeaderView Route(std::string_view tenant) const;
  // Records `tenant`, just opened here, on this node's shard in the map
  // (soon, on the directory's thread; a tenant another shard holds already
  // is logged through `warn`, the race of two shards opening one tenant).
  void Claim(const std::string& tenant);

 private:
  void Loop();
  void RefreshLeases();
  void ClaimWaiting();

  NatsShard* const shard_;
  const std::function<void(const std::string&)> warn_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  bool ready_ = false;  // the map's assignments at the watch's start are in
  std::map<std::string, std::string, std::less<>> tenants_;  // tenant -> shard
  std::map<std::string, LeaderView, std::less<>> leases_;    // shard -> its lease, parsed
  std::vector<std::string> claims_;                          // opened here, not yet recorded
  std::thread thread_;  // last: starts after the rest is set
};

}  // namespace purser
