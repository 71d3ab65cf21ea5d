// The HTTP/JSON API of ../shared/API.md, independent of the network layer:
// a request in, a response out (through a callback, since answers wait for
// the sequencer's group commit). api/http_server.h serves it with Beast.
//
// Every request goes through the same sequencer, group commit, keys, roles
// and scopes as RPC. Thread-safety: Handle() from any thread; `respond` may
// run on the sequencer's log thread and must hand the response back to the
// connection's own thread quickly.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/base/replicator.h"

namespace purser {

class Metrics;

struct HttpRequest {
  std::string method;                         // GET, POST, PUT, DELETE
  std::string path;                           // without the query string, decoded
  std::vector<std::string> segments;          // the path's segments, each decoded on its own
  std::map<std::string, std::string> query;   // decoded query parameters
  std::string body;
  std::string authorization;                  // the Authorization header
  std::string idempotency_key;                // the Idempotency-Key header
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  int retry_after_s = 0;  // set on 503 and 429
  std::string allow;      // set on 405: the methods the path takes
  // Further headers (the dashboard's caching and security policy).
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpApiOptions {
  // Accept webhook URLs that resolve to loopback, link-local or private
  // addresses. Default: false.
  bool allow_private_webhooks = false;
  // Serve /metrics without a key (for a Prometheus that cannot send one).
  // Default: false.
  bool metrics_public = false;
  // Storage health for /healthz (503 once corruption was seen); may be null.
  const class StorageHealth* health = nullptr;
  // Webhook delivery: secrets are kept there, deliveries read from it. May
  // be null (then webhooks cannot be registered).
  class Notifier* notifier = nullptr;
  // Cluster mode: who leads the shard. An API made without a ledger (a
  // standby's) needs it: /healthz answers 503 "standby" with the leader, and
  // every other request 421 `not_leader` with the leader's addresses (503
  // `unavailable` while no node leads).
  LeaderLookup leader;
};

// Splits "/a/b?x=1&y=%20" into a path, its segments (split before each is
// decoded, so an encoded "/" stays inside its segment) and decoded
// parameters. False when the target is not valid (bad percent-encoding, a
// repeated parameter).
bool ParseTarget(std::string_view target, std::string* path,
                 std::map<std::string, std::string>* query,
                 std::vector<std::string>* segments = nullptr);

class HttpApi {
 public:
  // `*sequencer` and `*metrics` must outlive the API; both null on a
  // cluster standby (then options.leader is needed).
  HttpApi(Ledger* sequencer, Metrics* metrics, HttpApiOptions options);
  ~HttpApi();

  void Handle(const HttpRequest& request, std::function<void(HttpResponse&&)> respond);
  // Finishes the background work (proofs, checkpoint copies) and refuses
  // more: call before the server that answers stops.
  void StopWork();

  struct Plan;

 private:
  void HandleRequest(const HttpRequest& request, const std::function<void(HttpResponse&&)>& respond);
  HttpResponse StandbyResponse(const HttpRequest& request) const;
  Ledger* sequencer_;
  Metrics* metrics_;
  HttpApiOptions options_;
  std::unique_ptr<class WorkQueue> work_;  // proofs and signed checkpoints
};

}  // namespace purser
