#include "cli/cli.h"

#include <simdjson.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <fstream>
#include <iostream>
#include <sstream>

#include <purser/client.h>
#include "http/http_json.h"
#include "http/json_views.h"
#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"
#include "ledger/base/flags.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/limits.h"
#include "ledger/base/money.h"

namespace purser {

namespace {

constexpr char kUsage[] = R"(usage: purser [--connect HOST:PORT] [--key KEY | --key-file F] [--json] <command>

  account create ID [--parent P] [--kind org|team|agent|workflow] [--name N] [--wallet]
                    [--tag-keys k1,k2]
  account get ID     account list [--parent P]     account index-tags ID k1,k2
  balance ACCOUNT
  budget set ACCOUNT [--daily USD|none] [--monthly USD|none] [--hard USD|none]
                     [--max-inflight N|none] [--ttl S|none] [--thresholds 50,75,90,100|none]
                     [--on-expiry release|charge|none] [--runaway alert|freeze|none]
                     [--runaway-streak N|none] [--runaway-multiplier X|none]
                     [--runaway-min USD/h|none] [--calls-per-minute N|none]
                     [--tokens-per-minute N|none] [--degrade-at PCT|none]
  budget get ACCOUNT
  baseline set ACCOUNT --rate USD/h [--multiplier X]       baseline get ACCOUNT
  deposit ACCOUNT USD [--id KEY] [--reference R]
  transfer FROM TO USD [--id ID] [--reason R]
  reserve ACCOUNT (USD | --model M --input N --max-output N) [--id ID] [--ttl S]
                  [--run R] [--action A] [--tag k=v]...
  settle ID (USD | --model M --input N --output N [--cached N] [--cache-write N]
            [--reasoning N]) [--action A] [--waste W] [--outcome success|error|cancelled]
            [--tag k=v]...
  void ID [--reason R]       extend ID --ttl S
  usage ACCOUNT (USD | --model M --input N --output N ...) [--id ID] [--action A]
                [--waste W] [--outcome O] [--run R] [--tag k=v]... [--occurred-at RFC3339]
  import FILE [--batch N]   usage records as JSON lines (the body of POST /v1/usage),
                            idempotent on usage_id: a second run imports nothing twice
  refund (--reservation ID | --usage ID) USD [--id ID] [--reason R]
  spend ACCOUNT [--from YYYY-MM-DD] [--to YYYY-MM-DD]
                [--group-by model|action|waste|outcome|child|day|run|tag:KEY]
  trends ACCOUNT [--days 7|30|90]          efficiency ACCOUNT [--from D] [--to D]
  pnl ACCOUNT [--from D] [--to D]          revenue, cost, profit and margin (this month by default)
  burn ACCOUNT [--window S]                burn --active [--parent P] [--window S] [--limit N]
  anomalies [--parent P]                   leaderboard [--metric spend|efficiency|waste]
  stats                                                [--period 7d|30d] [--parent P]
  alerts [--account A] [--since RFC3339] [--type budget_threshold|overrun|anomaly|runaway] [--order oldest|newest]
  prices list               prices set MODEL --input USD --output USD [--cached-input USD]
                            [--cache-write USD] [--reasoning USD]   (per million tokens)
  prices import FILE [--dry-run]   a gateway price map (per-model input_cost_per_token,
                            output_cost_per_token, cache_read_input_token_cost,
                            cache_creation_input_token_cost), converted exactly
  keys create ACCOUNT --role reader|writer|admin [--label L] [--id KEY]
  keys rotate KEY_ID [--grace S]      keys revoke KEY_ID      keys list
  freeze ACCOUNT [--reason R]         unfreeze ACCOUNT
  webhooks list
  webhooks add URL --events budget_threshold,overrun,... [--account A]
               [--secret-file F]   (without one, a new secret is made and shown once)
  webhooks update ID [--url U] [--events a,b] [--enable | --disable]
  webhooks rm ID
  webhooks deliveries ID [--state pending|delivered|retrying|dead] [--limit N]
  webhooks redeliver ID EVENT_ID
  checkpoint DIR            whoami

The key comes from --key, --key-file or $PURSER_KEY; the address from --connect or
$PURSER_CONNECT (default 127.0.0.1:8481). Money is decimal USD ("25.00"), converted
exactly to micro-USD. An unknown flag or a flag without its value is a usage error.

exit status: 0 ok; 2 bad usage; 3 cannot connect or authenticate;
             10 + the result code when the ledger refuses (e.g. 17 insufficient_funds,
             18 daily_cap_exceeded, 21 inflight_limit_reached, 25 unavailable,
             27 rate_limited); 4 an import or price import refused some records.
)";

constexpr int kExitUsage = 2;
constexpr int kExitConnect = 3;
constexpr int kExitRefusedBase = 10;

struct UsageError {
  std::string message;
};

// ---- argument helpers ------------------------------------------------------------

class Args {
 public:
  Args(Flags& flags) : flags_(flags), positional_(flags.positional()) {}

  std::string Positional(size_t index, const char* what) const {
    if (index >= positional_.size()) throw UsageError{std::string("missing ") + what};
    return positional_[index];
  }
  bool HasPositional(size_t index) const { return index < positional_.size(); }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    return flags_.Get(name, fallback);
  }
  bool Has(const std::string& name) const { return flags_.Has(name); }

  int64_t Usd(const std::string& text, const char* what) const {
    std::optional<int64_t> micros = ParseUsd(text);
    if (!micros) throw UsageError{std::string(what) + " must be decimal USD with at most 6 decimals"};
    return *micros;
  }
  // A decimal multiplier ("2.5") as basis points, exactly.
  int64_t BasisPoints(const std::string& text, const char* what) const {
    std::optional<int64_t> micros = ParseUsd(text);
    if (!micros || *micros % 100 != 0 || *micros < 0) {
      throw UsageError{std::string(what) + " must be a number with at most 4 decimals"};
    }
    return *micros / 100;
  }
  int64_t Int(const std::string& name, int64_t fallback) const {
    if (!flags_.Has(name)) return fallback;
    std::optional<int64_t> value = ParseInt64(flags_.Get(name));
    if (!value) throw UsageError{"--" + name + " must be a non-negative integer"};
    return *value;
  }
  Tags TagList() const {
    Tags tags;
    for (const std::string& arg : repeated_tags_) {
      size_t eq = arg.find('=');
      if (eq == std::string::npos) throw UsageError{"--tag must be key=value"};
      tags.push_back(Tag{arg.substr(0, eq), arg.substr(eq + 1)});
    }
    return tags;
  }
  std::vector<std::string> repeated_tags_;
  // "Now" for the defaults of date ranges (this month, today): the wall
  // clock, or the moment a replayed read is answered as of.
  int64_t now_us_ = WallClockMicros();

 private:
  Flags& flags_;
  const std::vector<std::string>& positional_;
};

std::optional<UsageTokens> TokensFrom(const Args& args, const char* output_flag) {
  if (!args.Has("model")) return std::nullopt;
  UsageTokens usage;
  usage.model = args.Get("model");
  usage.tokens.input = args.Int("input", 0);
  usage.tokens.output = args.Int(output_flag, 0);
  usage.tokens.cached_input = args.Int("cached", 0);
  usage.tokens.cache_write = args.Int("cache-write", 0);
  usage.tokens.reasoning = args.Int("reasoning", 0);
  return usage;
}

Patch<int64_t> LimitPatch(const Args& args, const std::string& flag, bool usd) {
  if (!args.Has(flag)) return {};
  std::string value = args.Get(flag);
  if (value == "none" || value == "null") return Patch<int64_t>::Remove();
  if (usd) return Patch<int64_t>::Set(args.Usd(value, ("--" + flag).c_str()));
  std::optional<int64_t> number = ParseInt64(value);
  if (!number) throw UsageError{"--" + flag + " must be an integer or none"};
  return Patch<int64_t>::Set(*number);
}

std::string NewId(const char* prefix) { return std::string(prefix) + RandomHex(8); }

// ---- commands -> requests ------------------------------------------------------------

RequestBody AccountCommand(const Args& args) {
  std::string sub = args.Positional(1, "account subcommand (create, get, list, index-tags)");
  if (sub == "get") return query::GetAccount{args.Positional(2, "account id")};
  if (sub == "list") return query::ListAccounts{args.Get("parent")};
  if (sub == "index-tags") {
    return cmd::IndexTagKeys{args.Positional(2, "account id"),
                             CommaList(args.Positional(3, "tag keys (k1,k2)"))};
  }
  if (sub != "create") throw UsageError{"unknown account subcommand " + sub};
  cmd::OpenAccount c;
  c.id = args.Positional(2, "account id");
  c.parent = args.Get("parent");
  std::string kind = args.Get("kind", c.parent.empty() ? "org" : "agent");
  if (!ParseAccountKind(kind, &c.kind)) throw UsageError{"--kind must be org, team, agent or workflow"};
  c.name = args.Get("name", c.id);
  c.wallet = args.Has("wallet");
  c.indexed_tag_keys = CommaList(args.Get("tag-keys"));
  return c;
}

RequestBody BudgetCommand(const Args& args) {
  std::string sub = args.Positional(1, "budget subcommand (set, get)");
  std::string account = args.Positional(2, "account");
  if (sub == "get") return query::GetAccount{account};
  if (sub != "set") throw UsageError{"unknown budget subcommand " + sub};
  cmd::SetCaps c;
  c.account = account;
  c.patch.daily_limit_micros = LimitPatch(args, "daily", true);
  c.patch.monthly_limit_micros = LimitPatch(args, "monthly", true);
  c.patch.hard_limit_micros = LimitPatch(args, "hard", true);
  c.patch.max_inflight = LimitPatch(args, "max-inflight", false);
  c.patch.reservation_ttl_s = LimitPatch(args, "ttl", false);
  if (args.Has("thresholds")) {
    std::string list = args.Get("thresholds");
    if (list == "none") {
      c.patch.alert_thresholds_pct = Patch<std::vector<uint8_t>>::Remove();
    } else {
      std::vector<uint8_t> thresholds;
      std::stringstream in(list);
      std::string item;
      while (std::getline(in, item, ',')) {
        std::optional<int64_t> pct = ParseInt64(item);
        if (!pct || *pct > 255) throw UsageError{"--thresholds must be percentages like 50,75,90"};
        thresholds.push_back(static_cast<uint8_t>(*pct));
      }
      c.patch.alert_thresholds_pct = Patch<std::vector<uint8_t>>::Set(thresholds);
    }
  }
  if (args.Has("on-expiry")) {
    std::string value = args.Get("on-expiry");
    if (value == "none") c.patch.on_expiry = Patch<OnExpiry>::Remove();
    else if (value == "release") c.patch.on_expiry = Patch<OnExpiry>::Set(OnExpiry::kRelease);
    else if (value == "charge") c.patch.on_expiry = Patch<OnExpiry>::Set(OnExpiry::kCharge);
    else throw UsageError{"--on-expiry must be release, charge or none"};
  }
  if (args.Has("runaway")) {
    std::string value = args.Get("runaway");
    if (value == "none") c.patch.runaway_action = Patch<RunawayAction>::Remove();
    else if (value == "alert") c.patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kAlert);
    else if (value == "freeze") c.patch.runaway_action = Patch<RunawayAction>::Set(RunawayAction::kFreeze);
    else throw UsageError{"--runaway must be alert, freeze or none"};
  }
  c.patch.runaway_error_streak = LimitPatch(args, "runaway-streak", false);
  c.patch.runaway_min_micros_per_hour = LimitPatch(args, "runaway-min", true);
  c.patch.max_calls_per_minute = LimitPatch(args, "calls-per-minute", false);
  c.patch.max_tokens_per_minute = LimitPatch(args, "tokens-per-minute", false);
  c.patch.degrade_at_pct = LimitPatch(args, "degrade-at", false);
  if (args.Has("runaway-multiplier")) {
    std::string value = args.Get("runaway-multiplier");
    if (value == "none") {
      c.patch.runaway_burn_multiplier_bp = Patch<int64_t>::Remove();
    } else {
      c.patch.runaway_burn_multiplier_bp = Patch<int64_t>::Set(args.BasisPoints(value, "--runaway-multiplier"));
    }
  }
  return c;
}

Outcome OutcomeFlag(const Args& args) {
  Outcome outcome = Outcome::kNone;
  if (args.Has("outcome") && !ParseOutcome(args.Get("outcome"), &outcome)) {
    throw UsageError{"--outcome must be success, error or cancelled"};
  }
  return outcome;
}

// Long by design: one branch per spending command and its flags.
RequestBody SpendingCommand(const std::string& command, const Args& args) {
  if (command == "reserve") {
    cmd::Reserve c;
    c.account = args.Positional(1, "account");
    c.reservation_id = args.Get("id", NewId("r_"));
    if (args.Has("model")) {
      c.estimate = Estimate{args.Get("model"), args.Int("input", 0), args.Int("max-output", 0)};
    } else {
      c.amount_micros = args.Usd(args.Positional(2, "amount (USD) or --model"), "amount");
    }
    c.ttl_s = args.Int("ttl", 0);
    c.run_id = args.Get("run");
    c.action = args.Get("action");
    c.tags = args.TagList();
    return c;
  }
  if (command == "settle") {
    cmd::Settle c;
    c.reservation_id = args.Positional(1, "reservation id");
    c.usage = TokensFrom(args, "output");
    if (!c.usage) c.amount_micros = args.Usd(args.Positional(2, "cost (USD) or --model"), "cost");
    if (args.Has("action")) c.action = args.Get("action");
    if (args.Has("waste")) c.waste = args.Get("waste");
    c.outcome = OutcomeFlag(args);
    c.tags = args.TagList();
    return c;
  }
  if (command == "usage") {
    cmd::RecordUsage c;
    c.account = args.Positional(1, "account");
    c.usage_id = args.Get("id", NewId("u_"));
    c.usage = TokensFrom(args, "output");
    if (!c.usage) c.amount_micros = args.Usd(args.Positional(2, "cost (USD) or --model"), "cost");
    c.action = args.Get("action");
    c.waste = args.Get("waste");
    c.outcome = OutcomeFlag(args);
    c.run_id = args.Get("run");
    c.tags = args.TagList();
    if (args.Has("occurred-at")) {
      std::optional<int64_t> at = ParseTimestamp(args.Get("occurred-at"));
      if (!at) throw UsageError{"--occurred-at must be RFC 3339 UTC"};
      c.occurred_at_us = *at;
    }
    return c;
  }
  if (command == "transfer") {
    return cmd::Transfer{args.Get("id", NewId("t_")), args.Positional(1, "from account"),
                         args.Positional(2, "to account"),
                         args.Usd(args.Positional(3, "amount (USD)"), "amount"),
                         args.Get("reason")};
  }
  if (command == "void") return cmd::Void{args.Positional(1, "reservation id"), args.Get("reason")};
  if (command == "extend") return cmd::Extend{args.Positional(1, "reservation id"), args.Int("ttl", 0)};
  if (command == "deposit") {
    return cmd::Deposit{args.Get("id", NewId("d_")), args.Positional(1, "account"),
                        args.Usd(args.Positional(2, "amount (USD)"), "amount"), args.Get("reference")};
  }
  // refund
  cmd::Refund c;
  c.refund_id = args.Get("id", NewId("f_"));
  if (args.Has("usage")) {
    c.target_kind = ChargeKind::kUsage;
    c.target_id = args.Get("usage");
  } else {
    c.target_id = args.Get("reservation");
    if (c.target_id.empty()) throw UsageError{"refund needs --reservation ID or --usage ID"};
  }
  c.amount_micros = args.Usd(args.Positional(1, "amount (USD)"), "amount");
  c.reason = args.Get("reason");
  return c;
}

RequestBody SpendQuery(const Args& args) {
  query::GetSpend q;
  q.account = args.Positional(1, "account");
  int64_t today = DayOf(args.now_us_);
  auto day = [&](const std::string& flag, int64_t fallback) {
    if (!args.Has(flag)) return fallback;
    std::optional<int64_t> parsed = ParseDate(args.Get(flag));
    if (!parsed) throw UsageError{"--" + flag + " must be YYYY-MM-DD"};
    return *parsed;
  };
  q.from_day = day("from", FirstDayOfMonth(MonthOfDay(today)));
  q.to_day = day("to", today);
  std::string group = args.Get("group-by", "none");
  if (group.rfind("tag:", 0) == 0) {
    q.group_by = GroupBy::kTag;
    q.tag_key = group.substr(4);
  } else {
    static const std::pair<const char*, GroupBy> kGroups[] = {
        {"none", GroupBy::kNone},   {"model", GroupBy::kModel}, {"action", GroupBy::kAction},
        {"waste", GroupBy::kWaste}, {"child", GroupBy::kChild}, {"day", GroupBy::kDay},
        {"outcome", GroupBy::kOutcome}, {"run", GroupBy::kRun}};
    bool known = false;
    for (const auto& [name, value] : kGroups) {
      if (group == name) {
        q.group_by = value;
        known = true;
      }
    }
    if (!known) {
      throw UsageError{"--group-by must be model, action, waste, outcome, child, day, run or tag:KEY"};
    }
  }
  return q;
}

// The secret a new webhook signs with: from --secret-file, or a new one that
// the command shows once. Never taken from the command line (ps shows it).
std::string WebhookSecret(const Args& args, bool* made) {
  *made = !args.Has("secret-file");
  if (*made) return "whsec_" + RandomHex(24);
  std::ifstream in(args.Get("secret-file"));
  std::string secret;
  if (!in || !std::getline(in, secret) || secret.empty()) {
    throw UsageError{"--secret-file must name a readable file whose first line is the secret"};
  }
  return secret;
}

RequestBody WebhookCommand(const Args& args) {
  std::string sub = args.Positional(1, "webhooks subcommand (list, add, update, rm, deliveries, redeliver)");
  if (sub == "list") return query::ListWebhooks{};
  if (sub == "rm") return cmd::RemoveWebhook{args.Positional(2, "webhook id")};
  if (sub == "add") {
    cmd::RegisterWebhook c;
    c.url = args.Positional(2, "url");
    if (!args.Has("events")) throw UsageError{"--events is required"};
    c.events = CommaList(args.Get("events"));
    c.account = args.Get("account");
    return c;  // the secret is added by the caller (WebhookSecret)
  }
  if (sub == "update") {
    cmd::UpdateWebhook c;
    c.webhook_id = args.Positional(2, "webhook id");
    if (args.Has("url")) c.url = args.Get("url");
    if (args.Has("events")) c.events = CommaList(args.Get("events"));
    if (args.Has("enable") && args.Has("disable")) throw UsageError{"--enable or --disable, not both"};
    if (args.Has("enable")) c.enabled = true;
    if (args.Has("disable")) c.enabled = false;
    if (!c.url && !c.events && !c.enabled) throw UsageError{"nothing to update"};
    return c;
  }
  if (sub == "deliveries" || sub == "redeliver") {
    args.Positional(2, "webhook id");
    if (sub == "redeliver") args.Positional(3, "event id");
    if (args.Has("state")) {
      std::string state = args.Get("state");
      if (state != "pending" && state != "delivered" && state != "retrying" && state != "dead") {
        throw UsageError{"--state must be pending, delivered, retrying or dead"};
      }
    }
    int64_t limit = args.Int("limit", 100);
    if (limit < 1 || limit > static_cast<int64_t>(kListLimitMax)) throw UsageError{"--limit must be in 1..10000"};
    return query::Authenticate{};  // sent as Ledger.webhookDeliveries or redeliver
  }
  throw UsageError{"unknown webhooks subcommand " + sub};
}

RequestBody AdminCommand(const std::string& command, const Args& args) {
  if (command == "prices") {
    std::string sub = args.Positional(1, "prices subcommand (list, set)");
    if (sub == "list") return query::ListPrices{};
    if (sub != "set") throw UsageError{"unknown prices subcommand " + sub};
    cmd::SetPrice c;
    c.model = args.Positional(2, "model");
    c.rates.input_per_mtok = args.Usd(args.Get("input", "x"), "--input");
    c.rates.output_per_mtok = args.Usd(args.Get("output", "x"), "--output");
    if (args.Has("cached-input")) c.rates.cached_input_per_mtok = args.Usd(args.Get("cached-input"), "--cached-input");
    if (args.Has("cache-write")) c.rates.cache_write_per_mtok = args.Usd(args.Get("cache-write"), "--cache-write");
    if (args.Has("reasoning")) c.rates.reasoning_per_mtok = args.Usd(args.Get("reasoning"), "--reasoning");
    return c;
  }
  if (command == "keys") {
    std::string sub = args.Positional(1, "keys subcommand (create, rotate, revoke, list)");
    if (sub == "list") return query::ListKeys{};
    if (sub == "revoke") return cmd::RevokeKey{args.Positional(2, "key id")};
    cmd::IssueKey c;
    c.request_id = args.Get("id");
    c.label = args.Get("label");
    if (sub == "rotate") {
      c.rotate_of = args.Positional(2, "key id");
      c.grace_s = args.Int("grace", 0);
      return c;
    }
    if (sub != "create") throw UsageError{"unknown keys subcommand " + sub};
    c.account = args.Positional(2, "account");
    if (!ParseRole(args.Get("role", "reader"), &c.role)) {
      throw UsageError{"--role must be reader, writer or admin"};
    }
    return c;
  }
  if (command == "webhooks") return WebhookCommand(args);
  if (command == "freeze") return cmd::Freeze{args.Positional(1, "account"), args.Get("reason")};
  if (command == "unfreeze") return cmd::Unfreeze{args.Positional(1, "account")};
  if (command == "alerts") {
    int64_t since = 0;
    if (args.Has("since")) {
      std::optional<int64_t> parsed = ParseTimestamp(args.Get("since"));
      if (!parsed) throw UsageError{"--since must be RFC 3339 UTC"};
      since = *parsed;
    }
    query::ListAlerts q{args.Get("account"), since, std::nullopt};
    if (args.Has("type")) {
      AlertType type;
      if (!ParseAlertType(args.Get("type"), &type)) {
        throw UsageError{"--type must be budget_threshold, overrun, anomaly or runaway"};
      }
      q.type = type;
    }
    if (!ParseNewestFirst(args.Has("order") ? args.Get("order") : "oldest", &q.newest_first)) {
      throw UsageError{"--order must be oldest or newest"};
    }
    return q;
  }
  if (command == "balance") return query::GetBalance{args.Positional(1, "account")};
  if (command == "whoami") return query::Authenticate{};
  if (command == "checkpoint") {
    args.Positional(1, "directory");
    return query::Authenticate{};  // sent as Ledger.checkpoint, not as a command
  }
  throw UsageError{"unknown command " + command};
}

int64_t DayFlag(const Args& args, const std::string& flag, int64_t fallback) {
  if (!args.Has(flag)) return fallback;
  std::optional<int64_t> parsed = ParseDate(args.Get(flag));
  if (!parsed) throw UsageError{"--" + flag + " must be YYYY-MM-DD"};
  return *parsed;
}

RequestBody AnalyticsCommand(const std::string& command, const Args& args) {
  int64_t today = DayOf(args.now_us_);
  if (command == "trends") {
    int64_t days = args.Int("days", 30);
    if (days != 7 && days != 30 && days != 90) throw UsageError{"--days must be 7, 30 or 90"};
    return query::GetTrends{args.Positional(1, "account"), days};
  }
  if (command == "efficiency") {
    return query::GetEfficiency{args.Positional(1, "account"),
                                DayFlag(args, "from", FirstDayOfMonth(MonthOfDay(today))),
                                DayFlag(args, "to", today)};
  }
  if (command == "pnl") {
    return query::GetPnl{args.Positional(1, "account"),
                         DayFlag(args, "from", FirstDayOfMonth(MonthOfDay(today))), DayFlag(args, "to", today)};
  }
  if (command == "burn") {
    int64_t window = args.Int("window", 3600);
    if (args.Has("active")) {
      return query::ListActiveRuns{args.Get("parent"), window,
                                   static_cast<size_t>(args.Int("limit", 100))};
    }
    return query::GetBurnRate{args.Positional(1, "account (or --active)"), window};
  }
  if (command == "anomalies") return query::ListAnomalies{args.Get("parent")};
  if (command == "stats") return query::GetStats{};
  if (command == "leaderboard") {
    query::GetLeaderboard q;
    q.parent = args.Get("parent");
    if (!ParseLeaderboardMetric(args.Get("metric", "spend"), &q.metric)) {
      throw UsageError{"--metric must be spend, efficiency or waste"};
    }
    std::string period = args.Get("period", "7d");
    if (period != "7d" && period != "30d") throw UsageError{"--period must be 7d or 30d"};
    q.days = period == "7d" ? 7 : 30;
    q.limit = static_cast<size_t>(args.Int("limit", 100));
    return q;
  }
  // baseline
  std::string sub = args.Positional(1, "baseline subcommand (set, get)");
  std::string account = args.Positional(2, "account");
  if (sub == "get") return query::GetBaseline{account};
  if (sub != "set") throw UsageError{"unknown baseline subcommand " + sub};
  if (!args.Has("rate")) throw UsageError{"baseline set needs --rate USD/h"};
  cmd::SetBaseline c;
  c.account = account;
  c.micros_per_hour = args.Usd(args.Get("rate"), "--rate");
  if (args.Has("multiplier")) c.multiplier_bp = args.BasisPoints(args.Get("multiplier"), "--multiplier");
  return c;
}

RequestBody BuildRequest(const Args& args) {
  std::string command = args.Positional(0, "command");
  if (command == "account") return AccountCommand(args);
  if (command == "budget") return BudgetCommand(args);
  if (command == "spend") return SpendQuery(args);
  for (const char* spending :
       {"reserve", "settle", "usage", "void", "extend", "deposit", "refund", "transfer"}) {
    if (command == spending) return SpendingCommand(command, args);
  }
  for (const char* analytics :
       {"trends", "efficiency", "pnl", "burn", "anomalies", "stats", "leaderboard", "baseline"}) {
    if (command == analytics) return AnalyticsCommand(command, args);
  }
  return AdminCommand(command, args);
}

// ---- human output ------------------------------------------------------------------

std::string Scalar(const std::string& key, simdjson::dom::element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::NULL_VALUE: return "-";
    case simdjson::dom::element_type::BOOL: return bool(value) ? "yes" : "no";
    case simdjson::dom::element_type::INT64: {
      int64_t number = int64_t(value);
      if (key.size() > 7 && key.compare(key.size() - 7, 7, "_micros") == 0) {
        return "$" + FormatUsd(number);
      }
      return std::to_string(number);
    }
    case simdjson::dom::element_type::UINT64: return std::to_string(uint64_t(value));
    case simdjson::dom::element_type::STRING: return std::string(std::string_view(value));
    default: return simdjson::to_string(value);
  }
}

std::string Label(const std::string& key) {
  if (key.size() > 7 && key.compare(key.size() - 7, 7, "_micros") == 0) return key.substr(0, key.size() - 7);
  return key;
}

void PrintTable(simdjson::dom::array rows, std::ostream& out) {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> cells;
  for (simdjson::dom::element row : rows) {
    simdjson::dom::object object;
    if (row.get(object)) continue;
    if (columns.empty()) {
      for (auto field : object) {
        if (field.value.type() != simdjson::dom::element_type::OBJECT &&
            field.value.type() != simdjson::dom::element_type::ARRAY) {
          columns.emplace_back(field.key);
        }
      }
    }
    std::vector<std::string> line;
    for (const std::string& column : columns) {
      simdjson::dom::element value;
      line.push_back(object[column].get(value) ? "" : Scalar(column, value));
    }
    cells.push_back(std::move(line));
  }
  if (columns.empty()) {
    out << "(none)\n";
    return;
  }
  std::vector<size_t> width(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    width[c] = Label(columns[c]).size();
    for (const auto& line : cells) width[c] = std::max(width[c], line[c].size());
  }
  for (size_t c = 0; c < columns.size(); ++c) {
    out << Label(columns[c]) << std::string(width[c] - Label(columns[c]).size() + 2, ' ');
  }
  out << '\n';
  for (const auto& line : cells) {
    for (size_t c = 0; c < columns.size(); ++c) out << line[c] << std::string(width[c] - line[c].size() + 2, ' ');
    out << '\n';
  }
}

void PrintObject(simdjson::dom::object object, std::ostream& out, const std::string& indent) {
  size_t width = 0;
  for (auto field : object) width = std::max(width, Label(std::string(field.key)).size());
  for (auto field : object) {
    std::string key(field.key);
    if (field.value.type() == simdjson::dom::element_type::OBJECT) {
      out << indent << Label(key) << ":\n";
      PrintObject(simdjson::dom::object(field.value), out, indent + "  ");
    } else if (field.value.type() == simdjson::dom::element_type::ARRAY) {
      simdjson::dom::array array(field.value);
      bool objects = array.size() > 0 && array.at(0).type() == simdjson::dom::element_type::OBJECT;
      if (objects) {
        PrintTable(array, out);
      } else {
        out << indent << Label(key) << std::string(width - Label(key).size() + 2, ' ');
        bool first = true;
        for (auto item : array) {
          out << (first ? "" : ", ") << Scalar(key, item);
          first = false;
        }
        out << '\n';
      }
    } else {
      out << indent << Label(key) << std::string(width - Label(key).size() + 2, ' ')
          << Scalar(key, field.value) << '\n';
    }
  }
}

void PrintHuman(const Reply& reply, std::ostream& out) {
  if (!reply.ok()) {
    out << "refused: " << ResultCodeName(reply.code) << ": " << reply.message << '\n';
    return;
  }
  std::string json = ReplyToJson(reply);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root)) {
    out << json << '\n';
    return;
  }
  PrintObject(simdjson::dom::object(root), out, "");
}

int PrintDeliveries(const std::vector<DeliveryView>& deliveries, bool json) {
  std::string text = DeliveriesJson(deliveries);
  if (json) {
    std::cout << text << '\n';
    return 0;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text).get(root)) return 1;
  PrintObject(simdjson::dom::object(root), std::cout, "");
  return 0;
}

std::string KeyFromArgs(Flags& flags) {
  if (flags.Has("key")) return flags.Get("key");
  if (flags.Has("key-file")) {
    std::ifstream in(flags.Get("key-file"));
    std::string key;
    std::getline(in, key);
    return key;
  }
  const char* env = std::getenv("PURSER_KEY");
  return env == nullptr ? "" : env;
}

}  // namespace

namespace {

// ---- the flags each command takes -----------------------------------------------------

// Every command's own flags; the global ones (connect, key, key-file,
// tls-ca, json, help) go with all of them.
const std::vector<std::string>* FlagsOf(const std::vector<std::string>& positional) {
  static const std::map<std::string, std::vector<std::string>> kFlags = {
      {"account create", {"parent", "kind", "name", "wallet", "tag-keys"}},
      {"account get", {}},
      {"account list", {"parent"}},
      {"account index-tags", {}},
      {"balance", {}},
      {"budget set",
       {"daily", "monthly", "hard", "max-inflight", "ttl", "thresholds", "on-expiry", "runaway",
        "runaway-streak", "runaway-multiplier", "runaway-min", "calls-per-minute",
        "tokens-per-minute", "degrade-at"}},
      {"budget get", {}},
      {"baseline set", {"rate", "multiplier"}},
      {"baseline get", {}},
      {"deposit", {"id", "reference"}},
      {"transfer", {"id", "reason"}},
      {"reserve", {"model", "input", "max-output", "id", "ttl", "run", "action", "tag"}},
      {"settle",
       {"model", "input", "output", "cached", "cache-write", "reasoning", "action", "waste",
        "outcome", "tag"}},
      {"void", {"reason"}},
      {"extend", {"ttl"}},
      {"usage",
       {"model", "input", "output", "cached", "cache-write", "reasoning", "id", "action", "waste",
        "outcome", "run", "tag", "occurred-at"}},
      {"import", {"batch"}},
      {"refund", {"reservation", "usage", "id", "reason"}},
      {"spend", {"from", "to", "group-by"}},
      {"pnl", {"from", "to"}},
      {"trends", {"days"}},
      {"efficiency", {"from", "to"}},
      {"burn", {"window", "active", "parent", "limit"}},
      {"anomalies", {"parent"}},
      {"leaderboard", {"metric", "period", "parent", "limit"}},
      {"stats", {}},
      {"alerts", {"account", "since", "type", "order"}},
      {"prices list", {}},
      {"prices set", {"input", "output", "cached-input", "cache-write", "reasoning"}},
      {"prices import", {"dry-run"}},
      {"keys create", {"role", "label", "id"}},
      {"keys rotate", {"grace", "id", "label"}},
      {"keys revoke", {}},
      {"keys list", {}},
      {"freeze", {"reason"}},
      {"unfreeze", {}},
      {"checkpoint", {}},
      {"webhooks list", {}},
      {"webhooks add", {"events", "account", "secret-file"}},
      {"webhooks update", {"url", "events", "enable", "disable"}},
      {"webhooks rm", {}},
      {"webhooks deliveries", {"state", "limit"}},
      {"webhooks redeliver", {}},
      {"whoami", {}},
  };
  if (positional.empty()) return nullptr;
  if (positional.size() >= 2) {
    auto it = kFlags.find(positional[0] + " " + positional[1]);
    if (it != kFlags.end()) return &it->second;
  }
  auto it = kFlags.find(positional[0]);
  return it == kFlags.end() ? nullptr : &it->second;
}

// "" when every flag given is one the command takes, else the first that is not.
std::string UnknownFlag(const Flags& flags, const std::vector<std::string>& own) {
  std::vector<std::string> known = {"connect", "key", "key-file", "tls-ca", "json", "help"};
  known.insert(known.end(), own.begin(), own.end());
  std::vector<std::string> unknown = flags.Unknown(known);
  return unknown.empty() ? "" : unknown.front();
}

// ---- imports -----------------------------------------------------------------------------

bool IsTerminal() { return isatty(STDERR_FILENO) == 1; }

// `purser import FILE`: usage records as JSON lines, in batches, idempotent
// on usage_id. Progress on a terminal, then a summary. Long: the read, send
// and count loop reads best whole.
int ImportUsage(Client& client, const std::string& path, size_t batch, bool json) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "purser: cannot read " << path << '\n';
    return kExitUsage;
  }
  struct Totals {
    int64_t lines = 0, imported = 0, present = 0, refused = 0, invalid = 0;
    int64_t cost_micros = 0;
  } totals;
  std::vector<std::string> problems;
  std::vector<RequestBody> bodies;
  std::vector<int64_t> line_numbers;
  auto note = [&](int64_t line, const std::string& what) {
    if (problems.size() < 10) problems.push_back("line " + std::to_string(line) + ": " + what);
  };
  auto flush = [&]() {
    if (bodies.empty()) return;
    std::vector<Reply> replies = client.CallBatch(std::move(bodies));
    for (size_t i = 0; i < replies.size(); ++i) {
      const Reply& reply = replies[i];
      if (!reply.ok()) {
        ++totals.refused;
        note(line_numbers[i], std::string(ResultCodeName(reply.code)) + ": " + reply.message);
      } else if (reply.created) {
        ++totals.imported;
        totals.cost_micros += std::get<UsageResult>(reply.body).cost_micros;
      } else {
        ++totals.present;
      }
    }
    bodies.clear();
    line_numbers.clear();
    if (IsTerminal()) {
      std::cerr << "\rimport: " << totals.lines << " lines, " << totals.imported << " imported, "
                << totals.present << " already there, " << totals.refused + totals.invalid
                << " refused" << std::flush;
    }
  };
  std::string line;
  while (std::getline(in, line)) {
    ++totals.lines;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    cmd::RecordUsage c;
    if (DecodeError e = DecodeUsage(line, &c); !e.ok()) {
      ++totals.invalid;
      note(totals.lines, e.message);
      continue;
    }
    if (c.usage_id.empty() || c.account.empty()) {
      ++totals.invalid;
      note(totals.lines, "usage_id and account are required");
      continue;
    }
    bodies.push_back(std::move(c));
    line_numbers.push_back(totals.lines);
    if (bodies.size() >= batch) flush();
  }
  flush();
  if (IsTerminal()) std::cerr << '\n';
  if (json) {
    JsonWriter w;
    w.BeginObject().Field("lines", totals.lines).Field("imported", totals.imported);
    w.Field("already_present", totals.present).Field("refused", totals.refused);
    w.Field("invalid", totals.invalid).Field("cost_micros", totals.cost_micros).EndObject();
    std::cout << w.Take() << '\n';
  } else {
    std::cout << "imported " << totals.imported << " of " << totals.lines << " lines ($"
              << FormatUsd(totals.cost_micros) << "); " << totals.present
              << " were already there; " << totals.refused << " refused; " << totals.invalid
              << " invalid\n";
  }
  for (const std::string& problem : problems) std::cerr << "  " << problem << '\n';
  return totals.refused + totals.invalid > 0 ? 4 : 0;
}

}  // namespace

// A decimal number's text ("2.5e-06", "0.0000025") times 10^12, exactly:
// the micro-USD per million tokens of a USD-per-token price. nullopt when it
// is negative, not a number, or not a whole number of micro-USD per million.
std::optional<int64_t> PerTokenToMicrosPerMtok(std::string_view text) {
  size_t i = 0;
  if (i < text.size() && text[i] == '-') return std::nullopt;
  std::string digits;
  int64_t exponent = 0;
  bool any = false;
  bool point = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      if (point) --exponent;
      any = true;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!any) return std::nullopt;
  if (i < text.size()) {
    if (text[i] != 'e' && text[i] != 'E') return std::nullopt;
    ++i;
    bool negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
    if (i == text.size() || text.size() - i > 4) return std::nullopt;
    int64_t e = 0;
    for (; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      e = e * 10 + (text[i] - '0');
    }
    exponent += negative ? -e : e;
  }
  exponent += 12;  // USD per token -> micro-USD per million tokens
  while (!digits.empty() && digits.front() == '0') digits.erase(digits.begin());
  if (digits.empty()) return 0;
  // Drop trailing zeros into the exponent, then the value must be whole.
  while (digits.size() > 1 && digits.back() == '0' && exponent < 0) {
    digits.pop_back();
    ++exponent;
  }
  if (exponent < 0) return std::nullopt;
  if (static_cast<int64_t>(digits.size()) + exponent > 13) return std::nullopt;  // > 10^12
  digits.append(static_cast<size_t>(exponent), '0');
  std::optional<int64_t> value = ParseInt64(digits);
  if (!value || *value > kInputValueMax) return std::nullopt;
  return value;
}

namespace {

// `purser prices import FILE`: the price map LLM gateways keep. Long: read,
// convert exactly, show the plan, then write, in one readable sequence.
int ImportPrices(Client* client, const std::string& path, bool dry_run, bool json) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "purser: cannot read " << path << '\n';
    return kExitUsage;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  simdjson::padded_string padded(text);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document document;
  simdjson::ondemand::object models;
  if (parser.iterate(padded).get(document) || document.get_object().get(models)) {
    std::cerr << "purser: " << path << " is not a JSON object of models\n";
    return kExitUsage;
  }
  std::vector<RequestBody> prices;
  std::vector<std::string> skipped;
  for (auto field : models) {
    std::string_view raw_key;
    if (field.unescaped_key().get(raw_key)) continue;
    std::string model(raw_key);
    simdjson::ondemand::object entry;
    if (field.value().get_object().get(entry)) continue;
    std::optional<int64_t> rates[4];
    bool bad = false;
    for (auto property : entry) {
      std::string_view name;
      if (property.unescaped_key().get(name)) continue;
      static const char* kNames[4] = {"input_cost_per_token", "output_cost_per_token",
                                      "cache_read_input_token_cost",
                                      "cache_creation_input_token_cost"};
      for (int k = 0; k < 4; ++k) {
        if (name != kNames[k]) continue;
        simdjson::ondemand::json_type type;
        if (property.value().type().get(type) || type != simdjson::ondemand::json_type::number) {
          bad = true;
          continue;
        }
        std::string_view token = property.value().raw_json_token();
        while (!token.empty() && (token.back() == ' ' || token.back() == '\n' ||
                                  token.back() == '\r' || token.back() == '\t' || token.back() == ',')) {
          token.remove_suffix(1);
        }
        rates[k] = PerTokenToMicrosPerMtok(token);
        if (!rates[k]) bad = true;
      }
    }
    if (bad || model.size() > 128) {
      skipped.push_back(model);
      continue;
    }
    if (!rates[0] || !rates[1]) continue;  // not a token-priced model (images, specs)
    prices.push_back(cmd::SetPrice{
        model, PriceRates{*rates[0], *rates[1], rates[2].value_or(-1), rates[3].value_or(-1), -1}});
  }
  int64_t changed = 0, unchanged = 0, refused = 0;
  std::vector<std::string> problems;
  if (!dry_run) {
    for (size_t start = 0; start < prices.size(); start += kBatchCommandsMax) {
      size_t end = std::min(prices.size(), start + kBatchCommandsMax);
      std::vector<RequestBody> batch(prices.begin() + static_cast<std::ptrdiff_t>(start),
                                     prices.begin() + static_cast<std::ptrdiff_t>(end));
      std::vector<Reply> replies = client->CallBatch(std::move(batch));
      for (size_t i = 0; i < replies.size(); ++i) {
        if (!replies[i].ok()) {
          ++refused;
          if (problems.size() < 10) {
            problems.push_back(std::get<cmd::SetPrice>(prices[start + i]).model + ": " +
                               replies[i].message);
          }
        } else if (replies[i].created) {
          ++changed;
        } else {
          ++unchanged;
        }
      }
    }
  }
  if (json) {
    JsonWriter w;
    w.BeginObject().Field("models", static_cast<int64_t>(prices.size()));
    w.Field("changed", changed).Field("unchanged", unchanged).Field("refused", refused);
    w.Key("skipped").BeginArray();
    for (const std::string& model : skipped) w.String(model);
    w.EndArray().Field("dry_run", dry_run).EndObject();
    std::cout << w.Take() << '\n';
  } else {
    std::cout << prices.size() << " models priced per token" << (dry_run ? " (dry run)" : "")
              << ": " << changed << " changed, " << unchanged << " unchanged, " << refused
              << " refused; " << skipped.size()
              << " skipped (a price that is not a whole micro-USD per million tokens)\n";
  }
  for (const std::string& problem : problems) std::cerr << "  " << problem << '\n';
  return refused > 0 || !skipped.empty() ? 4 : 0;
}

}  // namespace

namespace {

int UsageFailure(const std::string& message) {
  std::cerr << "purser: " << message << "\n\n" << kUsage;
  return kExitUsage;
}

// Prints the answer (JSON or for people) and returns the exit status.
int Finish(const Reply& reply, bool json) {
  if (json) {
    std::cout << ReplyToJson(reply) << '\n';
  } else {
    PrintHuman(reply, reply.ok() ? std::cout : std::cerr);
  }
  return reply.ok() ? 0 : kExitRefusedBase + static_cast<int>(reply.code);
}

// Connects, or explains why not (a bad key apart from an unreachable server).
Result<std::unique_ptr<Client>> ConnectOrExplain(const ClientOptions& options) {
  Result<std::unique_ptr<Client>> client = Client::Connect(options);
  if (client.ok()) return client;
  const std::string& message = client.status().message();
  if (message.find("unauthenticated") != std::string::npos) {
    std::cerr << "purser: authentication failed: the API key is not valid (unknown, revoked, "
                 "or rotated and past its grace)\n";
  } else {
    std::cerr << "purser: cannot connect to " << options.address << ": " << message << '\n';
  }
  return client;
}

// `webhooks add`: the secret is made here when not given, and shown once.
int AddWebhook(Client& client, RequestBody body, Args& args, bool json) {
  bool made = false;
  try {
    std::get<cmd::RegisterWebhook>(body).secret = WebhookSecret(args, &made);
  } catch (const UsageError& error) {
    return UsageFailure(error.message);
  }
  const std::string shown_secret = made ? std::get<cmd::RegisterWebhook>(body).secret : "";
  Reply reply = client.Call(std::move(body));
  if (!reply.ok()) return Finish(reply, json);
  const std::string& id = std::get<IdResult>(reply.body).id;
  if (json) {
    JsonWriter w;
    w.BeginObject().Field("webhook_id", id).OptionalField("secret", shown_secret).EndObject();
    std::cout << w.Take() << '\n';
  } else {
    std::cout << "webhook_id  " << id << '\n';
    if (made) {
      std::cout << "secret      " << shown_secret
                << "\n(shown once: receivers verify Purser-Signature with it)\n";
    }
  }
  return 0;
}

// The commands that are not one request: checkpoint, webhook deliveries and
// redelivery, webhooks add; everything else is one Call.
int Run(Client& client, const Flags& flags, Args& args, RequestBody body) {
  const std::string& command = flags.positional()[0];
  const std::string sub = flags.positional().size() > 1 ? flags.positional()[1] : "";
  const bool json = flags.Has("json");
  if (command == "checkpoint") return Finish(client.Checkpoint(args.Positional(1, "directory")), json);
  if (command == "webhooks" && sub == "redeliver") {
    return Finish(client.Redeliver(flags.positional()[2], flags.positional()[3]), json);
  }
  if (command == "webhooks" && sub == "deliveries") {
    std::vector<DeliveryView> deliveries;
    Reply reply = client.WebhookDeliveries(flags.positional()[2],
                                           static_cast<uint32_t>(args.Int("limit", 100)),
                                           flags.Get("state"), &deliveries);
    if (reply.ok()) return PrintDeliveries(deliveries, json);
    return Finish(reply, json);
  }
  if (command == "webhooks" && sub == "add") return AddWebhook(client, std::move(body), args, json);
  return Finish(client.Call(std::move(body)), json);
}

// What is wrong with a command line before its request is built (a flag
// that does not parse, an unknown command, a flag the command does not
// take), or "" when nothing is. `flags` holds a command.
std::string CommandLineProblem(const Flags& flags, const std::vector<std::string>& tags) {
  if (!flags.error().empty()) return flags.error();
  const std::vector<std::string>* own = FlagsOf(flags.positional());
  if (own == nullptr) return "unknown command " + flags.positional()[0];
  if (std::string unknown = UnknownFlag(flags, *own); !unknown.empty()) {
    return "unknown flag --" + unknown + " for " + flags.positional()[0];
  }
  if (!tags.empty() && std::find(own->begin(), own->end(), "tag") == own->end()) {
    return "unknown flag --tag for " + flags.positional()[0];
  }
  return "";
}

// The flags that take no value.
const std::vector<std::string> kBooleanFlags = {"json",    "wallet", "help",   "active",
                                                "dry-run", "enable", "disable"};

// Repeated --tag flags are collected before the generic parser (which keeps
// the last); *rest receives the other arguments.
std::vector<std::string> TakeRepeatedTags(int argc, char** argv, std::vector<char*>* rest) {
  std::vector<std::string> tags;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--tag" && i + 1 < argc) {
      tags.push_back(argv[++i]);
    } else if (arg.rfind("--tag=", 0) == 0) {
      tags.push_back(arg.substr(6));
    } else {
      rest->push_back(argv[i]);
    }
  }
  return tags;
}

}  // namespace

int CliMain(int argc, char** argv) {
  std::vector<char*> rest;
  std::vector<std::string> tags = TakeRepeatedTags(argc, argv, &rest);
  Flags flags(static_cast<int>(rest.size()), rest.data(), 1, kBooleanFlags);
  if (flags.Has("help") || flags.positional().empty()) {
    std::cout << kUsage;
    return flags.Has("help") ? 0 : kExitUsage;
  }
  if (std::string problem = CommandLineProblem(flags, tags); !problem.empty()) {
    return UsageFailure(problem);
  }
  Args args(flags);
  args.repeated_tags_ = tags;
  const std::string& command = flags.positional()[0];
  const bool import = command == "import" ||
                      (command == "prices" && flags.positional().size() > 1 &&
                       flags.positional()[1] == "import");
  RequestBody body;
  int64_t batch = 1000;
  try {
    if (import) {
      args.Positional(command == "import" ? 1 : 2, "file");
      if (command == "import") batch = args.Int("batch", 1000);
    } else {
      body = BuildRequest(args);
    }
  } catch (const UsageError& error) {
    return UsageFailure(error.message);
  }
  if (batch < 1 || batch > static_cast<int64_t>(kBatchCommandsMax)) {
    return UsageFailure("--batch must be in 1..8192");
  }
  ClientOptions options;
  const char* env_connect = std::getenv("PURSER_CONNECT");
  options.address = flags.Get("connect", env_connect == nullptr ? "127.0.0.1:8481" : env_connect);
  options.api_key = KeyFromArgs(flags);
  options.tls_ca_file = flags.Get("tls-ca");
  if (options.api_key.empty()) {
    std::cerr << "purser: no API key (--key, --key-file or PURSER_KEY)\n";
    return kExitUsage;
  }
  if (command == "prices" && import && flags.Has("dry-run")) {
    return ImportPrices(nullptr, flags.positional()[2], true, flags.Has("json"));
  }
  Result<std::unique_ptr<Client>> client = ConnectOrExplain(options);
  if (!client.ok()) return kExitConnect;
  if (command == "import") {
    return ImportUsage(**client, flags.positional()[1], static_cast<size_t>(batch), flags.Has("json"));
  }
  if (import) return ImportPrices(client->get(), flags.positional()[2], false, flags.Has("json"));
  try {
    return Run(**client, flags, args, std::move(body));
  } catch (const UsageError& error) {
    return UsageFailure(error.message);
  }
}

Result<RequestBody> ParseCommandLine(const std::vector<std::string>& words, int64_t now_us) {
  std::vector<std::string> storage = {"purser"};
  storage.insert(storage.end(), words.begin(), words.end());
  std::vector<char*> argv;
  for (std::string& word : storage) argv.push_back(word.data());
  std::vector<char*> rest;
  std::vector<std::string> tags = TakeRepeatedTags(static_cast<int>(argv.size()), argv.data(), &rest);
  Flags flags(static_cast<int>(rest.size()), rest.data(), 1, kBooleanFlags);
  if (flags.positional().empty() && flags.error().empty()) return Status::InvalidArgument("no command given");
  if (std::string problem = CommandLineProblem(flags, tags); !problem.empty()) {
    return Status::InvalidArgument(problem);
  }
  Args args(flags);
  args.repeated_tags_ = tags;
  args.now_us_ = now_us;
  try {
    return BuildRequest(args);
  } catch (const UsageError& error) {
    return Status::InvalidArgument(error.message);
  }
}

}  // namespace purser
