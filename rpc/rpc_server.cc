#include "rpc/rpc_server.h"

#include "ops/admin.h"
#include "notify/address.h"
#include "notify/notifier.h"

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <utility>

#include "rpc/loop_inbox.h"
#include "rpc/rpc_codec.h"
#include "ledger/wire/capnp_values.h"
#include "ledger/base/crypto.h"
#include "ledger/base/limits.h"
#include "purser.capnp.h"

namespace purser {

namespace {


std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Splits "host:port" (IPv6 in brackets) into its parts.
bool SplitHostPort(const std::string& address, std::string* host, uint16_t* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  std::string digits = address.substr(colon + 1);
  if (digits.empty() || digits.size() > 5) return false;
  unsigned value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return !host->empty();
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) return true;
  std::string host;
  uint16_t port;
  if (!SplitHostPort(address, &host, &port)) return false;
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// ---------------------------------------------------------------------------
// Everything below runs on the loop thread unless it says otherwise.

// Blocking work (a proof's reads, a RocksDB checkpoint copy) off the loop,
// so that it goes on serving: kThreads threads per loop, all started at
// the first job, and at most kQueueMax jobs waiting; past that a request is
// refused (unavailable) rather than given a thread of its own, which
// would let a client pile up threads without bound.
class Workers {
 public:
  static constexpr size_t kThreads = 2;
  static constexpr size_t kQueueMax = 256;

  // Any thread. False (and `work` dropped) when the queue is full or the
  // workers were stopped.
  bool TryStart(std::function<void()> work) {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= kQueueMax) return false;
    queue_.push_back(std::move(work));
    while (threads_.size() < kThreads) threads_.emplace_back([this] { Run(); });
    ready_.notify_one();
    return true;
  }
  // Runs what is queued, then joins the threads; later jobs are refused.
  void JoinAll() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      threads.swap(threads_);
    }
    ready_.notify_all();
    for (std::thread& thread : threads) thread.join();
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      std::function<void()> work = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      work();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// What the capabilities of one connection know of it, for its watchdog:
// whether it authenticated, when it was last used, and whether a
// subscription keeps it open although it sends nothing.
struct ConnectionState {
  bool authenticated = false;
  int subscriptions = 0;
  kj::TimePoint last_activity = kj::origin<kj::TimePoint>();
};

struct Shared {
  Ledger* sequencer;
  LoopInbox* inbox;
  const RpcServerOptions* options;
  Workers* workers;
  kj::Timer* timer = nullptr;  // the loop's

  // Submits requests to the sequencer; the promise resolves on the loop
  // thread with one reply each (unavailable when the queue is full).
  kj::Promise<std::vector<Reply>> Submit(std::vector<Request> requests) {
    size_t count = requests.size();
    auto paf = kj::newPromiseAndFulfiller<std::vector<Reply>>();
    auto fulfiller =
        std::make_shared<kj::Own<kj::PromiseFulfiller<std::vector<Reply>>>>(kj::mv(paf.fulfiller));
    LoopInbox* target = inbox;
    // Runs on the sequencer's log thread: only moves the replies to the loop.
    bool accepted = sequencer->Submit(
        std::move(requests), [target, fulfiller](std::vector<Reply>&& replies) mutable {
          target->Post([fulfiller = std::move(fulfiller), replies = std::move(replies)]() mutable {
            (*fulfiller)->fulfill(std::move(replies));
          });
        });
    if (!accepted) {
      return std::vector<Reply>(
          count, Reply::Error(ResultCode::kUnavailable,
                              "the command queue is full or the service is stopping; retry"));
    }
    return kj::mv(paf.promise);
  }

  kj::Promise<Reply> SubmitOne(Request request) {
    std::vector<Request> requests;
    requests.push_back(std::move(request));
    return Submit(std::move(requests)).then([](std::vector<Reply>&& replies) {
      return std::move(replies.front());
    });
  }
};

// Alert and freeze notices for subscribers, routed by the account tree.
class Notices {
 public:
  struct Subscriber {
    uint64_t id;
    std::string scope;   // account whose subtree is wanted; empty = everything
    std::string key_id;  // of the key that subscribed
    // Set when that key is rotated: notices after it are not delivered.
    int64_t valid_until_us = INT64_MAX;
    rpc::Subscriber::Client client;
  };

  uint64_t Add(std::string scope, std::string key_id, rpc::Subscriber::Client client) {
    uint64_t id = ++next_id_;
    subscribers_.push_back(
        Subscriber{id, std::move(scope), std::move(key_id), INT64_MAX, kj::mv(client)});
    return id;
  }
  void Remove(uint64_t id) {
    std::erase_if(subscribers_, [id](const Subscriber& s) { return s.id == id; });
  }
  void SetParent(const std::string& account, const std::string& parent) { parents_[account] = parent; }

  // Delivers the notable events of a durable batch. Long: one branch per
  // kind of notice (alerts, freezes, expiries, tree and key changes).
  void Deliver(const std::vector<Event>& events, kj::TaskSet& tasks) {
    for (const Event& event : events) {
      if (const auto* opened = std::get_if<event::AccountOpened>(&event.body)) {
        SetParent(opened->account, opened->parent);
        continue;
      }
      // A revoked key's subscriptions end at once (SPEC: checked on every
      // call, also through an open capability); a rotated key's at the end
      // of its grace period.
      if (const auto* revoked = std::get_if<event::ApiKeyRevoked>(&event.body)) {
        std::erase_if(subscribers_,
                      [&](const Subscriber& s) { return s.key_id == revoked->key_id; });
        continue;
      }
      if (const auto* issued = std::get_if<event::ApiKeyIssued>(&event.body)) {
        for (Subscriber& s : subscribers_) {
          if (!issued->rotated_from.empty() && s.key_id == issued->rotated_from) {
            s.valid_until_us = std::min(s.valid_until_us, issued->old_key_valid_until_us);
          }
        }
        continue;
      }
      std::string account;
      auto fill = [&](rpc::Notice::Builder notice) {
        notice.setSequence(event.sequence);
        notice.setTimestampUs(event.timestamp_us);
        std::visit(
            [&](const auto& body) {
              using T = std::decay_t<decltype(body)>;
              if constexpr (std::is_same_v<T, event::AlertRaised>) {
                notice.setKind(Text(std::string(AlertTypeName(body.type))));
                notice.setAccount(Text(body.account));
                notice.setAlertId(body.alert_id);
                notice.setThresholdPct(body.threshold_pct);
                notice.setWindow(static_cast<schema::CapWindow>(body.window));
                notice.setLimitMicros(body.limit_micros);
                notice.setValueMicros(body.value_micros);
                notice.setMessage(Text(body.message));
              } else if constexpr (std::is_same_v<T, event::AccountFrozen>) {
                notice.setKind("account_frozen");
                notice.setAccount(Text(body.account));
                notice.setMessage(Text(body.reason));
              } else if constexpr (std::is_same_v<T, event::AccountUnfrozen>) {
                notice.setKind("account_unfrozen");
                notice.setAccount(Text(body.account));
              } else if constexpr (std::is_same_v<T, event::Expired>) {
                notice.setKind("reservation_expired");
                notice.setAccount(Text(body.account));
                notice.setValueMicros(body.charged_micros);
                notice.setMessage(Text("reservation " + body.reservation_id + " expired"));
              }
            },
            event.body);
      };
      if (const auto* alert = std::get_if<event::AlertRaised>(&event.body)) {
        account = alert->account;
      } else if (const auto* frozen = std::get_if<event::AccountFrozen>(&event.body)) {
        account = frozen->account;
      } else if (const auto* unfrozen = std::get_if<event::AccountUnfrozen>(&event.body)) {
        account = unfrozen->account;
      } else if (const auto* expired = std::get_if<event::Expired>(&event.body)) {
        account = expired->account;
      } else {
        continue;
      }
      std::erase_if(subscribers_,
                    [&](const Subscriber& s) { return event.timestamp_us > s.valid_until_us; });
      for (Subscriber& subscriber : subscribers_) {
        if (!subscriber.scope.empty() && !InSubtree(account, subscriber.scope)) continue;
        auto request = subscriber.client.notifyRequest();
        fill(request.initNotice());
        // Fire and forget: a slow or gone subscriber does not hold the service.
        tasks.add(request.send().ignoreResult().catch_([](kj::Exception&&) {}));
      }
    }
  }

 private:
  bool InSubtree(std::string account, const std::string& ancestor) const {
    for (int depth = 0; depth < 16 && !account.empty(); ++depth) {
      if (account == ancestor) return true;
      auto it = parents_.find(account);
      if (it == parents_.end()) return false;
      account = it->second;
    }
    return false;
  }

  uint64_t next_id_ = 0;
  std::vector<Subscriber> subscribers_;
  std::unordered_map<std::string, std::string> parents_;
};

class SubscriptionImpl final : public rpc::Subscription::Server {
 public:
  SubscriptionImpl(Notices* notices, uint64_t id, std::shared_ptr<ConnectionState> connection)
      : notices_(notices), id_(id), connection_(std::move(connection)) {
    ++connection_->subscriptions;
  }
  ~SubscriptionImpl() {
    notices_->Remove(id_);
    --connection_->subscriptions;
  }

 private:
  Notices* notices_;
  uint64_t id_;
  std::shared_ptr<ConnectionState> connection_;
};

// The methods of Reader, shared by ReaderImpl and LedgerImpl.
class Session {
 public:
  Session(Shared* shared, Notices* notices, Credentials credentials,
          std::shared_ptr<ConnectionState> connection)
      : shared_(shared),
        notices_(notices),
        credentials_(credentials),
        connection_(std::move(connection)) {}

  // A call on this connection: its idle timer starts again.
  void Touch() { connection_->last_activity = shared_->timer->now(); }

  kj::Promise<void> Query(rpc::Query::Reader query, rpc::Result::Builder result) {
    RequestBody body;
    if (std::string problem = DecodeQuery(query, &body); !problem.empty()) {
      EncodeReply(Reply::Error(ResultCode::kInvalidArgument, problem), result);
      return kj::READY_NOW;
    }
    return Run({std::move(body)}, [result](std::vector<Reply>& replies) mutable {
      EncodeReply(replies[0], result);
    });
  }

  // Runs decoded requests; `answer` fills the results from the replies.
  kj::Promise<void> Run(std::vector<RequestBody> bodies,
                        kj::Function<void(std::vector<Reply>&)> answer) {
    Touch();
    std::vector<Request> requests;
    requests.reserve(bodies.size());
    for (RequestBody& body : bodies) requests.push_back(Request{credentials_, std::move(body)});
    return shared_->Submit(std::move(requests))
        .then([answer = kj::mv(answer)](std::vector<Reply>&& replies) mutable { answer(replies); });
  }

  // Decodes a list (of commands or queries), runs the valid ones in one
  // submission and answers each in order.
  template <typename List, typename Decode, typename Prepare, typename Finish>
  kj::Promise<void> RunList(List list, capnp::List<rpc::Result>::Builder results, Decode decode,
                            Prepare prepare, Finish finish) {
    std::vector<RequestBody> bodies;
    std::vector<int> slot_of(list.size(), -1);
    for (unsigned i = 0; i < list.size(); ++i) {
      RequestBody body;
      std::string problem = decode(list[i], &body);
      if (problem.empty()) problem = prepare(&body);
      if (!problem.empty()) {
        EncodeReply(Reply::Error(ResultCode::kInvalidArgument, problem), results[i]);
        continue;
      }
      slot_of[i] = static_cast<int>(bodies.size());
      bodies.push_back(std::move(body));
    }
    if (bodies.empty()) return kj::READY_NOW;
    auto prepared = std::make_shared<std::vector<RequestBody>>(bodies);
    return Run(std::move(bodies), [results, slot_of = std::move(slot_of), prepared,
                                   finish](std::vector<Reply>& replies) mutable {
      for (unsigned i = 0; i < slot_of.size(); ++i) {
        if (slot_of[i] < 0) continue;
        Reply& reply = replies[static_cast<size_t>(slot_of[i])];
        finish((*prepared)[static_cast<size_t>(slot_of[i])], &reply);
        EncodeReply(reply, results[i]);
      }
    });
  }

  kj::Promise<void> Subscribe(rpc::Subscriber::Client subscriber, std::string account,
                              rpc::Reader::SubscribeResults::Builder results) {
    // Who is subscribing (its key id, to end the subscription when the key
    // is revoked), and may it read `account`.
    std::vector<RequestBody> checks = {query::Authenticate{}};
    if (!account.empty()) checks.push_back(query::GetAccount{account});
    return Run(std::move(checks), [this, subscriber = kj::mv(subscriber), account,
                                   results](std::vector<Reply>& replies) mutable {
      for (const Reply& reply : replies) {
        KJ_REQUIRE(reply.ok(), "cannot subscribe", std::string(ResultCodeName(reply.code)),
                   reply.message);
      }
      const auto& principal = std::get<PrincipalView>(replies[0].body);
      std::string scope = account.empty() ? principal.account : account;
      uint64_t id = notices_->Add(scope, principal.key_id, kj::mv(subscriber));
      results.setSubscription(kj::heap<SubscriptionImpl>(notices_, id, connection_));
    });
  }

  Shared* shared() { return shared_; }
  const Credentials& credentials() const { return credentials_; }

 private:
  Shared* shared_;
  Notices* notices_;
  Credentials credentials_;
  std::shared_ptr<ConnectionState> connection_;
};

// Server-chosen parts of creates: key ids and secrets, webhook ids. The
// secret of a new key goes to `api_keys`, in order, to be shown once. A
// webhook's URL is checked and its signing secret kept for the notifier
// (then cleared from the command). Returns what is wrong, or "".
std::string PrepareCommand(const RpcServerOptions& options, RequestBody* body,
                           std::vector<std::string>* api_keys) {
  if (auto* issue = std::get_if<cmd::IssueKey>(body)) {
    issue->key_id = "k_" + RandomHex(6);
    std::string secret = NewApiKeySecret();
    issue->secret_sha256 = Sha256(secret);
    api_keys->push_back(std::move(secret));
  } else if (auto* hook = std::get_if<cmd::RegisterWebhook>(body)) {
    hook->webhook_id = "wh_" + RandomHex(8);
    if (options.notifier == nullptr) return "webhook delivery is not available on this server";
    if (std::string problem = CheckWebhookUrl(hook->url, options.allow_private_webhooks);
        !problem.empty()) {
      return problem;
    }
    hook->secret_sha256 = Sha256(hook->secret);
    if (Status stored = options.notifier->StoreSecret(hook->webhook_id, hook->secret); !stored.ok()) {
      return stored.message();
    }
    hook->secret.clear();
  } else if (auto* update = std::get_if<cmd::UpdateWebhook>(body)) {
    if (update->url) {
      if (std::string problem = CheckWebhookUrl(*update->url, options.allow_private_webhooks);
          !problem.empty()) {
        return problem;
      }
    }
  }
  return {};
}

// Shows a new key's secret in its result: once, when the key was created. An
// idempotent repeat cannot show it again (only its hash was ever stored).
void FinishCommand(const RequestBody& body, Reply* reply, const std::vector<std::string>& api_keys,
                   size_t* next_key) {
  if (!std::holds_alternative<cmd::IssueKey>(body)) return;
  const std::string& secret = api_keys[(*next_key)++];
  if (reply->ok() && reply->created) std::get<KeyResult>(reply->body).api_key = secret;
}

// After `checks` run with the session's key and one of them passes, `work`
// (blocking: storage reads, a copy) runs on a worker thread; its status
// comes back to the loop as a reply. The first refusal otherwise.
kj::Promise<Reply> CheckedWork(Session& session, std::vector<RequestBody> checks,
                               std::function<Status()> work) {
  Shared* shared = session.shared();
  std::vector<Request> requests;
  for (RequestBody& body : checks) requests.push_back(Request{session.credentials(), std::move(body)});
  return shared->Submit(std::move(requests))
      .then([shared, work = std::move(work)](std::vector<Reply>&& replies) mutable -> kj::Promise<Reply> {
        bool allowed = false;
        for (const Reply& reply : replies) allowed = allowed || reply.ok();
        if (!allowed) return std::move(replies[0]);
        auto paf = kj::newPromiseAndFulfiller<Reply>();
        auto fulfiller = std::make_shared<kj::Own<kj::PromiseFulfiller<Reply>>>(kj::mv(paf.fulfiller));
        LoopInbox* inbox = shared->inbox;
        const bool started = shared->workers->TryStart([work = std::move(work), inbox, fulfiller]() mutable {
          Status status = work();
          Reply reply = status.ok() ? Reply() : Reply::Error(ToResultCode(status), status.message());
          // The fulfiller moves to the loop, the only thread that may touch it.
          inbox->Post([fulfiller = std::move(fulfiller), reply = std::move(reply)]() mutable {
            (*fulfiller)->fulfill(std::move(reply));
          });
        });
        if (!started) {
          return Reply::Error(ResultCode::kUnavailable,
                              "too many proof and checkpoint requests in progress; retry later");
        }
        return kj::mv(paf.promise);
      });
}

kj::ArrayPtr<const kj::byte> BytesOf(std::string_view bytes) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size());
}

kj::ArrayPtr<const kj::byte> BytesOf(const Sha256Digest& hash) { return kj::arrayPtr(hash.data(), hash.size()); }

void FillPath(const std::vector<Sha256Digest>& path, capnp::List<capnp::Data>::Builder out) {
  for (unsigned i = 0; i < path.size(); ++i) out.set(i, BytesOf(path[i]));
}

// The methods of Reader on top of a Session, for Reader and for Ledger
// (which extends Reader).
template <typename Server>
class ReaderMethods : public Server {
 public:
  explicit ReaderMethods(Session session) : session_(std::move(session)) {}

  kj::Promise<void> query(typename Server::QueryContext context) override {
    return session_.Query(context.getParams().getQuery(), context.getResults().initResult());
  }

  kj::Promise<void> queries(typename Server::QueriesContext context) override {
    auto list = context.getParams().getQueries();
    KJ_REQUIRE(list.size() <= kBatchCommandsMax, "at most 8192 queries per call");
    auto results = context.getResults().initResults(list.size());
    return session_.RunList(list, results, DecodeQuery, [](RequestBody*) { return std::string(); },
                            [](const RequestBody&, Reply*) {});
  }

  kj::Promise<void> subscribe(typename Server::SubscribeContext context) override {
    auto params = context.getParams();
    return session_.Subscribe(params.getSubscriber(), Str(params.getAccount()),
                              context.getResults());
  }

  kj::Promise<void> ping(typename Server::PingContext) override {
    session_.Touch();  // a keep-alive
    return kj::READY_NOW;
  }

  kj::Promise<void> latestCheckpoint(typename Server::LatestCheckpointContext context) override {
    Ledger* ledger = session_.shared()->sequencer;
    auto note = std::make_shared<std::string>();
    std::vector<RequestBody> checks;
    checks.push_back(query::GetChainHead{});  // global admin only
    return CheckedWork(session_, std::move(checks), [ledger, note] { return ledger->LatestSignedCheckpoint(note.get()); })
        .then([context, note](Reply reply) mutable {
          EncodeReply(reply, context.getResults().initResult());
          if (reply.ok()) context.getResults().setNote(*note);
        });
  }

  kj::Promise<void> inclusionProof(typename Server::InclusionProofContext context) override {
    const uint64_t sequence = context.getParams().getSeq();
    const uint64_t tree_size = context.getParams().getTreeSize();
    Ledger* ledger = session_.shared()->sequencer;
    // Whose event it is decides who may have its proof (as over HTTP).
    std::vector<std::string> accounts;
    Status status = sequence == 0 ? Status::InvalidArgument("seq: events are numbered from 1")
                                  : ledger->EventAccounts(sequence, &accounts);
    if (!status.ok()) {
      return session_.shared()->SubmitOne(Request{session_.credentials(), query::Authenticate{}})
          .then([context, status](Reply reply) mutable {
            if (reply.ok()) reply = Reply::Error(ToResultCode(status), status.message());
            EncodeReply(reply, context.getResults().initResult());
          });
    }
    std::vector<RequestBody> checks;
    for (const std::string& account : accounts) checks.push_back(query::GetAccount{account});
    if (checks.empty()) checks.push_back(query::GetChainHead{});
    auto proof = std::make_shared<InclusionProof>();
    return CheckedWork(session_, std::move(checks),
                       [ledger, sequence, tree_size, proof] {
                         return ledger->ProveInclusion(sequence, tree_size, proof.get());
                       })
        .then([context, proof](Reply reply) mutable {
          EncodeReply(reply, context.getResults().initResult());
          if (!reply.ok()) return;
          auto out = context.getResults().initProof();
          out.setSeq(proof->sequence);
          out.setLeafIndex(proof->leaf_index);
          out.setTreeSize(proof->tree_size);
          out.setLeafHash(BytesOf(proof->leaf_hash));
          FillPath(proof->path, out.initPath(static_cast<unsigned>(proof->path.size())));
          out.setRecord(BytesOf(proof->record));
        });
  }

  kj::Promise<void> consistencyProof(typename Server::ConsistencyProofContext context) override {
    const uint64_t from = context.getParams().getFrom();
    const uint64_t to = context.getParams().getTo();
    Ledger* ledger = session_.shared()->sequencer;
    auto proof = std::make_shared<ConsistencyProof>();
    std::vector<RequestBody> checks;
    checks.push_back(query::GetChainHead{});  // global admin only
    return CheckedWork(session_, std::move(checks),
                       [ledger, from, to, proof] { return ledger->ProveConsistency(from, to, proof.get()); })
        .then([context, proof](Reply reply) mutable {
          EncodeReply(reply, context.getResults().initResult());
          if (!reply.ok()) return;
          auto out = context.getResults().initProof();
          out.setFrom(proof->from);
          out.setTo(proof->to);
          FillPath(proof->path, out.initPath(static_cast<unsigned>(proof->path.size())));
        });
  }

 protected:
  Session session_;
};

using ReaderImpl = ReaderMethods<rpc::Reader::Server>;

class LedgerImpl final : public ReaderMethods<rpc::Ledger::Server> {
 public:
  explicit LedgerImpl(Session session) : ReaderMethods(std::move(session)) {}

  kj::Promise<void> call(CallContext context) override {
    RequestBody body;
    auto result = context.getResults().initResult();
    if (std::string problem = DecodeCommand(context.getParams().getCommand(), &body);
        !problem.empty()) {
      EncodeReply(Reply::Error(ResultCode::kInvalidArgument, problem), result);
      return kj::READY_NOW;
    }
    auto api_keys = std::make_shared<std::vector<std::string>>();
    if (std::string problem = PrepareCommand(*session_.shared()->options, &body, api_keys.get());
        !problem.empty()) {
      EncodeReply(Reply::Error(ResultCode::kInvalidArgument, problem), result);
      return kj::READY_NOW;
    }
    auto prepared = std::make_shared<RequestBody>(body);
    return session_.Run({std::move(body)},
                        [result, api_keys, prepared](std::vector<Reply>& replies) mutable {
                          size_t next_key = 0;
                          FinishCommand(*prepared, &replies[0], *api_keys, &next_key);
                          EncodeReply(replies[0], result);
                        });
  }

  kj::Promise<void> submit(SubmitContext context) override {
    auto list = context.getParams().getCommands();
    KJ_REQUIRE(list.size() <= kBatchCommandsMax, "at most 8192 commands per submit");
    auto results = context.getResults().initResults(list.size());
    auto api_keys = std::make_shared<std::vector<std::string>>();
    return session_.RunList(
        list, results, DecodeCommand,
        [api_keys, options = session_.shared()->options](RequestBody* body) {
          return PrepareCommand(*options, body, api_keys.get());
        },
        [api_keys, next_key = size_t{0}](const RequestBody& body, Reply* reply) mutable {
          FinishCommand(body, reply, *api_keys, &next_key);
        });
  }

  kj::Promise<void> webhookDeliveries(WebhookDeliveriesContext context) override {
    auto params = context.getParams();
    std::string webhook_id = Str(params.getWebhookId());
    std::string state = Str(params.getState());
    size_t limit = params.getLimit() == 0 ? 100 : std::min<size_t>(params.getLimit(), kListLimitMax);
    Notifier* notifier = session_.shared()->options->notifier;
    return session_.Run({query::GetWebhook{webhook_id}},
                        [context, notifier, webhook_id, state, limit](std::vector<Reply>& replies) mutable {
                          auto results = context.getResults();
                          if (replies[0].ok() && notifier == nullptr) {
                            replies[0] = Reply::Error(ResultCode::kNotImplemented,
                                                      "webhook delivery is not available");
                          }
                          EncodeReply(replies[0], results.initResult());
                          if (!replies[0].ok()) return;
                          std::vector<DeliveryView> found =
                              notifier->Deliveries(webhook_id, limit, state);
                          auto list = results.initDeliveries(static_cast<unsigned>(found.size()));
                          for (unsigned i = 0; i < found.size(); ++i) {
                            const DeliveryView& d = found[i];
                            list[i].setEventId(Text(d.event_id));
                            list[i].setType(Text(d.type));
                            list[i].setState(Text(d.state));
                            list[i].setAttempts(d.attempts);
                            list[i].setLastStatusCode(d.last_status_code);
                            list[i].setLastError(Text(d.last_error));
                            list[i].setLastAttemptAtUs(d.last_attempt_at_us);
                            list[i].setNextAttemptAtUs(d.next_attempt_at_us);
                            auto log = list[i].initAttemptLog(static_cast<unsigned>(d.attempt_log.size()));
                            for (unsigned k = 0; k < d.attempt_log.size(); ++k) {
                              log[k].setAtUs(d.attempt_log[k].at_us);
                              log[k].setStatusCode(d.attempt_log[k].status_code);
                              log[k].setError(Text(d.attempt_log[k].error));
                            }
                          }
                        });
  }

  kj::Promise<void> redeliver(RedeliverContext context) override {
    std::string webhook_id = Str(context.getParams().getWebhookId());
    std::string event_id = Str(context.getParams().getEventId());
    Notifier* notifier = session_.shared()->options->notifier;
    return session_.Run({query::GetWebhook{webhook_id}},
                        [context, notifier, webhook_id, event_id](std::vector<Reply>& replies) mutable {
                          Reply reply = replies[0];
                          if (reply.ok()) {
                            Status status = notifier == nullptr
                                                ? Status::Error("webhook delivery is not available")
                                                : notifier->Redeliver(webhook_id, event_id);
                            if (!status.ok()) reply = Reply::Error(ToResultCode(status), status.message());
                          }
                          EncodeReply(reply, context.getResults().initResult());
                        });
  }

  kj::Promise<void> checkpoint(CheckpointContext context) override {
    std::string dir = Str(context.getParams().getDir());
    if (std::string problem = CheckCheckpointDir(dir); !problem.empty()) {
      EncodeReply(Reply::Error(ResultCode::kInvalidArgument, problem),
                  context.getResults().initResult());
      return kj::READY_NOW;
    }
    Ledger* ledger = session_.shared()->sequencer;
    std::vector<RequestBody> checks;
    checks.push_back(query::GetChainHead{});  // global admin only
    // The copy flushes memtables and links files: seconds, perhaps. It runs
    // on a worker thread; the loop keeps serving meanwhile.
    return CheckedWork(session_, std::move(checks), [ledger, dir] { return CreateCheckpointAt(ledger, dir); })
        .then([context, dir](Reply reply) mutable {
          if (reply.ok()) {
            reply.body = IdResult{dir, 0};
            reply.created = true;
          }
          EncodeReply(reply, context.getResults().initResult());
        });
  }
};

// One per connection: the bootstrap capability, and the one place that
// marks the connection authenticated.
class GateImpl final : public rpc::Gate::Server {
 public:
  GateImpl(Shared* shared, Notices* notices, std::shared_ptr<ConnectionState> connection)
      : shared_(shared), notices_(notices), connection_(std::move(connection)) {}

  kj::Promise<void> authenticate(AuthenticateContext context) override {
    if (shared_->sequencer == nullptr) {  // a standby: nothing to authenticate against
      LeaderView leader = shared_->options->leader("");
      std::string where = leader.node.empty() ? "no node leads the shard now; retry"
                                              : "the leader is " + leader.node + " at " + leader.rpc;
      return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                           kj::str("not_leader: this node is a standby; ", where.c_str()));
    }
    std::string key = Str(context.getParams().getApiKey());
    KJ_REQUIRE(!key.empty() && key.size() <= 256, "unauthenticated: malformed API key");
    Credentials credentials = Credentials::FromApiKey(key);
    return shared_->SubmitOne(Request{credentials, query::Authenticate{}})
        .then([this, credentials, context](Reply&& reply) mutable {
          KJ_REQUIRE(reply.ok(), "unauthenticated: the API key is not valid");
          const auto& principal = std::get<PrincipalView>(reply.body);
          auto session = context.getResults().initSession();
          session.setKeyId(Text(principal.key_id));
          session.setAccount(Text(principal.account));
          session.setRole(static_cast<schema::Role>(principal.role));
          connection_->authenticated = true;
          connection_->last_activity = shared_->timer->now();
          session.setReader(
              kj::heap<ReaderImpl>(Session(shared_, notices_, credentials, connection_)));
          if (principal.role != Role::kReader) {
            session.setLedger(
                kj::heap<LedgerImpl>(Session(shared_, notices_, credentials, connection_)));
          }
        });
  }

  kj::Promise<void> leader(LeaderContext context) override {
    LeaderView view;
    if (shared_->options->leader) {
      std::string tenant = Str(context.getParams().getTenant());
      KJ_REQUIRE(tenant.size() <= kAccountIdBytesMax, "invalid_argument: the tenant is too long");
      view = shared_->options->leader(tenant);
    } else {
      view.leading = true;
    }
    auto leader = context.getResults().initLeader();
    leader.setLeading(view.leading);
    leader.setShard(Text(view.shard));
    leader.setNode(Text(view.node));
    leader.setRpc(Text(view.rpc));
    leader.setHttp(Text(view.http));
    return kj::READY_NOW;
  }

 private:
  Shared* shared_;
  Notices* notices_;
  std::shared_ptr<ConnectionState> connection_;
};

// ---------------------------------------------------------------------------
// The loop thread.

class RpcServer::Loop final : private kj::TaskSet::ErrorHandler {
 public:
  // `open` counts the connections of all loops.
  Loop(Ledger* sequencer, const RpcServerOptions& options, std::atomic<size_t>* open)
      : sequencer_(sequencer), options_(options), open_(open) {
    shared_.sequencer = sequencer;
    shared_.inbox = &inbox_;
    shared_.options = &options_;
    shared_.workers = &workers_;
    // Durable events reach the loop for subscribers; registered before any
    // traffic of ours, seeded with the tree below.
    if (sequencer_ == nullptr) return;  // a standby's: no ledger
    sequencer_->AddObserver([this](const std::vector<Event>& events) {
      std::vector<Event> notable;
      for (const Event& event : events) {
        if (std::holds_alternative<event::AlertRaised>(event.body) ||
            std::holds_alternative<event::AccountFrozen>(event.body) ||
            std::holds_alternative<event::AccountUnfrozen>(event.body) ||
            std::holds_alternative<event::Expired>(event.body) ||
            std::holds_alternative<event::AccountOpened>(event.body) ||
            std::holds_alternative<event::ApiKeyIssued>(event.body) ||
            std::holds_alternative<event::ApiKeyRevoked>(event.body)) {
          notable.push_back(event);
        }
      }
      if (notable.empty()) return;
      inbox_.Post([this, notable = std::move(notable)]() {
        if (tasks_ != nullptr) notices_.Deliver(notable, *tasks_);
      });
    });
  }

  // Starts the loop thread. With `pick` it listens and hands every accepted
  // connection to the loop `pick` returns; without, it serves what it is given.
  Status Start(uint16_t* port, std::function<Loop*()> pick) {
    if (sequencer_ != nullptr) {
      Reply tree = sequencer_->Call(Request{Credentials::System(), query::AccountTree{}});
      if (!tree.ok()) return Status::Error("reading the account tree: " + tree.message);
      for (const auto& [account, parent] : std::get<AccountTreeView>(tree.body).accounts) {
        notices_.SetParent(account, parent);
      }
    }
    pick_ = std::move(pick);
    std::promise<Status> started;
    std::future<Status> result = started.get_future();
    thread_ = std::thread([this, &started, port] { Main(&started, port); });
    Status status = result.get();
    if (!status.ok() && thread_.joinable()) thread_.join();
    return status;
  }

  void StopAccepting() {
    inbox_.Post([this] { accepting_ = kj::Promise<void>(kj::READY_NOW); });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    workers_.JoinAll();  // their answers are queued for the loop before the stop
    inbox_.Post([this] {
      KJ_IF_MAYBE(fulfiller, stop_) { (*fulfiller)->fulfill(); }
    });
    thread_.join();
  }

  // Any thread: serves the connected socket `fd` (owned, counted in `open`)
  // on this loop.
  void Adopt(int fd) {
    given_.fetch_add(1, std::memory_order_relaxed);
    // Closed and uncounted if the loop stops before it runs.
    auto socket = std::make_shared<HandedSocket>(fd, open_);
    inbox_.Post([this, socket] {
      constexpr uint flags = kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                             kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                             kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK;
      Serve(lowlevel_->wrapSocketFd(socket->Take(), flags));
    });
  }

  uint64_t given() const { return given_.load(std::memory_order_relaxed); }

 private:
  // A socket on its way to another loop.
  struct HandedSocket {
    HandedSocket(int fd_in, std::atomic<size_t>* open_in) : fd(fd_in), open(open_in) {}
    ~HandedSocket() {
      if (fd < 0) return;
      ::close(fd);
      open->fetch_sub(1);
    }
    int Take() { return std::exchange(fd, -1); }
    int fd;
    std::atomic<size_t>* open;
  };

  void taskFailed(kj::Exception&& exception) override {
    // A connection's task failed (usually a peer that went away): that
    // connection is done, the server goes on.
    (void)exception;
  }

  struct Connection {
    Connection(kj::Own<kj::AsyncIoStream> stream_in, capnp::Capability::Client bootstrap,
               capnp::ReaderOptions reader_options, size_t flow_limit_words)
        : stream(kj::mv(stream_in)),
          network(*stream, capnp::rpc::twoparty::Side::SERVER, reader_options),
          rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {
      rpc.setFlowLimit(flow_limit_words);
    }
    kj::Own<kj::AsyncIoStream> stream;
    capnp::TwoPartyVatNetwork network;
    capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  };

  kj::Promise<void> AcceptLoop(kj::ConnectionReceiver& listener) {
    return listener.accept().then([this, &listener](kj::Own<kj::AsyncIoStream> stream) {
      if (open_->load() >= options_.connections_max) return AcceptLoop(listener);  // dropped
      open_->fetch_add(1);
      try {
        int one = 1;
        stream->setsockopt(IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      } catch (...) {
        // not TCP (a unix socket): nothing to tune
      }
      Loop* target = pick_();
      if (target != this) {
        KJ_IF_MAYBE(fd, stream->getFd()) {
          int copy = fcntl(*fd, F_DUPFD_CLOEXEC, 0);  // the stream closes its own
          if (copy >= 0) {
            target->Adopt(copy);
          } else {
            open_->fetch_sub(1);  // out of descriptors: refused
          }
          return AcceptLoop(listener);
        }
        // No descriptor to hand over: served here.
      }
      given_.fetch_add(1, std::memory_order_relaxed);
      Serve(kj::mv(stream));
      return AcceptLoop(listener);
    }, [this, &listener](kj::Exception&& exception) -> kj::Promise<void> {
      // Out of descriptors: refuse this connection, keep accepting (after a
      // short pause, so a flood cannot spin us).
      (void)exception;
      return shared_.timer->afterDelay(50 * kj::MILLISECONDS).then([this, &listener]() {
        return AcceptLoop(listener);
      });
    });
  }

  // Serves a connection on this loop until the peer leaves or its watchdog
  // fires (it is already counted in `open`).
  void Serve(kj::Own<kj::AsyncIoStream> stream) {
    auto state = std::make_shared<ConnectionState>();
    state->last_activity = shared_.timer->now();
    kj::Promise<kj::Own<kj::AsyncIoStream>> ready = nullptr;
    if (tls_.get() != nullptr) {
      // The handshake counts against the time allowed to authenticate.
      ready = tls_->wrapServer(kj::mv(stream));
    } else {
      ready = kj::mv(stream);
    }
    auto served = ready.then([this, state](kj::Own<kj::AsyncIoStream> secured) {
      capnp::ReaderOptions reader_options;
      reader_options.traversalLimitInWords = options_.traversal_limit_words;
      reader_options.nestingLimit = options_.nesting_limit;
      capnp::Capability::Client gate = kj::heap<GateImpl>(&shared_, &notices_, state);
      auto connection = kj::heap<Connection>(kj::mv(secured), kj::mv(gate), reader_options,
                                             options_.flow_limit_bytes / sizeof(capnp::word));
      return connection->network.onDisconnect().attach(kj::mv(connection));
    });
    // Whichever comes first, the end or the watchdog, cancels the other and
    // closes the connection.
    tasks_->add(served.exclusiveJoin(Watchdog(state))
                    .then([this]() { open_->fetch_sub(1); },
                          [this](kj::Exception&&) { open_->fetch_sub(1); }));
  }

  // Resolves when the connection should close: no session within the
  // handshake timeout, or no call for the idle timeout (while it holds no
  // subscription).
  kj::Promise<void> Watchdog(std::shared_ptr<ConnectionState> state) {
    return HandshakeWatch(state, shared_.timer->now() +
                                     options_.handshake_timeout_ms * kj::MILLISECONDS);
  }

  // Until the session is traded (noticed within a quarter second) or the
  // deadline passes.
  kj::Promise<void> HandshakeWatch(std::shared_ptr<ConnectionState> state, kj::TimePoint deadline) {
    if (state->authenticated) return IdleWatch(state);
    kj::TimePoint now = shared_.timer->now();
    if (now >= deadline) return kj::READY_NOW;  // closed: too slow to authenticate
    kj::Duration wait = std::min<kj::Duration>(deadline - now, 250 * kj::MILLISECONDS);
    return shared_.timer->afterDelay(wait).then(
        [this, state, deadline]() { return HandshakeWatch(state, deadline); });
  }

  kj::Promise<void> IdleWatch(std::shared_ptr<ConnectionState> state) {
    if (options_.idle_timeout_s <= 0) return kj::NEVER_DONE;
    kj::Duration idle = options_.idle_timeout_s * kj::SECONDS;
    kj::TimePoint deadline = state->last_activity + idle;
    kj::TimePoint now = shared_.timer->now();
    if (deadline <= now && state->subscriptions == 0) return kj::READY_NOW;
    kj::Duration wait = deadline > now ? deadline - now : idle;
    return shared_.timer->afterDelay(wait).then([this, state]() { return IdleWatch(state); });
  }

  kj::Own<kj::ConnectionReceiver> Listen(kj::AsyncIoContext& io) {
    kj::Own<kj::NetworkAddress> address;
    if (options_.address.rfind("unix:", 0) == 0) {
      std::string path = options_.address.substr(5);
      std::filesystem::remove(path);  // a stale socket of an earlier run
      address = io.provider->getNetwork().parseAddress(Text(options_.address)).wait(io.waitScope);
    } else {
      std::string host;
      uint16_t port = 0;
      KJ_REQUIRE(SplitHostPort(options_.address, &host, &port), "--rpc must be HOST:PORT or unix:PATH");
      address = io.provider->getNetwork().parseAddress(Text(host), port).wait(io.waitScope);
    }
    return address->listen();
  }

  // Every loop has its own TLS context: a connection's handshake runs on the
  // loop that serves it.
  void SetUpTls() {
    if (options_.tls_cert_file.empty()) return;
    std::string cert = ReadFile(options_.tls_cert_file);
    std::string key = ReadFile(options_.tls_key_file);
    KJ_REQUIRE(!cert.empty() && !key.empty(), "cannot read the TLS certificate or key");
    keypair_ = kj::heap<kj::TlsKeypair>(
        kj::TlsKeypair{kj::TlsPrivateKey(Text(key)), kj::TlsCertificate(Text(cert))});
    kj::TlsContext::Options tls_options;
    tls_options.defaultKeypair = *keypair_;
    tls_ = kj::heap<kj::TlsContext>(kj::mv(tls_options));
  }

  void Main(std::promise<Status>* started, uint16_t* port) {
    pthread_setname_np(pthread_self(), "purser-rpc");
    kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&]() {
      auto io = kj::setupAsyncIo();
      kj::TaskSet tasks(*this);
      tasks_ = &tasks;
      lowlevel_ = io.lowLevelProvider.get();
      KJ_DEFER(inbox_.DrainAndClose());  // last: after `inbox` below is gone
      kj::Promise<void> inbox = inbox_.Run(io.unixEventPort);
      kj::Own<kj::ConnectionReceiver> listener;
      KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
        SetUpTls();
        if (pick_) listener = Listen(io);
      })) {
        started->set_value(Status::Error(std::string("listening on ") + options_.address + ": " +
                                         exception->getDescription().cStr()));
        started = nullptr;
        tasks_ = nullptr;
        return;
      }
      shared_.timer = &io.provider->getTimer();
      if (pick_) {
        *port = static_cast<uint16_t>(listener->getPort());
        accepting_ = AcceptLoop(*listener).eagerlyEvaluate([](kj::Exception&&) {});
      }
      auto stop = kj::newPromiseAndFulfiller<void>();
      stop_ = kj::mv(stop.fulfiller);
      started->set_value(Status::Ok());
      started = nullptr;
      stop.promise.wait(io.waitScope);
      // Stopping: no new connections; answer what the sequencer finished.
      accepting_ = kj::Promise<void>(kj::READY_NOW);
      inbox = kj::Promise<void>(kj::READY_NOW);
      inbox_.DrainAndClose();
      io.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(io.waitScope);
      stop_ = nullptr;
      tasks_ = nullptr;
    });
    KJ_IF_MAYBE(exception, failure) {
      std::fprintf(stderr, "purser: rpc loop failed: %s\n", exception->getDescription().cStr());
      if (started != nullptr) {
        started->set_value(Status::Error(exception->getDescription().cStr()));
      }
    }
  }

  Ledger* sequencer_;
  const RpcServerOptions& options_;
  std::atomic<size_t>* open_;
  std::function<Loop*()> pick_;
  std::atomic<uint64_t> given_{0};
  LoopInbox inbox_;
  Workers workers_;
  Shared shared_;
  Notices notices_;
  std::thread thread_;
  // Loop thread only:
  kj::TaskSet* tasks_ = nullptr;
  kj::LowLevelAsyncIoProvider* lowlevel_ = nullptr;

  kj::Promise<void> accepting_ = nullptr;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> stop_;
  kj::Own<kj::TlsKeypair> keypair_;
  kj::Own<kj::TlsContext> tls_;
};

RpcServer::RpcServer(Ledger* sequencer, RpcServerOptions options)
    : sequencer_(sequencer), options_(std::move(options)) {}

RpcServer::~RpcServer() { Stop(); }

Status RpcServer::Start() {
  if (!options_.insecure && options_.tls_cert_file.empty() && !IsLoopbackAddress(options_.address)) {
    return Status::InvalidArgument("refusing to serve RPC on " + options_.address +
                                   " without TLS: give --tls-cert and --tls-key, or --insecure");
  }
  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key go together");
  }
  if (sequencer_ == nullptr && !options_.leader) {
    return Status::InvalidArgument("a server without a ledger needs a leader lookup");
  }
  if (options_.loops < 1 || options_.loops > kRpcLoopsMax) {
    return Status::InvalidArgument("--rpc-loops must be 1.." + std::to_string(kRpcLoopsMax));
  }
  for (int i = 0; i < options_.loops; ++i) {
    loops_.push_back(std::make_unique<Loop>(sequencer_, options_, &connections_));
  }
  // The serving loops first, then the one that listens and hands out.
  for (size_t i = 1; i < loops_.size(); ++i) {
    if (Status status = loops_[i]->Start(nullptr, nullptr); !status.ok()) return status;
  }
  auto next = std::make_shared<size_t>(0);
  return loops_[0]->Start(&port_, [this, next]() { return loops_[(*next)++ % loops_.size()].get(); });
}

void RpcServer::StopAccepting() {
  if (!loops_.empty()) loops_[0]->StopAccepting();
}

void RpcServer::Stop() {
  StopAccepting();
  for (auto& loop : loops_) loop->Stop();
}

std::vector<uint64_t> RpcServer::connections_by_loop() const {
  std::vector<uint64_t> given;
  for (const auto& loop : loops_) given.push_back(loop->given());
  return given;
}

}  // namespace purser
