// <utility> first: Boost 1.74's Asio under g++ 12 in C++20 needs std::exchange
// declared before its awaitable header (../shared/PLATFORM.md).
#include <utility>

#include "notify/notifier.h"

#include <openssl/hmac.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "ledger/base/binary.h"
#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/limits.h"
#include "notify/address.h"

namespace purser {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// ---- storage (the `notify` column family) ---------------------------------------
//   "c"                          the cursor: the last event read (8 bytes BE)
//   "h"                          the webhooks as of the cursor (written with it
//                                when they change, so a restart matches the
//                                events after the cursor against them)
//   "s" + webhook id             the webhook's signing secret
//   "d" + webhook id + 0 + seq(8 BE) + n   a delivery record

constexpr char kCursorKey[] = "c";

// 8 bytes, big-endian: keys of records sort in log order.
std::string SequenceKey(uint64_t sequence) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[static_cast<size_t>(i)] = static_cast<char>(sequence & 0xff);
    sequence >>= 8;
  }
  return key;
}
uint64_t SequenceFromKey(std::string_view key) {
  uint64_t sequence = 0;
  for (size_t i = 0; i < 8 && i < key.size(); ++i) sequence = (sequence << 8) | static_cast<uint8_t>(key[i]);
  return sequence;
}
constexpr char kHooksKey[] = "h";

std::string SecretKey(const std::string& webhook_id) { return "s" + webhook_id; }
std::string RecordPrefix(const std::string& webhook_id) {
  std::string prefix = "d" + webhook_id;
  prefix.push_back('\0');
  return prefix;
}
std::string RecordKey(const std::string& webhook_id, uint64_t sequence, uint8_t n) {
  std::string key = RecordPrefix(webhook_id) + SequenceKey(sequence);
  key.push_back(static_cast<char>(n));
  return key;
}
std::string WebhookOfKey(std::string_view key) {
  size_t zero = key.find('\0');
  return std::string(key.substr(1, zero == std::string_view::npos ? 0 : zero - 1));
}

enum class DeliveryState : uint8_t { kPending = 0, kDelivered = 1, kRetrying = 2, kDead = 3 };

const char* StateName(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending: return "pending";
    case DeliveryState::kDelivered: return "delivered";
    case DeliveryState::kRetrying: return "retrying";
    case DeliveryState::kDead: return "dead";
  }
  return "pending";
}

bool Finished(DeliveryState state) { return state == DeliveryState::kDelivered || state == DeliveryState::kDead; }

// One attempt of a delivery, as the record lists it.
struct AttemptLog {
  int64_t at_us = 0;
  uint32_t status = 0;  // 0: no HTTP answer
  std::string error;
};
constexpr size_t kAttemptsListed = 32;  // the newest attempts of a record

// A delivery: the event's payload (built once, so every retry sends the
// same bytes) and what its attempts gave.
struct Record {
  uint64_t sequence = 0;
  std::string event_id;
  std::string type;
  std::string payload;
  DeliveryState state = DeliveryState::kPending;
  uint32_t attempts = 0;
  uint32_t last_status = 0;
  std::string last_error;
  int64_t last_attempt_us = 0;
  int64_t next_attempt_us = 0;
  std::vector<AttemptLog> log;  // the newest kAttemptsListed attempts, oldest first

  std::string Encode() const {
    std::string out;
    BinaryWriter w(&out, false);
    w.U8(2);  // record version
    w.Var(sequence);
    w.VarStr(event_id);
    w.VarStr(type);
    w.VarStr(payload);
    w.U8(static_cast<uint8_t>(state));
    w.Var(attempts);
    w.Var(last_status);
    w.VarStr(last_error);
    w.ZigZag(last_attempt_us);
    w.ZigZag(next_attempt_us);
    w.Var(log.size());
    for (const AttemptLog& a : log) {
      w.ZigZag(a.at_us);
      w.Var(a.status);
      w.VarStr(a.error);
    }
    return out;
  }
  bool Decode(std::string_view bytes) {
    BinaryReader r(bytes);
    uint8_t version = r.U8();
    if (version != 1 && version != 2) return false;
    sequence = r.Var();
    event_id = r.VarStr();
    type = r.VarStr();
    payload = r.VarStr();
    uint8_t raw_state = r.U8();
    if (raw_state > 3) return false;
    state = static_cast<DeliveryState>(raw_state);
    attempts = static_cast<uint32_t>(r.Var());
    last_status = static_cast<uint32_t>(r.Var());
    last_error = r.VarStr();
    last_attempt_us = r.ZigZag();
    next_attempt_us = r.ZigZag();
    log.clear();
    if (version == 2) {
      uint64_t n = r.VarCount();
      for (uint64_t i = 0; i < n && n <= kAttemptsListed; ++i) {
        AttemptLog a;
        a.at_us = r.ZigZag();
        a.status = static_cast<uint32_t>(r.Var());
        a.error = r.VarStr();
        log.push_back(std::move(a));
      }
      if (n > kAttemptsListed) return false;
    }
    return r.done();
  }
  void Attempted(int64_t at_us, uint32_t status, const std::string& error) {
    ++attempts;
    last_status = status;
    last_error = error;
    last_attempt_us = at_us;
    if (log.size() == kAttemptsListed) log.erase(log.begin());
    log.push_back(AttemptLog{at_us, status, error});
  }
  DeliveryView View() const {
    DeliveryView view{event_id,        type,           StateName(state),
                      attempts,        last_status,    last_error,
                      last_attempt_us, Finished(state) ? 0 : next_attempt_us, sequence, {}};
    for (const AttemptLog& a : log) view.attempt_log.push_back(DeliveryAttempt{a.at_us, a.status, a.error});
    return view;
  }
};

struct WebhookDef {
  std::string url;
  std::vector<std::string> events;
  std::string account;  // empty: every account
  bool enabled = true;
  bool removed = false;
  uint64_t created_seq = 0;
  Sha256Digest secret_sha256{};
};

std::string EncodeHooks(const std::map<std::string, WebhookDef>& hooks) {
  std::string out;
  BinaryWriter w(&out, false);
  w.U8(1);
  w.Var(hooks.size());
  for (const auto& [id, hook] : hooks) {
    w.VarStr(id);
    w.VarStr(hook.url);
    w.Var(hook.events.size());
    for (const std::string& kind : hook.events) w.VarStr(kind);
    w.VarStr(hook.account);
    w.Bool(hook.enabled);
    w.Bool(hook.removed);
    w.Var(hook.created_seq);
    w.Digest(hook.secret_sha256);
  }
  return out;
}

bool DecodeHooks(std::string_view bytes, std::map<std::string, WebhookDef>* hooks) {
  BinaryReader r(bytes);
  if (r.U8() != 1) return false;
  uint64_t n = r.VarCount();
  for (uint64_t i = 0; i < n; ++i) {
    std::string id = r.VarStr();
    WebhookDef hook;
    hook.url = r.VarStr();
    uint64_t kinds = r.VarCount();
    for (uint64_t k = 0; k < kinds; ++k) hook.events.push_back(r.VarStr());
    hook.account = r.VarStr();
    hook.enabled = r.U8() != 0;
    hook.removed = r.U8() != 0;
    hook.created_seq = r.Var();
    hook.secret_sha256 = r.Digest();
    (*hooks)[id] = std::move(hook);
  }
  return r.done();
}

// What a deliverable event says: its kind, account and data object.
struct Notable {
  std::string kind;
  std::string account;
  std::string data;  // a JSON object
};

bool Describe(const Event& event, Notable* out) {
  JsonWriter w;
  w.BeginObject();
  if (const auto* alert = std::get_if<event::AlertRaised>(&event.body)) {
    out->kind = std::string(AlertTypeName(alert->type));
    out->account = alert->account;
    w.Field("alert_id", std::to_string(alert->alert_id)).Field("account", alert->account);
    w.Field("type", AlertTypeName(alert->type)).Field("severity", alert->severity);
    if (alert->type == AlertType::kBudgetThreshold) {
      w.Field("threshold_pct", int64_t{alert->threshold_pct});
      w.Field("window", CapWindowName(alert->window));
    }
    w.Field("limit_micros", alert->limit_micros).Field("value_micros", alert->value_micros);
    w.Field("message", alert->message);
  } else if (const auto* frozen = std::get_if<event::AccountFrozen>(&event.body)) {
    out->kind = "account_frozen";
    out->account = frozen->account;
    w.Field("account", frozen->account).Field("reason", frozen->reason);
  } else if (const auto* unfrozen = std::get_if<event::AccountUnfrozen>(&event.body)) {
    out->kind = "account_unfrozen";
    out->account = unfrozen->account;
    w.Field("account", unfrozen->account);
  } else if (const auto* expired = std::get_if<event::Expired>(&event.body)) {
    out->kind = "reservation_expired";
    out->account = expired->account;
    w.Field("reservation_id", expired->reservation_id).Field("account", expired->account);
    w.Field("released_micros", expired->released_micros);
    w.Field("charged_micros", expired->charged_micros);
  } else {
    return false;
  }
  w.Field("seq", event.sequence).EndObject();
  out->data = w.Take();
  return true;
}

// The events the notifier acts on: deliverable ones and the definitions
// (webhooks, the account tree).
bool Relevant(const Event& event) {
  return std::holds_alternative<event::AlertRaised>(event.body) ||
         std::holds_alternative<event::AccountFrozen>(event.body) ||
         std::holds_alternative<event::AccountUnfrozen>(event.body) ||
         std::holds_alternative<event::Expired>(event.body) ||
         std::holds_alternative<event::AccountOpened>(event.body) ||
         std::holds_alternative<event::WebhookRegistered>(event.body) ||
         std::holds_alternative<event::WebhookUpdated>(event.body) ||
         std::holds_alternative<event::WebhookRemoved>(event.body);
}

std::string Payload(const std::string& event_id, const Event& event, const Notable& notable) {
  JsonWriter w;
  w.BeginObject().Field("id", event_id).Field("type", notable.kind);
  w.Field("created_at", FormatTimestamp(event.timestamp_us)).Field("account", notable.account);
  w.Key("data").Raw(notable.data).EndObject();
  return w.Take();
}

struct AttemptResult {
  bool delivered = false;
  bool answered = false;       // an HTTP answer's header arrived
  bool answer_unread = false;  // the connection cannot carry another request
  uint32_t status = 0;
  std::string error;
};

}  // namespace

std::string SignWebhookPayload(const std::string& secret, int64_t unix_seconds,
                               const std::string& body) {
  std::string signed_text = std::to_string(unix_seconds) + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac, &length);
  return "t=" + std::to_string(unix_seconds) + ",v1=" + HexEncode(mac, length);
}

// ---------------------------------------------------------------------------

class Notifier::Impl {
 public:
  Impl(Ledger* sequencer, NotifierOptions options)
      : sequencer_(sequencer),
        store_(&sequencer->side_store()),
        options_(std::move(options)),
        ssl_(net::ssl::context::tls_client),
        read_retry_(io_),
        random_(std::random_device{}()) {}

  Status Init();
  void Run() {
    pthread_setname_np(pthread_self(), "purser-notify");
    io_.run();
  }

  // Stops the feed, then every channel: their sockets are closed (the
  // stream objects stay until the loops are gone), the loops see
  // `stopping_` and end; the event loop stops when none is left, or after
  // a grace period (a lookup cannot be interrupted).
  void Stop() {
    if (!thread_.joinable()) return;
    if (observer_ != 0) sequencer_->RemoveObserver(observer_);
    observer_ = 0;
    stopped_ = true;
    net::post(io_, [this] {
      stopping_ = true;
      read_retry_.cancel();
      for (auto& [id, channel] : channels_) channel->Abort();
      for (SlotWaiter* waiter : slot_waiters_) waiter->timer.cancel();
      slot_waiters_.clear();
      MaybeFinish();
    });
    {
      std::unique_lock lock(finish_mutex_);
      finish_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return finished_; });
    }
    io_.stop();
    thread_.join();
  }

  Status StoreSecret(const std::string& webhook_id, const std::string& secret) {
    Status status = store_->Put(SecretKey(webhook_id), secret, /*sync=*/true);
    if (!status.ok()) return Status::Error("storing a webhook secret: " + status.message());
    return Status::Ok();
  }

  std::vector<DeliveryView> Deliveries(const std::string& webhook_id, size_t limit,
                                       const std::string& state) {
    std::vector<DeliveryView> out;
    store_->ScanBackward(RecordPrefix(webhook_id), [&](std::string_view, std::string_view value) {
      Record record;
      if (record.Decode(value) && (state.empty() || state == StateName(record.state))) {
        out.push_back(record.View());
      }
      return out.size() < limit;
    });
    return out;
  }

  Status Redeliver(const std::string& webhook_id, const std::string& event_id) {
    if (stopped_) return Status::Error("unavailable: the notifier is stopped");
    // evt_<seq>_<n>
    unsigned long long sequence = 0;
    unsigned n = 0;
    if (std::sscanf(event_id.c_str(), "evt_%llu_%u", &sequence, &n) != 2 || n > 255) {
      return Status::NotFound("no delivery of " + event_id);
    }
    std::string key = RecordKey(webhook_id, sequence, static_cast<uint8_t>(n));
    std::string value;
    if (!store_->Get(key, &value)) return Status::NotFound("no delivery of " + event_id);
    net::post(io_, [this, webhook_id, key] {
      Record record;
      if (stopping_ || !Load(key, &record)) return;
      auto hook = hooks_.find(webhook_id);
      if (hook == hooks_.end() || hook->second.removed) return;
      Channel& channel = ChannelOf(webhook_id);
      if (Finished(record.state)) {
        backlog_.fetch_add(1);
        if (channel.finished > 0) --channel.finished;
      }
      record.state = DeliveryState::kPending;
      record.attempts = 0;
      record.next_attempt_us = 0;
      Persist(key, record);
      if (std::find(channel.pending.begin(), channel.pending.end(), key) == channel.pending.end()) {
        channel.pending.push_back(key);
      }
      channel.Wake();
    });
    return Status::Ok();
  }

  NotifierStats stats() const {
    return NotifierStats{delivered_.load(), retried_.load(), dead_.load(), backlog_.load(),
                         cursor_seen_.load()};
  }
  const Histogram& attempt_latency() const { return attempt_us_; }

  std::thread thread_;

 private:
  // One webhook's queue, timer and kept-alive connection (loop thread only).
  struct Channel {
    explicit Channel(net::io_context& io) : timer(io) {}
    std::deque<std::string> pending;  // record keys, in log order
    net::steady_timer timer;          // waits for work or a retry time; cancelled to wake
    size_t finished = 0;              // delivered or dead records kept
    std::string trim_from;            // every finished record before this key is gone
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    std::shared_ptr<tcp::resolver> resolver;  // of the lookup in progress
    std::string connected_to;  // the URL the open connection is for
    beast::flat_buffer buffer;
    bool loop_running = false;
    void Wake() { timer.cancel(); }
    // Between attempts, from the channel's own loop: drops the connection.
    void Close() {
      beast::error_code ignored;
      if (plain) plain->socket().close(ignored);
      if (tls) beast::get_lowest_layer(*tls).socket().close(ignored);
      plain.reset();
      tls.reset();
      connected_to.clear();
      buffer.clear();
    }
    // From outside the loop (stopping): cancels what is in progress; the
    // stream objects stay until the loop is gone.
    void Abort() {
      beast::error_code ignored;
      if (plain) plain->socket().close(ignored);
      if (tls) beast::get_lowest_layer(*tls).socket().close(ignored);
      if (resolver) resolver->cancel();
      timer.cancel();
    }
  };
  struct SlotWaiter {
    explicit SlotWaiter(net::io_context& io) : timer(io) {}
    net::steady_timer timer;
    bool granted = false;
  };

  Channel& ChannelOf(const std::string& webhook_id) {
    auto& slot = channels_[webhook_id];
    if (!slot) {
      slot = std::make_unique<Channel>(io_);
      slot->loop_running = true;
      ++loops_;
      net::co_spawn(io_, ChannelLoop(webhook_id, slot.get()), [this, channel = slot.get()](std::exception_ptr) {
        channel->loop_running = false;
        --loops_;
        MaybeFinish();
      });
    }
    return *slot;
  }

  void MaybeFinish() {
    if (!stopping_ || loops_ > 0) return;
    std::lock_guard lock(finish_mutex_);
    finished_ = true;
    finish_cv_.notify_all();
  }

  bool Load(const std::string& key, Record* record) {
    std::string value;
    return store_->Get(key, &value) && record->Decode(value);
  }

  void Persist(const std::string& key, const Record& record) {
    // Not synced: the log's next group commit syncs it.
    store_->Put(key, record.Encode()).PermitUnchecked();
  }

  void ReadLog();
  void RetryReadLater();
  bool CatchUp(uint64_t until);
  void Consider(const Event& event, SideStore::Batch* batch,
                std::vector<std::pair<std::string, std::string>>* queued);
  bool Commit(SideStore::Batch* batch, uint64_t cursor,
              std::vector<std::pair<std::string, std::string>>* queued);
  bool ApplyDefinition(const Event& event);
  bool Matches(const WebhookDef& hook, const Notable& notable, uint64_t sequence) const;
  void TrimHistory(const std::string& webhook_id, Channel* channel);
  void Retire(const std::string& webhook_id, Channel* channel);
  int64_t RetryDelayMs(uint32_t attempts);

  net::awaitable<void> ChannelLoop(std::string webhook_id, Channel* channel);
  net::awaitable<void> AcquireSlot();
  void ReleaseSlot();
  net::awaitable<AttemptResult> Attempt(Channel* channel, const WebhookDef& hook,
                                        const std::string& secret, const Record& record);
  net::awaitable<std::string> Connect(Channel* channel, const WebhookUrl& url, const std::string& key,
                                      std::chrono::steady_clock::time_point deadline);
  template <typename Stream>
  net::awaitable<AttemptResult> Exchange(Stream& stream, Channel* channel,
                                         http::request<http::string_body>& request,
                                         std::chrono::steady_clock::time_point deadline);

  Ledger* sequencer_;
  SideStore* store_;
  NotifierOptions options_;
  net::io_context io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{
      net::make_work_guard(io_)};
  net::ssl::context ssl_;
  net::steady_timer read_retry_;  // after a failed read of the log
  std::mt19937_64 random_;
  std::atomic<bool> wake_posted_{false};
  std::atomic<bool> stopped_{false};
  uint64_t observer_ = 0;

  // The feed from the log thread: per written group, its range and the
  // events that matter here. Bounded: past the bound it is dropped and the
  // loop reads the log instead.
  struct LiveBatch {
    uint64_t first = 0;
    uint64_t last = 0;
    std::vector<Event> events;
  };
  static constexpr size_t kLiveEventsMax = 100'000;
  static constexpr size_t kLiveBatchesMax = 100'000;
  std::mutex live_mutex_;
  std::deque<LiveBatch> live_;
  size_t live_events_ = 0;
  bool live_overflowed_ = false;

  // Loop thread only.
  bool stopping_ = false;
  bool caught_up_ = false;   // read the log up to where the feed starts
  bool log_broken_ = false;  // an event did not decode: reading stopped there
  uint64_t cursor_ = 0;
  std::map<std::string, WebhookDef> hooks_;
  std::unordered_map<std::string, std::string> parents_;
  std::map<std::string, std::unique_ptr<Channel>> channels_;
  int loops_ = 0;
  int in_flight_ = 0;
  std::deque<SlotWaiter*> slot_waiters_;

  std::mutex finish_mutex_;
  std::condition_variable finish_cv_;
  bool finished_ = false;

  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> retried_{0};
  std::atomic<uint64_t> dead_{0};
  std::atomic<uint64_t> backlog_{0};
  std::atomic<uint64_t> cursor_seen_{0};
  Histogram attempt_us_;

  friend class Notifier;
};

// Long: the start in its order (options, CAs, webhook table, cursor and
// definitions, pending deliveries, threads); each step needs the one before.
Status Notifier::Impl::Init() {
  ssl_.set_default_verify_paths();
  if (!options_.ca_file.empty()) {
    beast::error_code error;
    ssl_.load_verify_file(options_.ca_file, error);
    if (error) return Status::Error("--webhook-ca " + options_.ca_file + ": " + error.message());
  }
  ssl_.set_verify_mode(net::ssl::verify_peer);
  // The account tree as of now (accounts are only ever added).
  Reply table = sequencer_->Call(Request{Credentials::System(), query::WebhookTable{}});
  if (!table.ok()) return Status::Error("reading the webhooks: " + table.message);
  const auto& view = std::get<WebhookTableView>(table.body);
  for (const auto& [account, parent] : view.accounts) parents_[account] = parent;
  std::string cursor;
  std::string hooks;
  const bool has_cursor =
      store_->Get(kCursorKey, &cursor) && cursor.size() == 8;
  const bool has_hooks = store_->Get(kHooksKey, &hooks);
  if (has_cursor && has_hooks) {
    // The webhooks as they were at the cursor: the events after it are
    // matched against what was defined when they happened.
    cursor_ = SequenceFromKey(cursor);
    if (!DecodeHooks(hooks, &hooks_)) {
      return Status::Error("the notifier's webhook definitions do not decode");
    }
  } else {
    // First start with webhooks: deliver from now on, not the log's history.
    if (has_cursor) {
      std::fprintf(stderr, "purserd: notifier: no stored webhook definitions; delivering from "
                           "the current event on\n");
    }
    cursor_ = view.sequence;
    for (const WebhookDefinition& definition : view.webhooks) {
      WebhookDef& hook = hooks_[definition.view.webhook_id];
      hook.url = definition.view.url;
      hook.events = definition.view.events;
      hook.account = definition.view.account;
      hook.enabled = definition.view.enabled;
      hook.removed = definition.removed;
      hook.created_seq = definition.created_seq;
      hook.secret_sha256 = definition.secret_sha256;
    }
    SideStore::Batch batch;
    batch.Put(kCursorKey, SequenceKey(cursor_));
    batch.Put(kHooksKey, EncodeHooks(hooks_));
    if (Status status = store_->Write(batch); !status.ok()) return status;
  }
  cursor_seen_ = cursor_;
  // The deliveries still to make, in log order per webhook.
  store_->Scan("d", "d", [&](std::string_view key, std::string_view value) {
    Record record;
    if (!record.Decode(value)) return true;
    Channel& channel = ChannelOf(WebhookOfKey(key));
    if (Finished(record.state)) {
      ++channel.finished;
    } else {
      channel.pending.emplace_back(key);
      backlog_.fetch_add(1);
    }
    return true;
  });
  // The log thread hands over, per written group, its range and the few
  // events that matter here (a type check each), so the notifier need not
  // read and decode the whole log back; it reads RocksDB only to catch up
  // (after a start, or when it fell too far behind and dropped the feed).
  observer_ = sequencer_->AddObserver([this](const std::vector<Event>& events) {
    if (events.empty()) return;
    LiveBatch batch{events.front().sequence, events.back().sequence, {}};
    for (const Event& event : events) {
      if (Relevant(event)) batch.events.push_back(event);
    }
    {
      std::lock_guard lock(live_mutex_);
      if (live_overflowed_ || live_events_ + batch.events.size() > kLiveEventsMax ||
          live_.size() >= kLiveBatchesMax) {
        live_overflowed_ = true;  // the cursor and the log have it all
        live_.clear();
        live_events_ = 0;
      } else {
        live_events_ += batch.events.size();
        live_.push_back(std::move(batch));
      }
    }
    if (!wake_posted_.exchange(true)) {
      net::post(io_, [this] {
        wake_posted_ = false;
        ReadLog();
      });
    }
  });
  net::post(io_, [this] { ReadLog(); });
  return Status::Ok();
}

// True when the event changed a webhook (then the definitions are stored
// with the cursor).
bool Notifier::Impl::ApplyDefinition(const Event& event) {
  if (const auto* opened = std::get_if<event::AccountOpened>(&event.body)) {
    parents_[opened->account] = opened->parent;
    return false;
  }
  if (const auto* registered = std::get_if<event::WebhookRegistered>(&event.body)) {
    WebhookDef& hook = hooks_[registered->webhook_id];
    hook.url = registered->url;
    hook.events = registered->events;
    hook.account = registered->account;
    hook.created_seq = event.sequence;
    hook.secret_sha256 = registered->secret_sha256;
    hook.enabled = true;
    hook.removed = false;
    return true;
  }
  if (const auto* updated = std::get_if<event::WebhookUpdated>(&event.body)) {
    WebhookDef& hook = hooks_[updated->webhook_id];
    hook.url = updated->url;
    hook.events = updated->events;
    hook.enabled = updated->enabled;
    if (auto it = channels_.find(updated->webhook_id); it != channels_.end()) {
      it->second->Close();  // the next attempt connects to what the URL is now
      it->second->Wake();
    }
    return true;
  }
  if (const auto* removed = std::get_if<event::WebhookRemoved>(&event.body)) {
    hooks_[removed->webhook_id].removed = true;
    if (auto it = channels_.find(removed->webhook_id); it != channels_.end()) it->second->Wake();
    return true;
  }
  return false;
}

bool Notifier::Impl::Matches(const WebhookDef& hook, const Notable& notable,
                             uint64_t sequence) const {
  if (hook.removed || !hook.enabled || sequence <= hook.created_seq) return false;
  if (std::find(hook.events.begin(), hook.events.end(), notable.kind) == hook.events.end()) {
    return false;
  }
  if (hook.account.empty()) return true;
  std::string account = notable.account;
  for (int depth = 0; !account.empty() && depth <= kAccountDepthMax + 1; ++depth) {
    if (account == hook.account) return true;
    auto it = parents_.find(account);
    if (it == parents_.end()) return false;
    account = it->second;
  }
  return false;
}

// Turns one event into delivery records (into `batch`, keys into `queued`)
// and keeps the webhooks and the account tree current.
void Notifier::Impl::Consider(const Event& event, SideStore::Batch* batch,
                              std::vector<std::pair<std::string, std::string>>* queued) {
  if (ApplyDefinition(event)) batch->Put(kHooksKey, EncodeHooks(hooks_));
  Notable notable;
  if (!Describe(event, &notable)) return;
  std::string event_id = "evt_" + std::to_string(event.sequence) + "_0";
  std::string payload = Payload(event_id, event, notable);
  for (const auto& [webhook_id, hook] : hooks_) {
    if (!Matches(hook, notable, event.sequence)) continue;
    Record record;
    record.sequence = event.sequence;
    record.event_id = event_id;
    record.type = notable.kind;
    record.payload = payload;
    std::string key = RecordKey(webhook_id, event.sequence, 0);
    batch->Put(key, record.Encode());
    queued->emplace_back(webhook_id, std::move(key));
  }
}

// Stores the records, the definitions and the new cursor in one write (a
// restart re-reads from the cursor, so an event is queued at least once),
// then queues the records.
bool Notifier::Impl::Commit(SideStore::Batch* batch, uint64_t cursor,
                            std::vector<std::pair<std::string, std::string>>* queued) {
  if (cursor == cursor_) return true;
  batch->Put(kCursorKey, SequenceKey(cursor));
  if (Status status = store_->Write(*batch); !status.ok()) {
    std::fprintf(stderr, "purserd: notifier: storing deliveries failed: %s\n",
                 status.message().c_str());
    return false;  // the cursor did not move: read again later
  }
  cursor_ = cursor;
  cursor_seen_ = cursor;
  for (auto& [webhook_id, key] : *queued) {
    Channel& channel = ChannelOf(webhook_id);
    channel.pending.push_back(std::move(key));
    backlog_.fetch_add(1);
    channel.Wake();
  }
  return true;
}

// Reads the log from RocksDB after the cursor up to `until`, at most a
// round of events. True when it got there.
bool Notifier::Impl::CatchUp(uint64_t until) {
  constexpr size_t kEventsPerRound = 4096;  // then yield to the deliveries
  std::unique_ptr<EventReader> reader = sequencer_->ReadEvents(cursor_ + 1);
  SideStore::Batch batch;
  std::vector<std::pair<std::string, std::string>> queued;
  uint64_t cursor = cursor_;
  for (size_t read = 0; read < kEventsPerRound; ++read) {
    Event event;
    Result<bool> next = reader->Next(&event);
    if (!next.ok()) {
      std::fprintf(stderr,
                   "purserd: notifier: the event after %llu does not verify (%s); webhook "
                   "delivery stops there (purser-replay verify names the damage)\n",
                   static_cast<unsigned long long>(cursor), next.status().message().c_str());
      log_broken_ = true;
      Commit(&batch, cursor, &queued);
      return false;
    }
    if (!*next || event.sequence > until) return Commit(&batch, cursor, &queued);
    Consider(event, &batch, &queued);
    cursor = event.sequence;
  }
  Commit(&batch, cursor, &queued);
  return false;  // a round's worth: the rest next time
}

void Notifier::Impl::RetryReadLater() {
  read_retry_.expires_after(std::chrono::seconds(1));
  read_retry_.async_wait([this](beast::error_code error) {
    if (!error) ReadLog();
  });
}

void Notifier::Impl::ReadLog() {
  if (stopping_ || log_broken_) return;
  std::deque<LiveBatch> batches;
  bool overflowed = false;
  {
    std::lock_guard lock(live_mutex_);
    batches.swap(live_);
    live_events_ = 0;
    overflowed = live_overflowed_;
    live_overflowed_ = false;
  }
  // Not there yet: what is left waits in front of newer batches; a round
  // cut short reads on at once, a failure after a pause.
  auto again = [&](bool failed) {
    std::lock_guard lock(live_mutex_);
    for (auto it = batches.rbegin(); it != batches.rend(); ++it) {
      live_events_ += it->events.size();
      live_.push_front(std::move(*it));
    }
    live_overflowed_ = live_overflowed_ || overflowed;
    if (log_broken_) return;
    if (failed) {
      RetryReadLater();
    } else {
      net::post(io_, [this] { ReadLog(); });
    }
  };
  if (overflowed || !caught_up_) {
    // What was dropped, or what came before the feed, is in the log.
    uint64_t before = cursor_;
    if (!CatchUp(UINT64_MAX)) return again(cursor_ == before);
    overflowed = false;
    caught_up_ = true;
  }
  while (!batches.empty()) {
    LiveBatch& batch = batches.front();
    if (batch.last <= cursor_) {
      batches.pop_front();
      continue;
    }
    if (batch.first > cursor_ + 1) {
      uint64_t before = cursor_;
      if (!CatchUp(batch.first - 1)) return again(cursor_ == before);
    }
    SideStore::Batch write;
    std::vector<std::pair<std::string, std::string>> queued;
    for (const Event& event : batch.events) {
      if (event.sequence > cursor_) Consider(event, &write, &queued);
    }
    if (!Commit(&write, batch.last, &queued)) {
      // The definitions may have moved on in memory: re-read from the
      // cursor (which did not move) instead of from this batch.
      caught_up_ = false;
      std::map<std::string, WebhookDef> stored;
      std::string hooks;
      if (store_->Get(kHooksKey, &hooks) &&
          DecodeHooks(hooks, &stored)) {
        hooks_ = std::move(stored);
      }
      return again(true);
    }
    batches.pop_front();
  }
}

int64_t Notifier::Impl::RetryDelayMs(uint32_t attempts) {
  int64_t delay = options_.retry_base_ms;
  for (uint32_t i = 1; i < attempts && delay < options_.retry_max_ms; ++i) delay *= 2;
  delay = std::min(delay, options_.retry_max_ms);
  // ±20% jitter, so that receivers that failed together do not retry together.
  std::uniform_int_distribution<int64_t> jitter(delay * 8 / 10, delay * 12 / 10);
  return std::max<int64_t>(1, jitter(random_));
}

// A slot freed while others wait goes to the first of them directly, so a
// newcomer cannot overtake a waiter.
net::awaitable<void> Notifier::Impl::AcquireSlot() {
  if (in_flight_ < options_.concurrency && slot_waiters_.empty()) {
    ++in_flight_;
    co_return;
  }
  SlotWaiter waiter(io_);
  waiter.timer.expires_at(net::steady_timer::time_point::max());
  slot_waiters_.push_back(&waiter);
  beast::error_code ignored;
  co_await waiter.timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
  if (!waiter.granted) {
    // Stopping: the waiter was dropped from the queue; take a slot anyway
    // (the caller releases it).
    ++in_flight_;
  }
}

void Notifier::Impl::ReleaseSlot() {
  if (!slot_waiters_.empty()) {
    SlotWaiter* next = slot_waiters_.front();
    slot_waiters_.pop_front();
    next->granted = true;  // in_flight_ passes to it unchanged
    next->timer.cancel();
    return;
  }
  --in_flight_;
}

void Notifier::Impl::TrimHistory(const std::string& webhook_id, Channel* channel) {
  // The oldest finished records go first, a tenth of the bound at a time;
  // pending ones stay (they are the backlog). Finished records mostly come
  // in log order, so the scan starts where the last one stopped instead of
  // passing over the deleted keys again.
  size_t bound = options_.history_per_webhook;
  if (channel->finished <= bound + std::max<size_t>(10, bound / 10)) return;
  SideStore::Batch batch;
  std::string last;
  store_->Scan(RecordPrefix(webhook_id), channel->trim_from, [&](std::string_view key, std::string_view value) {
    Record record;
    if (record.Decode(value) && Finished(record.state)) {
      batch.Delete(std::string(key));
      --channel->finished;
      last = key;
    }
    return channel->finished > bound;
  });
  if (!last.empty()) channel->trim_from = last;
  store_->Write(batch).PermitUnchecked();
}

// A removed webhook gets nothing more: what it still had queued ends dead,
// with the reason, and stays listed.
void Notifier::Impl::Retire(const std::string& webhook_id, Channel* channel) {
  for (const std::string& key : channel->pending) {
    Record record;
    if (Load(key, &record) && !Finished(record.state)) {
      record.state = DeliveryState::kDead;
      record.last_error = "the webhook was removed";
      Persist(key, record);
      ++channel->finished;
    }
    if (backlog_.load() > 0) backlog_.fetch_sub(1);
  }
  channel->pending.clear();
  channel->Close();
  TrimHistory(webhook_id, channel);
}

net::awaitable<void> Notifier::Impl::ChannelLoop(std::string webhook_id, Channel* channel) {
  beast::error_code ignored;
  while (!stopping_) {
    auto hook_it = hooks_.find(webhook_id);
    const bool removed = hook_it != hooks_.end() && hook_it->second.removed;
    if (removed && !channel->pending.empty()) Retire(webhook_id, channel);
    if (channel->pending.empty() || hook_it == hooks_.end() || removed || !hook_it->second.enabled) {
      channel->timer.expires_at(net::steady_timer::time_point::max());
      co_await channel->timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
      continue;
    }
    const std::string key = channel->pending.front();
    Record record;
    if (!Load(key, &record) || Finished(record.state)) {
      channel->pending.pop_front();
      if (backlog_.load() > 0) backlog_.fetch_sub(1);
      continue;
    }
    const int64_t now_us = WallClockMicros();
    if (record.next_attempt_us > now_us) {
      channel->timer.expires_after(std::chrono::microseconds(record.next_attempt_us - now_us));
      co_await channel->timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
      continue;
    }
    std::string secret;
    store_->Get(SecretKey(webhook_id), &secret);
    co_await AcquireSlot();
    if (stopping_) {
      ReleaseSlot();
      co_return;
    }
    const WebhookDef hook = hooks_.at(webhook_id);  // a copy: the map may change meanwhile
    auto start = std::chrono::steady_clock::now();
    AttemptResult result;
    if (secret.empty() || (hook.secret_sha256 != Sha256Digest{} && Sha256(secret) != hook.secret_sha256)) {
      result.error = "the webhook's signing secret is missing";
    } else {
      result = co_await Attempt(channel, hook, secret, record);
    }
    attempt_us_.Record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                 std::chrono::steady_clock::now() - start)
                                                 .count()));
    ReleaseSlot();
    if (stopping_) co_return;
    // The record may have been redelivered meanwhile: start from what is stored.
    Record current;
    if (Load(key, &current)) record = current;
    record.Attempted(WallClockMicros(), result.status, result.delivered ? "" : result.error);
    if (result.delivered) {
      record.state = DeliveryState::kDelivered;
      delivered_.fetch_add(1);
    } else if (static_cast<int>(record.attempts) >= options_.max_attempts) {
      record.state = DeliveryState::kDead;
      dead_.fetch_add(1);
    } else {
      record.state = DeliveryState::kRetrying;
      record.next_attempt_us = record.last_attempt_us + RetryDelayMs(record.attempts) * 1000;
      retried_.fetch_add(1);
    }
    Persist(key, record);
    if (Finished(record.state)) {
      ++channel->finished;
      if (!channel->pending.empty() && channel->pending.front() == key) channel->pending.pop_front();
      if (backlog_.load() > 0) backlog_.fetch_sub(1);
      TrimHistory(webhook_id, channel);
    }
  }
}

template <typename Stream>
net::awaitable<AttemptResult> Notifier::Impl::Exchange(Stream& stream, Channel* channel,
                                                       http::request<http::string_body>& request,
                                                       std::chrono::steady_clock::time_point deadline) {
  AttemptResult result;
  beast::error_code error;
  beast::get_lowest_layer(stream).expires_at(deadline);
  co_await http::async_write(stream, request, net::redirect_error(net::use_awaitable, error));
  if (error) {
    result.error = error == beast::error::timeout ? "timed out" : "sending: " + error.message();
    co_return result;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);  // receivers answer briefly; a longer body is not read
  co_await http::async_read(stream, channel->buffer, parser,
                            net::redirect_error(net::use_awaitable, error));
  if (error == http::error::body_limit && parser.is_header_done()) {
    error = {};
    result.answer_unread = true;  // the connection cannot be reused
  }
  if (error) {
    result.error = error == beast::error::timeout ? "timed out" : "reading the answer: " + error.message();
    result.answered = parser.is_header_done();
    co_return result;
  }
  const auto& response = parser.get();
  result.answered = true;
  result.status = response.result_int();
  result.delivered = result.status >= 200 && result.status < 300;
  if (!result.delivered) {
    result.error = result.status >= 300 && result.status < 400
                       ? "answered a redirect, which is not followed"
                       : "answered HTTP " + std::to_string(result.status);
  }
  if (!response.keep_alive()) result.answer_unread = true;  // the receiver closes it
  co_return result;
}

// Resolves (checking every address against the private-address rule) and
// connects; "" or what went wrong. Every step ends at `deadline`.
net::awaitable<std::string> Notifier::Impl::Connect(Channel* channel, const WebhookUrl& url,
                                                    const std::string& hook_url,
                                                    std::chrono::steady_clock::time_point deadline) {
  channel->Close();
  beast::error_code error;
  // A name may point elsewhere than when it was registered: resolve now and
  // connect only to the addresses checked. The lookup has the same deadline.
  auto resolver = std::make_shared<tcp::resolver>(io_);
  channel->resolver = resolver;
  net::steady_timer guard(io_);
  guard.expires_at(deadline);
  guard.async_wait([resolver](beast::error_code e) {
    if (!e) resolver->cancel();
  });
  auto resolved = co_await resolver->async_resolve(url.host, url.port,
                                                   net::redirect_error(net::use_awaitable, error));
  guard.cancel();
  channel->resolver.reset();
  if (error) {
    co_return error == net::error::operation_aborted ? "resolving " + url.host + " timed out"
                                                     : "resolving " + url.host + ": " + error.message();
  }
  std::vector<tcp::endpoint> endpoints;
  for (const auto& entry : resolved) {
    tcp::endpoint endpoint = entry.endpoint();
    if (!options_.allow_private && IsPrivateAddress(endpoint.data())) {
      co_return url.host + " resolves to a loopback, link-local or private address";
    }
    endpoints.push_back(endpoint);
  }
  if (url.tls) {
    channel->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, ssl_);
    beast::error_code not_literal;
    net::ip::make_address(url.host, not_literal);
    if (not_literal) SSL_set_tlsext_host_name(channel->tls->native_handle(), url.host.c_str());
    channel->tls->set_verify_callback(net::ssl::host_name_verification(url.host));
    auto& lowest = beast::get_lowest_layer(*channel->tls);
    lowest.expires_at(deadline);
    co_await lowest.async_connect(endpoints, net::redirect_error(net::use_awaitable, error));
    if (!error) {
      lowest.expires_at(deadline);
      co_await channel->tls->async_handshake(net::ssl::stream_base::client,
                                             net::redirect_error(net::use_awaitable, error));
    }
  } else {
    channel->plain = std::make_unique<beast::tcp_stream>(io_);
    channel->plain->expires_at(deadline);
    co_await channel->plain->async_connect(endpoints, net::redirect_error(net::use_awaitable, error));
  }
  if (error) {
    channel->Close();
    co_return error == beast::error::timeout ? std::string("connecting timed out")
                                             : "connecting: " + error.message();
  }
  channel->connected_to = hook_url;
  co_return std::string();
}

net::awaitable<AttemptResult> Notifier::Impl::Attempt(Channel* channel, const WebhookDef& hook,
                                                      const std::string& secret,
                                                      const Record& record) {
  // One deadline for the whole attempt: lookup, connect, TLS, send, answer.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  AttemptResult result;
  WebhookUrl url;
  if (!ParseWebhookUrl(hook.url, &url, &result.error)) co_return result;
  http::request<http::string_body> request(http::verb::post, url.target, 11);
  const bool default_port = url.port == (url.tls ? "443" : "80");
  const std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  request.set(http::field::host, default_port ? host : host + ":" + url.port);
  request.set(http::field::user_agent, "purserd");
  request.set(http::field::content_type, "application/json");
  request.set("Purser-Event-Id", record.event_id);
  request.set("Purser-Signature",
              SignWebhookPayload(secret, WallClockMicros() / kMicrosPerSecond, record.payload));
  request.keep_alive(true);
  request.body() = record.payload;
  request.prepare_payload();
  // A kept-alive connection the receiver has closed meanwhile fails before
  // any answer: then one new connection, within the same attempt.
  for (int round = 0; round < 2; ++round) {
    const bool reused = channel->connected_to == hook.url;
    if (!reused) {
      result.error = co_await Connect(channel, url, hook.url, deadline);
      if (!result.error.empty() || stopping_) co_return result;
    }
    if (url.tls) {
      result = co_await Exchange(*channel->tls, channel, request, deadline);
    } else {
      result = co_await Exchange(*channel->plain, channel, request, deadline);
    }
    if (!result.answered || result.answer_unread) channel->Close();
    if (result.answered || !reused || stopping_ || std::chrono::steady_clock::now() >= deadline) break;
  }
  co_return result;
}

// ---------------------------------------------------------------------------

Notifier::Notifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Notifier::~Notifier() { Stop(); }

Result<std::unique_ptr<Notifier>> Notifier::Start(Ledger* sequencer, NotifierOptions options) {
  if (options.timeout_ms < 1 || options.retry_base_ms < 1 || options.max_attempts < 1 ||
      options.concurrency < 1) {
    return Status::Error("webhook timeout, retry base, attempts and concurrency must be positive");
  }
  auto impl = std::make_unique<Impl>(sequencer, std::move(options));
  if (Status status = impl->Init(); !status.ok()) return status;
  Impl* raw = impl.get();
  raw->thread_ = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<Notifier>(new Notifier(std::move(impl)));
}

Status Notifier::StoreSecret(const std::string& webhook_id, const std::string& secret) {
  return impl_->StoreSecret(webhook_id, secret);
}

std::vector<DeliveryView> Notifier::Deliveries(const std::string& webhook_id, size_t limit,
                                               const std::string& state) {
  return impl_->Deliveries(webhook_id, limit, state);
}

Status Notifier::Redeliver(const std::string& webhook_id, const std::string& event_id) {
  return impl_->Redeliver(webhook_id, event_id);
}

NotifierStats Notifier::stats() const { return impl_->stats(); }
const Histogram& Notifier::attempt_latency() const { return impl_->attempt_latency(); }
void Notifier::Stop() { impl_->Stop(); }

}  // namespace purser
