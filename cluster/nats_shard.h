// A shard's log of record and its leader lease on NATS JetStream (the NATS
// C client, libnats). Purser keeps its RocksDB log as the materialized copy;
// the stream is what a standby follows and what survives a lost machine.
//
//   stream PURSER_<shard>   subject purser.<shard>.log, file storage, R3:
//                           every message is either a term (a new leader
//                           announcing itself) or one group commit's records
//                           as the local log writes them (a segment)
//   bucket purser_lease     key <shard>: the leader's lease, its value
//                           "node=N rpc=HOST:PORT http=HOST:PORT"; it lapses
//                           when not renewed within the bucket's TTL
//
// Fencing: every publish names the stream's last sequence it expects, so a
// deposed leader's publish is refused once anyone else published; a new
// leader publishes its term before anything else.
//
// Thread-safety: a NatsShard may be used from several threads (libnats
// connections are); a Subscription by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/status.h"

struct __natsConnection;
struct __jsCtx;
struct __kvStore;
struct __kvWatcher;
struct __natsSubscription;
struct __natsMsg;

namespace purser {

struct ClusterOptions {
  // NATS server URLs (nats://HOST:PORT). Required.
  std::vector<std::string> servers;
  // The shard: which stream and lease key. [a-z0-9_-]{1,32}. Default: s0.
  std::string shard = "s0";
  // This node's name, in its lease. Default: the host name.
  std::string node;
  // Copies of the stream and the lease bucket (JetStream replicas). Default: 3.
  int replicas = 3;
  // The lease's time to live; the leader renews it every third of it. The
  // first node to start sets it for the bucket; a node that disagrees is
  // refused (InvalidArgument). 0: this connection only reads or publishes
  // the stream and never touches the lease. Default: 3,000 ms.
  int64_t lease_ms = 3'000;
  // With lease_ms, open the shard map but not the lease (purserd
  // --assign-tenant). Default: false.
  bool map_only = false;
  // How long a publish waits for JetStream's acknowledgement. Default: 5,000 ms.
  int64_t publish_timeout_ms = 5'000;
};

// One message of the stream.
struct StreamMessage {
  enum class Kind { kTerm, kRecords };
  uint64_t position = 0;  // the stream sequence
  Kind kind = Kind::kTerm;
  uint64_t first = 0;     // kRecords: the first record's event sequence
  uint64_t count = 0;     // kRecords: the number of records
  std::string node;       // kTerm: the leader
  std::string body;       // kRecords: the records, as a segment holds them
};

class NatsShard {
 public:
  // Connects and creates the stream and the lease bucket when absent.
  static Result<std::unique_ptr<NatsShard>> Connect(const ClusterOptions& options);
  ~NatsShard();
  NatsShard(const NatsShard&) = delete;
  NatsShard& operator=(const NatsShard&) = delete;

  const ClusterOptions& options() const { return options_; }
  // The largest message body the servers take (their max_payload, less
  // room for headers), at most the stream's 8 MiB.
  size_t max_body_bytes() const;

  // The stream's last sequence (0 when empty).
  Result<uint64_t> LastPosition();
  // Publishes this node's term, or a group's records, only if the stream's
  // last sequence is `expected`: the new message's sequence. When another
  // published first, the error's message starts with "fenced".
  Result<uint64_t> PublishTerm(uint64_t expected);
  Result<uint64_t> PublishRecords(uint64_t expected, uint64_t first, uint64_t count,
                                  std::string_view records);
  // The same for a write larger than one message: cut at record boundaries
  // into messages of at most max_body_bytes(), published in order, each
  // expecting the one before; the last one's sequence.
  Result<uint64_t> PublishWrite(uint64_t expected, uint64_t first, uint64_t count,
                                std::string_view records);

  // The lease. TryLead takes it when nobody holds it; Renew keeps it (false
  // when it lapsed or someone else took it); Resign gives it up now.
  Result<bool> TryLead(const std::string& value);
  Result<bool> Renew(const std::string& value);
  void Resign();
  // The lease's value ("" when nobody leads).
  Result<std::string> Leader();
  // The lease value of another shard's leader ("" when none holds it).
  Result<std::string> LeaderOf(const std::string& shard);

  // The shard map (bucket purser_shards): which shard holds a tenant (a
  // root account). Assign records `tenant` on `shard` unless it is on
  // another already (then an error: moving tenants is not built).
  // *holder (when given) receives the shard that holds it.
  Status Assign(const std::string& tenant, const std::string& shard, std::string* holder = nullptr);
  struct MapChange {
    std::string tenant;
    std::string shard;     // empty when removed
    bool removed = false;
  };
  // Every assignment, then each change as it happens.
  class MapWatch {
   public:
    ~MapWatch();
    // The next assignment or change; none after `timeout_ms`.
    Result<std::optional<MapChange>> Next(int64_t timeout_ms);

   private:
    friend class NatsShard;
    __kvWatcher* watcher_ = nullptr;
  };
  Result<std::unique_ptr<MapWatch>> WatchMap();

  // Follows the stream from `from` (inclusive) in order.
  class Subscription {
   public:
    ~Subscription();
    // The next message, or nullopt after `timeout_ms` without one.
    Result<std::optional<StreamMessage>> Next(int64_t timeout_ms);

   private:
    friend class NatsShard;
    __natsSubscription* sub_ = nullptr;
  };
  Result<std::unique_ptr<Subscription>> Subscribe(uint64_t from);

 private:
  explicit NatsShard(ClusterOptions options) : options_(std::move(options)) {}
  Result<uint64_t> Publish(__natsMsg* message, uint64_t expected);

  ClusterOptions options_;
  std::string stream_;
  std::string subject_;
  __natsConnection* connection_ = nullptr;
  __jsCtx* js_ = nullptr;
  __kvStore* kv_ = nullptr;   // the lease bucket
  __kvStore* map_ = nullptr;  // the shard map
  uint64_t lease_revision_ = 0;  // of our lease; 0 when we hold none
};

}  // namespace purser
