// The seam between the log writer and a replicated log of record (cluster/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "ledger/base/status.h"

namespace purser {

// Publishes one write's records to the replicated log before they are
// written locally: the first event's sequence, the number of records and
// the records as a segment holds them (each a 4-byte little-endian length
// and the record). Returns the message's position in that log, or an error:
// then nothing of the write is written locally or acknowledged, and the
// engine stops (a deposed leader's publish is refused: fencing).
using Replicator =
    std::function<Result<uint64_t>(uint64_t first_sequence, size_t count, std::string_view records)>;

// Who leads a cluster-mode shard, as the lease names it: the edges answer
// `not_leader` with it on a standby, and Gate.leader over RPC on any node.
struct LeaderView {
  bool leading = false;  // the node answering serves it (set by that node's edges)
  std::string shard;
  std::string node;      // the leader's name; empty when no node holds the lease
  std::string rpc;       // its HOST:PORT addresses
  std::string http;
};
// Who leads the shard that holds `tenant` (a root account; empty: this
// node's shard). Thread-safe.
using LeaderLookup = std::function<LeaderView(std::string_view tenant)>;

// A lease value names a node: "node=N rpc=HOST:PORT http=HOST:PORT".
std::string FormatLeaseValue(const LeaderView& leader);
// The fields of a lease value; fields missing stay empty.
LeaderView ParseLeaseValue(std::string_view value);

}  // namespace purser
