#include <purser/client.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "rpc/loop_inbox.h"
#include "rpc/rpc_codec.h"
#include "ledger/wire/capnp_values.h"
#include "ledger/base/flags.h"
#include "ledger/base/limits.h"
#include "purser.capnp.h"

namespace purser {

namespace {


std::string Bytes(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}

std::vector<std::string> Path(capnp::List<capnp::Data>::Reader nodes) {
  std::vector<std::string> path;
  for (auto node : nodes) path.push_back(Bytes(node));
  return path;
}

Reply Failure(const std::string& message) { return Reply::Error(ResultCode::kUnavailable, message); }

class SubscriberImpl final : public rpc::Subscriber::Server {
 public:
  explicit SubscriberImpl(std::function<void(const AlertNotice&)> on_notice)
      : on_notice_(std::move(on_notice)) {}

  kj::Promise<void> notify(NotifyContext context) override {
    auto n = context.getParams().getNotice();
    AlertNotice notice;
    notice.sequence = n.getSequence();
    notice.timestamp_us = n.getTimestampUs();
    notice.kind = Str(n.getKind());
    notice.account = Str(n.getAccount());
    notice.alert_id = n.getAlertId();
    notice.threshold_pct = n.getThresholdPct();
    notice.limit_micros = n.getLimitMicros();
    notice.value_micros = n.getValueMicros();
    notice.message = Str(n.getMessage());
    on_notice_(notice);
    return kj::READY_NOW;
  }

 private:
  std::function<void(const AlertNotice&)> on_notice_;
};

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientOptions options) : options_(std::move(options)) {}

  ~Impl() {
    inbox_.Post([this] {
      stopping_ = true;
      KJ_IF_MAYBE(fulfiller, stop_) { (*fulfiller)->fulfill(); }
    });
    if (thread_.joinable()) thread_.join();
  }

  Status Start() {
    std::promise<Status> started;
    std::future<Status> result = started.get_future();
    thread_ = std::thread([this, &started] { Main(&started); });
    Status status = result.get();
    if (!status.ok() && thread_.joinable()) thread_.join();
    return status;
  }

  const PrincipalView& principal() const { return principal_; }

  std::string address() {
    std::lock_guard lock(mutex_);
    return serving_address_;
  }

  void Enqueue(RequestBody body, std::function<void(Reply&&)> done) {
    bool wake;
    {
      std::lock_guard lock(mutex_);
      if (closed_) {
        done(Failure("the connection to purserd is closed"));
        return;
      }
      wake = pending_.empty();
      pending_.push_back(Pending{std::move(body), std::move(done)});
    }
    if (wake) inbox_.Post([this] { Pump(); });
  }

  void SendBatch(std::vector<RequestBody> bodies, std::function<void(std::vector<Reply>&&)> done) {
    auto shared_bodies = std::make_shared<const std::vector<RequestBody>>(std::move(bodies));
    inbox_.Post([this, shared_bodies, done = std::move(done)]() mutable {
      Send(std::move(shared_bodies), std::move(done));
    });
  }

  Status Subscribe(const std::string& account, std::function<void(const AlertNotice&)> on_notice) {
    std::promise<Status> subscribed;
    std::future<Status> result = subscribed.get_future();
    inbox_.Post([&, on_notice = std::move(on_notice)]() mutable {
      auto request = reader_.subscribeRequest();
      request.setAccount(Text(account));
      request.setSubscriber(kj::heap<SubscriberImpl>(std::move(on_notice)));
      tasks_->add(request.send()
                      .then([this, &subscribed](auto response) {
                        subscriptions_.push_back(response.getSubscription());
                        subscribed.set_value(Status::Ok());
                      })
                      .catch_([&subscribed](kj::Exception&& e) {
                        subscribed.set_value(Status::Error(e.getDescription().cStr()));
                      }));
    });
    return result.get();
  }

  void Ping(std::function<void()> done) {
    inbox_.Post([this, done = std::move(done)]() mutable {
      tasks_->add(reader_.pingRequest().send().then([done](auto) { done(); }).catch_(
          [done](kj::Exception&&) { done(); }));
    });
  }

  // One call of a method that is not a command, on `capability` (reader_
  // or ledger_, used on the loop thread only): `send` builds and sends the
  // request, `read` takes the reply out of the response (loop thread).
  // Blocks until the answer.
  template <typename Capability, typename Send, typename Read>
  Reply CallOn(Capability* capability, Send send, Read read) {
    std::promise<Reply> done;
    std::future<Reply> result = done.get_future();
    inbox_.Post([&] {
      tasks_->add(send(*capability)
                      .then([&done, &read](auto response) { done.set_value(read(response)); })
                      .catch_([&done](kj::Exception&& e) {
                        done.set_value(Failure(e.getDescription().cStr()));
                      }));
    });
    return result.get();
  }

  // On the Ledger capability, which reader keys do not have (has_ledger_ is
  // set before Connect returns).
  template <typename Send, typename Read>
  Reply LedgerCall(Send send, Read read) {
    if (!has_ledger_) return Reply::Error(ResultCode::kPermissionDenied, "this key cannot write");
    return CallOn(&ledger_, send, read);
  }

  // On the Reader capability every key has.
  template <typename Send, typename Read>
  Reply ReaderCall(Send send, Read read) {
    return CallOn(&reader_, send, read);
  }

  Reply LatestCheckpoint(std::string* note) {
    return ReaderCall([](auto& reader) { return reader.latestCheckpointRequest().send(); },
                      [note](auto& response) {
                        Reply reply = DecodeReply(response.getResult());
                        if (reply.ok()) *note = Str(response.getNote());
                        return reply;
                      });
  }

  Reply InclusionProof(uint64_t seq, uint64_t tree_size, InclusionProofView* proof) {
    return ReaderCall(
        [&](auto& reader) {
          auto request = reader.inclusionProofRequest();
          request.setSeq(seq);
          request.setTreeSize(tree_size);
          return request.send();
        },
        [proof](auto& response) {
          Reply reply = DecodeReply(response.getResult());
          if (!reply.ok()) return reply;
          auto p = response.getProof();
          proof->seq = p.getSeq();
          proof->leaf_index = p.getLeafIndex();
          proof->tree_size = p.getTreeSize();
          proof->leaf_hash = Bytes(p.getLeafHash());
          proof->path = Path(p.getPath());
          proof->record = Bytes(p.getRecord());
          return reply;
        });
  }

  Reply ConsistencyProof(uint64_t from, uint64_t to, ConsistencyProofView* proof) {
    return ReaderCall(
        [&](auto& reader) {
          auto request = reader.consistencyProofRequest();
          request.setFrom(from);
          request.setTo(to);
          return request.send();
        },
        [proof](auto& response) {
          Reply reply = DecodeReply(response.getResult());
          if (!reply.ok()) return reply;
          auto p = response.getProof();
          proof->from = p.getFrom();
          proof->to = p.getTo();
          proof->path = Path(p.getPath());
          return reply;
        });
  }

  Reply Checkpoint(const std::string& dir) {
    return LedgerCall(
        [&](auto& ledger) {
          auto request = ledger.checkpointRequest();
          request.setDir(Text(dir));
          return request.send();
        },
        [](auto& response) { return DecodeReply(response.getResult()); });
  }

  Reply WebhookDeliveries(const std::string& webhook_id, uint32_t limit, const std::string& state,
                          std::vector<DeliveryView>* deliveries) {
    return LedgerCall(
        [&](auto& ledger) {
          auto request = ledger.webhookDeliveriesRequest();
          request.setWebhookId(Text(webhook_id));
          request.setLimit(limit);
          request.setState(Text(state));
          return request.send();
        },
        [deliveries](auto& response) {
          Reply reply = DecodeReply(response.getResult());
          for (auto d : response.getDeliveries()) {
            DeliveryView view{Str(d.getEventId()), Str(d.getType()),
                              Str(d.getState()), d.getAttempts(),
                              d.getLastStatusCode(), Str(d.getLastError()),
                              d.getLastAttemptAtUs(), d.getNextAttemptAtUs(), 0, {}};
            for (auto a : d.getAttemptLog()) {
              view.attempt_log.push_back(DeliveryAttempt{a.getAtUs(), a.getStatusCode(), Str(a.getError())});
            }
            deliveries->push_back(std::move(view));
          }
          return reply;
        });
  }

  Reply Redeliver(const std::string& webhook_id, const std::string& event_id) {
    return LedgerCall(
        [&](auto& ledger) {
          auto request = ledger.redeliverRequest();
          request.setWebhookId(Text(webhook_id));
          request.setEventId(Text(event_id));
          return request.send();
        },
        [](auto& response) { return DecodeReply(response.getResult()); });
  }

 private:
  struct Pending {
    RequestBody body;
    std::function<void(Reply&&)> done;
  };

  class ErrorHandler : public kj::TaskSet::ErrorHandler {
   public:
    void taskFailed(kj::Exception&&) override {}
  };

  // Loop thread: sends what waits as coalesced batches, while fewer than
  // `batches_in_flight` are in flight. Replies come back in order: one
  // connection's calls are executed and answered in the order sent.
  void Pump() {
    while (connected_ && in_flight_ < options_.batches_in_flight) {
      std::vector<Pending> batch;
      {
        std::lock_guard lock(mutex_);
        size_t count = std::min(pending_.size(), std::min(options_.batch_max, kBatchCommandsMax));
        if (count == 0) return;
        batch.assign(std::make_move_iterator(pending_.begin()),
                     std::make_move_iterator(pending_.begin() + static_cast<ptrdiff_t>(count)));
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(count));
      }
      ++in_flight_;
      auto bodies = std::make_shared<std::vector<RequestBody>>();
      std::vector<std::function<void(Reply&&)>> callbacks;
      bodies->reserve(batch.size());
      callbacks.reserve(batch.size());
      for (Pending& p : batch) {
        bodies->push_back(std::move(p.body));
        callbacks.push_back(std::move(p.done));
      }
      Send(std::move(bodies), [this, callbacks = std::move(callbacks)](std::vector<Reply>&& replies) {
        for (size_t i = 0; i < callbacks.size(); ++i) callbacks[i](std::move(replies[i]));
        --in_flight_;
        Pump();
      });
    }
  }

  using Bodies = std::shared_ptr<const std::vector<RequestBody>>;
  using BatchDone = std::function<void(std::vector<Reply>&&)>;

  // A batch waiting for a connection: sent again in the order first sent.
  struct Parked {
    uint64_t order;
    Bodies bodies;
    std::shared_ptr<BatchDone> answer;
  };

  // Whether a batch may be sent again when its answer was lost: every
  // command in it is idempotent on an id the client chose (SPEC). A key or
  // a webhook created without a request id would be created twice.
  static bool SafeToResend(const std::vector<RequestBody>& bodies) {
    for (const RequestBody& body : bodies) {
      if (const auto* issue = std::get_if<cmd::IssueKey>(&body); issue != nullptr && issue->request_id.empty()) {
        return false;
      }
      if (const auto* hook = std::get_if<cmd::RegisterWebhook>(&body);
          hook != nullptr && hook->request_id.empty()) {
        return false;
      }
    }
    return true;
  }

  // Loop thread: one submit (or `queries` for a reader session).
  void Send(Bodies bodies, BatchDone done) {
    SendOrdered(next_order_++, std::move(bodies), std::make_shared<BatchDone>(std::move(done)));
  }

  // On a client that fails over, a batch whose connection was lost waits
  // in parked_ and is sent again, in its first order, once a serving node
  // is reached (Main): every command carries its id, so one that was
  // executed before the loss is answered, not executed twice. `answer` is
  // shared by both outcomes: it may hold a callback per call of a coalesced
  // batch, too many to copy per batch.
  void SendOrdered(uint64_t order, Bodies bodies, std::shared_ptr<BatchDone> answer) {
    if (gone_) {
      (*answer)(std::vector<Reply>(bodies->size(), Failure(gone_why_)));
      return;
    }
    if (!connected_) {
      parked_.push_back(Parked{order, std::move(bodies), std::move(answer)});
      return;
    }
    const size_t count = bodies->size();
    const uint64_t generation = generation_;
    auto failed = [this, order, count, generation, bodies, answer](kj::Exception&& e) mutable {
      if (fails_over_ && !stopping_ && e.getType() == kj::Exception::Type::DISCONNECTED) {
        if (!SafeToResend(*bodies)) {
          (*answer)(std::vector<Reply>(
              count, Failure("the connection to purserd was lost before the answer; this batch creates a key "
                             "or a webhook without a request id, so its outcome is unknown and it is not sent "
                             "again")));
          return;
        }
        if (generation == generation_) connected_ = false;  // Main is reaching another node
        SendOrdered(order, std::move(bodies), std::move(answer));  // parked (or, late, sent on the new one)
        return;
      }
      (*answer)(std::vector<Reply>(count, Failure(e.getDescription().cStr())));
    };
    if (!has_ledger_) {
      auto request = reader_.queriesRequest();
      auto list = request.initQueries(static_cast<unsigned>(count));
      for (unsigned i = 0; i < count; ++i) {
        if (!EncodeQuery((*bodies)[i], list[i])) {
          (*answer)(std::vector<Reply>(count, Reply::Error(ResultCode::kPermissionDenied,
                                                           "this key is a reader: it cannot write")));
          return;
        }
      }
      tasks_->add(request.send()
                      .then([answer](auto response) {
                        std::vector<Reply> replies;
                        for (auto result : response.getResults()) replies.push_back(DecodeReply(result));
                        (*answer)(std::move(replies));
                      })
                      .catch_(kj::mv(failed)));
      return;
    }
    auto request = ledger_.submitRequest();
    auto list = request.initCommands(static_cast<unsigned>(count));
    for (unsigned i = 0; i < count; ++i) EncodeRequest((*bodies)[i], list[i]);
    tasks_->add(request.send()
                    .then([answer](auto response) {
                      std::vector<Reply> replies;
                      replies.reserve(response.getResults().size());
                      for (auto result : response.getResults()) replies.push_back(DecodeReply(result));
                      (*answer)(std::move(replies));
                    })
                    .catch_(kj::mv(failed)));
  }

  // Loop thread: sends what waited for a connection, in the order first sent.
  void ResendParked() {
    std::vector<Parked> parked;
    parked.swap(parked_);
    std::sort(parked.begin(), parked.end(), [](const Parked& a, const Parked& b) { return a.order < b.order; });
    for (Parked& p : parked) SendOrdered(p.order, std::move(p.bodies), std::move(p.answer));
  }

  // Trusts options_.tls_ca_file, once for every connection.
  void SetUpTls() {
    if (options_.tls_ca_file.empty()) return;
    std::ifstream in(options_.tls_ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    ca_ = kj::heap<kj::TlsCertificate>(Text(pem.str()));
    kj::TlsContext::Options tls_options;
    tls_options.useSystemTrustStore = false;
    tls_options.trustedCertificates = kj::arrayPtr(ca_.get(), 1);
    tls_ = kj::heap<kj::TlsContext>(kj::mv(tls_options));
  }

  kj::Promise<kj::Own<kj::AsyncIoStream>> ConnectStream(kj::AsyncIoContext& io, const std::string& target) {
    kj::Own<kj::NetworkAddress> address;
    std::string host = target;
    if (target.rfind("unix:", 0) == 0) {
      address = io.provider->getNetwork().parseAddress(Text(target)).wait(io.waitScope);
    } else {
      size_t colon = target.rfind(':');
      KJ_REQUIRE(colon != std::string::npos, "--connect must be HOST:PORT or unix:PATH");
      host = target.substr(0, colon);
      auto port = static_cast<unsigned>(std::stoul(target.substr(colon + 1)));
      address = io.provider->getNetwork().parseAddress(Text(host), port).wait(io.waitScope);
    }
    if (tls_.get() == nullptr) return address->connect();
    std::string server_name = host;
    return address->connect().then(
        [this, server_name](kj::Own<kj::AsyncIoStream> stream) {
          return tls_->wrapClient(kj::mv(stream), Text(server_name));
        });
  }

  // One connection to a node, kept until the client closes (capabilities
  // of a lost one may still be referred to by calls being failed).
  struct Connection {
    kj::Own<kj::AsyncIoStream> stream;
    kj::Own<capnp::TwoPartyVatNetwork> network;
    kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
  };

  enum class Attempted { kServing, kElsewhere, kFatal };

  // One attempt at `target`: connected and authenticated (kServing, and the
  // session's capabilities installed); a standby (kElsewhere, *leader: the
  // leader's RPC address it named, if any); or a refusal that no other node
  // would change (kFatal: the key). *why says what went wrong.
  Attempted Attempt(kj::AsyncIoContext& io, const std::string& target, std::string* leader, std::string* why) {
    constexpr auto kAttemptTimeout = 3 * kj::SECONDS;  // a frozen node accepts and never answers
    kj::Timer& timer = io.provider->getTimer();
    auto connection = kj::heap<Connection>();
    kj::Maybe<rpc::Gate::Client> gate;
    KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
      connection->stream = timer.timeoutAfter(kAttemptTimeout, ConnectStream(io, target)).wait(io.waitScope);
      try {
        int one = 1;
        connection->stream->setsockopt(IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fails_over_) {
          // A leader whose machine vanished sends no FIN: TCP keepalive
          // notices it within about 5 s (idle 2 s, then 3 probes 1 s apart).
          int idle = 2, interval = 1, probes = 3;
          connection->stream->setsockopt(SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
          connection->stream->setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
          connection->stream->setsockopt(IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
          connection->stream->setsockopt(IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
        }
      } catch (...) {
        // not TCP (a unix socket): nothing to tune
      }
      capnp::ReaderOptions reader_options;
      reader_options.traversalLimitInWords = (64 << 20) / 8;
      connection->network = kj::heap<capnp::TwoPartyVatNetwork>(
          *connection->stream, capnp::rpc::twoparty::Side::CLIENT, reader_options);
      connection->rpc = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(
          capnp::makeRpcClient(*connection->network));
      capnp::MallocMessageBuilder vat_id_message;
      auto vat_id = vat_id_message.initRoot<capnp::rpc::twoparty::VatId>();
      vat_id.setSide(capnp::rpc::twoparty::Side::SERVER);
      gate = connection->rpc->bootstrap(vat_id).castAs<rpc::Gate>();
      if (!options_.tenant.empty()) {
        // Sharded: the tenant's key lives on its shard's leader alone.
        auto route = KJ_ASSERT_NONNULL(gate).leaderRequest();
        route.setTenant(Text(options_.tenant));
        auto answer = timer.timeoutAfter(kAttemptTimeout, route.send()).wait(io.waitScope);
        auto where = answer.getLeader();
        if (!where.getLeading()) {
          *leader = Str(where.getRpc());
          KJ_FAIL_REQUIRE("not_leader: this node does not serve tenant", options_.tenant.c_str(),
                          Str(where.getShard()).c_str());
        }
      }
      auto request = KJ_ASSERT_NONNULL(gate).authenticateRequest();
      request.setApiKey(Text(options_.api_key));
      auto response = timer.timeoutAfter(kAttemptTimeout, request.send()).wait(io.waitScope);
      auto session = response.getSession();
      PrincipalView principal{Str(session.getKeyId()), Str(session.getAccount()),
                              static_cast<Role>(session.getRole())};
      if (generation_ == 0) {  // the same key everywhere: the same principal
        principal_ = principal;
        has_ledger_ = principal.role != Role::kReader;
      }
      reader_ = session.getReader();
      if (has_ledger_) ledger_ = session.getLedger();
    })) {
      *why = target + ": " + exception->getDescription().cStr();
      if (why->find("not_leader") != std::string::npos) {
        if (!leader->empty()) return Attempted::kElsewhere;  // the tenant's route named it
        KJ_IF_MAYBE(standby, gate) {
          kj::runCatchingExceptions([&]() {
            auto answer = timer.timeoutAfter(kAttemptTimeout, standby->leaderRequest().send())
                              .wait(io.waitScope);
            *leader = Str(answer.getLeader().getRpc());
          });
        }
        return Attempted::kElsewhere;
      }
      return why->find("unauthenticated") != std::string::npos ? Attempted::kFatal : Attempted::kElsewhere;
    }
    // The lost connection before the one just lost: its calls were failed
    // and parked long ago (keeping one back covers late failures).
    if (connections_.size() >= 2) connections_.erase(connections_.begin());
    connections_.push_back(kj::mv(connection));
    ++generation_;
    connected_ = true;
    std::lock_guard lock(mutex_);
    serving_address_ = target;
    return Attempted::kServing;
  }

  // Connects to a node that serves: the addresses in order, going first to
  // the leader a standby names. A client that fails over goes round them
  // until `deadline` (a failover takes about a lease); one with a single
  // address tries once. False, with *why, when none serves.
  bool Reach(kj::AsyncIoContext& io, std::chrono::steady_clock::time_point deadline, std::string* why) {
    for (;;) {
      std::deque<std::string> targets(addresses_.begin(), addresses_.end());
      std::vector<std::string> tried;
      std::string problems;
      while (!targets.empty() && !stopping_) {
        std::string target = std::move(targets.front());
        targets.pop_front();
        if (std::find(tried.begin(), tried.end(), target) != tried.end()) continue;
        tried.push_back(target);
        std::string leader;
        std::string problem;
        Attempted attempted = Attempt(io, target, &leader, &problem);
        if (attempted == Attempted::kServing) return true;
        problems += (problems.empty() ? "" : "; ") + problem;
        if (attempted == Attempted::kFatal) {
          *why = problems;
          return false;
        }
        if (!leader.empty()) targets.push_front(leader);
      }
      *why = (addresses_.size() > 1 ? "no node of " + options_.address + " serves: " : "") + problems;
      if (!fails_over_ || stopping_ || std::chrono::steady_clock::now() >= deadline) return false;
      io.provider->getTimer().afterDelay(200 * kj::MILLISECONDS).wait(io.waitScope);
    }
  }

  std::chrono::steady_clock::time_point FailoverDeadline() const {
    return std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.failover_ms);
  }

  void Main(std::promise<Status>* started) {
    pthread_setname_np(pthread_self(), "purser-client");
    for (std::string& address : CommaList(options_.address)) {
      if (!address.empty()) addresses_.push_back(std::move(address));
    }
    fails_over_ = addresses_.size() > 1;
    ErrorHandler handler;
    KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
      auto io = kj::setupAsyncIo();
      kj::TaskSet tasks(handler);
      tasks_ = &tasks;
      // However the loop ends (an exception included), the capabilities and
      // connections go while the event loop they belong to is still here.
      KJ_DEFER({
        subscriptions_.clear();
        reader_ = nullptr;
        ledger_ = nullptr;
        connections_.clear();
        tasks_ = nullptr;
      });
      KJ_DEFER(inbox_.DrainAndClose());  // after `inbox` below is gone
      kj::Promise<void> inbox = inbox_.Run(io.unixEventPort);
      SetUpTls();
      auto stop = kj::newPromiseAndFulfiller<void>();
      stop_ = kj::mv(stop.fulfiller);
      kj::ForkedPromise<void> stopped = stop.promise.fork();
      std::string why;
      KJ_REQUIRE(Reach(io, FailoverDeadline(), &why), why.c_str());
      started->set_value(Status::Ok());
      started = nullptr;
      for (;;) {
        bool lost = false;
        stopped.addBranch()
            .exclusiveJoin(connections_.back()->network->onDisconnect().then([&lost]() { lost = true; }))
            .wait(io.waitScope);
        if (!lost || stopping_) break;
        if (!fails_over_) {
          Disconnected("the server closed the connection");
          break;
        }
        // Calls in flight on the lost connection come back DISCONNECTED and
        // wait in parked_ (Send); new ones wait in pending_ (Pump).
        connected_ = false;
        subscriptions_.clear();
        if (!Reach(io, FailoverDeadline(), &why)) {
          Disconnected("the connection to purserd was lost and no node serves: " + why);
          break;
        }
        ResendParked();
        Pump();
      }
      subscriptions_.clear();
      inbox = kj::Promise<void>(kj::READY_NOW);
      inbox_.DrainAndClose();
      Disconnected("the client is closing");
    })) {
      if (started != nullptr) {
        started->set_value(Status::Error(exception->getDescription().cStr()));
      } else {
        Disconnected(exception->getDescription().cStr());
      }
    }
  }

  // Fails every call still waiting (loop thread).
  void Disconnected(const std::string& why) {
    std::deque<Pending> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(pending_);
      closed_ = true;
    }
    gone_ = true;  // what is parked, or sent from now on, fails with `why`
    gone_why_ = why;
    connected_ = false;
    ResendParked();
    for (Pending& p : left) p.done(Failure(why));
  }

  ClientOptions options_;
  LoopInbox inbox_;
  std::thread thread_;
  PrincipalView principal_;
  std::mutex mutex_;
  std::deque<Pending> pending_;
  bool closed_ = false;
  std::string serving_address_;  // the node of the newest session
  // Loop thread only:
  std::vector<std::string> addresses_;  // options_.address, split
  bool fails_over_ = false;             // several addresses: a lost connection is replaced
  bool connected_ = false;              // a serving node's session is installed
  uint64_t generation_ = 0;             // sessions installed so far
  bool stopping_ = false;               // the client is being destroyed
  bool gone_ = false;                   // no connection, and none will come
  std::string gone_why_;
  std::vector<Parked> parked_;          // batches waiting for a connection
  uint64_t next_order_ = 0;             // batches sent so far
  std::vector<kj::Own<Connection>> connections_;
  kj::TaskSet* tasks_ = nullptr;
  rpc::Reader::Client reader_ = nullptr;
  rpc::Ledger::Client ledger_ = nullptr;
  bool has_ledger_ = false;
  size_t in_flight_ = 0;  // coalesced batches sent and not answered
  std::vector<rpc::Subscription::Client> subscriptions_;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> stop_;
  kj::Own<kj::TlsCertificate> ca_;
  kj::Own<kj::TlsContext> tls_;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.batch_max < 1 || options.batches_in_flight < 1 || options.batches_in_flight > 1024) {
    return Status::InvalidArgument("batch_max must be at least 1, batches_in_flight 1..1024");
  }
  if (options.failover_ms < 0 || options.failover_ms > 600'000) {
    return Status::InvalidArgument("failover_ms must be in 0..600000");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status status = impl->Start(); !status.ok()) return status;
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

const PrincipalView& Client::principal() const { return impl_->principal(); }

std::string Client::address() const { return impl_->address(); }

Reply Client::Call(RequestBody body) {
  std::promise<Reply> done;
  std::future<Reply> result = done.get_future();
  impl_->Enqueue(std::move(body), [&done](Reply&& reply) { done.set_value(std::move(reply)); });
  return result.get();
}

void Client::CallAsync(RequestBody body, std::function<void(Reply&&)> done) {
  impl_->Enqueue(std::move(body), std::move(done));
}

std::vector<Reply> Client::CallBatch(std::vector<RequestBody> bodies) {
  std::promise<std::vector<Reply>> done;
  std::future<std::vector<Reply>> result = done.get_future();
  CallBatchAsync(std::move(bodies),
                 [&done](std::vector<Reply>&& replies) { done.set_value(std::move(replies)); });
  return result.get();
}

void Client::CallBatchAsync(std::vector<RequestBody> bodies,
                            std::function<void(std::vector<Reply>&&)> done) {
  if (bodies.size() > kBatchCommandsMax) {
    done(std::vector<Reply>(bodies.size(), Reply::Error(ResultCode::kInvalidArgument,
                                                        "at most 8192 commands per batch")));
    return;
  }
  impl_->SendBatch(std::move(bodies), std::move(done));
}

Status Client::Subscribe(const std::string& account,
                         std::function<void(const AlertNotice&)> on_notice) {
  return impl_->Subscribe(account, std::move(on_notice));
}

Reply Client::Checkpoint(const std::string& dir) { return impl_->Checkpoint(dir); }

Reply Client::LatestCheckpoint(std::string* note) { return impl_->LatestCheckpoint(note); }

Reply Client::InclusionProof(uint64_t seq, uint64_t tree_size, InclusionProofView* proof) {
  return impl_->InclusionProof(seq, tree_size, proof);
}

Reply Client::ConsistencyProof(uint64_t from, uint64_t to, ConsistencyProofView* proof) {
  return impl_->ConsistencyProof(from, to, proof);
}

Reply Client::WebhookDeliveries(const std::string& webhook_id, uint32_t limit,
                                const std::string& state, std::vector<DeliveryView>* deliveries) {
  return impl_->WebhookDeliveries(webhook_id, limit, state, deliveries);
}

Reply Client::Redeliver(const std::string& webhook_id, const std::string& event_id) {
  return impl_->Redeliver(webhook_id, event_id);
}

void Client::PingAsync(std::function<void()> done) { impl_->Ping(std::move(done)); }

}  // namespace purser
