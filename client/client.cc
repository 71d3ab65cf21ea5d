#include <purser/client.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

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
    auto shared_bodies = std::make_shared<std::vector<RequestBody>>(std::move(bodies));
    inbox_.Post([this, shared_bodies, done = std::move(done)]() mutable {
      Send(std::move(*shared_bodies), std::move(done));
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
    while (in_flight_ < options_.batches_in_flight) {
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
      std::vector<RequestBody> bodies;
      std::vector<std::function<void(Reply&&)>> callbacks;
      bodies.reserve(batch.size());
      callbacks.reserve(batch.size());
      for (Pending& p : batch) {
        bodies.push_back(std::move(p.body));
        callbacks.push_back(std::move(p.done));
      }
      Send(std::move(bodies), [this, callbacks = std::move(callbacks)](std::vector<Reply>&& replies) {
        for (size_t i = 0; i < callbacks.size(); ++i) callbacks[i](std::move(replies[i]));
        --in_flight_;
        Pump();
      });
    }
  }

  // Loop thread: one submit (or `queries` for a reader session).
  void Send(std::vector<RequestBody> bodies, std::function<void(std::vector<Reply>&&)> done) {
    size_t count = bodies.size();
    auto fail = [count](const std::string& message) {
      return std::vector<Reply>(count, Failure(message));
    };
    if (!has_ledger_) {
      auto request = reader_.queriesRequest();
      auto list = request.initQueries(static_cast<unsigned>(count));
      std::vector<int> refused;
      for (unsigned i = 0; i < count; ++i) {
        if (!EncodeQuery(bodies[i], list[i])) refused.push_back(static_cast<int>(i));
      }
      if (!refused.empty()) {
        std::vector<Reply> replies(count, Reply::Error(ResultCode::kPermissionDenied,
                                                       "this key is a reader: it cannot write"));
        done(std::move(replies));
        return;
      }
      tasks_->add(request.send()
                      .then([done](auto response) mutable {
                        std::vector<Reply> replies;
                        for (auto result : response.getResults()) replies.push_back(DecodeReply(result));
                        done(std::move(replies));
                      })
                      .catch_([done, fail](kj::Exception&& e) mutable {
                        done(fail(e.getDescription().cStr()));
                      }));
      return;
    }
    auto request = ledger_.submitRequest();
    auto list = request.initCommands(static_cast<unsigned>(count));
    for (unsigned i = 0; i < count; ++i) EncodeRequest(bodies[i], list[i]);
    tasks_->add(request.send()
                    .then([done](auto response) mutable {
                      std::vector<Reply> replies;
                      replies.reserve(response.getResults().size());
                      for (auto result : response.getResults()) replies.push_back(DecodeReply(result));
                      done(std::move(replies));
                    })
                    .catch_([done, fail](kj::Exception&& e) mutable {
                      done(fail(e.getDescription().cStr()));
                    }));
  }

  kj::Promise<kj::Own<kj::AsyncIoStream>> ConnectStream(kj::AsyncIoContext& io) {
    kj::Own<kj::NetworkAddress> address;
    std::string host = options_.address;
    if (options_.address.rfind("unix:", 0) == 0) {
      address = io.provider->getNetwork().parseAddress(Text(options_.address)).wait(io.waitScope);
    } else {
      size_t colon = options_.address.rfind(':');
      KJ_REQUIRE(colon != std::string::npos, "--connect must be HOST:PORT or unix:PATH");
      host = options_.address.substr(0, colon);
      auto port = static_cast<unsigned>(std::stoul(options_.address.substr(colon + 1)));
      address = io.provider->getNetwork().parseAddress(Text(host), port).wait(io.waitScope);
    }
    if (options_.tls_ca_file.empty()) return address->connect();
    std::ifstream in(options_.tls_ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    ca_ = kj::heap<kj::TlsCertificate>(Text(pem.str()));
    kj::TlsContext::Options tls_options;
    tls_options.useSystemTrustStore = false;
    tls_options.trustedCertificates = kj::arrayPtr(ca_.get(), 1);
    tls_ = kj::heap<kj::TlsContext>(kj::mv(tls_options));
    std::string server_name = host;
    return address->connect().then(
        [this, server_name](kj::Own<kj::AsyncIoStream> stream) {
          return tls_->wrapClient(kj::mv(stream), Text(server_name));
        });
  }

  void Main(std::promise<Status>* started) {
    pthread_setname_np(pthread_self(), "purser-client");
    ErrorHandler handler;
    KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
      auto io = kj::setupAsyncIo();
      kj::TaskSet tasks(handler);
      tasks_ = &tasks;
      KJ_DEFER(inbox_.DrainAndClose());  // last: after `inbox` below is gone
      kj::Promise<void> inbox = inbox_.Run(io.unixEventPort);
      kj::Own<kj::AsyncIoStream> stream = ConnectStream(io).wait(io.waitScope);
      try {
        int one = 1;
        stream->setsockopt(IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      } catch (...) {
      }
      capnp::ReaderOptions reader_options;
      reader_options.traversalLimitInWords = (64 << 20) / 8;
      capnp::TwoPartyVatNetwork network(*stream, capnp::rpc::twoparty::Side::CLIENT, reader_options);
      auto rpc_system = capnp::makeRpcClient(network);
      capnp::MallocMessageBuilder vat_id_message;
      auto vat_id = vat_id_message.initRoot<capnp::rpc::twoparty::VatId>();
      vat_id.setSide(capnp::rpc::twoparty::Side::SERVER);
      auto gate = rpc_system.bootstrap(vat_id).castAs<rpc::Gate>();
      auto request = gate.authenticateRequest();
      request.setApiKey(Text(options_.api_key));
      auto response = request.send().wait(io.waitScope);
      auto session = response.getSession();
      principal_.key_id = Str(session.getKeyId());
      principal_.account = Str(session.getAccount());
      principal_.role = static_cast<Role>(session.getRole());
      reader_ = session.getReader();
      has_ledger_ = principal_.role != Role::kReader;
      if (has_ledger_) ledger_ = session.getLedger();
      auto stop = kj::newPromiseAndFulfiller<void>();
      stop_ = kj::mv(stop.fulfiller);
      started->set_value(Status::Ok());
      started = nullptr;
      stop.promise.exclusiveJoin(network.onDisconnect().then([this]() {
        Disconnected("the server closed the connection");
      })).wait(io.waitScope);
      subscriptions_.clear();
      inbox = kj::Promise<void>(kj::READY_NOW);
      inbox_.DrainAndClose();
      Disconnected("the client is closing");
      tasks_ = nullptr;
    })) {
      if (started != nullptr) {
        started->set_value(Status::Error(exception->getDescription().cStr()));
      } else {
        Disconnected(exception->getDescription().cStr());
      }
    }
  }

  // Fails every call still waiting.
  void Disconnected(const std::string& why) {
    std::deque<Pending> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(pending_);
      closed_ = true;
    }
    for (Pending& p : left) p.done(Failure(why));
  }

  ClientOptions options_;
  LoopInbox inbox_;
  std::thread thread_;
  PrincipalView principal_;
  std::mutex mutex_;
  std::deque<Pending> pending_;
  bool closed_ = false;
  // Loop thread only:
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
  if (options.address.find(',') == std::string::npos) {
    auto impl = std::make_unique<Impl>(std::move(options));
    if (Status status = impl->Start(); !status.ok()) return status;
    return std::unique_ptr<Client>(new Client(std::move(impl)));
  }
  // Several nodes: the first that answers.
  const std::string addresses = options.address;
  std::string problems;
  for (std::string& address : CommaList(addresses)) {
    if (address.empty()) continue;
    ClientOptions one = options;
    one.address = std::move(address);
    Result<std::unique_ptr<Client>> connected = Connect(std::move(one));
    if (connected.ok()) return connected;
    problems += (problems.empty() ? "" : "; ") + connected.status().message();
  }
  return Status::IOError("no node of " + addresses + " answered: " + problems);
}

const PrincipalView& Client::principal() const { return impl_->principal(); }

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
