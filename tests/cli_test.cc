// The real `purser` binary against the real purserd: output and exit codes.

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>

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

}  // namespace
}  // namespace purser::testing
