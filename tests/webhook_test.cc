// Webhook delivery (SPEC section 8) end to end: the real purserd posts to a
// real HTTP receiver on loopback inside the test, which answers as each test
// tells it (2xx, errors, redirects, or never).

#include <utility>  // before Asio (../shared/PLATFORM.md)

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <simdjson.h>
#include <arpa/inet.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "http/json_views.h"
#include "bench/webhook_receiver.h"
#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"
#include "ledger/ledger.h"
#include "notify/address.h"
#include "notify/notifier.h"
#include "replay/replay.h"
#include "tests/daemon_util.h"
#include "tests/http_client.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

using Clock = std::chrono::steady_clock;

using bench::Received;

// The loopback receiver, answering as the test says.
class Receiver : public bench::Receiver {
 public:
  using Answer = std::function<int(const std::string& target, int nth)>;
  explicit Receiver(Answer answer, const std::string& cert = "", const std::string& key = "",
                    bool drop_after_answer = false)
      : bench::Receiver(bench::ReceiverOptions{std::move(answer), cert, key, true, drop_after_answer}) {}
};

int Always200(const std::string&, int) { return 200; }

std::string HexHmac(const std::string& key, const std::string& text) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &length);
  return HexEncode(mac, length);
}

// Checks Purser-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>,
// with t within five minutes of now.
::testing::AssertionResult SignedWith(const Received& r, const std::string& secret) {
  size_t comma = r.signature.find(",v1=");
  if (r.signature.rfind("t=", 0) != 0 || comma == std::string::npos) {
    return ::testing::AssertionFailure() << "malformed signature '" << r.signature << "'";
  }
  std::string t = r.signature.substr(2, comma - 2);
  std::string v1 = r.signature.substr(comma + 4);
  int64_t now = WallClockMicros() / kMicrosPerSecond;
  if (std::llabs(std::stoll(t) - now) > 300) return ::testing::AssertionFailure() << "stale t=" << t;
  if (HexHmac(secret, t + "." + r.body) != v1) {
    return ::testing::AssertionFailure() << "v1 does not verify for " << r.body;
  }
  return ::testing::AssertionSuccess();
}

std::string JsonString(const std::string& json, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view value;
  if (parser.parse(json).get(root) || root.at_pointer(pointer).get(value)) return "";
  return std::string(value);
}

// The sequence number in "evt_<seq>_<n>".
uint64_t SequenceOf(const std::string& event_id) {
  unsigned long long sequence = 0;
  unsigned n = 0;
  if (std::sscanf(event_id.c_str(), "evt_%llu_%u", &sequence, &n) != 2) return 0;
  return sequence;
}

struct DeliveryRow {
  std::string event_id, type, state, last_error;
  int64_t attempts = 0, last_status_code = 0;
};

class Webhooks : public ::testing::Test {
 protected:
  // Starts purserd with fast retries and the loopback receiver allowed.
  void Start(std::vector<std::string> extra = {}, bool allow_private = true) {
    std::vector<std::string> flags = {"--webhook-retry-base-ms", "20", "--webhook-timeout-ms", "2000"};
    if (allow_private) flags.push_back("--allow-private-webhooks");
    flags.insert(flags.end(), extra.begin(), extra.end());
    daemon_ = std::make_unique<Daemon>();
    daemon_->stderr_path = dir_.Sub("purserd.log");
    ASSERT_TRUE(daemon_->Start(dir_.Sub("data"), flags));
    client_ = std::make_unique<HttpClient>(daemon_->http_port());
  }
  Response Call(const std::string& method, const std::string& target, const std::string& body = "") {
    return client_->Call(method, target, body, daemon_->admin_key());
  }
  // org (wallet, $100) -> team -> agent; other (wallet) -> bystander.
  void Tree() {
    for (const char* body :
         {R"({"id":"org","kind":"org","wallet":true})", R"({"id":"team","parent":"org","kind":"team"})",
          R"({"id":"agent","parent":"team","kind":"agent"})", R"({"id":"other","kind":"org","wallet":true})",
          R"({"id":"bystander","parent":"other","kind":"agent"})"}) {
      ASSERT_EQ(Call("POST", "/v1/accounts", body).status, 201);
    }
    ASSERT_EQ(client_->Call("POST", "/v1/accounts/org/deposits", R"({"amount_micros":100000000})",
                            daemon_->admin_key(), "fund-1")
                  .status,
              201);
  }
  std::string Register(const std::string& url, const std::string& events, const std::string& account,
                       const std::string& secret = "whsec_test") {
    Response created = Call("POST", "/v1/webhooks",
                            R"({"url":")" + url + R"(","events":)" + events + R"(,"account":")" +
                                account + R"(","secret":")" + secret + "\"}");
    EXPECT_EQ(created.status, 201) << created.body;
    return JsonString(created.body, "/webhook_id");
  }
  void Freeze(const std::string& account) {
    ASSERT_EQ(Call("POST", "/v1/accounts/" + account + "/freeze", R"({"reason":"test"})").status, 200);
  }
  void Unfreeze(const std::string& account) {
    ASSERT_EQ(Call("POST", "/v1/accounts/" + account + "/unfreeze", "{}").status, 200);
  }
  std::vector<DeliveryRow> Deliveries(const std::string& webhook_id, const std::string& query = "") {
    Response listed = Call("GET", "/v1/webhooks/" + webhook_id + "/deliveries" + query);
    EXPECT_EQ(listed.status, 200) << listed.body;
    std::vector<DeliveryRow> rows;
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(listed.body).get(root)) return rows;
    for (simdjson::dom::element d : root["deliveries"].get_array()) {
      DeliveryRow row;
      row.event_id = std::string(d["event_id"].get_string().value());
      row.type = std::string(d["type"].get_string().value());
      row.state = std::string(d["state"].get_string().value());
      row.attempts = d["attempts"].get_int64().value();
      int64_t code = 0;
      if (!d["last_status_code"].get(code)) row.last_status_code = code;
      std::string_view error;
      if (!d["last_error"].get(error)) row.last_error = std::string(error);
      rows.push_back(row);
    }
    return rows;
  }
  // Waits until the webhook's newest record is in `state`.
  bool WaitForState(const std::string& webhook_id, const std::string& state, int seconds = 30) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (Clock::now() < deadline) {
      std::vector<DeliveryRow> rows = Deliveries(webhook_id);
      if (!rows.empty() && rows.front().state == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(Webhooks, DeliveriesAreSignedCarryStableIdsAndMatchTheSubtree) {
  Receiver receiver(Always200);
  Start();
  Tree();
  std::mutex mutex;
  std::vector<std::string> pushed;  // RPC subscribe carries the same set
  auto watcher = daemon_->Admin();
  ASSERT_TRUE(watcher->Subscribe("team", [&](const AlertNotice& notice) {
                       std::lock_guard lock(mutex);
                       pushed.push_back(notice.kind);
                     }).ok());
  std::string team = Register(
      receiver.Url("/team"),
      R"(["account_frozen","account_unfrozen","budget_threshold","reservation_expired"])", "team",
      "whsec_team");
  std::string other = Register(receiver.Url("/other"), R"(["account_frozen"])", "other");
  ASSERT_EQ(Call("PUT", "/v1/accounts/agent/caps", R"({"daily_limit_micros":10000000,"alert_thresholds_pct":[50]})")
                .status,
            200);
  Freeze("agent");
  Unfreeze("agent");
  ASSERT_EQ(Call("POST", "/v1/usage", R"({"usage_id":"u1","account":"agent","amount_micros":6000000})").status,
            201);
  ASSERT_EQ(Call("POST", "/v1/reservations",
                 R"({"reservation_id":"r1","account":"agent","amount_micros":1000,"ttl_s":1})")
                .status,
            201);
  ASSERT_TRUE(receiver.WaitFor("/team", 4));
  Freeze("bystander");
  ASSERT_TRUE(receiver.WaitFor("/other", 1));

  std::vector<Received> got = receiver.Get("/team");
  ASSERT_EQ(got.size(), 4u);
  std::vector<std::string> types;
  uint64_t last_sequence = 0;
  for (const Received& r : got) {
    EXPECT_TRUE(SignedWith(r, "whsec_team"));
    EXPECT_FALSE(SignedWith(r, "whsec_other"));
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.host, receiver.Url("").substr(7)) << "Host carries the port";
    EXPECT_EQ(JsonString(r.body, "/id"), r.event_id);
    EXPECT_GT(SequenceOf(r.event_id), last_sequence) << r.event_id;
    EXPECT_EQ(r.event_id, "evt_" + std::to_string(SequenceOf(r.event_id)) + "_0");
    last_sequence = SequenceOf(r.event_id);
    types.push_back(JsonString(r.body, "/type"));
    EXPECT_EQ(JsonString(r.body, "/account"), "agent");
  }
  EXPECT_EQ(types, (std::vector<std::string>{"account_frozen", "account_unfrozen", "budget_threshold",
                                             "reservation_expired"}));
  EXPECT_EQ(JsonString(got[0].body, "/data/reason"), "test");
  EXPECT_EQ(JsonString(got[3].body, "/data/reservation_id"), "r1");
  // The other org's webhook saw only its own subtree.
  std::vector<Received> others = receiver.Get("/other");
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(JsonString(others[0].body, "/account"), "bystander");
  EXPECT_TRUE(SignedWith(others[0], "whsec_test"));

  std::vector<DeliveryRow> rows = Deliveries(team);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows.front().type, "reservation_expired") << "newest first";
  for (const DeliveryRow& row : rows) {
    EXPECT_EQ(row.state, "delivered");
    EXPECT_EQ(row.attempts, 1);
    EXPECT_EQ(row.last_status_code, 200);
  }
  EXPECT_EQ(Deliveries(team, "?limit=2").size(), 2u);
  EXPECT_EQ(Call("GET", "/v1/webhooks/" + team + "/deliveries?state=sent").status, 400);
  EXPECT_EQ(Call("GET", "/v1/webhooks/wh_missing/deliveries").status, 404);
  std::string metrics = Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("purser_webhook_deliveries_total{result=\"delivered\"} 5"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("purser_webhook_backlog 0"), std::string::npos);
  EXPECT_NE(metrics.find("purser_webhook_attempt_duration_seconds_count 5"), std::string::npos);
  EXPECT_LE(receiver.connections(), 2) << "one kept-alive connection per receiver URL";
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mutex);
      if (pushed.size() >= 4) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(pushed, types);
  (void)other;
}

TEST_F(Webhooks, FailedAttemptsAreRetriedWithTheSameEventIdAndBody) {
  Receiver receiver([](const std::string&, int nth) { return nth <= 2 ? 500 : 200; });
  Start();
  Tree();
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen"])", "org");
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/hook", 3));
  ASSERT_TRUE(WaitForState(id, "delivered"));
  std::vector<Received> got = receiver.Get("/hook");
  ASSERT_EQ(got.size(), 3u);
  for (const Received& r : got) {
    EXPECT_EQ(r.event_id, got[0].event_id);
    EXPECT_EQ(r.body, got[0].body);
    EXPECT_TRUE(SignedWith(r, "whsec_test"));
  }
  std::vector<DeliveryRow> rows = Deliveries(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempts, 3);
  EXPECT_EQ(rows[0].last_status_code, 200);
  EXPECT_EQ(rows[0].last_error, "");
  // Every attempt is listed with its status.
  std::string listed = Call("GET", "/v1/webhooks/" + id + "/deliveries").body;
  EXPECT_NE(listed.find(R"("attempt_log":[{"at":")"), std::string::npos) << listed;
  size_t first = listed.find(R"("status_code":500,"error":"answered HTTP 500")");
  ASSERT_NE(first, std::string::npos) << listed;
  size_t second = listed.find(R"("status_code":500,"error":"answered HTTP 500")", first + 1);
  ASSERT_NE(second, std::string::npos) << listed;
  EXPECT_NE(listed.find(R"("status_code":200,"error":null})", second), std::string::npos) << listed;
  std::string metrics = Call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("purser_webhook_deliveries_total{result=\"retried\"} 2"), std::string::npos);
}

TEST_F(Webhooks, ADeliveryDiesAfterTheMaximumAttemptsAndRedeliverSendsItAgain) {
  std::atomic<bool> healthy{false};
  Receiver receiver([&](const std::string&, int) { return healthy ? 204 : 503; });
  Start({"--webhook-max-attempts", "3"});
  Tree();
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen"])", "team");
  Freeze("agent");
  ASSERT_TRUE(WaitForState(id, "dead"));
  std::vector<DeliveryRow> rows = Deliveries(id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempts, 3);
  EXPECT_EQ(rows[0].last_status_code, 503);
  EXPECT_EQ(rows[0].last_error, "answered HTTP 503");
  EXPECT_EQ(receiver.Get("/hook").size(), 3u);
  EXPECT_EQ(Deliveries(id, "?state=dead").size(), 1u);
  EXPECT_EQ(Deliveries(id, "?state=delivered").size(), 0u);
  EXPECT_NE(Call("GET", "/metrics").body.find("purser_webhook_deliveries_total{result=\"dead\"} 1"),
            std::string::npos);

  healthy = true;
  Response missing = Call("POST", "/v1/webhooks/" + id + "/redeliver", R"({"event_id":"evt_1_0"})");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_EQ(Call("POST", "/v1/webhooks/" + id + "/redeliver", R"({})").status, 400);
  Response again =
      Call("POST", "/v1/webhooks/" + id + "/redeliver", R"({"event_id":")" + rows[0].event_id + "\"}");
  ASSERT_EQ(again.status, 202) << again.body;
  ASSERT_TRUE(receiver.WaitFor("/hook", 4));
  ASSERT_TRUE(WaitForState(id, "delivered"));
  std::vector<Received> got = receiver.Get("/hook");
  EXPECT_EQ(got.back().event_id, rows[0].event_id);
  EXPECT_EQ(got.back().body, got.front().body);
}

TEST_F(Webhooks, AHangingReceiverDoesNotDelayAnotherWebhook) {
  Receiver receiver([](const std::string& target, int) { return target == "/hang" ? 0 : 200; });
  Start({"--webhook-timeout-ms", "20000"});
  Tree();
  Register(receiver.Url("/hang"), R"(["account_frozen","account_unfrozen"])", "team");
  Register(receiver.Url("/fast"), R"(["account_frozen","account_unfrozen"])", "team");
  auto started = Clock::now();
  Freeze("agent");
  Unfreeze("agent");
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/fast", 3));
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(receiver.Get("/fast")[2].at - started);
  // The hanging receiver holds its first attempt for 20 s; the other
  // webhook's three deliveries did not wait for it.
  EXPECT_LT(elapsed.count(), 10'000);
  EXPECT_EQ(receiver.Get("/hang").size(), 1u) << "one attempt at a time per webhook, in log order";
}

TEST_F(Webhooks, DeliveriesFollowLogOrderPerWebhookThroughRetries) {
  // Every third request fails: the retries must not let a later event pass.
  Receiver receiver([](const std::string&, int nth) { return nth % 3 == 0 ? 500 : 200; });
  Start({"--webhook-retry-base-ms", "5"});
  Tree();
  Register(receiver.Url("/a"), R"(["account_frozen","account_unfrozen"])", "org");
  Register(receiver.Url("/b"), R"(["account_frozen"])", "team");
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    Freeze("agent");
    Unfreeze("agent");
  }
  for (const auto& [target, expected] : {std::pair<std::string, size_t>{"/a", 2 * kRounds},
                                         std::pair<std::string, size_t>{"/b", kRounds}}) {
    // Each event is delivered once it succeeds; attempts in between fail.
    auto deadline = Clock::now() + std::chrono::seconds(60);
    std::set<std::string> delivered;
    while (Clock::now() < deadline) {
      std::vector<Received> got = receiver.Get(target);
      delivered.clear();
      for (size_t i = 0; i < got.size(); ++i) {
        if ((i + 1) % 3 != 0) delivered.insert(got[i].event_id);
      }
      if (delivered.size() >= expected) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(delivered.size(), expected) << target;
    uint64_t last = 0;
    for (const Received& r : receiver.Get(target)) {
      EXPECT_GE(SequenceOf(r.event_id), last) << target << ": " << r.event_id << " after " << last;
      last = SequenceOf(r.event_id);
    }
  }
}

TEST_F(Webhooks, AKilledDaemonDeliversEveryEventAfterTheRestart) {
  Receiver receiver(Always200);
  receiver.set_delay_ms(40);
  Start();
  Tree();
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen","account_unfrozen"])", "org");
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    Freeze("agent");
    Unfreeze("agent");
  }
  ASSERT_TRUE(receiver.WaitFor("/hook", 5));
  daemon_->Kill();
  size_t before_restart = receiver.Get("/hook").size();
  EXPECT_LT(before_restart, 2u * kRounds) << "the kill came after every delivery";
  receiver.set_delay_ms(0);
  Start();
  auto deadline = Clock::now() + std::chrono::seconds(60);
  std::set<std::string> ids;
  while (Clock::now() < deadline && ids.size() < 2u * kRounds) {
    ids.clear();
    for (const Received& r : receiver.Get("/hook")) ids.insert(r.event_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(ids.size(), 2u * kRounds);
  std::vector<DeliveryRow> rows = Deliveries(id);
  ASSERT_EQ(rows.size(), 2u * kRounds);
  for (const DeliveryRow& row : rows) {
    EXPECT_TRUE(ids.count(row.event_id)) << row.event_id;
    EXPECT_EQ(row.state, "delivered") << row.event_id;
  }
}

TEST_F(Webhooks, ThePrivateAddressRuleHoldsAtDeliveryAndRedirectsAreNotFollowed) {
  Receiver receiver([](const std::string& target, int) { return target == "/moved" ? 302 : 200; });
  Start();
  Tree();
  std::string moved = Register(receiver.Url("/moved"), R"(["account_frozen"])", "team");
  Freeze("agent");
  ASSERT_TRUE(WaitForState(moved, "retrying"));
  std::vector<DeliveryRow> rows = Deliveries(moved);
  EXPECT_EQ(rows[0].last_status_code, 302);
  EXPECT_NE(rows[0].last_error.find("redirect"), std::string::npos) << rows[0].last_error;
  EXPECT_TRUE(receiver.Get("/elsewhere").empty());
  ASSERT_EQ(Call("DELETE", "/v1/webhooks/" + moved).status, 204);

  // Registered while private addresses were allowed; the operator then
  // takes the permission away: delivery refuses the loopback receiver.
  std::string hook = Register(receiver.Url("/hook"), R"(["account_unfrozen"])", "team");
  ASSERT_EQ(daemon_->Stop(), 0);
  Start({}, /*allow_private=*/false);
  Unfreeze("agent");
  ASSERT_TRUE(WaitForState(hook, "retrying"));
  rows = Deliveries(hook);
  EXPECT_NE(rows[0].last_error.find("private address"), std::string::npos) << rows[0].last_error;
  EXPECT_EQ(rows[0].last_status_code, 0);
  EXPECT_TRUE(receiver.Get("/hook").empty());
  // And a new registration to it is refused outright.
  Response refused = Call("POST", "/v1/webhooks",
                          R"({"url":")" + receiver.Url("/x") + R"(","events":["account_frozen"],"secret":"s"})");
  EXPECT_EQ(refused.status, 400);
}

TEST_F(Webhooks, UpdateChangesTheUrlTheEventsAndWhetherItIsEnabled) {
  Receiver receiver(Always200);
  Start();
  Tree();
  std::string id = Register(receiver.Url("/one"), R"(["account_frozen"])", "team");
  // A witness webhook: when it has an event, the notifier has read it for all.
  Register(receiver.Url("/witness"), R"(["account_frozen","account_unfrozen"])", "team");

  ASSERT_EQ(Call("PUT", "/v1/webhooks/" + id, R"({"enabled":false})").status, 200);
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/witness", 1));
  Response updated = Call("PUT", "/v1/webhooks/" + id,
                          R"({"enabled":true,"url":")" + receiver.Url("/two") + R"(","events":["account_unfrozen"]})");
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_NE(updated.body.find("\"enabled\":true"), std::string::npos) << updated.body;
  Unfreeze("agent");
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/witness", 3));
  ASSERT_TRUE(receiver.WaitFor("/two", 1));
  EXPECT_TRUE(receiver.Get("/one").empty()) << "nothing was sent while it was disabled";
  std::vector<Received> two = receiver.Get("/two");
  ASSERT_EQ(two.size(), 1u) << "the freeze after the update is not among its events";
  EXPECT_EQ(JsonString(two[0].body, "/type"), "account_unfrozen");
  std::string listed = Call("GET", "/v1/webhooks").body;
  EXPECT_NE(listed.find(receiver.Url("/two")), std::string::npos) << listed;

  EXPECT_EQ(Call("PUT", "/v1/webhooks/wh_missing", R"({"enabled":false})").status, 404);
  EXPECT_EQ(Call("PUT", "/v1/webhooks/" + id, R"({"events":["payday"]})").status, 400);
  EXPECT_EQ(Call("PUT", "/v1/webhooks/" + id, R"({"url":"ftp://example.com/"})").status, 400);
  EXPECT_EQ(Call("PUT", "/v1/webhooks/" + id, R"({"enabled":"yes"})").status, 400);
  ASSERT_EQ(Call("DELETE", "/v1/webhooks/" + id).status, 204);
  EXPECT_EQ(Call("PUT", "/v1/webhooks/" + id, R"({"enabled":true})").status, 404);
}

TEST_F(Webhooks, NoSecretAppearsInLogsMetricsListingsErrorsOrEvents) {
  Receiver receiver(Always200);
  Start();
  Tree();
  const std::string secret = "whsec_" + RandomHex(20);
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen"])", "team", secret);
  // Refused registrations carrying the secret: the answers do not echo it.
  std::vector<Response> answers;
  answers.push_back(Call("POST", "/v1/webhooks",
                         R"({"url":"http://127.0.0.1:1/x","events":["nope"],"secret":")" + secret + "\"}"));
  answers.push_back(Call("POST", "/v1/webhooks", R"({"url":")" + secret + R"(","events":["overrun"],"secret":")" +
                                                     secret + "\"}"));
  answers.push_back(Call("POST", "/v1/webhooks",
                         R"({"url":"http://127.0.0.1:1/x","events":["overrun"],"secret":")" +
                             std::string(300, 'x') + secret + "\"}"));
  for (const Response& answer : answers) {
    EXPECT_EQ(answer.status, 400) << answer.body;
    EXPECT_EQ(answer.body.find(secret), std::string::npos) << answer.body;
  }
  // The RPC path too: the secret goes to the notifier, never into the command.
  auto admin = daemon_->Admin();
  cmd::RegisterWebhook rpc_hook;
  rpc_hook.url = receiver.Url("/rpc");
  rpc_hook.events = {"account_frozen"};
  rpc_hook.account = "team";
  rpc_hook.secret = secret + "_rpc";
  Reply registered = admin->Call(rpc_hook);
  ASSERT_TRUE(registered.ok()) << registered.message;
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/hook", 1));
  ASSERT_TRUE(receiver.WaitFor("/rpc", 1));
  EXPECT_TRUE(SignedWith(receiver.Get("/hook")[0], secret));
  EXPECT_TRUE(SignedWith(receiver.Get("/rpc")[0], secret + "_rpc"));

  std::vector<std::string> places = {Call("GET", "/v1/webhooks").body, Call("GET", "/metrics").body,
                                     Call("GET", "/v1/webhooks/" + id + "/deliveries").body,
                                     ReplyToJson(admin->Call(query::ListWebhooks{})),
                                     receiver.Get("/hook")[0].body};
  admin.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  std::ifstream log(dir_.Sub("purserd.log"));
  places.push_back(std::string(std::istreambuf_iterator<char>(log), {}));
  EXPECT_FALSE(places.back().empty()) << "the daemon logs something";
  std::ostringstream exported;
  uint64_t count = 0;
  ASSERT_TRUE(Export(ExportOptions{dir_.Sub("data"), "", INT64_MIN, INT64_MAX}, exported, &count).ok());
  EXPECT_NE(exported.str().find("WebhookRegistered"), std::string::npos);
  places.push_back(exported.str());
  for (const std::string& place : places) {
    EXPECT_EQ(place.find(secret), std::string::npos) << place.substr(0, 2000);
  }
}

TEST_F(Webhooks, TheCliManagesWebhooksAndTheirDeliveries) {
  std::atomic<bool> healthy{false};
  Receiver receiver([&](const std::string&, int) { return healthy ? 200 : 500; });
  Start({"--webhook-max-attempts", "2"});
  Tree();
  auto run = [&](const std::string& args) {
    std::string command = "PURSER_KEY='" + daemon_->admin_key() + "' PURSER_CONNECT=" +
                          daemon_->address() + " " + PURSER_CLI_BINARY + " " + args + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string out;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    int status = pclose(pipe);
    return std::pair<int, std::string>(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  auto [added_status, added] =
      run("webhooks add " + receiver.Url("/hook") + " --events account_frozen --account team --json");
  ASSERT_EQ(added_status, 0) << added;
  std::string id = JsonString(added, "/webhook_id");
  std::string secret = JsonString(added, "/secret");
  ASSERT_FALSE(id.empty()) << added;
  ASSERT_GE(secret.size(), 20u) << added;
  EXPECT_NE(run("webhooks list --json").second.find(receiver.Url("/hook")), std::string::npos);
  EXPECT_EQ(run("webhooks add " + receiver.Url("/x") + " --events nope").first, 10 + static_cast<int>(ResultCode::kInvalidArgument));
  EXPECT_EQ(run("webhooks add " + receiver.Url("/x")).first, 2) << "--events is required";
  EXPECT_EQ(run("webhooks update " + id).first, 2) << "nothing to update";
  EXPECT_EQ(run("webhooks deliveries " + id + " --state sent").first, 2);

  Freeze("agent");
  ASSERT_TRUE(WaitForState(id, "dead"));
  auto [listed_status, listed] = run("webhooks deliveries " + id + " --state dead --json");
  ASSERT_EQ(listed_status, 0) << listed;
  std::string event_id = JsonString(listed, "/deliveries/0/event_id");
  EXPECT_EQ(SequenceOf(event_id) > 0, true) << listed;
  EXPECT_TRUE(SignedWith(receiver.Get("/hook")[0], secret));
  EXPECT_NE(run("webhooks deliveries " + id).second.find("dead"), std::string::npos);
  healthy = true;
  EXPECT_EQ(run("webhooks redeliver " + id + " " + event_id).first, 0);
  ASSERT_TRUE(WaitForState(id, "delivered"));

  // A secret from a file; then disabled, then removed.
  {
    std::ofstream file(dir_.Sub("secret"));
    file << "whsec_from_file\n";
  }
  auto [second_status, second] = run("webhooks add " + receiver.Url("/second") +
                                     " --events account_unfrozen --secret-file " + dir_.Sub("secret") + " --json");
  ASSERT_EQ(second_status, 0) << second;
  EXPECT_EQ(second.find("whsec_from_file"), std::string::npos) << "a given secret is not shown";
  std::string second_id = JsonString(second, "/webhook_id");
  ASSERT_FALSE(second_id.empty()) << second;
  Unfreeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/second", 1));
  EXPECT_TRUE(SignedWith(receiver.Get("/second")[0], "whsec_from_file"));
  EXPECT_EQ(run("webhooks update " + second_id + " --disable").first, 0);
  EXPECT_NE(run("webhooks list --json").second.find("\"enabled\":false"), std::string::npos);
  EXPECT_EQ(run("webhooks rm " + second_id).first, 0);
  EXPECT_EQ(run("webhooks list --json").second.find(second_id), std::string::npos);
}

TEST_F(Webhooks, TheHistoryPerWebhookIsBoundedAndKeepsTheNewest) {
  Receiver receiver(Always200);
  Start();
  Tree();
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen","account_unfrozen"])", "team");
  auto admin = daemon_->Admin();
  constexpr int kEvents = 1'500;  // the bound is 1,000 records per webhook
  std::vector<RequestBody> toggles;
  for (int i = 0; i < kEvents; ++i) {
    toggles.push_back(i % 2 == 0 ? RequestBody(cmd::Freeze{"agent", "loop"}) : RequestBody(cmd::Unfreeze{"agent"}));
  }
  for (const Reply& reply : admin->CallBatch(std::move(toggles))) ASSERT_TRUE(reply.ok()) << reply.message;
  ASSERT_TRUE(receiver.WaitFor("/hook", kEvents, 60));
  ASSERT_TRUE(WaitForState(id, "delivered"));
  std::vector<DeliveryRow> rows = Deliveries(id, "?limit=10000");
  EXPECT_GE(rows.size(), 1'000u);
  EXPECT_LE(rows.size(), 1'100u);
  EXPECT_EQ(rows.front().event_id, receiver.Get("/hook").back().event_id) << "the newest is kept";
}

TEST_F(Webhooks, ARemovedWebhookEndsWhatItHadQueued) {
  Receiver receiver([](const std::string&, int) { return 503; });
  Start({"--webhook-retry-base-ms", "60000"});
  Tree();
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen","account_unfrozen"])", "team");
  Freeze("agent");
  Unfreeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/hook", 1));
  ASSERT_EQ(Call("DELETE", "/v1/webhooks/" + id).status, 204);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  std::string metrics;
  while (Clock::now() < deadline) {
    metrics = Call("GET", "/metrics").body;
    if (metrics.find("purser_webhook_backlog 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(metrics.find("purser_webhook_backlog 0\n"), std::string::npos) << "nothing left queued";
  EXPECT_EQ(receiver.Get("/hook").size(), 1u) << "no attempt after the removal";
  // Its records stay listed, ended (the listing needs the webhook, so look
  // at them through a restart's backlog instead: nothing comes back).
  ASSERT_EQ(daemon_->Stop(), 0);
  Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_NE(Call("GET", "/metrics").body.find("purser_webhook_backlog 0\n"), std::string::npos);
  EXPECT_EQ(receiver.Get("/hook").size(), 1u);
}

TEST_F(Webhooks, AClosedKeptAliveConnectionIsReopenedWithinTheAttempt) {
  Receiver receiver(Always200, "", "", /*drop_after_answer=*/true);
  Start();
  Tree();
  std::string id = Register(receiver.Url("/hook"), R"(["account_frozen","account_unfrozen"])", "team");
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/hook", 1));
  ASSERT_TRUE(WaitForState(id, "delivered"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the receiver has closed it
  Unfreeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/hook", 2));
  auto deadline = Clock::now() + std::chrono::seconds(30);
  std::vector<DeliveryRow> rows;
  while (Clock::now() < deadline) {
    rows = Deliveries(id);
    if (rows.size() == 2 && rows[0].state == "delivered") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(rows.size(), 2u);
  for (const DeliveryRow& row : rows) {
    EXPECT_EQ(row.state, "delivered");
    EXPECT_EQ(row.attempts, 1) << "a dropped idle connection is not a failed attempt";
  }
  EXPECT_EQ(receiver.connections(), 2);
}

// In process: events written while the notifier is down are matched, after
// it starts, against the webhooks as they were when the events happened.
TEST(Notifier, EventsAfterTheCursorMeetTheWebhooksOfTheirTime) {
  TempDir dir;
  Receiver receiver(Always200);
  LedgerOptions options;
  options.data_dir = dir.Sub("data");
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  Ledger& sequencer = **opened;
  auto call = [&](RequestBody body) {
    Reply reply = sequencer.Call(Request{Credentials::System(), std::move(body)});
    EXPECT_TRUE(reply.ok()) << reply.message;
  };
  call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}});
  call(cmd::OpenAccount{"agent", "org", AccountKind::kAgent, "", false, {}});
  NotifierOptions notify_options;
  notify_options.allow_private = true;
  cmd::RegisterWebhook hook;
  hook.webhook_id = "wh_test";
  hook.url = receiver.Url("/hook");
  hook.events = {"account_frozen"};
  hook.account = "org";
  hook.secret_sha256 = Sha256("whsec_test");
  {
    Result<std::unique_ptr<Notifier>> notifier = Notifier::Start(&sequencer, notify_options);
    ASSERT_TRUE(notifier.ok()) << notifier.status().message();
    ASSERT_TRUE((*notifier)->StoreSecret("wh_test", "whsec_test").ok());
    call(hook);
    (*notifier)->Stop();
  }
  // While no notifier runs: a freeze it subscribes to, then a change of
  // its events that no longer includes freezes.
  call(cmd::Freeze{"agent", "while down"});
  cmd::UpdateWebhook update;
  update.webhook_id = "wh_test";
  update.events = std::vector<std::string>{"account_unfrozen"};
  call(update);
  call(cmd::Unfreeze{"agent"});
  Result<std::unique_ptr<Notifier>> notifier = Notifier::Start(&sequencer, notify_options);
  ASSERT_TRUE(notifier.ok()) << notifier.status().message();
  ASSERT_TRUE(receiver.WaitFor("/hook", 2));
  std::vector<Received> got = receiver.Get("/hook");
  EXPECT_EQ(JsonString(got[0].body, "/type"), "account_frozen");
  EXPECT_EQ(JsonString(got[1].body, "/type"), "account_unfrozen");
  EXPECT_TRUE(SignedWith(got[0], "whsec_test"));
  (*notifier)->Stop();
}

TEST(WebhookAddresses, PrivateRangesAreRefusedInEveryForm) {
  auto is_private = [](const char* text) {
    sockaddr_storage storage{};
    if (std::strchr(text, ':') != nullptr) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
      v6->sin6_family = AF_INET6;
      EXPECT_EQ(inet_pton(AF_INET6, text, &v6->sin6_addr), 1) << text;
    } else {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
      v4->sin_family = AF_INET;
      EXPECT_EQ(inet_pton(AF_INET, text, &v4->sin_addr), 1) << text;
    }
    return IsPrivateAddress(reinterpret_cast<const sockaddr*>(&storage));
  };
  for (const char* address :
       {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "198.18.0.1", "224.0.0.1", "255.255.255.255", "::1", "::",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:c0a8:0101::1",
        "fc00::1", "fd12::1", "fe80::1", "fec0::1", "ff02::1"}) {
    EXPECT_TRUE(is_private(address)) << address;
  }
  for (const char* address : {"93.184.216.34", "172.32.0.1", "8.8.8.8", "2606:4700::1111",
                              "::ffff:93.184.216.34", "64:ff9b::808:808", "2002:0808:0808::1"}) {
    EXPECT_FALSE(is_private(address)) << address;
  }
}

TEST_F(Webhooks, HttpsReceiversAreVerifiedAgainstTheSystemOrTheGivenCa) {
  std::string cert = dir_.Sub("cert.pem");
  std::string key = dir_.Sub("key.pem");
  std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " + key +
                        " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  Receiver receiver(Always200, cert, key);
  // Trusted through --webhook-ca: delivered over TLS, to a name and to an address.
  Start({"--webhook-ca", cert});
  Tree();
  std::string by_name = Register(receiver.Url("/name", "localhost"), R"(["account_frozen"])", "team");
  std::string by_address = Register(receiver.Url("/address"), R"(["account_frozen"])", "team");
  Freeze("agent");
  ASSERT_TRUE(receiver.WaitFor("/name", 1));
  ASSERT_TRUE(receiver.WaitFor("/address", 1));
  EXPECT_TRUE(SignedWith(receiver.Get("/name")[0], "whsec_test"));
  ASSERT_TRUE(WaitForState(by_name, "delivered"));
  ASSERT_TRUE(WaitForState(by_address, "delivered"));
  // Without it the certificate is not trusted: nothing is sent.
  ASSERT_EQ(daemon_->Stop(), 0);
  Start();
  Unfreeze("agent");
  ASSERT_EQ(Call("PUT", "/v1/webhooks/" + by_name, R"({"events":["account_unfrozen"]})").status, 200);
  Freeze("agent");
  Unfreeze("agent");
  ASSERT_TRUE(WaitForState(by_name, "retrying"));
  std::vector<DeliveryRow> rows = Deliveries(by_name);
  EXPECT_NE(rows[0].last_error.find("certificate"), std::string::npos) << rows[0].last_error;
  EXPECT_EQ(receiver.Get("/name").size(), 1u);
  EXPECT_GE(receiver.failed_handshakes(), 1);
  // A CA file that cannot be read stops the start with a clear error.
  ASSERT_EQ(daemon_->Stop(), 0);
  std::string refused = "timeout 20 " + std::string(PURSERD_BINARY) + " --data-dir " + dir_.Sub("data") +
                        " --rpc 127.0.0.1:0 --http 127.0.0.1:0 --webhook-ca " + dir_.Sub("none.pem") +
                        " >/dev/null 2>" + dir_.Sub("refused.log");
  int status = std::system(refused.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 124) << status;
  std::ifstream log(dir_.Sub("refused.log"));
  std::string text(std::istreambuf_iterator<char>(log), {});
  EXPECT_NE(text.find("--webhook-ca"), std::string::npos) << text;
}

}  // namespace
}  // namespace purser::testing
