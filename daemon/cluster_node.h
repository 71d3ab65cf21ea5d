// purserd --cluster: one node of a shard whose log of record is a NATS
// JetStream stream (cluster/nats_shard.h, docs/CLUSTER.md).
//
// A node is a standby until it holds the shard's lease: it follows the
// stream into its local log (cluster/follower.h) and tries to take the
// lease. Holding it, it catches up to the stream's end, publishes its term
// (which fences any earlier leader's later publishes), opens the ledger
// with every write published first, and serves; it renews the lease every
// third of its TTL. It steps down, back to standby, when a publish is
// refused or fails, or when it cannot renew the lease before it lapses.
#pragma once

#include <functional>
#include <string>

#include "cluster/nats_shard.h"
#include "ledger/base/replicator.h"
#include "ledger/ledger.h"

namespace purser {

struct ClusterNodeHooks {
  // Opens a ledger with these options, calls `opened` with it, and serves
  // it until stop() or step_down(), answering who leads a tenant with
  // `route`; returns the exit status of that term.
  std::function<int(LedgerOptions, LeaderLookup route, std::function<void(Ledger&)> opened)> serve;
  // True once a stop signal arrived.
  std::function<bool()> stopping;
  // Before a term's serve(): clears an earlier term's step_down().
  std::function<void()> new_term;
  // Ends the current term's serve() (from any thread).
  std::function<void()> step_down;
  // Whether the current term was ended by step_down().
  std::function<bool()> stepped_down;
  // Starts the edges of a standby, which answer who leads and nothing else
  // (with a lookup), or stops them (with a null one) before the node leads.
  // A standby that cannot listen where its lease will send clients must not
  // take the lease: an error ends the node.
  std::function<Status(LeaderLookup)> standby_edges;
  std::function<void(const std::string&)> info;
  std::function<void(const std::string&)> warn;
};

// Runs the node until a stop signal: the exit status. `lease_value` is what
// the lease says of this node ("node=N rpc=HOST:PORT http=HOST:PORT").
int RunClusterNode(const ClusterOptions& cluster, const LedgerOptions& ledger,
                   const std::string& lease_value, const ClusterNodeHooks& hooks);

// Records `tenant` on this node's shard in the shard map (refused when
// another shard holds it): the exit status.
int AssignTenant(const ClusterOptions& cluster, const std::string& tenant, const ClusterNodeHooks& hooks);

// Copies the stream into the local log up to its current end, then returns
// (a new node's seed, or a rebuild of the log of record): the exit status.
int CatchUpOnce(const ClusterOptions& cluster, const std::string& data_dir,
                const ClusterNodeHooks& hooks);

}  // namespace purser
