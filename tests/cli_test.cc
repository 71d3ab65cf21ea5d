// The real `purser` binary against the real purserd: output and exit codes.

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>

#include <fstream>

#include "ledger/base/clock.h"
#include "tests/daemon_util.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

struct CliResult {
  int exit_code = -1;
  std::string out;
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon_.Start(dir_.Sub("data"))); }

  CliResult Run(const std::string& args, const std::string& key = "") {
    std::string command = "PURSER_KEY='" + (key.empty() ? daemon_.admin_key() : key) +
                          "' PURSER_CONNECT=" + daemon_.address() + " " + PURSER_CLI_BINARY + " " +
                          args + " 2>&1";
    CliResult result;
    FILE* pipe = popen(command.c_str(), "r");
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, n);
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
  }

  TempDir dir_;
  Daemon daemon_;
};

TEST_F(Cli, CreatesAccountsFundsThemAndShowsDecimalUsd) {
  EXPECT_EQ(Run("account create acme --wallet").exit_code, 0);
  EXPECT_EQ(Run("account create bot --parent acme").exit_code, 0);
  CliResult deposit = Run("deposit acme 25.00");
  EXPECT_EQ(deposit.exit_code, 0) << deposit.out;
  EXPECT_NE(deposit.out.find("$25"), std::string::npos) << deposit.out;
  CliResult reserve = Run("reserve bot 1.50 --id r1 --action search");
  EXPECT_EQ(reserve.exit_code, 0) << reserve.out;
  CliResult settle = Run("settle r1 0.7325 --json");
  EXPECT_EQ(settle.exit_code, 0) << settle.out;
  EXPECT_NE(settle.out.find("\"cost_micros\":732500"), std::string::npos) << settle.out;
  EXPECT_NE(settle.out.find("\"released_micros\":767500"), std::string::npos) << settle.out;
  CliResult balance = Run("balance bot");
  EXPECT_NE(balance.out.find("$24.2675"), std::string::npos) << balance.out;
}

TEST_F(Cli, BudgetsAndSpendAreReadableAndScriptable) {
  ASSERT_EQ(Run("account create acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("account create bot --parent acme").exit_code, 0);
  ASSERT_EQ(Run("deposit acme 10").exit_code, 0);
  CliResult budget = Run("budget set bot --daily 2.5 --monthly none --max-inflight 3 --json");
  EXPECT_EQ(budget.exit_code, 0) << budget.out;
  EXPECT_NE(budget.out.find("\"daily_limit_micros\":2500000"), std::string::npos) << budget.out;
  EXPECT_NE(budget.out.find("\"monthly_limit_micros\":null"), std::string::npos) << budget.out;
  ASSERT_EQ(Run("usage bot --model gpt-4o --input 1000 --output 500 --id u1").exit_code, 0);
  CliResult spend = Run("spend acme --group-by model");
  EXPECT_EQ(spend.exit_code, 0) << spend.out;
  EXPECT_NE(spend.out.find("gpt-4o"), std::string::npos) << spend.out;
  EXPECT_NE(spend.out.find("$0.0075"), std::string::npos) << spend.out;
}

TEST_F(Cli, ExitCodesSayWhatHappened) {
  ASSERT_EQ(Run("account create acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("account create bot --parent acme").exit_code, 0);
  CliResult poor = Run("reserve bot 5");
  EXPECT_EQ(poor.exit_code, 10 + 7) << poor.out;  // insufficient_funds
  EXPECT_NE(poor.out.find("insufficient_funds"), std::string::npos);
  EXPECT_EQ(Run("reserve bot 1.2345678").exit_code, 2) << "more than 6 decimals is a usage error";
  EXPECT_EQ(Run("frobnicate").exit_code, 2);
  EXPECT_EQ(Run("whoami", "pk_wrong").exit_code, 3);
  EXPECT_EQ(Run("balance nobody").exit_code, 10 + 2);  // not_found
}

TEST_F(Cli, KeysArePrintedOnceAndReaderKeysCannotWrite) {
  ASSERT_EQ(Run("account create acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("account create team --parent acme").exit_code, 0);
  CliResult created = Run("keys create team --role reader --json");
  ASSERT_EQ(created.exit_code, 0) << created.out;
  size_t at = created.out.find("\"api_key\":\"");
  ASSERT_NE(at, std::string::npos);
  std::string key = created.out.substr(at + 11, created.out.find('"', at + 11) - at - 11);
  EXPECT_EQ(Run("balance team", key).exit_code, 0);
  EXPECT_EQ(Run("reserve team 1", key).exit_code, 10 + 5);  // permission_denied
  CliResult list = Run("keys list");
  EXPECT_EQ(list.out.find("pk_"), std::string::npos) << "secrets are never listed";
}


TEST_F(Cli, AnUnknownFlagOrAMissingValueIsAUsageErrorNeverIgnored) {
  ASSERT_EQ(Run("account create acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("deposit acme 10").exit_code, 0);
  CliResult typo = Run("reserve acme 1 --idd x");
  EXPECT_EQ(typo.exit_code, 2) << typo.out;
  EXPECT_NE(typo.out.find("unknown flag --idd"), std::string::npos) << typo.out;
  EXPECT_NE(typo.out.find("usage: purser"), std::string::npos);
  CliResult missing = Run("reserve acme 1 --id");
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  EXPECT_NE(missing.out.find("--id needs a value"), std::string::npos) << missing.out;
  EXPECT_EQ(Run("reserve acme 1 --id --ttl 5").exit_code, 2) << "a flag is not a value";
  EXPECT_EQ(Run("balance acme --daily 5").exit_code, 2) << "a flag of another command";
  EXPECT_EQ(Run("void r1 --tag a=b").exit_code, 2);
  CliResult list = Run("alerts --json");
  EXPECT_EQ(list.exit_code, 0) << list.out;
  EXPECT_EQ(list.out.find("reservation"), std::string::npos) << "nothing was reserved";
}

TEST_F(Cli, ARevokedKeySaysAuthenticationFailed) {
  ASSERT_EQ(Run("account create acme").exit_code, 0);
  CliResult created = Run("keys create acme --role reader --json");
  size_t at = created.out.find("\"api_key\":\"");
  ASSERT_NE(at, std::string::npos) << created.out;
  std::string key = created.out.substr(at + 11, created.out.find('"', at + 11) - at - 11);
  size_t id_at = created.out.find("\"key_id\":\"");
  std::string key_id = created.out.substr(id_at + 10, created.out.find('"', id_at + 10) - id_at - 10);
  ASSERT_EQ(Run("keys revoke " + key_id).exit_code, 0);
  CliResult refused = Run("whoami", key);
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.out.find("authentication failed"), std::string::npos) << refused.out;
  EXPECT_EQ(refused.out.find("remote exception"), std::string::npos) << refused.out;
}

TEST_F(Cli, TransfersTrendsBurnAndEfficiency) {
  ASSERT_EQ(Run("account create acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("account create worker --parent acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("deposit acme 10").exit_code, 0);
  CliResult moved = Run("transfer acme worker 2.5 --id t1 --json");
  EXPECT_EQ(moved.exit_code, 0) << moved.out;
  EXPECT_NE(moved.out.find("\"to_balance_micros\":2500000"), std::string::npos) << moved.out;
  EXPECT_EQ(Run("transfer acme worker 100 --id t2").exit_code, 10 + 7);
  ASSERT_EQ(Run("usage worker 0.5 --run run-9 --outcome success").exit_code, 0);
  CliResult burn = Run("burn worker --window 600 --json");
  EXPECT_NE(burn.out.find("\"spend_micros\":500000"), std::string::npos) << burn.out;
  CliResult runs = Run("burn --active --json");
  EXPECT_NE(runs.out.find("run-9"), std::string::npos) << runs.out;
  CliResult trends = Run("trends acme --days 7");
  EXPECT_EQ(trends.exit_code, 0) << trends.out;
  EXPECT_EQ(Run("trends acme --days 8").exit_code, 2);
  EXPECT_EQ(Run("efficiency acme").exit_code, 0);
  CliResult pnl = Run("pnl acme --json");
  EXPECT_EQ(pnl.exit_code, 0) << pnl.out;
  EXPECT_NE(pnl.out.find("\"cost_micros\":500000"), std::string::npos) << pnl.out;
  EXPECT_EQ(Run("pnl acme --from 2026-13-01").exit_code, 2);
  EXPECT_EQ(Run("anomalies").exit_code, 0);
  EXPECT_EQ(Run("baseline set worker --rate 2 --multiplier 2.5").exit_code, 0);
  CliResult baseline = Run("baseline get worker --json");
  EXPECT_NE(baseline.out.find("\"multiplier\":2.5"), std::string::npos) << baseline.out;
  CliResult budget = Run("budget set worker --calls-per-minute 5 --runaway freeze "
                         "--runaway-multiplier 4 --json");
  EXPECT_EQ(budget.exit_code, 0) << budget.out;
  EXPECT_NE(budget.out.find("\"runaway_burn_multiplier\":4"), std::string::npos) << budget.out;
}

TEST_F(Cli, AHistoryImportOfAHundredThousandLinesRunsTwiceAndCountsOnce) {
  ASSERT_EQ(Run("account create acme --wallet").exit_code, 0);
  ASSERT_EQ(Run("account create bot --parent acme").exit_code, 0);
  ASSERT_EQ(Run("deposit acme 1000").exit_code, 0);
  std::string path = dir_.Sub("usage.jsonl");
  {
    std::ofstream out(path);
    int64_t now_s = WallClockMicros() / kMicrosPerSecond;
    for (int i = 0; i < 100'000; ++i) {
      int64_t at_s = now_s - 3600 - (i % (30 * 24)) * 3600;  // the last 30 days
      out << R"({"usage_id":"imp-)" << i << R"(","account":"bot","amount_micros":10,)"
          << R"("action":"chat","occurred_at":")" << FormatTimestamp(at_s * kMicrosPerSecond)
          << "\"}\n";
    }
    out << R"({"usage_id":"bad","account":"bot","amount_micros":-5})" << "\n";
  }
  CliResult first = Run("import " + path + " --json");
  EXPECT_EQ(first.exit_code, 4) << "one line was refused: " << first.out;
  EXPECT_NE(first.out.find("\"imported\":100000"), std::string::npos) << first.out;
  CliResult second = Run("import " + path + " --json");
  EXPECT_NE(second.out.find("\"imported\":0"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("\"already_present\":100000"), std::string::npos) << second.out;
  CliResult spend = Run("spend acme --from " + FormatDate(DayOf(WallClockMicros()) - 31) + " --json");
  EXPECT_NE(spend.out.find("\"total_micros\":1000000"), std::string::npos) << spend.out;
}

TEST_F(Cli, APriceMapImportsExactlyFromItsDecimalText) {
  std::string path = dir_.Sub("prices.json");
  {
    std::ofstream out(path);
    out << R"({"sample_spec": {"max_tokens": 4096},
      "acme-large": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 0.00001,
                     "cache_read_input_token_cost": 1.25e-6, "litellm_provider": "acme"},
      "acme-small": {"input_cost_per_token": 1.5E-07, "output_cost_per_token": 6e-7,
                     "cache_creation_input_token_cost": 0.0000001875},
      "acme-odd": {"input_cost_per_token": 1.23456789e-13, "output_cost_per_token": 1e-6}})";
  }
  CliResult imported = Run("prices import " + path + " --json");
  EXPECT_EQ(imported.exit_code, 4) << "acme-odd is not a whole micro-USD per million: " << imported.out;
  EXPECT_NE(imported.out.find("\"changed\":2"), std::string::npos) << imported.out;
  EXPECT_NE(imported.out.find("acme-odd"), std::string::npos) << imported.out;
  CliResult list = Run("prices list --json");
  EXPECT_NE(list.out.find(R"("model":"acme-large","input_per_mtok_micros":2500000,"output_per_mtok_micros":10000000,"cached_input_per_mtok_micros":1250000)"),
            std::string::npos)
      << list.out;
  EXPECT_NE(list.out.find(R"("model":"acme-small","input_per_mtok_micros":150000,"output_per_mtok_micros":600000,"cached_input_per_mtok_micros":null,"cache_write_per_mtok_micros":187500)"),
            std::string::npos)
      << list.out;
  CliResult again = Run("prices import " + path + " --json");
  EXPECT_NE(again.out.find("\"unchanged\":2"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace purser::testing
