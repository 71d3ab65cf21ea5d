// The HTTP/JSON API of ../shared/API.md against the real purserd, with a real
// HTTP client (Beast): endpoints, status and error codes, limits.

#include <utility>  // before Asio (../shared/PLATFORM.md)

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "ledger/base/clock.h"
#include "tests/daemon_util.h"
#include "tests/http_client.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

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

// The dashboard's order: the newest first (the list's bound then keeps the
// newest; tests/machine_test.cc crosses it). `truncated` only when cut.
TEST_F(Http, AlertsComeOldestFirstOrNewestFirstOnRequest) {
  Tree();
  ASSERT_EQ(Call("PUT", "/v1/accounts/agent/caps", R"({"daily_limit_micros":1000000})").status, 200);
  ASSERT_EQ(Call("POST", "/v1/usage", R"({"usage_id":"u1","account":"agent","amount_micros":600000})").status,
            201);  // 50%
  ASSERT_EQ(Call("POST", "/v1/usage", R"({"usage_id":"u2","account":"agent","amount_micros":350000})").status,
            201);  // 95%: 75 and 90
  Response oldest = Call("GET", "/v1/alerts?account=agent");
  Response newest = Call("GET", "/v1/alerts?account=agent&order=newest");
  ASSERT_EQ(oldest.status, 200) << oldest.body;
  ASSERT_EQ(newest.status, 200) << newest.body;
  EXPECT_EQ(IntField(oldest, "/alerts/0/threshold_pct"), 50) << oldest.body;
  EXPECT_EQ(IntField(oldest, "/alerts/2/threshold_pct"), 90) << oldest.body;
  EXPECT_EQ(IntField(newest, "/alerts/0/threshold_pct"), 90) << newest.body;
  EXPECT_EQ(IntField(newest, "/alerts/2/threshold_pct"), 50) << newest.body;
  EXPECT_EQ(oldest.body.size(), newest.body.size()) << "the same three alerts";
  EXPECT_EQ(newest.body.find("truncated"), std::string::npos) << "said only when cut";
  Response refused = Call("GET", "/v1/alerts?order=sideways");
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(ErrorCode(refused), "invalid_argument");
}

// Alert ids of a list's answer ("alerts", API.md or compatible), in order.
std::vector<uint64_t> AlertIds(const Response& response) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::vector<uint64_t> ids;
  if (parser.parse(response.body).get(root)) return ids;
  simdjson::dom::array alerts;
  if (root["alerts"].get(alerts)) return ids;
  for (simdjson::dom::element alert : alerts) {
    std::string_view id;
    if (!alert["id"].get(id) && !id.empty() && id.find_first_not_of("0123456789") == std::string_view::npos) {
      ids.push_back(std::stoull(std::string(id)));
    }
  }
  return ids;
}

// Past the 10,000 a list holds: the native list says it was cut and keeps the
// newest on request; the compatible list keeps the newest, oldest first.
TEST_F(Http, PastTheBoundTheAlertListsSayTruncatedAndTheCompatListKeepsTheNewest) {
  Tree();
  ASSERT_EQ(Call("POST", "/v1/usage", R"({"usage_id":"u1","account":"agent","amount_micros":5000000})").status,
            201);
  ASSERT_EQ(Call("PUT", "/v1/accounts/agent/caps", R"({"alert_thresholds_pct":[10,20,30,40,50,60,70,80]})").status,
            200);
  // Each change re-arms the three windows, all below the spend: 24 alerts.
  for (int limit = 1'000; limit < 1'000 + 10'000 / 24 + 2; ++limit) {
    const std::string value = std::to_string(limit);
    Response changed = Call("PUT", "/v1/accounts/agent/caps",
                            R"({"daily_limit_micros":)" + value + R"(,"monthly_limit_micros":)" + value +
                                R"(,"hard_limit_micros":)" + value + "}");
    ASSERT_EQ(changed.status, 200) << changed.body;
  }
  Response newest = Call("GET", "/v1/alerts?account=agent&order=newest");
  Response oldest = Call("GET", "/v1/alerts?account=agent");
  ASSERT_EQ(newest.status, 200);
  ASSERT_EQ(oldest.status, 200);
  EXPECT_NE(newest.body.find(R"("truncated":true)"), std::string::npos);
  EXPECT_NE(oldest.body.find(R"("truncated":true)"), std::string::npos);
  std::vector<uint64_t> newest_ids = AlertIds(newest);
  std::vector<uint64_t> oldest_ids = AlertIds(oldest);
  ASSERT_EQ(newest_ids.size(), 10'000u);
  ASSERT_EQ(oldest_ids.size(), 10'000u);
  EXPECT_GT(newest_ids.front(), oldest_ids.back()) << "the newest alert is past the oldest-first bound";

  Response compat = Call("GET", "/api/finops/alerts?account=agent");
  ASSERT_EQ(compat.status, 200);
  std::vector<uint64_t> compat_ids = AlertIds(compat);
  ASSERT_EQ(compat_ids.size(), 10'000u) << "the report's budget alerts have non-numeric ids";
  EXPECT_EQ(compat_ids.back(), newest_ids.front()) << "the newest alert, last";
  EXPECT_EQ(compat_ids.front(), newest_ids.back());
  EXPECT_TRUE(std::is_sorted(compat_ids.begin(), compat_ids.end())) << "oldest first";
}

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
  EXPECT_EQ(Call("GET", "/v1/webhooks/x/deliveries").status, 404);
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


std::string StrField(const Response& response, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(response.body).get(root)) return "<not json>";
  std::string_view value;
  if (root.at_pointer(pointer).get(value)) return "<missing>";
  return std::string(value);
}

// A loop of failing calls under runaway_action: freeze is stopped by the
// ledger itself, and the freeze shows in the account, the alerts and /metrics.
TEST_F(Http, ALoopingAgentWithErrorsIsFrozenByTheLedger) {
  Tree();
  ASSERT_EQ(Call("PUT", "/v1/accounts/team/caps",
                 R"({"runaway_action":"freeze","runaway_error_streak":5})")
                .status,
            200);
  for (int i = 0; i < 5; ++i) {
    std::string id = "loop-" + std::to_string(i);
    ASSERT_EQ(Call("POST", "/v1/reservations",
                   R"({"reservation_id":")" + id + R"(","account":"agent","amount_micros":100000})")
                  .status,
              201);
    Response settled = Call("POST", "/v1/reservations/" + id + "/settle",
                            R"({"amount_micros":90000,"outcome":"error"})");
    ASSERT_EQ(settled.status, 200) << settled.body;
  }
  Response account = Call("GET", "/v1/accounts/agent");
  EXPECT_NE(account.body.find(R"("frozen":true)"), std::string::npos) << account.body;
  EXPECT_NE(StrField(account, "/frozen_reason").find("runaway"), std::string::npos) << account.body;
  Response alerts = Call("GET", "/v1/alerts?type=runaway&account=agent");
  EXPECT_NE(alerts.body.find(R"("type":"runaway")"), std::string::npos) << alerts.body;
  Response refused = Call("POST", "/v1/reservations",
                          R"({"reservation_id":"loop-6","account":"agent","amount_micros":1000})");
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(ErrorCode(refused), "account_frozen");
  Response metrics = Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("purser_accounts_frozen 1"), std::string::npos);
  EXPECT_NE(metrics.body.find(R"(purser_alerts_total{type="runaway"} )"), std::string::npos);
  EXPECT_EQ(metrics.body.find(R"(purser_alerts_total{type="runaway"} 0)"), std::string::npos);
  EXPECT_NE(metrics.body.find(R"(purser_account_spend_today_micro_usd{account="team"} 450000)"),
            std::string::npos)
      << metrics.body;
  EXPECT_EQ(Call("POST", "/v1/accounts/agent/unfreeze").status, 200);
  EXPECT_EQ(Call("POST", "/v1/reservations",
                 R"({"reservation_id":"loop-7","account":"agent","amount_micros":1000})")
                .status,
            201);
}

TEST_F(Http, RateCapsAnswer429WithRetryAfter) {
  Tree();
  ASSERT_EQ(Call("PUT", "/v1/accounts/agent/caps", R"({"max_calls_per_minute":1})").status, 200);
  ASSERT_EQ(Call("POST", "/v1/reservations",
                 R"({"reservation_id":"a","account":"agent","amount_micros":1000})")
                .status,
            201);
  Response limited = Call("POST", "/v1/reservations",
                          R"({"reservation_id":"b","account":"agent","amount_micros":1000})");
  ASSERT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(ErrorCode(limited), "rate_limited");
  EXPECT_EQ(StrField(limited, "/error/account"), "agent");
  int64_t retry = IntField(limited, "/error/retry_after_s");
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 60);
  EXPECT_EQ(limited.retry_after, std::to_string(retry));
}

TEST_F(Http, EveryBatchOpAnswersExactlyWhatItsOwnEndpointAnswers) {
  Tree();
  ASSERT_EQ(Call("POST", "/v1/accounts", R"({"id":"worker","parent":"team","kind":"agent","wallet":true})")
                .status,
            201);
  // The single endpoints, then the same payloads (as retries) through a batch.
  struct Op {
    std::string op, method, target, body, extra, idempotency;
  };
  std::vector<Op> ops = {
      {"reserve", "POST", "/v1/reservations",
       R"("reservation_id":"r1","account":"agent","amount_micros":5000)", "", ""},
      {"settle", "POST", "/v1/reservations/r1/settle", R"("amount_micros":4000)",
       R"("reservation_id":"r1",)", ""},
      {"reserve", "POST", "/v1/reservations",
       R"("reservation_id":"r2","account":"agent","amount_micros":5000)", "", ""},
      {"void", "POST", "/v1/reservations/r2/void", R"("reason":"done")", R"("reservation_id":"r2",)", ""},
      {"usage", "POST", "/v1/usage", R"("usage_id":"u1","account":"agent","amount_micros":7000)", "", ""},
      {"refund", "POST", "/v1/refunds", R"("refund_id":"f1","usage_id":"u1","amount_micros":1000)", "", ""},
      {"revenue", "POST", "/v1/revenue", R"("revenue_id":"v1","account":"team","amount_micros":9000)", "", ""},
      {"deposit", "POST", "/v1/accounts/org/deposits", R"("amount_micros":3000)",
       R"("account":"org","idempotency_key":"dep-9",)", "dep-9"},
      {"transfer", "POST", "/v1/transfers",
       R"("transfer_id":"t1","from":"org","to":"worker","amount_micros":2000)", "", ""},
  };
  std::vector<Response> singles;
  for (const Op& op : ops) {
    Response single = Call(op.method, op.target, "{" + op.body + "}", op.idempotency);
    ASSERT_LT(single.status, 300) << op.op << " " << single.body;
    singles.push_back(single);
  }
  std::string batch = R"({"commands":[)";
  for (size_t i = 0; i < ops.size(); ++i) {
    batch += (i == 0 ? "" : ",") + std::string(R"({"op":")") + ops[i].op + "\"," + ops[i].extra +
             ops[i].body + "}";
  }
  batch += "]}";
  Response answered = Call("POST", "/v1/batch", batch);
  ASSERT_EQ(answered.status, 200) << answered.body;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_FALSE(parser.parse(answered.body).get(root));
  simdjson::dom::array results = root["results"];
  ASSERT_EQ(results.size(), ops.size());
  size_t i = 0;
  for (simdjson::dom::element result : results) {
    // A retry of a create answers 200 with the original body.
    std::string body = simdjson::to_string(result["body"]);
    EXPECT_EQ(body, singles[i].body) << ops[i].op;
    EXPECT_EQ(int64_t(result["status"]), 200) << ops[i].op;
    ++i;
  }
}

TEST_F(Http, AuthenticationComesFirstThenMethodsAreChecked) {
  Tree();
  EXPECT_EQ(client_->Call("GET", "/v1/nothing-here", "", "pk_wrong").status, 401);
  EXPECT_EQ(client_->Call("DELETE", "/v1/accounts", "", "pk_wrong").status, 401);
  EXPECT_EQ(client_->Call("POST", "/v1/reservations", "{not json", "pk_wrong").status, 401);
  Response wrong = Call("DELETE", "/v1/accounts/org");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(ErrorCode(wrong), "method_not_allowed");
  EXPECT_EQ(wrong.allow, "GET");
  Response caps = Call("GET", "/v1/accounts/org/caps");
  EXPECT_EQ(caps.status, 405);
  EXPECT_EQ(caps.allow, "PUT");
  EXPECT_EQ(Call("POST", "/v1/accounts/org/baseline").allow, "GET, PUT");
  EXPECT_EQ(Call("GET", "/v1/nothing-here").status, 404);
}

TEST_F(Http, TheNewReadsFollowTheContract) {
  Tree();
  ASSERT_EQ(Call("PUT", "/v1/accounts/team/baseline", R"({"micros_per_hour":1000000,"multiplier":2.5})")
                .status,
            200);
  Response baseline = Call("GET", "/v1/accounts/team/baseline");
  EXPECT_EQ(baseline.body, R"({"account":"team","micros_per_hour":1000000,"multiplier":2.5})");
  EXPECT_EQ(Call("GET", "/v1/accounts/agent/baseline").status, 404);
  ASSERT_EQ(Call("POST", "/v1/usage",
                 R"({"usage_id":"u1","account":"agent","amount_micros":600000,"run_id":"run-1"})")
                .status,
            201);
  Response burn = Call("GET", "/v1/accounts/team/burn-rate?window_s=300");
  EXPECT_EQ(burn.body, R"({"account":"team","window_s":300,"micros_per_hour":7200000,)"
                       R"("spend_micros":600000,"calls":1,"baseline_micros_per_hour":1000000,)"
                       R"("ratio_pct":720})");
  EXPECT_EQ(Call("GET", "/v1/accounts/team/burn-rate?window_s=30").status, 400);
  Response runs = Call("GET", "/v1/burn-rates/active?window_s=600");
  EXPECT_EQ(StrField(runs, "/runs/0/run_id"), "run-1");
  Response anomalies = Call("GET", "/v1/anomalies/active");
  EXPECT_EQ(StrField(anomalies, "/anomalies/0/account"), "team") << anomalies.body;
  Response trends = Call("GET", "/v1/accounts/org/trends?days=7");
  EXPECT_EQ(IntField(trends, "/period/days"), 7);
  EXPECT_EQ(IntField(trends, "/data/6/total_cost_micros"), 600'000);
  EXPECT_EQ(Call("GET", "/v1/accounts/org/trends?days=8").status, 400);
  Response leaderboard = Call("GET", "/v1/leaderboard?metric=spend&period=7d&parent=org");
  EXPECT_EQ(StrField(leaderboard, "/entries/0/account"), "agent");
  EXPECT_EQ(IntField(leaderboard, "/entries/0/spend_micros"), 600'000);
  Response stats = Call("GET", "/v1/stats");
  EXPECT_EQ(IntField(stats, "/spend_today_micros"), 600'000);
  Response efficiency = Call("GET", "/v1/accounts/org/efficiency");
  EXPECT_EQ(efficiency.status, 200);
  EXPECT_NE(efficiency.body.find(R"("score":100)"), std::string::npos) << efficiency.body;
  Response tags = Call("POST", "/v1/accounts/org/indexed-tag-keys", R"({"keys":["customer"]})");
  EXPECT_EQ(tags.body, R"({"indexed_tag_keys":["env","customer"]})");
  EXPECT_NE(Call("GET", "/v1/accounts/org").body.find(R"("indexed_tag_keys":["env","customer"])"),
            std::string::npos);
}

TEST_F(Http, ImportedHistoryCountsInItsDay) {
  Tree();
  int64_t day = DayOf(WallClockMicros()) - 3;
  std::string when = FormatDate(day) + "T12:00:00Z";
  Response usage = Call("POST", "/v1/usage",
                        R"({"usage_id":"h1","account":"agent","amount_micros":250000,"occurred_at":")" +
                            when + "\"}");
  ASSERT_EQ(usage.status, 201) << usage.body;
  Response spend = Call("GET", "/v1/accounts/org/spend?from=" + FormatDate(day) + "&to=" + FormatDate(day));
  EXPECT_EQ(IntField(spend, "/total_micros"), 250'000);
  EXPECT_EQ(IntField(Call("GET", "/v1/accounts/org/balance"), "/spent_today_micros"), 0);
  Response old = Call("POST", "/v1/usage",
                      R"({"usage_id":"h2","account":"agent","amount_micros":1,"occurred_at":")" +
                          FormatDate(day - 40) + "T00:00:00Z\"}");
  EXPECT_EQ(old.status, 400);
}

TEST_F(Http, RegisterOpensACustomerWithAFinopsKey) {
  Response registered = Call("POST", "/api/finops/register",
                             R"({"company_name":"Acme Corp","monthly_budget":100.5,"alert_threshold_pct":80})");
  ASSERT_EQ(registered.status, 201) << registered.body;
  std::string key = StrField(registered, "/api_key");
  EXPECT_EQ(key.rfind("finops_", 0), 0u) << key;
  std::string customer = StrField(registered, "/customer_id");
  Response missing = client_->Call("POST", "/api/finops/daily-report",
                                   R"({"date":"2026-11-20","total_cost":80,"total_tokens":5})", key);
  EXPECT_EQ(missing.status, 400) << "total_requests is required";
  Response report = client_->Call(
      "POST", "/api/finops/daily-report",
      R"({"date":")" + FormatDate(DayOf(WallClockMicros())) +
          R"(","total_cost":90.25,"total_tokens":5,"total_requests":3,"cost_by_model":{"gpt-4o":90},"waste_categories":{"retries":30}})",
      key);
  ASSERT_EQ(report.status, 200) << report.body;
  Response dashboard = client_->Call("GET", "/api/finops/dashboard?period=7d", "", key);
  ASSERT_EQ(dashboard.status, 200) << dashboard.body;
  EXPECT_NE(dashboard.body.find(R"("monthly_budget":100.5)"), std::string::npos) << dashboard.body;
  EXPECT_NE(dashboard.body.find(R"("rule":"waste_high")"), std::string::npos) << dashboard.body;
  EXPECT_NE(dashboard.body.find(R"("rule":"cheaper_model")"), std::string::npos) << dashboard.body;
  Response alerts = client_->Call("GET", "/api/finops/alerts", "", key);
  EXPECT_NE(alerts.body.find("report-budget-"), std::string::npos) << alerts.body;
  EXPECT_NE(alerts.body.find(R"("severity":"warning")"), std::string::npos) << alerts.body;
  EXPECT_EQ(Call("GET", "/v1/accounts/" + customer).status, 200);
}


// Sends raw bytes on a new connection (closing the write side when asked)
// and returns what comes back before the server closes.
std::string RawExchange(int port, const std::string& bytes, bool close_write = false) {
  net::io_context io;
  net::ip::tcp::socket socket(io);
  socket.connect({net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  beast::error_code error;
  net::write(socket, net::buffer(bytes), error);  // the server may answer and close early
  if (close_write) socket.shutdown(net::ip::tcp::socket::shutdown_send, error);
  std::string answer;
  char buffer[4096];
  for (;;) {
    size_t n = socket.read_some(net::buffer(buffer), error);
    answer.append(buffer, n);
    if (error) break;
  }
  return answer;
}

TEST_F(Http, MalformedRequestsGetAnAnswerBeforeTheConnectionCloses) {
  const int port = daemon_.http_port();
  struct Case {
    const char* name;
    std::string bytes;
    const char* status;
  };
  std::vector<Case> cases = {
      {"HTTP/0.9", "GET /healthz\r\n\r\n", "400"},
      {"garbage", std::string("\x16\x03\x01\x02\x00garbage\r\n\r\n", 16), "400"},
      {"both framings", "POST /v1/usage HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
      {"two lengths", "POST /v1/usage HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                      "Content-Length: 6\r\n\r\nabcde", "400"},
      {"negative length", "POST /v1/usage HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "400"},
      {"bad chunk size", "POST /v1/usage HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "zz\r\nabc\r\n0\r\n\r\n", "400"},
      {"batch over 16 MiB by length", "POST /v1/batch HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 20000000\r\n\r\n", "413"},
      {"batch over 16 MiB chunked",
       "POST /v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
           std::string("1000000\r\n") + std::string(0x1000000, 'a') + "\r\n" +
           std::string("1000000\r\n") + std::string(0x1000000, 'a') + "\r\n",
       "413"},
  };
  for (const Case& c : cases) {
    std::string answer = RawExchange(port, c.bytes, true);
    EXPECT_EQ(answer.substr(0, 12), std::string("HTTP/1.1 ") + c.status) << c.name << ": " << answer;
  }
  std::string head = RawExchange(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(head.substr(0, 12), "HTTP/1.1 200") << "HEAD /healthz needs no key";
  EXPECT_NE(head.find("Content-Length: 15"), std::string::npos);
  EXPECT_EQ(head.find("status"), std::string::npos) << "HEAD has no body: " << head;
  EXPECT_EQ(client_->Call("GET", "/healthz").status, 200) << "still serving";
}

TEST_F(Http, ABadCheckpointPathIsRefusedAndTheDaemonLives) {
  for (const std::string& dir :
       {std::string("/tmp/") + std::string(300, 'x'), std::string("relative/dir"),
        std::string("/tmp/../etc"), std::string("")}) {
    Response refused = Call("POST", "/v1/admin/checkpoint", R"({"dir":")" + dir + "\"}");
    EXPECT_EQ(refused.status, 400) << dir.substr(0, 40) << " " << refused.body;
  }
  Response nul = Call("POST", "/v1/admin/checkpoint", R"({"dir":"/tmp/a\u0000b"})");
  EXPECT_EQ(nul.status, 400) << nul.body;
  EXPECT_EQ(Call("POST", "/v1/admin/checkpoint", R"({"dir":"/nonexistent-parent/x"})").status, 400);
  EXPECT_EQ(client_->Call("GET", "/healthz").status, 200);
  Response good = Call("POST", "/v1/admin/checkpoint", R"({"dir":")" + dir_.Sub("copy") + "\"}");
  EXPECT_EQ(good.status, 201) << good.body;
}

TEST_F(Http, IdsAreOnePathSegmentAndOneCharacterSet) {
  Tree();
  Response slash = Call("POST", "/v1/reservations",
                        R"({"reservation_id":"a/b","account":"agent","amount_micros":1})");
  EXPECT_EQ(slash.status, 400) << slash.body;
  Response encoded = Call("POST", "/v1/reservations/a%2Fb/settle", R"({"amount_micros":1})");
  EXPECT_EQ(encoded.status, 400) << "an encoded slash stays inside its segment: an invalid id";
  EXPECT_EQ(ErrorCode(encoded), "invalid_argument");
  ASSERT_EQ(Call("POST", "/v1/reservations",
                 R"({"reservation_id":"run:7.step-1_x","account":"agent","amount_micros":1})")
                .status,
            201);
  EXPECT_EQ(Call("POST", "/v1/reservations/run%3A7.step-1_x/void").status, 200);
  Response zero = Call("POST", "/v1/reservations",
                       R"({"reservation_id":"z","account":"agent","amount_micros":1,"ttl_s":0})");
  EXPECT_EQ(zero.status, 400) << "ttl_s 0 is not the default: " << zero.body;
  Response thresholds = Call("PUT", "/v1/accounts/team/caps", R"({"alert_thresholds_pct":[-5]})");
  EXPECT_EQ(thresholds.status, 400);
  EXPECT_NE(thresholds.body.find("1..100"), std::string::npos) << thresholds.body;
}

}  // namespace
}  // namespace purser::testing
