// Replication on NATS JetStream (issue 13, docs/CLUSTER.md): three real
// nats-server processes in a JetStream cluster and real purserd nodes on
// loopback, driven through the client library as a gateway would.
//
// Skipped when nats-server is not installed, unless PURSER_REQUIRE_NATS=1
// (scripts/test sets it: in CI these tests always run).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <purser/client.h>

#include "cluster/follower.h"
#include "cluster/nats_shard.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "replay/replay.h"
#include "tests/http_client.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kNatsServer[] = "/usr/sbin/nats-server";  // Debian's nats-server package

// A loopback port for a server started later, chosen below the kernel's
// ephemeral range (ip_local_port_range, 32768 and up on Linux): a port picked
// by binding port 0 comes from that range, and in the seconds before the node
// binds it, any outgoing connection on the machine (the NATS routes, a
// node's own NATS connections, a parallel test) may take it. A port below the
// range is taken only by a server that asks for it by number.
// A socket bound to 127.0.0.1:`port`, or -1.
int BindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int FreePort() {
  static std::mutex mutex;
  static std::set<int> given;  // handed out already: a node may not have bound it yet
  static std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  std::lock_guard<std::mutex> lock(mutex);
  std::uniform_int_distribution<int> pick(20'000, 32'000);
  for (int attempt = 0; attempt < 1'000; ++attempt) {
    const int port = pick(random);
    if (given.contains(port)) continue;
    const int fd = BindLoopback(port);
    if (fd < 0) continue;
    close(fd);
    given.insert(port);
    return port;
  }
  ADD_FAILURE() << "no free loopback port between 20000 and 32000";
  return 0;
}

// A child process with its output appended to a file.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  pid_t pid = fork();
  if (pid == 0) {
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(args[0].c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// A wait status as a shell prints it: the exit code, or 128 + the signal.
int ExitStatus(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

int Reap(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return ExitStatus(status);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Three nats-server processes with JetStream, clustered on loopback.
class NatsCluster {
 public:
  ~NatsCluster() {
    for (pid_t pid : pids_) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        Reap(pid);
      }
    }
  }

  void Start(const std::string& dir) {
    std::vector<int> routes;
    for (int i = 0; i < 3; ++i) {
      ports_.push_back(FreePort());
      routes.push_back(FreePort());
    }
    for (int i = 0; i < 3; ++i) {
      std::string config = dir + "/nats" + std::to_string(i) + ".conf";
      std::ofstream out(config);
      out << "port: " << ports_[i] << "\nserver_name: n" << i << "\nmax_payload: 8MB\n"
          << "jetstream { store_dir: \"" << dir << "/js" << i
          << "\", max_memory_store: 64MB, max_file_store: 1GB }\n"
          << "cluster { name: purser, listen: 127.0.0.1:" << routes[i] << ", routes: [";
      for (int j = 0; j < 3; ++j) out << (j ? ", " : "") << "nats-route://127.0.0.1:" << routes[j];
      out << "] }\n";
      out.close();
      pids_.push_back(Spawn({kNatsServer, "-c", config}, dir + "/nats" + std::to_string(i) + ".log"));
    }
  }

  void Kill(int i) {
    kill(pids_[i], SIGKILL);
    Reap(pids_[i]);
    pids_[i] = -1;
  }

  std::string Urls() const {
    std::string urls;
    for (int port : ports_) urls += (urls.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(port);
    return urls;
  }
  std::vector<std::string> UrlList() const {
    std::vector<std::string> list;
    for (int port : ports_) list.push_back("nats://127.0.0.1:" + std::to_string(port));
    return list;
  }

 private:
  std::vector<pid_t> pids_;
  std::vector<int> ports_;
};

// One purserd --cluster node on fixed loopback ports.
class Node {
 public:
  Node(std::string name, std::string dir) : name_(std::move(name)), dir_(std::move(dir)) {
    rpc_port_ = FreePort();
    http_port_ = FreePort();
  }
  ~Node() {
    if (pid_ > 0) {
      kill(pid_, SIGCONT);
      kill(pid_, SIGKILL);
      Reap(pid_);
    }
  }

  void Start(const std::string& urls, int64_t lease_ms, const std::string& shard = "s0") {
    pid_ = Spawn({PURSERD_BINARY, "--data-dir", data_dir(), "--rpc",
                  "127.0.0.1:" + std::to_string(rpc_port_), "--http",
                  "127.0.0.1:" + std::to_string(http_port_), "--cluster", urls, "--node", name_,
                  "--shard", shard, "--lease-ms", std::to_string(lease_ms), "--scrub-interval-s", "0"},
                 log_path());
  }
  // SIGTERM and wait: the exit status (0 = clean).
  int Stop() { return Signal(SIGTERM); }
  void Kill() { Signal(SIGKILL); }
  int Signal(int signal_number) {
    kill(pid_, signal_number);
    const int status = Reap(pid_);
    pid_ = -1;
    return status;
  }
  void Freeze() { kill(pid_, SIGSTOP); }
  void Thaw() { kill(pid_, SIGCONT); }
  bool running() const { return pid_ > 0; }

  std::string address() const { return "127.0.0.1:" + std::to_string(rpc_port_); }
  std::string http_address() const { return "127.0.0.1:" + std::to_string(http_port_); }
  int http_port() const { return http_port_; }
  // A client of this node, if it serves (a standby sends the client on to
  // the leader: that is not this node serving).
  std::unique_ptr<Client> Connect(const std::string& key) const {
    ClientOptions options;
    options.address = address();
    options.api_key = key;
    Result<std::unique_ptr<Client>> client = Client::Connect(options);
    if (!client.ok() || (*client)->address() != address()) return nullptr;
    // A standby's port is closed; a node that just stepped down may still
    // hold a connection open for a moment: only an answer counts.
    if (!(*client)->Call(query::GetChainHead{}).ok()) return nullptr;
    return std::move(*client);
  }
  std::string data_dir() const { return dir_ + "/" + name_ + "-data"; }
  std::string log_path() const { return dir_ + "/" + name_ + ".log"; }
  std::string log() const { return ReadFile(log_path()); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string dir_;
  int rpc_port_ = 0;
  int http_port_ = 0;
  pid_t pid_ = -1;
};

// Polls `done` every 50 ms until it holds or `timeout` passes: whether it held.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// The admin key the first leader wrote into its data directory.
std::string WaitForAdminKey(const std::vector<const Node*>& nodes) {
  std::string key;
  WaitUntil(
      [&] {
        for (const Node* node : nodes) {
          std::ifstream in(node->data_dir() + "/admin.key");
          if (std::getline(in, key) && !key.empty()) return true;
        }
        return false;
      },
      std::chrono::seconds(60));
  return key;
}

// The node that answers (the leader), within `timeout`: its index, or -1.
int FindLeader(const std::vector<std::unique_ptr<Node>>& nodes, const std::string& key,
               std::unique_ptr<Client>* client, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  int leader = -1;
  WaitUntil(
      [&] {
        for (size_t i = 0; i < nodes.size(); ++i) {
          if (!nodes[i]->running()) continue;
          if (auto connected = nodes[i]->Connect(key)) {
            *client = std::move(connected);
            leader = static_cast<int>(i);
            return true;
          }
        }
        return false;
      },
      timeout);
  return leader;
}

// Reserve -> settle pairs through whichever node leads, reconnecting on a
// failure; what was acknowledged is remembered.
struct Load {
  std::set<std::string> reserved;  // acknowledged reservations
  std::set<std::string> settled;   // ... whose settle was acknowledged too
  int next = 0;
  int failures = 0;
  std::atomic<size_t> acked{0};             // settled.size(), for another thread
  std::atomic<bool> disrupted{false};       // set by the test when it breaks something
  Clock::time_point first_success_after{};  // the first acknowledgement after that
  Clock::duration longest_gap{};            // between acknowledgements, once disrupted

  // Runs until `pairs` more pairs are acknowledged (or a minute passes).
  void Run(const std::vector<std::unique_ptr<Node>>& nodes, const std::string& key,
           std::unique_ptr<Client>* client, size_t pairs) {
    const size_t goal = settled.size() + pairs;
    // The client library's failover: every node's address; the leader is
    // the one that accepts.
    ClientOptions options;
    options.api_key = key;
    options.address.clear();
    for (const auto& node : nodes) options.address += (options.address.empty() ? "" : ",") + node->address();
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (settled.size() < goal && Clock::now() < deadline) {
      if (!*client) {
        Result<std::unique_ptr<Client>> connected = Client::Connect(options);
        if (!connected.ok()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        *client = std::move(*connected);
      }
      std::string id = "r" + std::to_string(next++);
      Reply reserve = (*client)->Call(ReserveCommand(id, "agent", 1'000));
      if (reserve.ok()) {
        reserved.insert(id);
        Acknowledged();
        Reply settle = (*client)->Call(SettleCommand(id, 400));
        if (settle.ok()) {
          settled.insert(id);
          acked = settled.size();
          Acknowledged();
          continue;
        }
      }
      ++failures;
      client->reset();
    }
  }

 private:
  void Acknowledged() {
    const Clock::time_point now = Clock::now();
    if (disrupted) {
      if (first_success_after == Clock::time_point{}) first_success_after = now;
      longest_gap = std::max(longest_gap, now - last_ack_);
    }
    last_ack_ = now;
  }
  Clock::time_point last_ack_ = Clock::now();
};

Sha256Digest DigestOf(const std::string& data_dir, uint64_t* sequence) {
  RebuildOptions options;
  options.data_dir = data_dir;
  RebuildReport report;
  Status status = Rebuild(options, &report);
  EXPECT_TRUE(status.ok()) << data_dir << ": " << status.message();
  *sequence = report.sequence;
  return report.digest;
}

// Copies the stream into `data_dir` up to its end (purserd --cluster-catch-up).
int CatchUp(const std::string& urls, const std::string& data_dir, const std::string& log_path) {
  return Reap(Spawn({PURSERD_BINARY, "--data-dir", data_dir, "--cluster", urls, "--cluster-catch-up"},
                    log_path));
}

// Connects to a shard's stream, retrying for 30 s while the JetStream
// cluster elects its leaders.
Result<std::unique_ptr<NatsShard>> ConnectWhenElected(const ClusterOptions& options) {
  Result<std::unique_ptr<NatsShard>> shard = NatsShard::Connect(options);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!shard.ok() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    shard = NatsShard::Connect(options);
  }
  return shard;
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kNatsServer, X_OK) != 0) {
      if (getenv("PURSER_REQUIRE_NATS") != nullptr) {
        FAIL() << kNatsServer << " is not installed";
      }
      GTEST_SKIP() << kNatsServer << " is not installed (apt-get install nats-server)";
    }
    nats_.Start(dir_.path());
  }

  void StartNodes(int count, int64_t lease_ms) {
    for (int i = 0; i < count; ++i) {
      nodes_.push_back(std::make_unique<Node>("p" + std::to_string(i), dir_.path()));
      nodes_.back()->Start(nats_.Urls(), lease_ms);
    }
    std::vector<const Node*> nodes;
    for (const auto& node : nodes_) nodes.push_back(node.get());
    key_ = WaitForAdminKey(nodes);
    ASSERT_FALSE(key_.empty()) << "no leader wrote an admin key; " << nodes_[0]->log();
    leader_ = FindLeader(nodes_, key_, &client_);
    ASSERT_GE(leader_, 0) << "no node answers";
    ASSERT_TRUE(client_->Call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "Org", true, {}}).ok());
    ASSERT_TRUE(client_->Call(cmd::OpenAccount{"agent", "org", AccountKind::kAgent, "", false, {}}).ok());
    ASSERT_TRUE(client_->Call(cmd::Deposit{"d1", "org", 1'000'000'000, ""}).ok());
  }

  // Every acknowledged reservation is on the leader, settled when its
  // settle was acknowledged. A leader may still step down while it is read
  // (a lease renewal that failed while a NATS server died): an answer that
  // the node is stopping or does not lead is asked again of whichever node
  // leads then; only "not found" is a loss.
  void ExpectNothingLost(const Load& load) {
    std::unique_ptr<Client> client;
    ASSERT_GE(FindLeader(nodes_, key_, &client), 0);
    for (const std::string& id : load.reserved) {
      Reply reply = client->Call(query::GetReservation{id});
      const auto deadline = Clock::now() + std::chrono::seconds(60);
      while (!reply.ok() && reply.code != ResultCode::kNotFound && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (FindLeader(nodes_, key_, &client) < 0) continue;
        reply = client->Call(query::GetReservation{id});
      }
      ASSERT_TRUE(reply.ok()) << "acknowledged reservation " << id << " is lost: " << reply.message;
      if (load.settled.contains(id)) {
        EXPECT_EQ(std::get<ReservationView>(reply.body).status, ReservationStatus::kSettled) << id;
      }
    }
  }

  // Stops every node, brings each local log to the stream's end, and
  // compares each one's state digest with a rebuild of the stream alone.
  void ExpectEveryNodeEqualsTheStream() {
    for (auto& node : nodes_) {
      if (!node->running()) continue;
      EXPECT_EQ(node->Stop(), 0) << node->name() << ": " << node->log();
    }
    const std::string fresh = dir_.Sub("from-stream");
    ASSERT_EQ(CatchUp(nats_.Urls(), fresh, dir_.Sub("catch-up.log")), 0) << ReadFile(dir_.Sub("catch-up.log"));
    uint64_t stream_sequence = 0;
    Sha256Digest stream_digest = DigestOf(fresh, &stream_sequence);
    EXPECT_GT(stream_sequence, 0u);
    for (auto& node : nodes_) {
      ASSERT_EQ(CatchUp(nats_.Urls(), node->data_dir(), dir_.Sub("catch-up.log")), 0)
          << node->name() << ": " << ReadFile(dir_.Sub("catch-up.log"));
      uint64_t sequence = 0;
      EXPECT_EQ(DigestOf(node->data_dir(), &sequence), stream_digest) << node->name();
      EXPECT_EQ(sequence, stream_sequence) << node->name();
    }
  }

  TempDir dir_;
  NatsCluster nats_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::string key_;
  int leader_ = -1;
  std::unique_ptr<Client> client_;
};

// A standby serves no command: over HTTP it answers 421 not_leader with the
// leader's addresses (/healthz: 503 "standby"); over RPC it refuses the key
// with not_leader, and the client library follows it to the leader.
void ExpectStandbysPointToTheLeader(const std::vector<std::unique_ptr<Node>>& nodes, int leader,
                                    const std::string& key) {
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (static_cast<int>(i) == leader) continue;
    const Node& standby = *nodes[i];
    ASSERT_TRUE(WaitUntil([&] { return standby.log().find("answer not_leader") != std::string::npos; },
                          std::chrono::seconds(30)))
        << standby.log();
    std::unique_ptr<HttpClient> connected;
    try {
      connected = std::make_unique<HttpClient>(standby.http_port());
    } catch (const std::exception& e) {
      FAIL() << standby.name() << " serves no HTTP: " << e.what() << "\n" << standby.log();
    }
    HttpClient& http = *connected;
    Response health = http.Call("GET", "/healthz");
    EXPECT_EQ(health.status, 503) << health.body;
    EXPECT_NE(health.body.find("\"status\":\"standby\""), std::string::npos) << health.body;
    // The standby reads the lease every half second: 503 until it has.
    Response refused;
    WaitUntil(
        [&] {
          refused = http.Call("POST", "/v1/reservations",
                              R"({"reservation_id":"via-standby","account":"agent","amount_micros":1})", key);
          return refused.status != 503;
        },
        std::chrono::seconds(5));
    EXPECT_EQ(refused.status, 421) << refused.body;
    EXPECT_EQ(ErrorCode(refused), "not_leader");
    EXPECT_NE(refused.body.find("\"rpc\":\"" + nodes[leader]->address() + "\""), std::string::npos)
        << refused.body;
    EXPECT_NE(refused.body.find("\"http\":\"" + nodes[leader]->http_address() + "\""), std::string::npos)
        << refused.body;
    ClientOptions options;
    options.address = standby.address();
    options.api_key = key;
    Result<std::unique_ptr<Client>> client = Client::Connect(options);
    ASSERT_TRUE(client.ok()) << client.status().message();
    EXPECT_EQ((*client)->address(), nodes[leader]->address());
    EXPECT_TRUE((*client)->Call(query::GetChainHead{}).ok());
  }
}

TEST_F(Cluster, AKilledLeaderIsReplacedWithinSecondsAndNothingAcknowledgedIsLost) {
  StartNodes(3, /*lease_ms=*/2'000);
  ExpectStandbysPointToTheLeader(nodes_, leader_, key_);
  // The load's own client knows every node and fails over by itself: the
  // leader dies under it with calls in flight, and none of them fails.
  client_.reset();
  Load load;
  std::thread driver([&] { load.Run(nodes_, key_, &client_, 900); });
  WaitUntil([&] { return load.acked >= 300; }, std::chrono::seconds(60));
  const int old_leader = leader_;
  const auto killed_at = Clock::now();
  nodes_[old_leader]->Kill();
  load.disrupted = true;
  driver.join();
  ASSERT_GE(load.settled.size(), 900u) << nodes_[(old_leader + 1) % 3]->log();
  EXPECT_EQ(load.failures, 0) << "a call failed across the failover: the client did not carry it over";
  ASSERT_NE(load.first_success_after, Clock::time_point{});
  const double failover_s = std::chrono::duration<double>(load.longest_gap).count();
  std::printf("failover: no acknowledgement for %.2f s around kill -9 of the leader (lease 2 s); the "
              "first %.2f s after it\n", failover_s,
              std::chrono::duration<double>(load.first_success_after - killed_at).count());
  EXPECT_LT(failover_s, 10.0);
  // The old leader comes back as a standby and follows.
  nodes_[old_leader]->Start(nats_.Urls(), 2'000);
  load.Run(nodes_, key_, &client_, 100);
  ExpectNothingLost(load);
  ExpectEveryNodeEqualsTheStream();
}

TEST_F(Cluster, AFrozenLeaderIsFencedStepsDownAndWhatItTriedIsNowhere) {
  StartNodes(2, /*lease_ms=*/1'000);
  Load load;
  load.Run(nodes_, key_, &client_, 50);
  const int frozen = leader_;
  std::unique_ptr<Client> stale = std::move(client_);
  nodes_[frozen]->Freeze();
  // The other node takes the lapsed lease and serves.
  std::unique_ptr<Client> fresh;
  WaitUntil([&] { return (fresh = nodes_[1 - frozen]->Connect(key_)) != nullptr; }, std::chrono::seconds(30));
  ASSERT_NE(fresh, nullptr) << nodes_[1 - frozen]->log();
  ASSERT_TRUE(fresh->Call(ReserveCommand("after-takeover", "agent", 1'000)).ok());
  // The frozen leader wakes with a write on its old connection.
  Reply answer;
  std::thread writer([&] { answer = stale->Call(ReserveCommand("from-the-deposed", "agent", 1'000)); });
  nodes_[frozen]->Thaw();
  writer.join();
  EXPECT_FALSE(answer.ok()) << "the deposed leader acknowledged a write";
  // It steps down and follows the new leader.
  WaitUntil([&] { return nodes_[frozen]->log().find("standby again") != std::string::npos; },
            std::chrono::seconds(15));
  const std::string log = nodes_[frozen]->log();
  EXPECT_NE(log.find("standby again"), std::string::npos) << log;
  EXPECT_TRUE(log.find("fenced") != std::string::npos || log.find("lease is lost") != std::string::npos)
      << log;
  EXPECT_EQ(fresh->Call(query::GetReservation{"from-the-deposed"}).code, ResultCode::kNotFound);
  EXPECT_TRUE(fresh->Call(query::GetReservation{"after-takeover"}).ok());
  ExpectNothingLost(load);
  ExpectEveryNodeEqualsTheStream();
}

TEST_F(Cluster, ANatsServerKilledUnderLoadLosesNothingAndTheShardKeepsServing) {
  StartNodes(3, /*lease_ms=*/3'000);
  Load load;
  load.Run(nodes_, key_, &client_, 200);
  nats_.Kill(0);
  load.Run(nodes_, key_, &client_, 300);
  EXPECT_GE(load.settled.size(), 500u) << nodes_[leader_]->log();
  ExpectNothingLost(load);
  ExpectEveryNodeEqualsTheStream();
}

// Two shards: a tenant assigned to one (purserd --assign-tenant) is refused
// by the other with not_leader naming its leader, a tenant opened on one is
// claimed for it, and a client given a tenant is served by its shard's
// leader whichever node it reaches first.
TEST_F(Cluster, TenantsAreRoutedToTheirShardAndAnotherShardRefusesThem) {
  ASSERT_EQ(Reap(Spawn({PURSERD_BINARY, "--cluster", nats_.Urls(), "--shard", "s1", "--assign-tenant", "beta"},
                       dir_.Sub("assign.log"))),
            0)
      << ReadFile(dir_.Sub("assign.log"));
  nodes_.push_back(std::make_unique<Node>("p0", dir_.path()));
  nodes_.push_back(std::make_unique<Node>("q0", dir_.path()));
  nodes_[0]->Start(nats_.Urls(), 2'000, "s0");
  nodes_[1]->Start(nats_.Urls(), 2'000, "s1");
  const Node& s0 = *nodes_[0];
  const Node& s1 = *nodes_[1];
  std::vector<std::string> keys;
  for (const auto& node : nodes_) {
    keys.push_back(WaitForAdminKey({node.get()}));
    ASSERT_FALSE(keys.back().empty()) << node->log();
  }
  std::unique_ptr<Client> on_s0;
  std::unique_ptr<Client> on_s1;
  ASSERT_TRUE(WaitUntil([&] { return (on_s0 = s0.Connect(keys[0])) != nullptr; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitUntil([&] { return (on_s1 = s1.Connect(keys[1])) != nullptr; }, std::chrono::seconds(30)));

  // A client given a tenant goes to its shard's leader, from any node.
  auto routed = [&](const Node& first, const std::string& tenant, const std::string& key) {
    ClientOptions options;
    options.address = first.address();
    options.tenant = tenant;
    options.api_key = key;
    Result<std::unique_ptr<Client>> client = Client::Connect(options);
    return client.ok() ? std::move(*client) : nullptr;
  };
  // s0 reads s1's lease every half second: once it knows s1's leader, a
  // client for beta that reaches s0 first is sent on to s1.
  std::unique_ptr<Client> beta;
  ASSERT_TRUE(WaitUntil([&] { return (beta = routed(s0, "beta", keys[1])) != nullptr; }, std::chrono::seconds(10)));
  EXPECT_EQ(beta->address(), s1.address());

  // s0 opens a tenant nobody holds (a "." in its id, which NATS keys treat apart), and refuses the one assigned to s1.
  ASSERT_TRUE(on_s0->Call(cmd::OpenAccount{"alpha.one", "", AccountKind::kOrg, "Alpha", true, {}}).ok());
  Reply refused = on_s0->Call(cmd::OpenAccount{"beta", "", AccountKind::kOrg, "Beta", true, {}});
  EXPECT_EQ(refused.code, ResultCode::kNotLeader) << refused.message;
  EXPECT_NE(refused.message.find("shard s1"), std::string::npos) << refused.message;
  EXPECT_NE(refused.message.find(s1.address()), std::string::npos) << refused.message;
  ASSERT_TRUE(on_s1->Call(cmd::OpenAccount{"beta", "", AccountKind::kOrg, "Beta", true, {}}).ok());
  ASSERT_TRUE(on_s1->Call(cmd::Deposit{"d-beta", "beta", 5'000'000, ""}).ok());

  std::unique_ptr<Client> alpha;
  // s1 learns that s0 claimed alpha from the map's watch (well within a second).
  ASSERT_TRUE(WaitUntil([&] { return (alpha = routed(s1, "alpha.one", keys[0])) != nullptr; },
                        std::chrono::seconds(10)))
      << s0.log();
  EXPECT_EQ(alpha->address(), s0.address());
  EXPECT_TRUE(alpha->Call(query::GetAccount{"alpha.one"}).ok());
  Reply balance = beta->Call(query::GetBalance{"beta"});
  ASSERT_TRUE(balance.ok()) << balance.message;

  // Now that the map says alpha is s0's, s1 refuses to open it, over RPC and HTTP.
  Reply twice = on_s1->Call(cmd::OpenAccount{"alpha.one", "", AccountKind::kOrg, "Alpha", true, {}});
  EXPECT_EQ(twice.code, ResultCode::kNotLeader) << twice.message;
  EXPECT_NE(twice.message.find(s0.address()), std::string::npos) << twice.message;
  HttpClient http(s1.http_port());
  Response over_http = http.Call("POST", "/v1/accounts", R"({"id":"alpha.one","kind":"org","wallet":true})", keys[1]);
  EXPECT_EQ(over_http.status, 421) << over_http.body;
  EXPECT_EQ(ErrorCode(over_http), "not_leader");
  // And assigning a held tenant to another shard is refused: moving is not built.
  EXPECT_NE(Reap(Spawn({PURSERD_BINARY, "--cluster", nats_.Urls(), "--shard", "s1", "--assign-tenant", "alpha.one"},
                       dir_.Sub("assign.log"))),
            0);
  EXPECT_NE(ReadFile(dir_.Sub("assign.log")).find("is on shard s0 already"), std::string::npos)
      << ReadFile(dir_.Sub("assign.log"));
}

// The fencing rule itself, on the stream: a publish that expects an older
// end of the stream is refused once another node published its term.
TEST_F(Cluster, APublishExpectingAnOldEndOfTheStreamIsRefusedAndTheLeaseHasOneHolder) {
  ClusterOptions options;
  options.servers = nats_.UrlList();
  options.shard = "fence";
  options.node = "a";
  Result<std::unique_ptr<NatsShard>> a = ConnectWhenElected(options);
  ASSERT_TRUE(a.ok()) << a.status().message();
  options.node = "b";
  Result<std::unique_ptr<NatsShard>> b = NatsShard::Connect(options);
  ASSERT_TRUE(b.ok()) << b.status().message();
  // A node whose --lease-ms disagrees with the bucket's TTL is refused.
  ClusterOptions other = options;
  other.lease_ms = options.lease_ms + 1'000;
  Result<std::unique_ptr<NatsShard>> disagreeing = NatsShard::Connect(other);
  ASSERT_FALSE(disagreeing.ok());
  EXPECT_EQ(disagreeing.status().code(), StatusCode::kInvalidArgument) << disagreeing.status().message();
  Result<uint64_t> term_a = (*a)->PublishTerm(0);
  ASSERT_TRUE(term_a.ok()) << term_a.status().message();
  EXPECT_FALSE((*b)->PublishTerm(0).ok()) << "a second first term";
  Result<uint64_t> term_b = (*b)->PublishTerm(*term_a);
  ASSERT_TRUE(term_b.ok()) << term_b.status().message();
  Result<uint64_t> late = (*a)->PublishRecords(*term_a, 1, 0, "");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message().rfind("fenced", 0), 0u) << late.status().message();
  EXPECT_TRUE((*b)->PublishRecords(*term_b, 1, 0, "").ok());
  // The lease: one holder at a time.
  Result<bool> lead_a = (*a)->TryLead("node=a");
  ASSERT_TRUE(lead_a.ok() && *lead_a);
  Result<bool> lead_b = (*b)->TryLead("node=b");
  ASSERT_TRUE(lead_b.ok());
  EXPECT_FALSE(*lead_b);
  Result<std::string> leader = (*b)->Leader();
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(*leader, "node=a");
  Result<bool> renewed = (*a)->Renew("node=a");
  EXPECT_TRUE(renewed.ok() && *renewed);
}

// A standby checks what it follows as recovery would: a stream whose
// events go back in time is refused, and nothing of it is appended.
TEST_F(Cluster, AStandbyRefusesAStreamWhoseTimeGoesBack) {
  ClusterOptions options;
  options.servers = nats_.UrlList();
  options.shard = "backwards";
  options.lease_ms = 0;  // the stream alone
  Result<std::unique_ptr<NatsShard>> shard = ConnectWhenElected(options);
  ASSERT_TRUE(shard.ok()) << shard.status().message();
  // Two well-formed, well-chained records; the second is a second earlier.
  EventEncoder encoder;
  Sha256Digest link{};
  std::string segment;
  for (uint64_t sequence : {1u, 2u}) {
    Event event;
    event.sequence = sequence;
    event.timestamp_us = sequence == 1 ? 2'000'000'000'000'000 : 1'999'999'999'000'000;
    event.body = event::AccountOpened{"org" + std::to_string(sequence), "", AccountKind::kOrg, "", true, {}};
    std::string payload;
    encoder.Encode(event, &payload);
    std::string record = EncodeRecord(sequence, link, payload, &link);
    const uint32_t length = static_cast<uint32_t>(record.size());
    for (int byte = 0; byte < 4; ++byte) segment.push_back(static_cast<char>((length >> (8 * byte)) & 0xff));
    segment += record;
  }
  Result<uint64_t> published = (*shard)->PublishRecords(0, 1, 2, segment);
  ASSERT_TRUE(published.ok()) << published.status().message();
  EventLogOptions log_options;
  log_options.path = dir_.Sub("standby-log");
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(log_options);
  ASSERT_TRUE(log.ok()) << log.status().message();
  Follower follower(log->get(), shard->get());
  Status followed = follower.CatchUp(*published);
  EXPECT_TRUE(followed.IsCorruption()) << followed.message();
  EXPECT_NE(followed.message().find("event 2 goes back in time"), std::string::npos) << followed.message();
  EXPECT_EQ((*log)->last_sequence(), 0u);
}

// A node that cannot listen where its lease would send clients stops with
// an error before it takes the lease: were it to take it, it would fail to
// serve and hold the shard leaderless for a whole lease.
TEST_F(Cluster, ANodeThatCannotListenOnItsAddressExitsWithoutTakingTheLease) {
  const int busy_port = FreePort();
  const int holder = BindLoopback(busy_port);
  ASSERT_GE(holder, 0);
  ASSERT_EQ(listen(holder, 4), 0);
  const std::string log_path = dir_.Sub("busy.log");
  const pid_t pid = Spawn({PURSERD_BINARY, "--data-dir", dir_.Sub("busy-data"), "--rpc",
                           "127.0.0.1:" + std::to_string(busy_port), "--http",
                           "127.0.0.1:" + std::to_string(FreePort()), "--cluster", nats_.Urls(), "--node",
                           "busy", "--shard", "s0", "--lease-ms", "1000", "--scrub-interval-s", "0"},
                          log_path);
  int status = -1;
  const bool exited = WaitUntil(
      [&] {
        int raw = 0;
        if (waitpid(pid, &raw, WNOHANG) != pid) return false;
        status = ExitStatus(raw);
        return true;
      },
      std::chrono::seconds(60));
  if (!exited) {
    kill(pid, SIGKILL);
    Reap(pid);
  }
  close(holder);
  const std::string log = ReadFile(log_path);
  ASSERT_TRUE(exited) << "the node kept running without its address\n" << log;
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("cannot: listening on 127.0.0.1:" + std::to_string(busy_port)), std::string::npos) << log;
  EXPECT_EQ(log.find("leading shard"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("busy-data") + "/admin.key")) << log;
}

}  // namespace
}  // namespace purser::testing
