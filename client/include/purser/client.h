// purser::Client — the C++ client of purserd's RPC interface, for the CLI,
// the load tool and applications.
//
// Thread-safe. Calls from any number of application threads, and
// asynchronous calls, are coalesced into `submit` batches: a few batches are
// in flight per connection while the next one fills, so code that calls
// Reserve() one at a time from many threads still gets the throughput of
// batches (the way TigerBeetle's clients batch). The connection is served by the client's own KJ event loop
// thread; async callbacks run on that thread and must not block.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ledger/machine/commands.h"
#include "ledger/base/status.h"
#include "notify/delivery.h"

namespace purser {

struct ClientOptions {
  // "HOST:PORT" or "unix:PATH"; or several, comma-separated (the nodes of
  // a cluster-mode shard, docs/CLUSTER.md). The client serves its calls
  // through the shard's leader: it tries the addresses in order, and a
  // standby's `not_leader` answer sends it to the leader the standby names.
  // With several addresses it also fails over: when its connection is lost
  // it reaches the new leader (for up to `failover_ms`) and sends again the
  // calls that were in flight, which is safe because every command carries
  // its id (SPEC: idempotency). Subscriptions are not carried over.
  // Default: 127.0.0.1:8481.
  std::string address = "127.0.0.1:8481";
  // How long Connect(), and a failover, keep looking for a serving node when
  // `address` names several (a lease's TTL plus a catch-up is typical).
  // 0..600,000. Default: 30,000.
  int64_t failover_ms = 30'000;
  // Cluster mode with several shards: the tenant (root account) this
  // client's calls are for. The client asks the first node it reaches who
  // leads that tenant's shard (Gate.leader; the shard map) and is served
  // there. Empty: the shard of the nodes in `address`. Default: empty.
  std::string tenant;
  std::string api_key;
  // Connect with TLS, trusting this CA certificate (PEM). Default: no TLS.
  std::string tls_ca_file;
  // Commands per submit when coalescing. Default: 8,192 (the server's limit).
  size_t batch_max = 8192;
  // Coalesced submits in flight at once; calls wait while that many are.
  // 1 sends the next batch only after the last was answered. Default: 4.
  size_t batches_in_flight = 4;
};

// An alert or a freeze pushed by the server (schema/purser.capnp Notice).
struct AlertNotice {
  uint64_t sequence = 0;
  int64_t timestamp_us = 0;
  std::string kind;
  std::string account;
  uint64_t alert_id = 0;
  uint8_t threshold_pct = 0;
  int64_t limit_micros = 0;
  int64_t value_micros = 0;
  std::string message;
};

// An event's inclusion proof (SPEC section 9): hashes as raw 32-byte strings.
struct InclusionProofView {
  uint64_t seq = 0;
  uint64_t leaf_index = 0;  // seq - 1
  uint64_t tree_size = 0;
  std::string leaf_hash;           // SHA-256(0x00 || record)
  std::vector<std::string> path;   // RFC 9162 audit path, leaf to root
  std::string record;              // the event's record as stored
};

// The tree of `to` events extends the tree of `from`.
struct ConsistencyProofView {
  uint64_t from = 0;
  uint64_t to = 0;
  std::vector<std::string> path;
};

class Client {
 public:
  // Connects and trades the API key for a session. An invalid key is an error.
  static Result<std::unique_ptr<Client>> Connect(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Who the key is.
  const PrincipalView& principal() const;
  // The address of the node serving this client now (it changes when the
  // client follows a standby's `not_leader` answer, or fails over).
  std::string address() const;

  // One request; blocks until its reply. Coalesced with other threads' calls.
  Reply Call(RequestBody body);
  // One request; `done` runs on the client's loop thread.
  void CallAsync(RequestBody body, std::function<void(Reply&&)> done);
  // An explicit batch (at most 8,192): one submit, replies in order.
  std::vector<Reply> CallBatch(std::vector<RequestBody> bodies);
  void CallBatchAsync(std::vector<RequestBody> bodies, std::function<void(std::vector<Reply>&&)> done);

  // Streams alerts and freezes of `account`'s subtree (empty: the key's
  // scope) to `on_notice` (loop thread) until the client is destroyed.
  Status Subscribe(const std::string& account, std::function<void(const AlertNotice&)> on_notice);

  // A round trip that does not touch the ledger; `done` runs on the loop thread.
  void PingAsync(std::function<void()> done);

  // Global admin: a RocksDB checkpoint of the server's database in `dir`.
  Reply Checkpoint(const std::string& dir);

  // Global admin: the newest signed checkpoint of the log (a signed note).
  Reply LatestCheckpoint(std::string* note);
  // Event `seq` in the tree of `tree_size` events (0: the newest signed
  // checkpoint's); any key that sees the event's account.
  Reply InclusionProof(uint64_t seq, uint64_t tree_size, InclusionProofView* proof);
  // Global admin: the tree of `to` events extends the tree of `from`.
  Reply ConsistencyProof(uint64_t from, uint64_t to, ConsistencyProofView* proof);

  // A webhook's delivery records (SPEC section 8), newest first; `state`
  // filters when not empty; `limit` 0 means 100.
  Reply WebhookDeliveries(const std::string& webhook_id, uint32_t limit, const std::string& state,
                          std::vector<DeliveryView>* deliveries);
  // Sends a recorded event to the webhook again.
  Reply Redeliver(const std::string& webhook_id, const std::string& event_id);

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace purser
