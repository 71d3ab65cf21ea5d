// `purser-bench rpc` and `purser-bench plan`: load over Cap'n Proto RPC
// against a running purserd, and a capacity plan from measured costs.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <future>
#include <purser/client.h>
#include "bench/inproc_load.h"
#include "ledger/base/histogram.h"
#include "purser.capnp.h"
#include "rpc/rpc_codec.h"

namespace purser::bench {

namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

struct RpcOptions {
  std::string address = "127.0.0.1:8481";
  std::string api_key;
  std::string mode = "batch";  // batch | client | async | open | raw | ping
  int agents = 10'000;
  double hot_fraction = 0;
  int connections = 2;
  int threads = 64;
  int batch = 1'000;
  int inflight = 2;
  double seconds = 60;
  int64_t rate = 0;
  std::string data_dir;
  std::string driver = "loop";  // raw and ping: one event loop (loop) or a Client each (clients)
};

struct Counters {
  std::atomic<uint64_t> pairs{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> failed{0};
  Histogram reserve_us;
};

// Picks agents (uniform, or a hot share on agent-0) and builds requests.
class Workload {
 public:
  Workload(const RpcOptions& options, uint64_t seed) : options_(options), random_(seed) {
    for (int a = 0; a < options.agents; ++a) agents_.push_back("agent-" + std::to_string(a));
  }

  cmd::Reserve Reserve(const std::string& id) {
    bool hot = options_.hot_fraction > 0 &&
               std::uniform_real_distribution<double>(0, 1)(random_) < options_.hot_fraction;
    size_t agent = hot ? 0 : random_() % agents_.size();
    cmd::Reserve c;
    c.reservation_id = id;
    c.account = agents_[agent];
    c.amount_micros = 10'000;
    c.run_id = "run-1";
    c.action = kActions[random_() % 4];
    c.tags = {{"env", "prod"}, {"feature", kFeatures[random_() % 3]}};
    return c;
  }

  static cmd::Settle Settle(const std::string& id) {
    cmd::Settle c;
    c.reservation_id = id;
    c.usage = UsageTokens{"gpt-4o", TokenCounts{500, 200, 0, 0, 0}};
    c.outcome = Outcome::kSuccess;
    return c;
  }

 private:
  static constexpr const char* kActions[4] = {"search", "summarize", "plan", "code"};
  static constexpr const char* kFeatures[3] = {"chat", "agent", "batch"};
  const RpcOptions& options_;
  std::mt19937_64 random_;
  std::vector<std::string> agents_;
};

Status Setup(Client& admin, int agents) {
  std::vector<RequestBody> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    for (const Reply& reply : admin.CallBatch(std::move(batch))) {
      if (!reply.ok() && reply.code != ResultCode::kAlreadyExists) {
        return Status::Error("setup: " + reply.message);
      }
    }
    batch.clear();
    return Status::Ok();
  };
  batch.push_back(cmd::OpenAccount{"org", "", AccountKind::kOrg, "Bench Org", true, {"env", "feature"}});
  for (int i = 0; i < 10; ++i) {
    batch.push_back(cmd::Deposit{"bench-fund-" + std::to_string(i), "org", 1'000'000'000'000, ""});
  }
  for (int t = 0; t < (agents + 99) / 100; ++t) {
    std::string team = "team-" + std::to_string(t);
    batch.push_back(cmd::OpenAccount{team, "org", AccountKind::kTeam, team, false, {}});
    CapsPatch caps;
    caps.daily_limit_micros = Patch<int64_t>::Set(1'000'000'000'000);
    batch.push_back(cmd::SetCaps{team, caps});
  }
  for (int a = 0; a < agents; ++a) {
    batch.push_back(cmd::OpenAccount{"agent-" + std::to_string(a), "team-" + std::to_string(a / 100),
                                     AccountKind::kAgent, "", false, {}});
    if (batch.size() >= 4096) {
      if (Status status = flush(); !status.ok()) return status;
    }
  }
  return flush();
}

// Explicit batches: each chain submits `batch` reserves, then the settles of
// those admitted, then starts over; `inflight` chains per connection.
class BatchChain {
 public:
  BatchChain(Client* client, Workload* workload, Counters* counters, std::string prefix, int size,
             const std::atomic<bool>* stop)
      : client_(client), workload_(workload), counters_(counters), prefix_(std::move(prefix)),
        size_(size), stop_(stop) {}

  void Start() {
    if (stop_->load()) {
      done_ = true;
      return;
    }
    std::vector<RequestBody> reserves;
    std::vector<std::string> ids;
    for (int i = 0; i < size_; ++i) {
      ids.push_back(prefix_ + std::to_string(next_++));
      reserves.push_back(workload_->Reserve(ids.back()));
    }
    int64_t start = NowUs();
    client_->CallBatchAsync(std::move(reserves), [this, ids = std::move(ids), start](
                                                     std::vector<Reply>&& replies) mutable {
      counters_->reserve_us.Record(static_cast<uint64_t>(NowUs() - start));
      std::vector<RequestBody> settles;
      for (size_t i = 0; i < replies.size(); ++i) {
        if (replies[i].ok()) {
          settles.push_back(Workload::Settle(ids[i]));
        } else if (replies[i].code == ResultCode::kUnavailable) {
          counters_->failed.fetch_add(1);
        } else {
          counters_->refused.fetch_add(1);
        }
      }
      if (settles.empty()) {
        Start();
        return;
      }
      client_->CallBatchAsync(std::move(settles), [this](std::vector<Reply>&& settled) {
        uint64_t ok = 0;
        for (const Reply& reply : settled) ok += reply.ok() ? 1 : 0;
        counters_->pairs.fetch_add(ok);
        Start();
      });
    });
  }

  bool done() const { return done_.load(); }

 private:
  Client* client_;
  Workload* workload_;
  Counters* counters_;
  std::string prefix_;
  int size_;
  const std::atomic<bool>* stop_;
  uint64_t next_ = 0;
  std::atomic<bool> done_{false};
};

// One call at a time on one connection: reserve -> settle -> reserve ...
// (or ping -> ping for the `ping` mode), chained on the client's loop thread.
class SerialChain {
 public:
  SerialChain(Client* client, Workload* workload, Counters* counters, std::string prefix,
              bool ping, const std::atomic<bool>* stop)
      : client_(client), workload_(workload), counters_(counters), prefix_(std::move(prefix)),
        ping_(ping), stop_(stop) {}

  void Start() {
    if (stop_->load()) {
      done_ = true;
      return;
    }
    int64_t start = NowUs();
    if (ping_) {
      client_->PingAsync([this, start] {
        counters_->reserve_us.Record(static_cast<uint64_t>(NowUs() - start));
        client_->PingAsync([this] {
          counters_->pairs.fetch_add(1);
          Start();
        });
      });
      return;
    }
    std::string id = prefix_ + std::to_string(next_++);
    client_->CallAsync(workload_->Reserve(id), [this, id, start](Reply&& reply) {
      counters_->reserve_us.Record(static_cast<uint64_t>(NowUs() - start));
      if (!reply.ok()) {
        counters_->refused.fetch_add(1);
        Start();
        return;
      }
      client_->CallAsync(Workload::Settle(id), [this](Reply&& settled) {
        if (settled.ok()) counters_->pairs.fetch_add(1);
        Start();
      });
    });
  }

  bool done() const { return done_.load(); }

 private:
  Client* client_;
  Workload* workload_;
  Counters* counters_;
  std::string prefix_;
  bool ping_;
  const std::atomic<bool>* stop_;
  uint64_t next_ = 0;
  std::atomic<bool> done_{false};
};

// The raw and ping modes' load generator: one KJ event loop drives every
// connection, each one call at a time (reserve -> settle through `call`, or
// ping -> ping), so the generator costs one thread instead of one per
// connection and leaves the cores to the server.
class OneLoopDriver {
 public:
  OneLoopDriver(const RpcOptions& options, Counters* counters, const std::atomic<bool>* stop)
      : options_(options), workload_(options, 5), counters_(counters), stop_(stop) {}

  // Runs on its own thread until every chain has seen `stop`; `ready`
  // receives the outcome of connecting and authenticating.
  void Run(std::promise<Status>* ready, const std::string& run) {
    KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
      auto io = kj::setupAsyncIo();
      size_t colon = options_.address.rfind(':');
      KJ_REQUIRE(colon != std::string::npos, "--connect must be HOST:PORT");
      auto port = static_cast<unsigned>(std::stoul(options_.address.substr(colon + 1)));
      auto address = io.provider->getNetwork()
                         .parseAddress(kj::StringPtr(options_.address.substr(0, colon).c_str()), port)
                         .wait(io.waitScope);
      std::vector<kj::Own<Connection>> connections;
      for (int c = 0; c < options_.connections; ++c) {
        connections.push_back(Connect(*address, io));
        connections.back()->prefix = "l" + run + "-" + std::to_string(c) + "-";
      }
      ready->set_value(Status::Ok());
      ready = nullptr;
      kj::Vector<kj::Promise<void>> chains;
      for (auto& connection : connections) chains.add(Chain(*connection));
      kj::joinPromises(chains.releaseAsArray()).wait(io.waitScope);
    })) {
      if (ready != nullptr) ready->set_value(Status::Error(exception->getDescription().cStr()));
    }
  }

 private:
  struct Connection {
    kj::Own<kj::AsyncIoStream> stream;
    kj::Own<capnp::TwoPartyVatNetwork> network;
    kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
    rpc::Ledger::Client ledger = nullptr;
    std::string prefix;
    uint64_t next = 0;
  };

  kj::Own<Connection> Connect(kj::NetworkAddress& address, kj::AsyncIoContext& io) {
    auto c = kj::heap<Connection>();
    c->stream = address.connect().wait(io.waitScope);
    int one = 1;
    c->stream->setsockopt(IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->network = kj::heap<capnp::TwoPartyVatNetwork>(*c->stream, capnp::rpc::twoparty::Side::CLIENT);
    c->rpc = kj::heap(capnp::makeRpcClient(*c->network));
    capnp::MallocMessageBuilder vat_id_message;
    auto vat_id = vat_id_message.initRoot<capnp::rpc::twoparty::VatId>();
    vat_id.setSide(capnp::rpc::twoparty::Side::SERVER);
    auto gate = c->rpc->bootstrap(vat_id).castAs<rpc::Gate>();
    auto request = gate.authenticateRequest();
    request.setApiKey(kj::StringPtr(options_.api_key.c_str()));
    auto response = request.send().wait(io.waitScope);
    c->ledger = response.getSession().getLedger();
    return c;
  }

  kj::Promise<void> Chain(Connection& c) {
    if (stop_->load()) return kj::READY_NOW;
    const int64_t start = NowUs();
    if (options_.mode == "ping") {
      return c.ledger.pingRequest().send().then([this, &c, start](auto&&) {
        counters_->reserve_us.Record(static_cast<uint64_t>(NowUs() - start));
        return c.ledger.pingRequest().send().then([this, &c](auto&&) {
          counters_->pairs.fetch_add(1, std::memory_order_relaxed);
          return Chain(c);
        });
      });
    }
    std::string id = c.prefix + std::to_string(c.next++);
    auto reserve = c.ledger.callRequest();
    EncodeRequest(workload_.Reserve(id), reserve.initCommand());
    return reserve.send().then([this, &c, start, id](auto&& reserved) -> kj::Promise<void> {
      counters_->reserve_us.Record(static_cast<uint64_t>(NowUs() - start));
      if (!DecodeReply(reserved.getResult()).ok()) {
        counters_->refused.fetch_add(1, std::memory_order_relaxed);
        return Chain(c);
      }
      auto settle = c.ledger.callRequest();
      EncodeRequest(Workload::Settle(id), settle.initCommand());
      return settle.send().then([this, &c](auto&& settled) {
        if (DecodeReply(settled.getResult()).ok()) counters_->pairs.fetch_add(1, std::memory_order_relaxed);
        return Chain(c);
      });
    });
  }

  const RpcOptions& options_;
  Workload workload_;
  Counters* counters_;
  const std::atomic<bool>* stop_;
};

uint64_t SstBytes(const std::string& dir) {
  uint64_t bytes = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
    if (entry.path().extension() == ".sst") bytes += entry.file_size(ignored);
  }
  return bytes;
}

int RunRpc(const RpcOptions& options) {
  ClientOptions client_options;
  client_options.address = options.address;
  client_options.api_key = options.api_key;
  Result<std::unique_ptr<Client>> admin = Client::Connect(client_options);
  if (!admin.ok()) {
    std::cerr << "purser-bench: cannot connect: " << admin.status().message() << '\n';
    return 3;
  }
  if (Status status = Setup(**admin, options.agents); !status.ok()) {
    std::cerr << "purser-bench: " << status.message() << '\n';
    return 1;
  }
  Reply head_before = (*admin)->Call(query::GetChainHead{});
  Counters counters;
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::unique_ptr<Workload>> workloads;
  std::vector<std::unique_ptr<BatchChain>> batch_chains;
  std::vector<std::unique_ptr<SerialChain>> serial_chains;
  std::vector<std::thread> threads;
  std::string run = std::to_string(NowUs());
  auto start = SteadyClock::now();
  std::unique_ptr<OneLoopDriver> one_loop;
  if ((options.mode == "raw" || options.mode == "ping") && options.driver == "loop") {
    one_loop = std::make_unique<OneLoopDriver>(options, &counters, &stop);
    std::promise<Status> ready;
    std::future<Status> connected = ready.get_future();
    threads.emplace_back([&, driver = one_loop.get()] { driver->Run(&ready, run); });
    if (Status status = connected.get(); !status.ok()) {
      std::cerr << "purser-bench: " << status.message() << '\n';
      stop = true;
      for (auto& thread : threads) thread.join();
      return 3;
    }
    start = SteadyClock::now();
  } else if (options.mode == "batch" || options.mode == "raw" || options.mode == "ping") {
    for (int c = 0; c < options.connections; ++c) {
      if (options.mode != "batch") client_options.batch_max = 1;
      Result<std::unique_ptr<Client>> client = Client::Connect(client_options);
      if (!client.ok()) return 3;
      clients.push_back(std::move(*client));
      workloads.push_back(std::make_unique<Workload>(options, static_cast<uint64_t>(c) + 1));
      int chains = options.mode == "batch" ? options.inflight : 1;
      for (int k = 0; k < chains; ++k) {
        std::string prefix = "b" + run + "-" + std::to_string(c) + "-" + std::to_string(k) + "-";
        if (options.mode == "batch") {
          batch_chains.push_back(std::make_unique<BatchChain>(
              clients.back().get(), workloads.back().get(), &counters, prefix, options.batch, &stop));
        } else {
          serial_chains.push_back(std::make_unique<SerialChain>(
              clients.back().get(), workloads.back().get(), &counters, prefix,
              options.mode == "ping", &stop));
        }
      }
    }
    for (auto& chain : batch_chains) chain->Start();
    for (auto& chain : serial_chains) chain->Start();
  } else if (options.mode == "async") {
    // Many callers on one coalescing client through its asynchronous API:
    // `inflight` chains of reserve -> settle, each one call at a time,
    // started and continued from callbacks (no application threads).
    workloads.push_back(std::make_unique<Workload>(options, 11));
    for (int k = 0; k < options.inflight; ++k) {
      std::string prefix = "a" + run + "-" + std::to_string(k) + "-";
      serial_chains.push_back(std::make_unique<SerialChain>(admin->get(), workloads.back().get(),
                                                            &counters, prefix, false, &stop));
    }
    for (auto& chain : serial_chains) chain->Start();
  } else if (options.mode == "open") {
    // Open loop: one scheduler starts reserves at `rate` per second through
    // the coalescing client; each settle follows its reserve's answer.
    // Latency counts from the scheduled start (no coordinated omission).
    if (options.rate <= 0) {
      std::cerr << "purser-bench: --mode open needs --rate\n";
      return 2;
    }
    Client* shared = admin->get();
    threads.emplace_back([&, shared] {
      auto workload = std::make_shared<Workload>(options, 7);
      int64_t begin = NowUs();
      for (uint64_t i = 0; !stop.load(); ++i) {
        int64_t scheduled = begin + static_cast<int64_t>(i) * 1'000'000 / options.rate;
        int64_t wait = scheduled - NowUs();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::microseconds(wait));
        std::string id = "o" + run + "-" + std::to_string(i);
        shared->CallAsync(workload->Reserve(id), [&counters, shared, id, scheduled](Reply&& reply) {
          counters.reserve_us.Record(static_cast<uint64_t>(NowUs() - scheduled));
          if (!reply.ok()) {
            counters.refused.fetch_add(1);
            return;
          }
          shared->CallAsync(Workload::Settle(id), [&counters](Reply&& settled) {
            if (settled.ok()) counters.pairs.fetch_add(1);
          });
        });
      }
    });
  } else if (options.mode == "client") {
    Client* shared = admin->get();
    for (int t = 0; t < options.threads; ++t) {
      threads.emplace_back([&, t] {
        Workload workload(options, static_cast<uint64_t>(t) + 100);
        int64_t period_us = options.rate > 0 ? options.threads * 1'000'000 / options.rate : 0;
        int64_t next = NowUs();
        for (uint64_t i = 0; !stop.load(); ++i) {
          if (period_us > 0) {
            next += period_us;
            int64_t wait = next - NowUs();
            if (wait > 0) std::this_thread::sleep_for(std::chrono::microseconds(wait));
          }
          std::string id = "c" + run + "-" + std::to_string(t) + "-" + std::to_string(i);
          int64_t begin = period_us > 0 ? next : NowUs();
          Reply reply = shared->Call(workload.Reserve(id));
          counters.reserve_us.Record(static_cast<uint64_t>(NowUs() - begin));
          if (!reply.ok()) {
            counters.refused.fetch_add(1);
            continue;
          }
          if (shared->Call(Workload::Settle(id)).ok()) counters.pairs.fetch_add(1);
        }
      });
    }
  } else {
    std::cerr << "purser-bench: --mode must be batch, client, async, open, raw or ping\n";
    return 2;
  }
  uint64_t last_pairs = 0;
  auto last = start;
  while (std::chrono::duration<double>(SteadyClock::now() - start).count() < options.seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto now = SteadyClock::now();
    if (now - last >= std::chrono::seconds(5)) {
      uint64_t pairs = counters.pairs.load();
      std::cerr << "  t=" << std::fixed << std::setprecision(0)
                << std::chrono::duration<double>(now - start).count() << "s  "
                << static_cast<uint64_t>(static_cast<double>(pairs - last_pairs) /
                                         std::chrono::duration<double>(now - last).count())
                << " pairs/s  reserve p99 " << counters.reserve_us.Percentile(99) << " us\n";
      last_pairs = pairs;
      last = now;
    }
  }
  stop = true;
  double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < 2000; ++i) {
    bool all = true;
    for (auto& chain : batch_chains) all = all && chain->done();
    for (auto& chain : serial_chains) all = all && chain->done();
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Reply head_after = (*admin)->Call(query::GetChainHead{});
  uint64_t events = 0;
  if (head_before.ok() && head_after.ok()) {
    events = std::get<ChainHead>(head_after.body).sequence - std::get<ChainHead>(head_before.body).sequence;
  }
  uint64_t pairs = counters.pairs.load();
  std::cout << std::fixed << std::setprecision(1) << "rpc: mode=" << options.mode
            << " agents=" << options.agents << " hot=" << options.hot_fraction;
  if (options.mode == "client") {
    std::cout << " threads=" << options.threads << " rate=" << options.rate;
  } else {
    std::cout << " connections=" << options.connections;
  }
  if (options.mode == "batch") std::cout << " batch=" << options.batch << " inflight=" << options.inflight;
  if (options.mode == "async") std::cout << " inflight=" << options.inflight;
  if (options.mode == "raw" || options.mode == "ping") std::cout << " driver=" << options.driver;
  std::cout << " seconds=" << seconds << '\n';
  std::cout << "  pairs            " << pairs << " (" << static_cast<uint64_t>(static_cast<double>(pairs) / seconds)
            << (options.mode == "ping" ? " ping pairs/s)\n" : " pairs/s)\n");
  double total = static_cast<double>(pairs + counters.refused.load());
  std::cout << "  admitted         " << (total == 0 ? 0 : 100.0 * static_cast<double>(pairs) / total)
            << "% (" << counters.refused.load() << " refused, " << counters.failed.load()
            << " unavailable)\n";
  std::cout << "  " << (options.mode == "batch" ? "reserve batch" : "reserve call ")
            << "    p50 " << counters.reserve_us.Percentile(50) << " us, p99 "
            << counters.reserve_us.Percentile(99) << " us, p99.9 "
            << counters.reserve_us.Percentile(99.9) << " us\n";
  if (options.mode != "ping") {
    std::cout << "  events           " << events << " (" << static_cast<uint64_t>(static_cast<double>(events) / seconds)
              << " events/s)\n";
  }
  if (!options.data_dir.empty() && events > 0) {
    uint64_t bytes = SstBytes(options.data_dir);
    std::cout << "  on disk          " << bytes << " bytes in SST files, "
              << static_cast<double>(bytes) / static_cast<double>(std::get<ChainHead>(head_after.body).sequence)
              << " bytes/event (before compaction of the newest data)\n";
  }
  clients.clear();
  return 0;
}

}  // namespace

int RunRpcCommand(Flags& flags) {
  RpcOptions options;
  options.address = flags.Get("connect", options.address);
  options.api_key = flags.Get("key");
  if (options.api_key.empty() && flags.Has("key-file")) {
    std::ifstream in(flags.Get("key-file"));
    std::getline(in, options.api_key);
  }
  if (options.api_key.empty() && std::getenv("PURSER_KEY") != nullptr) {
    options.api_key = std::getenv("PURSER_KEY");
  }
  options.mode = flags.Get("mode", options.mode);
  options.agents = static_cast<int>(flags.GetInt("agents").value_or(options.agents));
  options.hot_fraction = std::stod(flags.Get("hot-fraction", "0"));
  options.connections = static_cast<int>(flags.GetInt("connections").value_or(options.connections));
  options.threads = static_cast<int>(flags.GetInt("threads").value_or(options.threads));
  options.batch = static_cast<int>(flags.GetInt("batch").value_or(options.batch));
  options.inflight = static_cast<int>(flags.GetInt("inflight").value_or(options.inflight));
  options.seconds = static_cast<double>(flags.GetInt("seconds").value_or(60));
  options.rate = flags.GetInt("rate").value_or(0);
  options.data_dir = flags.Get("data-dir");
  options.driver = flags.Get("driver", options.driver);
  if (!flags.error().empty() || options.api_key.empty() || options.batch < 1 ||
      options.batch > 4096 || options.connections < 1 || options.threads < 1 || options.inflight < 1 ||
      options.inflight > 65536 || (options.driver != "loop" && options.driver != "clients")) {
    std::cerr << "purser-bench rpc: need --key (or --key-file, $PURSER_KEY); --batch 1..4096; --inflight 1..65536; --driver loop|clients\n";
    return 2;
  }
  return RunRpc(options);
}

int RunPlan(Flags& flags) {
  // Per-operation costs measured on this machine (bench/RESULTS.md); every
  // one can be replaced by a figure measured on the target hardware.
  double target = static_cast<double>(flags.GetInt("target-pairs-per-second").value_or(10'000));
  double pairs_per_core = static_cast<double>(flags.GetInt("pairs-per-core").value_or(36'000));
  double bytes_per_event = static_cast<double>(flags.GetInt("bytes-per-event").value_or(67));
  double account_bytes = static_cast<double>(flags.GetInt("bytes-per-account").value_or(655));
  double accounts = static_cast<double>(flags.GetInt("accounts").value_or(100'000));
  double retention_days = static_cast<double>(flags.GetInt("retention-days").value_or(365));
  double checkpoint_events = static_cast<double>(flags.GetInt("checkpoint-every").value_or(1'000'000));
  // Cluster mode (docs/CLUSTER.md): one shard's leader takes at most this
  // many durable pairs/s with its log on a 3-replica JetStream stream
  // (bench/cluster.sh: 22.7k on this 2-core machine with the three NATS
  // servers and the standbys on it too; a floor for separate machines).
  double pairs_per_shard = static_cast<double>(flags.GetInt("pairs-per-shard").value_or(22'000));
  double replicas = static_cast<double>(flags.GetInt("replicas").value_or(3));
  double events_per_second = 2 * target;  // a reserve and a settle
  double cores = std::ceil(target / pairs_per_core);
  double shards = std::max(1.0, std::ceil(target / pairs_per_shard));
  double disk_per_day = events_per_second * 86'400 * bytes_per_event;
  // Memory: accounts, plus the finished records held until the next checkpoint
  // moves them to the cold store (~350 bytes each, half the events), plus
  // RocksDB's memtables and caches (~1 GiB).
  double memory = accounts * account_bytes + checkpoint_events / 2 * 350 + (1ull << 30);
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "plan: " << target << " reserve+settle pairs/s (" << events_per_second
            << " events/s) for " << accounts << " accounts, " << retention_days
            << " days of log\n";
  std::cout << "  cores            " << cores << " (at " << pairs_per_core
            << " durable pairs/s per core; the sequencer thread and the log thread each need one)\n";
  std::cout << "  disk per day     " << disk_per_day / 1e9 << " GB (" << bytes_per_event
            << " bytes/event after compaction)\n";
  std::cout << "  disk retained    " << disk_per_day * retention_days / 1e12 << " TB\n";
  std::cout << "  memory           " << memory / (1 << 30) << " GiB (" << account_bytes
            << " bytes/account + records until the next checkpoint + ~1 GiB for RocksDB)\n";
  std::cout << "  fsync rate       group commit makes it independent of the load: one per group\n";
  std::cout << "  cluster mode     " << shards << " shard(s) of whole tenants (at " << pairs_per_shard
            << " pairs/s per shard on R" << replicas << "), " << shards * replicas
            << " purserd nodes (a leader and " << replicas - 1 << " standbys each), "
            << replicas << " NATS servers or more;\n"
            << "                   stream disk per day " << disk_per_day * replicas / 1e9
            << " GB across the NATS servers (" << replicas << " copies), besides each node's own log\n";
  return 0;
}

}  // namespace purser::bench
