// The HTTP/JSON API of ../shared/API.md against the real purserd, with a real
// HTTP client (Beast): endpoints, status and error codes, limits.

#include <utility>  // before Asio (../shared/PLATFORM.md)

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <thread>

#include "tests/daemon_util.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

struct Response {
  int status = 0;
  std::string body;
  std::string retry_after;
  std::string content_type;
};

// A keep-alive HTTP/1.1 client on one connection.
class HttpClient {
 public:
  explicit HttpClient(int port) : stream_(io_) {
    net::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  }

  Response Call(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& key = "", const std::string& idempotency_key = "") {
    http::request<http::string_body> request(http::string_to_verb(method), target, 11);
    request.set(http::field::host, "127.0.0.1");
    if (!key.empty()) request.set(http::field::authorization, "Bearer " + key);
    if (!idempotency_key.empty()) request.set("Idempotency-Key", idempotency_key);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    // The server may answer (413) and close before the whole body is sent:
    // a failed write still leaves its answer to read.
    beast::error_code write_error;
    http::write(stream_, request, write_error);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(stream_, buffer, parser);
    const auto& message = parser.get();
    Response response;
    response.status = static_cast<int>(message.result_int());
    response.body = message.body();
    response.retry_after = std::string(message[http::field::retry_after]);
    response.content_type = std::string(message[http::field::content_type]);
    return response;
  }

 private:
  net::io_context io_;
  beast::tcp_stream stream_;
};

std::string ErrorCode(const Response& response) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(response.body).get(root)) return "<not json: " + response.body + ">";
  std::string_view code;
  if (root["error"]["code"].get(code)) return "<no error code: " + response.body + ">";
  return std::string(code);
}

int64_t IntField(const Response& response, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(response.body).get(root)) return INT64_MIN;
  int64_t value;
  if (root.at_pointer(pointer).get(value)) return INT64_MIN;
  return value;
}

class Http : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.Start(dir_.Sub("data")));
    client_ = std::make_unique<HttpClient>(daemon_.http_port());
  }
  Response Call(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& idempotency_key = "") {
    return client_->Call(method, target, body, daemon_.admin_key(), idempotency_key);
  }
  // org (wallet, $100, tag key env) -> team -> agent
  void Tree() {
    ASSERT_EQ(Call("POST", "/v1/accounts",
                   R"({"id":"org","kind":"org","name":"Org","wallet":true,"indexed_tag_keys":["env"]})")
                  .status,
              201);
    ASSERT_EQ(Call("POST", "/v1/accounts", R"({"id":"team","parent":"org","kind":"team"})").status, 201);
    ASSERT_EQ(Call("POST", "/v1/accounts", R"({"id":"agent","parent":"team","kind":"agent"})").status, 201);
    ASSERT_EQ(Call("POST", "/v1/accounts/org/deposits", R"({"amount_micros":100000000})", "fund-1").status,
              201);
  }
  std::string Key(const std::string& account, const std::string& role) {
    Response created = Call("POST", "/v1/keys", R"({"account":")" + account + R"(","role":")" + role + "\"}");
    EXPECT_EQ(created.status, 201) << created.body;
    size_t at = created.body.find("\"api_key\":\"");
    return created.body.substr(at + 11, created.body.find('"', at + 11) - at - 11);
  }

  TempDir dir_;
  Daemon daemon_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(Http, HealthNeedsNoKeyAndEverythingElseDoes) {
  EXPECT_EQ(client_->Call("GET", "/healthz").body, R"({"status":"ok"})");
  Response missing = client_->Call("GET", "/v1/prices");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(ErrorCode(missing), "unauthenticated");
  EXPECT_EQ(client_->Call("GET", "/v1/prices", "", "pk_wrong").status, 401);
  EXPECT_EQ(Call("GET", "/v1/prices").status, 200);
  EXPECT_EQ(Call("GET", "/v1/nothing-here").status, 404);
}

TEST_F(Http, AccountsCreateOnceAndRepeatWithTheOriginalBody) {
  Response first = Call("POST", "/v1/accounts", R"({"id":"acme","kind":"org","wallet":true})");
  EXPECT_EQ(first.status, 201);
  Response again = Call("POST", "/v1/accounts", R"({"id":"acme","kind":"org","wallet":true})");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, first.body);
  Response other = Call("POST", "/v1/accounts", R"({"id":"acme","kind":"org","wallet":false})");
  EXPECT_EQ(other.status, 409);
  EXPECT_EQ(ErrorCode(other), "already_exists");
  Response orphan = Call("POST", "/v1/accounts", R"({"id":"kid","parent":"nope","kind":"agent"})");
  EXPECT_EQ(orphan.status, 404);
  EXPECT_EQ(ErrorCode(orphan), "not_found");
  Response got = Call("GET", "/v1/accounts/acme");
  EXPECT_EQ(got.status, 200);
  EXPECT_NE(got.body.find(R"("caps":{"daily_limit_micros":null)"), std::string::npos) << got.body;
  EXPECT_NE(Call("GET", "/v1/accounts?parent=acme").body.find(R"({"accounts":[])"), std::string::npos);
}

TEST_F(Http, CapsPutKeepsAbsentFieldsRemovesNullsAndRefusesUnknownFields) {
  Tree();
  Response set = Call("PUT", "/v1/accounts/team/caps",
                      R"({"daily_limit_micros":5000000,"monthly_limit_micros":9000000})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(set.body,
            R"({"daily_limit_micros":5000000,"monthly_limit_micros":9000000,"hard_limit_micros":null,)"
            R"("max_inflight":null,"reservation_ttl_s":null,"alert_thresholds_pct":[50,75,90,100],)"
            R"("on_expiry":null,"runaway_action":null,"runaway_error_streak":null,)"
            R"("runaway_burn_multiplier":null,"runaway_min_micros_per_hour":null,)"
            R"("max_calls_per_minute":null,"max_tokens_per_minute":null,"degrade_at_pct":null})");
  Response removed = Call("PUT", "/v1/accounts/team/caps", R"({"daily_limit_micros":null})");
  EXPECT_EQ(IntField(removed, "/monthly_limit_micros"), 9'000'000) << "absent is kept";
  EXPECT_NE(removed.body.find(R"("daily_limit_micros":null)"), std::string::npos) << "null removes";
  Response unknown = Call("PUT", "/v1/accounts/team/caps", R"({"daily_limit":5})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(ErrorCode(unknown), "invalid_argument");
}

TEST_F(Http, DepositsNeedAWalletAndAnIdempotencyKey) {
  Tree();
  Response again = Call("POST", "/v1/accounts/org/deposits", R"({"amount_micros":100000000})", "fund-1");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(IntField(again, "/balance_micros"), 100'000'000);
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/accounts/org/deposits", R"({"amount_micros":5})", "fund-1")),
            "idempotency_conflict");
  EXPECT_EQ(Call("POST", "/v1/accounts/org/deposits", R"({"amount_micros":5})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/accounts/team/deposits", R"({"amount_micros":5})", "f2").status, 400);
  Response balance = Call("GET", "/v1/accounts/agent/balance");
  EXPECT_EQ(IntField(balance, "/available_micros"), 100'000'000);
  EXPECT_NE(balance.body.find(R"("funding_account":"org")"), std::string::npos);
}

TEST_F(Http, ReserveSettleVoidExtendFollowTheContract) {
  Tree();
  std::string reserve =
      R"({"reservation_id":"r1","account":"agent","amount_micros":2000000,"action":"search","tags":{"env":"prod"}})";
  Response created = Call("POST", "/v1/reservations", reserve);
  ASSERT_EQ(created.status, 201) << created.body;
  Response repeat = Call("POST", "/v1/reservations", reserve);
  EXPECT_EQ(repeat.status, 200);
  EXPECT_EQ(repeat.body, created.body);
  Response settle = Call("POST", "/v1/reservations/r1/settle",
                         R"({"usage":{"model":"gpt-4o","input_tokens":1000,"output_tokens":500},"outcome":"success"})");
  ASSERT_EQ(settle.status, 200) << settle.body;
  EXPECT_EQ(settle.body, R"({"reservation_id":"r1","cost_micros":7500,"released_micros":1992500,)"
                        R"("overrun_micros":0,"late":false,"seq":)" +
                            std::to_string(IntField(settle, "/seq")) + "}");
  EXPECT_GT(IntField(settle, "/seq"), IntField(created, "/seq")) << "receipts in log order";
  EXPECT_EQ(Call("POST", "/v1/reservations/r1/settle",
                 R"({"usage":{"model":"gpt-4o","input_tokens":1000,"output_tokens":500},"outcome":"success"})")
                .body,
            settle.body);
  Response different = Call("POST", "/v1/reservations/r1/settle", R"({"amount_micros":1})");
  EXPECT_EQ(different.status, 409);
  EXPECT_EQ(ErrorCode(different), "reservation_not_pending");
  ASSERT_EQ(Call("POST", "/v1/reservations", R"({"reservation_id":"r2","account":"agent","amount_micros":10})")
                .status,
            201);
  EXPECT_EQ(Call("POST", "/v1/reservations/r2/extend", R"({"ttl_s":9999999})").status, 400);
  Response extended = Call("POST", "/v1/reservations/r2/extend", R"({"ttl_s":60})");
  EXPECT_EQ(extended.status, 200);
  EXPECT_NE(extended.body.find("expires_at"), std::string::npos);
  EXPECT_EQ(Call("POST", "/v1/reservations/r2/void", R"({"reason":"cancelled"})").body,
            R"({"released_micros":10})");
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/reservations/r2/settle", R"({"amount_micros":1})")),
            "reservation_not_pending");
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/reservations/r2/extend", R"({"ttl_s":5})")),
            "reservation_not_pending");
  Response one = Call("GET", "/v1/reservations/r1");
  EXPECT_NE(one.body.find(R"("status":"settled","cost_micros":7500)"), std::string::npos) << one.body;
  Response list = Call("GET", "/v1/reservations?account=org&status=settled&limit=10");
  EXPECT_NE(list.body.find(R"("reservation_id":"r1")"), std::string::npos) << list.body;
}

TEST_F(Http, AnExpiredReservationTakesALateSettle) {
  Tree();
  ASSERT_EQ(Call("POST", "/v1/reservations",
                 R"({"reservation_id":"late","account":"agent","amount_micros":1000,"ttl_s":1})")
                .status,
            201);
  std::string status;
  for (int i = 0; i < 40 && status.find("expired") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = Call("GET", "/v1/reservations/late").body;
  }
  ASSERT_NE(status.find(R"("status":"expired")"), std::string::npos) << status;
  Response late = Call("POST", "/v1/reservations/late/settle", R"({"amount_micros":400})");
  EXPECT_EQ(late.status, 200);
  EXPECT_NE(late.body.find(R"("released_micros":0,"overrun_micros":0,"late":true)"), std::string::npos)
      << late.body;
  EXPECT_NE(Call("GET", "/v1/reservations/late").body.find(R"("status":"settled")"), std::string::npos);
}

TEST_F(Http, BadInputIsRefusedWithItsCodeAndChangesNothing) {
  Tree();
  std::string before = Call("GET", "/v1/admin/chain-head").body;
  auto expect = [&](const std::string& body, int status, const std::string& code) {
    Response response = Call("POST", "/v1/reservations", body);
    EXPECT_EQ(response.status, status) << body << " -> " << response.body;
    EXPECT_EQ(ErrorCode(response), code) << body;
  };
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1)", 400, "malformed_json");
  expect("not json at all", 400, "malformed_json");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":"100"})", 400, "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1.5})", 400, "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1e3})", 400, "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":-5})", 400, "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":10000000000000})", 400,
         "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":99999999999999999999})", 400,
         "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1,"amount_micros":2})", 400,
         "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent"})", 400, "invalid_argument");
  std::string tags = "{";
  for (int i = 0; i < 17; ++i) tags += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":\"v\"";
  tags += "}";
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1,"tags":)" + tags + "}", 400,
         "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1,"nested":)" + std::string(40, '[') +
             std::string(40, ']') + "}",
         400, "invalid_argument");
  expect("[1,2,3]", 400, "invalid_argument");
  expect(R"({"reservation_id":"x","account":"agent","amount_micros":1} trailing)", 400,
         "malformed_json");
  Response huge = Call("POST", "/v1/reservations", std::string(2 << 20, ' '));
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(ErrorCode(huge), "payload_too_large");
  client_ = std::make_unique<HttpClient>(daemon_.http_port());  // 413 closes the connection
  EXPECT_EQ(Call("GET", "/v1/admin/chain-head").body, before) << "no refused request appended an event";
  EXPECT_EQ(Call("GET", "/v1/reservations/x").status, 404);
}

TEST_F(Http, KeysAreScopedAndRevocationTakesEffectAtOnce) {
  Tree();
  ASSERT_EQ(Call("POST", "/v1/accounts", R"({"id":"other","kind":"org","wallet":true})").status, 201);
  std::string reader = Key("team", "reader");
  std::string writer = Key("team", "writer");
  Response write_by_reader = client_->Call(
      "POST", "/v1/reservations", R"({"reservation_id":"q1","account":"agent","amount_micros":1})", reader);
  EXPECT_EQ(write_by_reader.status, 403);
  EXPECT_EQ(ErrorCode(write_by_reader), "permission_denied");
  EXPECT_EQ(client_->Call("GET", "/v1/accounts/agent/balance", "", reader).status, 200);
  EXPECT_EQ(client_->Call("GET", "/v1/accounts/other/balance", "", reader).status, 403);
  EXPECT_EQ(client_->Call("GET", "/v1/accounts/ghost/balance", "", reader).status, 403);
  EXPECT_EQ(Call("GET", "/v1/accounts/ghost/balance").status, 404) << "the global admin sees not_found";
  EXPECT_EQ(client_->Call("POST", "/v1/reservations",
                          R"({"reservation_id":"q2","account":"agent","amount_micros":1})", writer)
                .status,
            201);
  Response keys = Call("GET", "/v1/keys");
  size_t at = keys.body.find("\"key_id\":\"k_");
  ASSERT_NE(at, std::string::npos);
  Response revoke_list = client_->Call("GET", "/v1/keys", "", writer);
  EXPECT_EQ(revoke_list.status, 403);
  // Revoke the writer's key (the last one created).
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(keys.body);
  std::string writer_id;
  for (auto key : root["keys"].get_array()) {
    std::string_view role = key["role"];
    if (role == "writer") writer_id = std::string(std::string_view(key["key_id"]));
  }
  ASSERT_FALSE(writer_id.empty());
  EXPECT_EQ(Call("DELETE", "/v1/keys/" + writer_id).status, 204);
  EXPECT_EQ(client_->Call("GET", "/v1/accounts/agent/balance", "", writer).status, 401);
  Response rotated = Call("POST", "/v1/keys/" + writer_id + "/rotate", R"({"grace_s":60})");
  EXPECT_EQ(rotated.status, 404) << "a revoked key cannot be rotated";
}

TEST_F(Http, UsageRefundsRevenueAdjustmentsPricesAndAnalytics) {
  Tree();
  Response usage = Call("POST", "/v1/usage",
                        R"({"usage_id":"u1","account":"agent","usage":{"model":"claude-sonnet-4","input_tokens":10000,"output_tokens":2000,"cached_input_tokens":50000,"cache_write_tokens":4000},"action":"plan","waste":"retries","tags":{"env":"dev"}})");
  ASSERT_EQ(usage.status, 201) << usage.body;
  EXPECT_EQ(usage.body, R"({"usage_id":"u1","cost_micros":90000,"overrun_micros":0,"seq":)" +
                            std::to_string(IntField(usage, "/seq")) + "}");
  EXPECT_EQ(Call("POST", "/v1/refunds", R"({"refund_id":"f1","usage_id":"u1","amount_micros":90001})").status,
            409);
  EXPECT_EQ(Call("POST", "/v1/refunds", R"({"refund_id":"f1","usage_id":"u1","amount_micros":10000})").status,
            201);
  EXPECT_EQ(Call("POST", "/v1/revenue", R"({"revenue_id":"v1","account":"team","amount_micros":200000})").status,
            201);
  EXPECT_EQ(Call("POST", "/v1/accounts/org/adjustments",
                 R"({"adjustment_id":"a1","amount_micros":-5,"reason":"rounding"})")
                .status,
            201);
  EXPECT_EQ(Call("PUT", "/v1/prices/my-model",
                 R"({"input_per_mtok_micros":1000000,"output_per_mtok_micros":2000000})")
                .status,
            200);
  EXPECT_NE(Call("POST", "/v1/estimate", R"({"model":"my-model","input_tokens":1000000,"output_tokens":1000000})")
                .body.find(R"("cost_micros":3000000)"),
            std::string::npos);
  Response spend = Call("GET", "/v1/accounts/org/spend?group_by=tag:env");
  ASSERT_EQ(spend.status, 200) << spend.body;
  EXPECT_NE(spend.body.find(R"("total_micros":80000,"calls":1)"), std::string::npos) << spend.body;
  EXPECT_NE(spend.body.find(R"("key":"dev","cost_micros":80000)"), std::string::npos) << spend.body;
  Response pnl = Call("GET", "/v1/accounts/org/pnl");
  EXPECT_EQ(pnl.body,
            R"({"revenue_micros":200000,"cost_micros":80000,"profit_micros":120000,"margin_pct":60})");
  EXPECT_EQ(Call("GET", "/v1/accounts/org/spend?group_by=bogus").status, 400);
  EXPECT_EQ(Call("GET", "/v1/accounts/org/spend?from=2026-13-01").status, 400);
}

TEST_F(Http, ABatchAppliesItemsInOrderAndAnswersEach) {
  Tree();
  std::string body = R"({"commands":[)"
                     R"({"op":"reserve","reservation_id":"b1","account":"agent","amount_micros":100},)"
                     R"({"op":"settle","reservation_id":"b1","amount_micros":60},)"
                     R"({"op":"reserve","reservation_id":"b1","account":"agent","amount_micros":999},)"
                     R"({"op":"deposit","account":"org","idempotency_key":"bd","amount_micros":5},)"
                     R"({"op":"frobnicate"},)"
                     R"({"op":"void","reservation_id":"nope"}]})";
  Response batch = Call("POST", "/v1/batch", body);
  ASSERT_EQ(batch.status, 200) << batch.body;
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(batch.body);
  std::vector<int64_t> statuses;
  for (auto result : root["results"].get_array()) statuses.push_back(int64_t(result["status"]));
  EXPECT_EQ(statuses, (std::vector<int64_t>{201, 200, 409, 201, 400, 404}));
  EXPECT_NE(batch.body.find(R"("cost_micros":60)"), std::string::npos);
}

TEST_F(Http, FortyConcurrentReservesAgainstACapThatAdmitsTenCreateExactlyTen) {
  Tree();
  ASSERT_EQ(Call("PUT", "/v1/accounts/team/caps", R"({"daily_limit_micros":1000000})").status, 200);
  std::atomic<int> created{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 40; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client(daemon_.http_port());
      Response response = client.Call(
          "POST", "/v1/reservations",
          R"({"reservation_id":"c)" + std::to_string(t) + R"(","account":"agent","amount_micros":100000})",
          daemon_.admin_key());
      if (response.status == 201) ++created;
      if (response.status == 402 && ErrorCode(response) == "daily_cap_exceeded") ++refused;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 10);
  EXPECT_EQ(refused.load(), 30);
}

TEST_F(Http, DailyReportsRoundTripWithExactDecimals) {
  Tree();
  std::string first = R"({"date":")" + FormatDate(DayOf(WallClockMicros())) +
                      R"(","total_tokens":1200,"total_cost":14.73,"total_requests":9,)"
                      R"("cost_by_model":{"gpt-4o":10.5,"claude-sonnet-4":4.23},"efficiency_score":87.5})";
  Response saved = client_->Call("POST", "/api/finops/daily-report?account=org", first, daemon_.admin_key());
  ASSERT_EQ(saved.status, 200) << saved.body;
  EXPECT_NE(saved.body.find(R"("ok":true)"), std::string::npos);
  Response dashboard = Call("GET", "/api/finops/dashboard?period=7d&account=org");
  ASSERT_EQ(dashboard.status, 200) << dashboard.body;
  EXPECT_NE(dashboard.body.find(R"("total_cost":14.73,)"), std::string::npos) << dashboard.body;
  EXPECT_NE(dashboard.body.find(R"("avg_efficiency":87.5)"), std::string::npos) << dashboard.body;
  EXPECT_NE(dashboard.body.find(R"("report_count":1)"), std::string::npos);
  // A second report for the date replaces the first.
  std::string second = first;
  second.replace(second.find("14.73"), 5, "0.1");
  ASSERT_EQ(client_->Call("POST", "/api/finops/daily-report?account=org", second, daemon_.admin_key()).status,
            200);
  Response trends = Call("GET", "/api/finops/cost-trends?period=30d&account=org");
  EXPECT_NE(trends.body.find(R"("total_cost":0.1,)"), std::string::npos) << trends.body;
  EXPECT_NE(trends.body.find(R"("gpt-4o":10.5)"), std::string::npos) << trends.body;
  EXPECT_EQ(Call("GET", "/api/finops/dashboard?period=7d&account=org").body.find("14.73"), std::string::npos);
  // A USD number with more than 6 decimals or an exponent is refused.
  std::string bad = first;
  bad.replace(bad.find("14.73"), 5, "1.0000001");
  EXPECT_EQ(client_->Call("POST", "/api/finops/daily-report?account=org", bad, daemon_.admin_key()).status, 400);
  // The ledger's own spend is untouched.
  EXPECT_EQ(IntField(Call("GET", "/v1/accounts/org/balance"), "/spent_total_micros"), 0);
  EXPECT_EQ(Call("GET", "/api/finops/efficiency-score?account=org").status, 200);
  EXPECT_EQ(Call("GET", "/api/finops/alerts?account=org").status, 200);
}

TEST_F(Http, WebhooksRefusePrivateAddressesAndAnalyticsAnswer) {
  Tree();
  Response loopback = Call("POST", "/v1/webhooks",
                           R"({"url":"http://127.0.0.1:9/hook","events":["overrun"],"secret":"s3cret"})");
  EXPECT_EQ(loopback.status, 400) << loopback.body;
  Response ok = Call("POST", "/v1/webhooks",
                     R"({"url":"https://93.184.216.34/hook","events":["overrun","account_frozen"],"secret":"s3cret"})");
  ASSERT_EQ(ok.status, 201) << ok.body;
  EXPECT_NE(Call("GET", "/v1/webhooks").body.find("93.184.216.34"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/webhooks/x/deliveries").status, 501);
  for (const char* path : {"/v1/accounts/org/trends?days=7", "/v1/accounts/org/burn-rate",
                           "/v1/burn-rates/active", "/v1/anomalies/active", "/v1/leaderboard",
                           "/v1/stats", "/v1/accounts/org/efficiency"}) {
    Response response = Call("GET", path);
    EXPECT_EQ(response.status, 200) << path << " " << response.body;
  }
}

TEST_F(Http, AdminEndpointsChargebackAndMetrics) {
  Tree();
  ASSERT_EQ(Call("POST", "/v1/usage", R"({"usage_id":"u1","account":"agent","amount_micros":1000000})").status, 201);
  Response head = Call("GET", "/v1/admin/chain-head");
  EXPECT_GT(IntField(head, "/seq"), 10);
  EXPECT_EQ(Call("GET", "/v1/admin/digest").status, 200);
  EXPECT_EQ(Call("POST", "/v1/admin/checkpoint", R"({"dir":")" + dir_.Sub("copy") + "\"}").status, 201);
  std::string team_admin = Key("team", "admin");
  EXPECT_EQ(client_->Call("GET", "/v1/admin/digest", "", team_admin).status, 403);
  Response invoice = Call("GET", "/v1/chargeback?parent=org&markup_pct=12.5");
  ASSERT_EQ(invoice.status, 200) << invoice.body;
  EXPECT_NE(invoice.body.find(R"("lines":[{"account":"team","cost_micros":1000000,"calls":1})"),
            std::string::npos)
      << invoice.body;
  EXPECT_NE(invoice.body.find(R"("subtotal_micros":1000000,"markup_micros":125000,"total_micros":1125000)"),
            std::string::npos);
  Response metrics = Call("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.content_type.find("text/plain"), std::string::npos);
  for (const char* name : {"purser_commands_total{type=\"usage\",result=\"ok\"} 1",
                           "purser_command_duration_seconds_bucket", "purser_group_commit_size_bucket",
                           "purser_fsync_duration_seconds_count", "purser_events_total",
                           "purser_reservations_pending 0", "purser_rejections_total",
                           "purser_alerts_total", "purser_spend_micro_usd_total"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
}

TEST(HttpSecurity, ANonLoopbackHttpAddressWithoutTlsIsRefused) {
  TempDir dir;
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    execl(PURSERD_BINARY, PURSERD_BINARY, "--data-dir", dir.Sub("data").c_str(), "--rpc",
          "127.0.0.1:0", "--http", "0.0.0.0:0", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace purser::testing
