#include "daemon/daemon.h"

#include "ops/health.h"
#include "notify/notifier.h"
#include "ledger/base/limits.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <optional>
#include <fstream>
#include <iostream>

#include "daemon/cluster_node.h"
#include "http/http_api.h"
#include "http/http_server.h"
#include "ops/metrics.h"
#include "rpc/rpc_server.h"
#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"
#include "ledger/base/flags.h"
#include "ledger/ledger.h"
#include "ledger/machine/validate.h"

namespace purser {

namespace {

constexpr char kUsage[] =
    "usage: purserd [--data-dir DIR] [--rpc HOST:PORT | --rpc unix:PATH] [--http HOST:PORT]\n"
    "               [--tls-cert PEM --tls-key PEM] [--insecure] [--log-level info|warn|error]\n"
    "               [--queue-max N] [--checkpoint-every N] [--http-threads N]\n"
    "               [--allow-private-webhooks] [--metrics-public] [--metrics-account-depth N]\n"
    "               [--rpc-handshake-timeout-ms MS] [--rpc-idle-timeout-s S] [--connections-max N]\n"
    "               [--rpc-loops N] [--sign-every-s S]\n"
    "               [--cluster NATS_URL,... [--node NAME] [--shard NAME] [--lease-ms MS]\n"
    "                [--cluster-replicas N] [--cluster-catch-up | --assign-tenant ROOT]]\n"
    "  --data-dir     the RocksDB directory (default ./data)\n"
    "  --rpc          Cap'n Proto RPC address (default 127.0.0.1:8481; port 0 = ephemeral)\n"
    "  --http         HTTP/JSON address (default 127.0.0.1:8480; port 0 = ephemeral)\n"
    "  --insecure     allow a non-loopback address without TLS\n"
    "  --rpc-loops    event loop threads serving RPC connections, 1..64 (default 2)\n"
    "  --rpc-handshake-timeout-ms  close RPC connections that do not authenticate in time\n"
    "                 (default 10000)\n"
    "  --rpc-idle-timeout-s  close authenticated RPC sessions idle this long (default 600;\n"
    "                 0 = never; an open subscription keeps a session)\n"
    "  --connections-max  per server (RPC, HTTP), within the descriptor budget (default 4096)\n"
    "  --metrics-public    serve /metrics without a key\n"
    "  --metrics-account-depth  per-account series for accounts this deep (default 2)\n"
    "  --scrub-interval-s  verify every SST checksum this often, and at start (default 21600;\n"
    "                 0 = at start only); corruption: /healthz 503, exit status 3 at stop\n"
    "  --accept-truncated-log  start although the log lost acknowledged events (logged)\n"
    "  --webhook-timeout-ms  one delivery attempt's deadline (default 5000)\n"
    "  --webhook-retry-base-ms  the first retry's delay, doubling to 10 min (default 1000)\n"
    "  --webhook-max-attempts  attempts before a delivery is dead (default 15)\n"
    "  --webhook-concurrency  attempts in flight at once (default 16)\n"
    "  --webhook-ca FILE  trust this CA for https receivers (besides the system's)\n"
    "  --sign-every-s  sign a checkpoint of the log's Merkle tree this often while events\n"
    "                 arrive, 1..60 (default 60); the key: DIR/log.key, DIR/log.pub\n"
    "  --cluster      NATS servers (nats://HOST:PORT,...): the shard's log of record is a\n"
    "                 JetStream stream; this node leads or follows it (docs/CLUSTER.md).\n"
    "                 Needs fixed --rpc and --http ports (they go into the lease)\n"
    "  --node         this node's name in the lease (default: the host name)\n"
    "  --shard        the shard, [a-z0-9_-]{1,32} (default s0)\n"
    "  --lease-ms     the leader's lease, 500..60000 (default 3000)\n"
    "  --cluster-replicas  JetStream replicas of the stream and the lease, 1..5 (default 3)\n"
    "  --cluster-catch-up  copy the stream into --data-dir up to its end, then exit\n"
    "  --assign-tenant  record the root account ROOT on --shard in the shard map, then exit\n"
    "                 (a tenant not assigned is recorded on the shard that first opens it)\n";

std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_step_down{false};  // cluster mode: end this term, stay up
int g_signal_pipe[2] = {-1, -1};

void WakeMainThread() {
  char byte = 1;
  ssize_t written = write(g_signal_pipe[1], &byte, 1);  // async-signal-safe
  (void)written;
}

void OnStopSignal(int signal_number) {
  g_stop_signal.store(signal_number);
  WakeMainThread();
}

enum class Level { kInfo, kWarn, kError };
Level g_level = Level::kInfo;

void Log(Level level, const std::string& message) {
  if (level < g_level) return;
  std::fprintf(stderr, "purserd: %s\n", message.c_str());
  std::fflush(stderr);
}

// The global admin key on first start: <data-dir>/admin.key, mode 0600, the
// key alone on one line. The file is written (as .tmp) before the key is
// issued and renamed after, so a crash in between never loses the only admin.
Status EnsureAdminKey(Ledger& sequencer, const std::string& data_dir) {
  std::filesystem::path path = std::filesystem::path(data_dir) / "admin.key";
  std::filesystem::path tmp = path.string() + ".tmp";
  Reply keys = sequencer.Call(Request{Credentials::System(), query::ListKeys{}});
  if (!keys.ok()) return Status::Error("listing keys: " + keys.message);
  if (!std::get<KeyList>(keys.body).keys.empty()) {
    if (!std::filesystem::exists(path) && std::filesystem::exists(tmp)) {
      std::filesystem::rename(tmp, path);  // a crash between issuing and renaming
    }
    return Status::Ok();
  }
  std::string secret = NewApiKeySecret();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot write " + tmp.string());
  std::string line = secret + "\n";
  bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                 fsync(fd) == 0;
  close(fd);
  if (!written) return Status::Error("cannot write " + tmp.string());
  cmd::IssueKey issue;
  issue.key_id = "k_admin";
  issue.role = Role::kAdmin;
  issue.label = "global admin (first start)";
  issue.secret_sha256 = Sha256(secret);
  Reply reply = sequencer.Call(Request{Credentials::System(), issue});
  if (!reply.ok()) return Status::Error("issuing the admin key: " + reply.message);
  std::filesystem::rename(tmp, path);
  chmod(path.c_str(), 0600);
  Log(Level::kInfo, "created the global admin key in " + path.string());
  return Status::Ok();
}

struct DescriptorBudget {
  int64_t limit = 0;
  int rocksdb_files = -1;
  size_t rpc_connections = 0;
  size_t http_connections = 0;
  std::string error;
};

// Raises RLIMIT_NOFILE to its hard limit and splits it: RocksDB's table
// cache first (a quarter, 64..1,000 files), a reserve for the WAL, logs,
// webhooks and the process itself, and the rest to connections, half each
// for RPC and HTTP (at most `connections_max` each, default 4,096).
DescriptorBudget BudgetDescriptors(std::optional<int64_t> connections_max) {
  DescriptorBudget budget;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    if (limit.rlim_cur < limit.rlim_max) {
      rlimit raised = limit;
      raised.rlim_cur = limit.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
  }
  budget.limit = limit.rlim_cur == RLIM_INFINITY ? 1 << 20 : static_cast<int64_t>(limit.rlim_cur);
  constexpr int64_t kReserve = 128;  // WAL, LOG, MANIFEST, listeners, webhooks, stdio
  budget.rocksdb_files = static_cast<int>(std::clamp<int64_t>(budget.limit / 4, 64, 1'000));
  int64_t left = budget.limit - budget.rocksdb_files - kReserve;
  if (left < 16) {
    budget.error = "the descriptor limit (" + std::to_string(budget.limit) +
                   ") is too low: purserd needs at least " +
                   std::to_string(budget.rocksdb_files + kReserve + 16) + " (ulimit -n)";
    return budget;
  }
  int64_t each = std::min<int64_t>(left / 2, connections_max.value_or(4'096));
  budget.rpc_connections = static_cast<size_t>(std::max<int64_t>(each, 1));
  budget.http_connections = budget.rpc_connections;
  return budget;
}

void LogChainHead(Ledger& sequencer) {
  Reply reply = sequencer.Call(Request{Credentials::System(), query::GetChainHead{}});
  if (!reply.ok()) return;
  const auto& head = std::get<ChainHead>(reply.body);
  Log(Level::kInfo, "chain head " + std::to_string(head.sequence) + ":" + HexEncode(head.hash));
}

// Everything the flags say, checked before anything is opened.
struct DaemonConfig {
  std::string data_dir;
  LedgerOptions ledger;
  int metrics_depth = 2;
  int64_t scrub_interval_s = 6 * 3600;
  NotifierOptions notify;
  HttpApiOptions api;
  HttpServerOptions http;
  RpcServerOptions rpc;
  bool cluster = false;
  bool cluster_catch_up = false;
  std::string assign_tenant;  // --assign-tenant: record it on --shard, then exit
  ClusterOptions cluster_options;
};

// A shard or node name: [a-z0-9_-]{1,32} (it names a stream and a key).
bool ValidClusterName(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// The cluster flags; "" or what is wrong.
std::string ParseClusterConfig(Flags& flags, DaemonConfig* config) {
  config->cluster = flags.Has("cluster");
  config->cluster_catch_up = flags.Has("cluster-catch-up");
  config->assign_tenant = flags.Get("assign-tenant");
  if (flags.Has("assign-tenant") && !IsValidAccountId(config->assign_tenant)) {
    return "--assign-tenant needs a root account id ([a-z0-9][a-z0-9._-]{0,63})";
  }
  for (const char* flag : {"node", "shard", "lease-ms", "cluster-replicas", "cluster-catch-up", "assign-tenant"}) {
    if (!config->cluster && flags.Has(flag)) return std::string("--") + flag + " needs --cluster";
  }
  if (!config->cluster) return "";
  ClusterOptions& cluster = config->cluster_options;
  for (std::string& server : CommaList(flags.Get("cluster"))) {
    if (!server.empty()) cluster.servers.push_back(std::move(server));
  }
  if (cluster.servers.empty()) return "--cluster needs at least one NATS URL";
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  cluster.node = flags.Get("node", host);
  std::transform(cluster.node.begin(), cluster.node.end(), cluster.node.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  cluster.shard = flags.Get("shard", "s0");
  cluster.lease_ms = flags.GetInt("lease-ms").value_or(3'000);
  cluster.replicas = static_cast<int>(flags.GetInt("cluster-replicas").value_or(3));
  if (!ValidClusterName(cluster.node) || !ValidClusterName(cluster.shard)) {
    return "--node and --shard must be 1..32 of a-z, 0-9, _ and -";
  }
  if (cluster.lease_ms < 500 || cluster.lease_ms > 60'000) return "--lease-ms must be in 500..60000";
  if (config->cluster_catch_up) {
    if (flags.Has("lease-ms") || flags.Has("node")) return "--cluster-catch-up takes no --lease-ms or --node";
    if (!config->assign_tenant.empty()) return "--cluster-catch-up and --assign-tenant are separate runs";
    cluster.lease_ms = 0;  // it never leads: the lease is not its business
  }
  if (cluster.replicas < 1 || cluster.replicas > 5) return "--cluster-replicas must be in 1..5";
  if (!config->assign_tenant.empty()) {
    if (flags.Has("lease-ms") || flags.Has("node")) return "--assign-tenant takes no --lease-ms or --node";
    cluster.map_only = true;  // the lease is not its business
  }
  auto ephemeral = [](const std::string& address) {
    return address.size() >= 2 && address.compare(address.size() - 2, 2, ":0") == 0;
  };
  if (!config->cluster_catch_up && config->assign_tenant.empty() && (ephemeral(config->rpc.address) || ephemeral(config->http.address))) {
    return "--cluster needs fixed --rpc and --http ports: the lease tells clients where the leader is";
  }
  return "";
}

// Fills *config from the flags; false (after logging why) when one is bad.
bool ParseConfig(Flags& flags, const DescriptorBudget& budget, DaemonConfig* config) {
  config->data_dir = flags.Get("data-dir", "./data");
  LedgerOptions& ledger = config->ledger;
  ledger.data_dir = config->data_dir;
  ledger.max_open_files = budget.rocksdb_files;
  ledger.accept_truncated_log = flags.Has("accept-truncated-log");
  if (auto queue = flags.GetInt("queue-max")) ledger.queue_commands_max = static_cast<size_t>(*queue);
  if (auto every = flags.GetInt("checkpoint-every")) ledger.checkpoint_every_events = static_cast<uint64_t>(*every);
  const int64_t sign_every_s = flags.GetInt("sign-every-s").value_or(60);
  ledger.sign_every_us = sign_every_s * kMicrosPerSecond;
  const int64_t depth = flags.GetInt("metrics-account-depth").value_or(2);
  config->metrics_depth = static_cast<int>(std::clamp<int64_t>(depth, 0, kAccountDepthMax));
  config->scrub_interval_s = flags.GetInt("scrub-interval-s").value_or(6 * 3600);
  NotifierOptions& notify = config->notify;
  notify.timeout_ms = flags.GetInt("webhook-timeout-ms").value_or(5'000);
  notify.retry_base_ms = flags.GetInt("webhook-retry-base-ms").value_or(1'000);
  notify.max_attempts = static_cast<int>(flags.GetInt("webhook-max-attempts").value_or(15));
  notify.concurrency = static_cast<int>(flags.GetInt("webhook-concurrency").value_or(16));
  notify.allow_private = flags.Has("allow-private-webhooks");
  notify.ca_file = flags.Get("webhook-ca");
  config->api.allow_private_webhooks = flags.Has("allow-private-webhooks");
  config->api.metrics_public = flags.Has("metrics-public");
  HttpServerOptions& http = config->http;
  http.address = flags.Get("http", "127.0.0.1:8480");
  http.tls_cert_file = flags.Get("tls-cert");
  http.tls_key_file = flags.Get("tls-key");
  http.insecure = flags.Has("insecure");
  http.threads = static_cast<int>(flags.GetInt("http-threads").value_or(1));
  http.connections_max = budget.http_connections;
  RpcServerOptions& rpc = config->rpc;
  rpc.address = flags.Get("rpc", "127.0.0.1:8481");
  rpc.tls_cert_file = http.tls_cert_file;
  rpc.tls_key_file = http.tls_key_file;
  rpc.insecure = http.insecure;
  rpc.connections_max = budget.rpc_connections;
  rpc.handshake_timeout_ms = flags.GetInt("rpc-handshake-timeout-ms").value_or(10'000);
  rpc.idle_timeout_s = flags.GetInt("rpc-idle-timeout-s").value_or(600);
  const int64_t loops = flags.GetInt("rpc-loops").value_or(2);
  rpc.loops = static_cast<int>(std::clamp<int64_t>(loops, 1, kRpcLoopsMax));
  rpc.allow_private_webhooks = notify.allow_private;
  std::string problem = flags.error();
  if (problem.empty()) problem = ParseClusterConfig(flags, config);
  if (problem.empty() && (depth < 0 || depth > kAccountDepthMax)) {
    problem = "--metrics-account-depth must be in 0..8";
  } else if (problem.empty() && (rpc.handshake_timeout_ms < 1 || rpc.idle_timeout_s < 0 ||
                                 loops < 1 || loops > kRpcLoopsMax)) {
    problem = "--rpc-handshake-timeout-ms must be positive, --rpc-idle-timeout-s >= 0, --rpc-loops 1..64";
  } else if (problem.empty() && (sign_every_s < 1 || sign_every_s > 60)) {
    problem = "--sign-every-s must be in 1..60 (SPEC: a signed checkpoint at least once a minute)";
  }
  if (!problem.empty()) Log(Level::kError, problem);
  return problem.empty();
}

// SIGINT/SIGTERM only wake the main thread (through a pipe written by the
// handler, whichever thread runs it); the shutdown itself happens there.
bool InstallStopSignals() {
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return true;
}

// Waits for SIGINT/SIGTERM, logging the chain head every minute.
void WaitForStopSignal(Ledger& sequencer) {
  pollfd wait_for{g_signal_pipe[0], POLLIN, 0};
  while (g_stop_signal.load() == 0 && !g_step_down.load()) {
    int ready = poll(&wait_for, 1, 60'000);
    if (ready == 0) LogChainHead(sequencer);
    if (ready > 0) {
      char drain[16];
      while (read(g_signal_pipe[0], drain, sizeof(drain)) > 0) {
      }
    }
  }
  int signal_number = g_stop_signal.load();
  if (signal_number == 0) {
    Log(Level::kWarn, "stepping down");
    return;
  }
  Log(Level::kInfo, std::string("stopping on ") + (signal_number == SIGINT ? "SIGINT" : "SIGTERM"));
}

// The exit status after a stop: 3 when the database is damaged (a scrub, or
// RocksDB's own background errors), 1 after a storage failure, else 0.
int ExitStatus(Ledger& sequencer, StorageHealth& health) {
  bool failed = sequencer.failed();
  std::string background = sequencer.StorageProperty("rocksdb.background-errors");
  if (!background.empty() && background != "0") {
    health.ReportCorruption("RocksDB background errors: " + background);
  }
  LogChainHead(sequencer);
  if (health.corrupt()) {
    Log(Level::kError, "stopped; the database is damaged: " + health.message());
    return 3;
  }
  Log(Level::kInfo, failed ? "stopped after a storage failure" : "stopped cleanly");
  return failed ? 1 : 0;
}

// Runs the service on an open ledger until a stop signal.
int Serve(DaemonConfig& config, Ledger& sequencer) {
  StorageHealth health;
  health.Start(&sequencer, config.scrub_interval_s);
  Result<std::unique_ptr<Notifier>> notifier = Notifier::Start(&sequencer, config.notify);
  if (!notifier.ok()) {
    Log(Level::kError, "webhooks: " + notifier.status().message());
    health.Stop();
    sequencer.Stop();
    return 2;
  }
  Metrics metrics(&sequencer, config.metrics_depth, &health, notifier->get());
  config.api.health = &health;
  config.api.notifier = notifier->get();
  HttpApi api(&sequencer, &metrics, config.api);
  HttpServer http(&api, config.http);
  if (Status status = http.Start(); !status.ok()) {
    Log(Level::kError, status.message());
    sequencer.Stop();
    return 1;
  }
  config.rpc.notifier = notifier->get();
  RpcServer rpc(&sequencer, config.rpc);
  if (Status status = rpc.Start(); !status.ok()) {
    Log(Level::kError, status.message());
    http.Stop();
    sequencer.Stop();
    return 1;
  }
  // One parseable line for scripts and tests, on stdout.
  std::printf("purserd: serving rpc=%s port=%u http=%s http_port=%u data=%s admin_key=%s\n",
              config.rpc.address.c_str(), rpc.port(), config.http.address.c_str(), http.port(),
              config.data_dir.c_str(),
              (std::filesystem::path(config.data_dir) / "admin.key").string().c_str());
  std::fflush(stdout);
  LogChainHead(sequencer);
  WaitForStopSignal(sequencer);
  rpc.StopAccepting();
  http.StopAccepting();
  sequencer.Stop();  // executes and syncs what is queued, writes a checkpoint
  rpc.Stop();        // answers the last replies, closes connections
  api.StopWork();    // proofs and checkpoint copies answer while HTTP still can
  http.Stop();
  (*notifier)->Stop();  // pending deliveries stay recorded for the next start
  health.Stop();
  return ExitStatus(sequencer, health);
}

// Opens the ledger and serves it until a stop signal (or, in cluster mode,
// a step-down): the exit status.
int OpenAndServe(DaemonConfig& config, const LedgerOptions& options,
                 const std::function<void(Ledger&)>& on_open = nullptr) {
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
  if (!opened.ok()) {
    Log(Level::kError, "cannot open " + config.data_dir + ": " + opened.status().message());
    return 1;
  }
  if (on_open) on_open(**opened);
  if (Status status = EnsureAdminKey(**opened, config.data_dir); !status.ok()) {
    Log(Level::kError, status.message());
    return 1;
  }
  return Serve(config, **opened);
}

// A cluster standby's edges: HTTP and RPC on the node's addresses, saying
// who leads (/healthz 503 "standby", `not_leader` to everything else).
class StandbyEdges {
 public:
  StandbyEdges(const DaemonConfig& config, LeaderLookup leader)
      : api_(nullptr, nullptr, ApiOptions(config.api, leader)),
        http_(&api_, config.http),
        rpc_(nullptr, RpcOptions(config.rpc, leader)) {}
  ~StandbyEdges() {
    rpc_.Stop();
    api_.StopWork();
    http_.Stop();
  }

  Status Start() {
    if (Status status = http_.Start(); !status.ok()) return status;
    return rpc_.Start();
  }

 private:
  static HttpApiOptions ApiOptions(HttpApiOptions options, LeaderLookup leader) {
    options.leader = std::move(leader);
    return options;
  }
  static RpcServerOptions RpcOptions(RpcServerOptions options, LeaderLookup leader) {
    options.leader = std::move(leader);
    options.loops = 1;
    return options;
  }

  HttpApi api_;
  HttpServer http_;
  RpcServer rpc_;
};

// This node as its lease names it.
LeaderView ClusterSelf(const DaemonConfig& config) {
  LeaderView self;
  self.shard = config.cluster_options.shard;
  self.node = config.cluster_options.node;
  self.rpc = config.rpc.address;
  self.http = config.http.address;
  self.leading = true;
  return self;
}

int RunCluster(DaemonConfig& config) {
  ClusterNodeHooks hooks;
  // What Gate.leader says while this node leads: itself for its own shard
  // (the directory's copy of the lease may still name the last leader for
  // half a second), the directory for the others.
  const LeaderView self = ClusterSelf(config);
  hooks.serve = [&config, self](LedgerOptions options, LeaderLookup route, std::function<void(Ledger&)> opened) {
    config.rpc.leader = [self, route = std::move(route)](std::string_view tenant) {
      LeaderView view = route(tenant);
      return view.shard == self.shard ? self : view;
    };
    return OpenAndServe(config, options, opened);
  };
  std::unique_ptr<StandbyEdges> standby;
  hooks.standby_edges = [&config, &standby](LeaderLookup leader) {
    standby.reset();
    if (!leader) return Status::Ok();
    standby = std::make_unique<StandbyEdges>(config, std::move(leader));
    if (Status status = standby->Start(); !status.ok()) {
      standby.reset();
      return status;
    }
    Log(Level::kInfo, "cluster: standby: rpc=" + config.rpc.address + " http=" + config.http.address +
                          " answer not_leader");
    return Status::Ok();
  };
  hooks.new_term = [] { g_step_down = false; };
  hooks.stepped_down = [] { return g_step_down.load(); };
  hooks.stopping = [] { return g_stop_signal.load() != 0; };
  hooks.step_down = [] {
    g_step_down = true;
    WakeMainThread();
  };
  hooks.info = [](const std::string& message) { Log(Level::kInfo, message); };
  hooks.warn = [](const std::string& message) { Log(Level::kWarn, message); };
  if (config.cluster_catch_up) return CatchUpOnce(config.cluster_options, config.data_dir, hooks);
  if (!config.assign_tenant.empty()) return AssignTenant(config.cluster_options, config.assign_tenant, hooks);
  return RunClusterNode(config.cluster_options, config.ledger, FormatLeaseValue(self), hooks);
}

}  // namespace

int DaemonMain(int argc, char** argv) {
  Flags flags(argc, argv, 1,
              {"insecure", "help", "allow-private-webhooks", "metrics-public", "accept-truncated-log",
               "cluster-catch-up"});
  static const std::vector<std::string> kKnown = {
      "data-dir",     "rpc",       "http",           "tls-cert",         "tls-key",
      "insecure",     "log-level", "queue-max",      "checkpoint-every", "help",
      "http-threads", "allow-private-webhooks",      "metrics-public",   "metrics-account-depth",
      "rpc-handshake-timeout-ms", "rpc-idle-timeout-s", "connections-max", "scrub-interval-s",
      "accept-truncated-log", "webhook-timeout-ms", "webhook-retry-base-ms",
      "webhook-max-attempts", "webhook-concurrency", "webhook-ca", "rpc-loops", "sign-every-s",
      "cluster", "node", "shard", "lease-ms", "cluster-replicas", "cluster-catch-up", "assign-tenant"};
  if (flags.Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (auto unknown = flags.Unknown(kKnown); !unknown.empty() || !flags.error().empty() ||
                                            !flags.positional().empty()) {
    std::cerr << (flags.error().empty() ? "purserd: unknown argument\n" : flags.error() + "\n")
              << kUsage;
    return 2;
  }
  std::string level = flags.Get("log-level", "info");
  g_level = level == "error" ? Level::kError : level == "warn" ? Level::kWarn : Level::kInfo;
  // Descriptors: raise the soft limit to the hard one, then budget them so
  // that RocksDB always has its share and connections take only the rest.
  DescriptorBudget budget = BudgetDescriptors(flags.GetInt("connections-max"));
  if (!budget.error.empty()) {
    Log(Level::kError, budget.error);
    return 2;
  }
  DaemonConfig config;
  if (!ParseConfig(flags, budget, &config)) return 2;
  if (!InstallStopSignals()) return 1;
  Log(Level::kInfo, "descriptors: limit " + std::to_string(budget.limit) + ", RocksDB " +
                        std::to_string(budget.rocksdb_files) + ", RPC connections " +
                        std::to_string(budget.rpc_connections) + ", HTTP connections " +
                        std::to_string(budget.http_connections));
  if (config.ledger.accept_truncated_log) {
    Log(Level::kWarn, "--accept-truncated-log: a log that lost acknowledged events will start");
  }
  config.ledger.on_fatal_error = [](const Status& status) {
    Log(Level::kError, "storage failure, stopping: " + status.message());
    kill(getpid(), SIGTERM);
  };
  std::filesystem::create_directories(config.data_dir);
  if (config.cluster) return RunCluster(config);
  return OpenAndServe(config, config.ledger);
}

}  // namespace purser
