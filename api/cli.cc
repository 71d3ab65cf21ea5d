#include "api/cli.h"

#include <simdjson.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/client.h"
#include "api/json_views.h"
#include "ledger/clock.h"
#include "ledger/crypto.h"
#include "ledger/flags.h"
#include "ledger/money.h"

namespace purser {

namespace {

constexpr char kUsage[] = R"(usage: purser [--connect HOST:PORT] [--key KEY | --key-file F] [--json] <command>

  account create ID [--parent P] [--kind org|team|agent|workflow] [--name N] [--wallet]
                    [--tag-keys k1,k2]
  account get ID            account list [--parent P]            balance ACCOUNT
  budget set ACCOUNT [--daily USD|none] [--monthly USD|none] [--hard USD|none]
                     [--max-inflight N|none] [--ttl S|none] [--thresholds 50,75,90,100|none]
                     [--on-expiry release|charge|none] [--runaway alert|freeze|none]
  budget get ACCOUNT
  deposit ACCOUNT USD [--id KEY] [--reference R]
  reserve ACCOUNT (USD | --model M --input N --max-output N) [--id ID] [--ttl S]
                  [--run R] [--action A] [--tag k=v]...
  settle ID (USD | --model M --input N --output N [--cached N] [--cache-write N]
            [--reasoning N]) [--action A] [--waste W] [--outcome success|error|cancelled]
            [--tag k=v]...
  void ID [--reason R]       extend ID --ttl S
  usage ACCOUNT (USD | --model M --input N --output N ...) [--id ID] [--action A]
                [--waste W] [--outcome O] [--run R] [--tag k=v]...
  refund (--reservation ID | --usage ID) USD [--id ID] [--reason R]
  spend ACCOUNT [--from YYYY-MM-DD] [--to YYYY-MM-DD]
                [--group-by model|action|waste|outcome|child|day|tag:KEY]
  alerts [--account A] [--since RFC3339]
  prices list               prices set MODEL --input USD --output USD [--cached-input USD]
                            [--cache-write USD] [--reasoning USD]   (per million tokens)
  keys create ACCOUNT --role reader|writer|admin [--label L] [--id KEY]
  keys rotate KEY_ID [--grace S]      keys revoke KEY_ID      keys list
  freeze ACCOUNT [--reason R]         unfreeze ACCOUNT
  checkpoint DIR            whoami

The key comes from --key, --key-file or $PURSER_KEY; the address from --connect or
$PURSER_CONNECT (default 127.0.0.1:8481). Money is decimal USD ("25.00"), converted
exactly to micro-USD.

exit status: 0 ok; 2 bad usage; 3 cannot connect or authenticate;
             10 + the result code when the ledger refuses (e.g. 17 insufficient_funds,
             18 daily_cap_exceeded, 21 inflight_limit_reached, 25 unavailable).
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
  std::string sub = args.Positional(1, "account subcommand (create, get, list)");
  if (sub == "get") return query::GetAccount{args.Positional(2, "account id")};
  if (sub == "list") return query::ListAccounts{args.Get("parent")};
  if (sub != "create") throw UsageError{"unknown account subcommand " + sub};
  cmd::OpenAccount c;
  c.id = args.Positional(2, "account id");
  c.parent = args.Get("parent");
  std::string kind = args.Get("kind", c.parent.empty() ? "org" : "agent");
  if (!ParseAccountKind(kind, &c.kind)) throw UsageError{"--kind must be org, team, agent or workflow"};
  c.name = args.Get("name", c.id);
  c.wallet = args.Has("wallet");
  std::string keys = args.Get("tag-keys");
  for (size_t start = 0; !keys.empty() && start <= keys.size();) {
    size_t comma = keys.find(',', start);
    c.indexed_tag_keys.push_back(keys.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
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
  return c;
}

Outcome OutcomeFlag(const Args& args) {
  Outcome outcome = Outcome::kNone;
  if (args.Has("outcome") && !ParseOutcome(args.Get("outcome"), &outcome)) {
    throw UsageError{"--outcome must be success, error or cancelled"};
  }
  return outcome;
}

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
    return c;
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
  int64_t today = DayOf(WallClockMicros());
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
        {"outcome", GroupBy::kOutcome}};
    bool known = false;
    for (const auto& [name, value] : kGroups) {
      if (group == name) {
        q.group_by = value;
        known = true;
      }
    }
    if (!known) throw UsageError{"--group-by must be model, action, waste, outcome, child, day or tag:KEY"};
  }
  return q;
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
  if (command == "freeze") return cmd::Freeze{args.Positional(1, "account"), args.Get("reason")};
  if (command == "unfreeze") return cmd::Unfreeze{args.Positional(1, "account")};
  if (command == "alerts") {
    int64_t since = 0;
    if (args.Has("since")) {
      std::optional<int64_t> parsed = ParseTimestamp(args.Get("since"));
      if (!parsed) throw UsageError{"--since must be RFC 3339 UTC"};
      since = *parsed;
    }
    return query::ListAlerts{args.Get("account"), since};
  }
  if (command == "balance") return query::GetBalance{args.Positional(1, "account")};
  if (command == "whoami") return query::Authenticate{};
  if (command == "checkpoint") {
    args.Positional(1, "directory");
    return query::Authenticate{};  // sent as Ledger.checkpoint, not as a command
  }
  throw UsageError{"unknown command " + command};
}

RequestBody BuildRequest(const Args& args) {
  std::string command = args.Positional(0, "command");
  if (command == "account") return AccountCommand(args);
  if (command == "budget") return BudgetCommand(args);
  if (command == "spend") return SpendQuery(args);
  for (const char* spending : {"reserve", "settle", "usage", "void", "extend", "deposit", "refund"}) {
    if (command == spending) return SpendingCommand(command, args);
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

int CliMain(int argc, char** argv) {
  // Repeated --tag flags are collected before the generic parser (which keeps the last).
  std::vector<std::string> tags;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--tag" && i + 1 < argc) {
      tags.push_back(argv[++i]);
    } else if (arg.rfind("--tag=", 0) == 0) {
      tags.push_back(arg.substr(6));
    } else {
      rest.push_back(argv[i]);
    }
  }
  Flags flags(static_cast<int>(rest.size()), rest.data(), 1, {"json", "wallet", "help"});
  if (flags.Has("help") || flags.positional().empty()) {
    std::cout << kUsage;
    return flags.Has("help") ? 0 : kExitUsage;
  }
  if (!flags.error().empty()) {
    std::cerr << "purser: " << flags.error() << '\n';
    return kExitUsage;
  }
  Args args(flags);
  args.repeated_tags_ = tags;
  RequestBody body;
  try {
    body = BuildRequest(args);
  } catch (const UsageError& error) {
    std::cerr << "purser: " << error.message << "\n(purser --help for usage)\n";
    return kExitUsage;
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
  Result<std::unique_ptr<Client>> client = Client::Connect(options);
  if (!client.ok()) {
    std::cerr << "purser: cannot connect to " << options.address << ": " << client.status().message()
              << '\n';
    return kExitConnect;
  }
  Reply reply;
  if (flags.positional()[0] == "checkpoint") {
    reply = (*client)->Checkpoint(args.Positional(1, "directory"));
  } else {
    reply = (*client)->Call(std::move(body));
  }
  if (flags.Has("json")) {
    std::cout << ReplyToJson(reply) << '\n';
  } else {
    PrintHuman(reply, reply.ok() ? std::cout : std::cerr);
  }
  return reply.ok() ? 0 : kExitRefusedBase + static_cast<int>(reply.code);
}

}  // namespace purser
