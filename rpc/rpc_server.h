// The Cap'n Proto RPC server of purserd (schema/purser.capnp).
//
// `loops` threads each run a KJ event loop. The first accepts connections
// (TCP, or a unix socket) and hands each, in turn, to one loop, which serves
// it for its life: the TLS handshake, decoding calls and handing their
// requests to the sequencer's bounded queue, encoding the answers.
// Completions come back from the sequencer's log thread through the loop's
// LoopInbox and are answered on that loop's thread. Calls of all
// connections share the sequencer's group commits.
//
// Thread-safety: Start/StopAccepting/Stop from one controlling thread.
// `*sequencer` must outlive the server, and Stop() must come after the
// sequencer stopped (so that every completion has been posted).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/base/replicator.h"
#include "ledger/base/status.h"

namespace purser {

struct RpcServerOptions {
  // "HOST:PORT" (port 0 = ephemeral) or "unix:/path/to/socket". Default: 127.0.0.1:8481.
  std::string address = "127.0.0.1:8481";
  // PEM files; both or neither. With them, connections are TLS.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Allow a non-loopback address without TLS. Default: false (refused).
  bool insecure = false;
  // Bytes of calls in flight per connection before the server stops reading
  // from it (RpcSystem flow limit). Default: 64 MiB.
  size_t flow_limit_bytes = 64 << 20;
  // Largest message the server reads, in 8-byte words (a submit of 8,192
  // commands fits). Default: 16 MiB.
  uint64_t traversal_limit_words = (16 << 20) / 8;
  // Deepest nesting of a message. Default: 16.
  int nesting_limit = 16;
  // Open connections at once; more are closed at accept. Default: 4,096.
  size_t connections_max = 4096;
  // A connection that has not traded a valid key for a session within this
  // time is closed. Default: 10 s.
  int64_t handshake_timeout_ms = 10'000;
  // An authenticated connection with no call for this long (and no open
  // subscription) is closed; 0 = never. Default: 600 s.
  int64_t idle_timeout_s = 600;
  // Webhook delivery (secrets, deliveries). Default: none (webhooks cannot
  // be registered over RPC).
  class Notifier* notifier = nullptr;
  // Accept webhook URLs that resolve to private addresses. Default: false.
  bool allow_private_webhooks = false;
  // Event loop threads serving connections (1..64). Default: 2.
  int loops = 2;
  // Cluster mode: who leads the shard, for Gate.leader. Default: none (this
  // node always serves). A server made without a ledger (a standby's) needs
  // it, and refuses every authenticate with "not_leader".
  LeaderLookup leader;
};

// True for addresses that stay on this host (127.0.0.0/8, ::1, localhost, unix:).
bool IsLoopbackAddress(const std::string& address);

class RpcServer {
 public:
  // `sequencer` null: a cluster standby's server, which only says who leads.
  RpcServer(Ledger* sequencer, RpcServerOptions options);
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds and starts serving; returns once listening (or why it could not).
  Status Start();
  // The bound TCP port (after Start; 0 for a unix socket).
  uint16_t port() const { return port_; }
  // Stops accepting new connections; open ones keep working.
  void StopAccepting();
  // Answers what is left, closes every connection and joins the loop threads.
  void Stop();
  // Connections each loop has been given since Start.
  std::vector<uint64_t> connections_by_loop() const;

  class Loop;

 private:
  Ledger* sequencer_;
  RpcServerOptions options_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> connections_{0};  // open, over all loops
  uint16_t port_ = 0;
};

}  // namespace purser
