// A randomized model test: 150,000 random commands run against the machine
// and against a plain reference model written here from SPEC sections 2-3,
// independently of ledger/. After every step the result codes and the money
// of every account (balance, holds, inflight, day/month/lifetime spend) must
// agree. The commands include rate caps (calls per minute), transfers
// between wallets and imported history (usage with occurred_at).

#include <gtest/gtest.h>

#include <random>

#include "tests/ledger_fixture.h"

namespace purser::testing {
namespace {

constexpr int64_t kDayUs = 86'400'000'000;

// ---- the reference model ------------------------------------------------------

struct ModelAccount {
  std::string id;
  int parent = -1;
  bool wallet = false;
  int funding = -1;
  bool frozen = false;
  int64_t daily = -1, monthly = -1, hard = -1, max_inflight = -1, max_calls = -1;
  int64_t rate_minute = -1, calls = 0;
  bool on_expiry_set = false;
  bool charge_on_expiry = false;
  int64_t balance = 0, wallet_held = 0;
  int64_t held = 0, inflight = 0;
  int64_t day = -1, spent_day = 0, month = -1, spent_month = 0, spent_total = 0;
};

enum class ModelStatus { kPending, kSettled, kVoided, kExpired };

struct ModelCharge {
  int account = -1;
  int64_t amount = 0, refunded = 0, day = 0;
};

struct ModelReservation {
  int account = 0;
  int64_t amount = 0, expires = 0;
  ModelStatus status = ModelStatus::kPending;
  int64_t cost = 0;
  bool expiry_charged = false;
  ModelCharge charge;
};

class Model {
 public:
  std::vector<ModelAccount> accounts;
  std::map<std::string, ModelReservation> reservations;
  std::map<std::string, ModelCharge> usages;

  int Add(const std::string& id, int parent, bool wallet) {
    ModelAccount a;
    a.id = id;
    a.parent = parent;
    a.wallet = wallet;
    int index = static_cast<int>(accounts.size());
    a.funding = wallet ? index : (parent < 0 ? -1 : accounts[parent].funding);
    accounts.push_back(a);
    return index;
  }

  std::vector<int> Path(int account) const {
    std::vector<int> path;
    for (int a = account; a >= 0; a = accounts[a].parent) path.push_back(a);
    return path;
  }

  static int64_t Month(int64_t day) { return MonthOfDay(day); }
  int64_t SpentDay(const ModelAccount& a, int64_t day) const { return a.day == day ? a.spent_day : 0; }
  int64_t SpentMonth(const ModelAccount& a, int64_t month) const {
    return a.month == month ? a.spent_month : 0;
  }

  // One call in the minute of `now` on every account of the path.
  void CountCall(int account, int64_t now) {
    int64_t minute = now / 60'000'000;
    for (int a : Path(account)) {
      ModelAccount& x = accounts[a];
      if (x.rate_minute < minute) {
        x.rate_minute = minute;
        x.calls = 0;
      }
      ++x.calls;
    }
  }

  ResultCode Admit(int account, int64_t amount, int64_t now) const {
    int64_t day = now / kDayUs;
    int64_t minute = now / 60'000'000;
    for (int a : Path(account)) {
      const ModelAccount& x = accounts[a];
      if (x.frozen) return ResultCode::kAccountFrozen;
      if (x.max_calls >= 0 && (x.rate_minute == minute ? x.calls : 0) >= x.max_calls) {
        return ResultCode::kRateLimited;
      }
      if (x.max_inflight >= 0 && x.inflight >= x.max_inflight) return ResultCode::kInflightLimitReached;
      if (x.hard >= 0 && x.spent_total + x.held + amount > x.hard) return ResultCode::kHardLimitExceeded;
      if (x.monthly >= 0 && SpentMonth(x, Month(day)) + x.held + amount > x.monthly) {
        return ResultCode::kMonthlyCapExceeded;
      }
      if (x.daily >= 0 && SpentDay(x, day) + x.held + amount > x.daily) {
        return ResultCode::kDailyCapExceeded;
      }
    }
    int funding = accounts[account].funding;
    if (funding < 0) return ResultCode::kInsufficientFunds;
    if (accounts[funding].balance - accounts[funding].wallet_held < amount) {
      return ResultCode::kInsufficientFunds;
    }
    return ResultCode::kOk;
  }

  void Hold(const ModelReservation& r, int sign) {
    for (int a : Path(r.account)) {
      accounts[a].held += sign * r.amount;
      accounts[a].inflight += sign;
    }
    int funding = accounts[r.account].funding;
    if (funding >= 0) accounts[funding].wallet_held += sign * r.amount;
  }

  // Spend at `at` (now, or an imported time): a closed day or month keeps
  // its own total, the current windows are left alone.
  ModelCharge Spend(int account, int64_t cost, int64_t at) {
    int64_t day = at / kDayUs;
    for (int a : Path(account)) {
      ModelAccount& x = accounts[a];
      if (x.day < day) { x.day = day; x.spent_day = 0; }
      if (x.month < Month(day)) { x.month = Month(day); x.spent_month = 0; }
      if (x.day == day) x.spent_day += cost;
      if (x.month == Month(day)) x.spent_month += cost;
      x.spent_total += cost;
    }
    int funding = accounts[account].funding;
    if (funding >= 0) accounts[funding].balance -= cost;
    return ModelCharge{account, cost, 0, day};
  }

  void Unspend(ModelCharge* charge, int64_t amount) {
    for (int a : Path(charge->account)) {
      ModelAccount& x = accounts[a];
      if (x.day == charge->day) x.spent_day -= amount;
      if (x.month == Month(charge->day)) x.spent_month -= amount;
      x.spent_total -= amount;
    }
    int funding = accounts[charge->account].funding;
    if (funding >= 0) accounts[funding].balance += amount;
  }

  // The room left for recorded truth: caps on the path and the funds.
  int64_t Room(int account, int64_t now, const ModelCharge* reversal, int64_t reversed) const {
    int64_t day = now / kDayUs;
    int64_t room = INT64_MAX;
    int funding = accounts[account].funding;
    if (funding >= 0) room = accounts[funding].balance - accounts[funding].wallet_held + reversed;
    for (int a : Path(account)) {
      const ModelAccount& x = accounts[a];
      int64_t freed_day = reversal != nullptr && reversal->day == day ? reversed : 0;
      int64_t freed_month = reversal != nullptr && Month(reversal->day) == Month(day) ? reversed : 0;
      if (x.hard >= 0) room = std::min(room, x.hard - (x.spent_total - reversed + x.held));
      if (x.monthly >= 0) room = std::min(room, x.monthly - (SpentMonth(x, Month(day)) - freed_month + x.held));
      if (x.daily >= 0) room = std::min(room, x.daily - (SpentDay(x, day) - freed_day + x.held));
    }
    return std::max<int64_t>(0, room);
  }

};

// ---- the test -------------------------------------------------------------------

class ModelTest : public LedgerFixture {
 protected:
  void SetUp() override {
    struct Spec {
      const char* id;
      const char* parent;
      bool wallet;
    };
    const Spec specs[] = {{"org", "", true},        {"team-a", "org", false},
                          {"team-b", "org", true},  {"agent-a1", "team-a", false},
                          {"agent-a2", "team-a", false}, {"agent-b1", "team-b", false},
                          {"agent-b2", "team-b", false}};
    for (const Spec& s : specs) {
      ASSERT_TRUE(Open(s.id, s.parent, s.wallet).ok());
      model_.Add(s.id, s.parent[0] ? Find(s.parent) : -1, s.wallet);
    }
  }

  int Find(const std::string& id) const {
    for (size_t i = 0; i < model_.accounts.size(); ++i) {
      if (model_.accounts[i].id == id) return static_cast<int>(i);
    }
    return -1;
  }

  void CompareAccounts(int step) {
    int64_t day = now_us_ / kDayUs;
    for (const ModelAccount& m : model_.accounts) {
      const Account& a = state_.account(state_.FindAccount(m.id));
      ASSERT_EQ(a.balance_micros, m.wallet ? m.balance : 0) << m.id << " at step " << step;
      ASSERT_EQ(a.wallet_held_micros, m.wallet ? m.wallet_held : 0) << m.id << " at step " << step;
      ASSERT_EQ(a.held_micros, m.held) << m.id << " at step " << step;
      ASSERT_EQ(a.inflight, m.inflight) << m.id << " at step " << step;
      ASSERT_EQ(a.SpentDay(day), model_.SpentDay(m, day)) << m.id << " at step " << step;
      ASSERT_EQ(a.SpentMonth(MonthOfDay(day)), model_.SpentMonth(m, MonthOfDay(day)))
          << m.id << " at step " << step;
      ASSERT_EQ(a.spent_total_micros, m.spent_total) << m.id << " at step " << step;
      ASSERT_EQ(a.frozen, m.frozen);
    }
  }

  std::string AnyReservation(std::mt19937_64& random) {
    if (reservation_ids_.empty() || random() % 20 == 0) return "missing-" + std::to_string(random() % 5);
    return reservation_ids_[random() % reservation_ids_.size()];
  }

  void StepReserve(std::mt19937_64& random) {
    int account = static_cast<int>(random() % model_.accounts.size());
    int64_t amount = static_cast<int64_t>(random() % 3'000'000);
    if (random() % 10 == 0) {
      // Exactly at the edge of the room, or one micro past it.
      int64_t room = model_.Room(account, now_us_, nullptr, 0);
      if (room < 3'000'000) amount = room + static_cast<int64_t>(random() % 2);
    }
    int64_t ttl = 1 + static_cast<int64_t>(random() % 900);
    std::string id = "r" + std::to_string(next_id_++);
    ResultCode expected = model_.Admit(account, amount, now_us_);
    Reply reply = Hold(id, model_.accounts[account].id, amount, ttl);
    ASSERT_EQ(reply.code, expected) << reply.message;
    ++outcomes_[expected == ResultCode::kOk ? "reserve admitted" : "reserve refused"];
    if (expected == ResultCode::kRateLimited) ++outcomes_["reserve rate limited"];
    if (expected != ResultCode::kOk) ++outcomes_[std::string("  refused: ") + std::string(ResultCodeName(expected))];
    if (expected != ResultCode::kOk) return;
    ModelReservation r;
    r.account = account;
    r.amount = amount;
    r.expires = now_us_ + ttl * kMicrosPerSecond;
    model_.Hold(r, +1);
    model_.CountCall(account, now_us_);
    model_.reservations[id] = r;
    reservation_ids_.push_back(id);
  }

  void StepSettle(std::mt19937_64& random) {
    std::string id = AnyReservation(random);
    auto known = model_.reservations.find(id);
    // Mostly near the hold, sometimes above it (an overrun).
    int64_t base = known == model_.reservations.end() ? 1'000'000 : known->second.amount;
    int64_t cost = static_cast<int64_t>(random() % static_cast<uint64_t>(base * 13 / 10 + 1));
    Reply reply = SettleWith(id, cost);
    auto it = model_.reservations.find(id);
    if (it == model_.reservations.end()) {
      ASSERT_EQ(reply.code, ResultCode::kNotFound);
      return;
    }
    ModelReservation& r = it->second;
    if (r.status == ModelStatus::kVoided ||
        (r.status == ModelStatus::kSettled && r.cost != cost)) {
      ASSERT_EQ(reply.code, ResultCode::kReservationNotPending);
      return;
    }
    if (r.status == ModelStatus::kSettled) {  // an idempotent repeat
      ASSERT_TRUE(reply.ok());
      ASSERT_FALSE(reply.created);
      return;
    }
    ASSERT_TRUE(reply.ok()) << reply.message;
    const auto& result = std::get<SettleResult>(reply.body);
    if (r.status == ModelStatus::kPending) {
      model_.Hold(r, -1);
      ASSERT_EQ(result.released_micros, std::max<int64_t>(0, r.amount - cost));
      ASSERT_EQ(result.overrun_micros, std::max<int64_t>(0, cost - r.amount));
      ASSERT_FALSE(result.late);
    } else {
      int64_t reversed = r.expiry_charged ? r.charge.amount - r.charge.refunded : 0;
      int64_t room = model_.Room(r.account, now_us_, r.expiry_charged ? &r.charge : nullptr, reversed);
      if (r.expiry_charged) model_.Unspend(&r.charge, reversed);
      ASSERT_TRUE(result.late);
      ASSERT_EQ(result.released_micros, 0);
      ASSERT_EQ(result.overrun_micros, std::max<int64_t>(0, cost - room));
      ++outcomes_[r.expiry_charged ? "late settle after expiry charge" : "late settle"];
    }
    ++outcomes_[result.overrun_micros > 0 ? "settle with overrun" : "settle"];
    r.charge = model_.Spend(r.account, cost, now_us_);
    r.status = ModelStatus::kSettled;
    r.cost = cost;
    r.expiry_charged = false;
  }

  void StepVoid(std::mt19937_64& random) {
    std::string id = AnyReservation(random);
    Reply reply = Run(cmd::Void{id, ""});
    auto it = model_.reservations.find(id);
    if (it == model_.reservations.end()) {
      ASSERT_EQ(reply.code, ResultCode::kNotFound);
    } else if (it->second.status == ModelStatus::kPending) {
      ASSERT_TRUE(reply.ok());
      model_.Hold(it->second, -1);
      it->second.status = ModelStatus::kVoided;
    } else if (it->second.status == ModelStatus::kVoided) {
      ASSERT_TRUE(reply.ok());
    } else {
      ASSERT_EQ(reply.code, ResultCode::kReservationNotPending);
    }
  }

  void StepUsage(std::mt19937_64& random) {
    int account = static_cast<int>(random() % model_.accounts.size());
    int64_t cost = static_cast<int64_t>(random() % 500'000);
    std::string id = "u" + std::to_string(next_id_++);
    bool frozen = false;
    for (int a : model_.Path(account)) frozen = frozen || model_.accounts[a].frozen;
    int64_t room = model_.Room(account, now_us_, nullptr, 0);
    // One in four records history: up to 35 days back (imports).
    int64_t occurred_at = 0;
    if (random() % 4 == 0) {
      occurred_at = now_us_ - static_cast<int64_t>(random() % (35 * 86'400)) * kMicrosPerSecond;
    }
    cmd::RecordUsage usage;
    usage.usage_id = id;
    usage.account = model_.accounts[account].id;
    usage.amount_micros = cost;
    usage.occurred_at_us = occurred_at;
    Reply reply = Run(usage);
    if (frozen) {
      ASSERT_EQ(reply.code, ResultCode::kAccountFrozen);
      return;
    }
    ASSERT_TRUE(reply.ok()) << reply.message;
    ASSERT_EQ(std::get<UsageResult>(reply.body).overrun_micros, std::max<int64_t>(0, cost - room));
    model_.usages[id] = model_.Spend(account, cost, occurred_at == 0 ? now_us_ : occurred_at);
    if (occurred_at == 0) {
      model_.CountCall(account, now_us_);  // usage counts toward rate caps, never refused
    } else {
      ++outcomes_["imported usage"];
    }
    usage_ids_.push_back(id);
  }

  void StepTransfer(std::mt19937_64& random) {
    int wallets[] = {Find("org"), Find("team-b")};
    int from = wallets[random() % 2];
    int to = from == wallets[0] ? wallets[1] : wallets[0];
    ModelAccount& source = model_.accounts[from];
    int64_t amount = 1 + static_cast<int64_t>(random() % 60'000'000);
    if (random() % 4 == 0) {  // exactly what is available, or one micro past it
      amount = std::max<int64_t>(1, source.balance - source.wallet_held +
                                        static_cast<int64_t>(random() % 2));
    }
    Reply reply = Run(cmd::Transfer{"t" + std::to_string(next_id_++), source.id,
                                    model_.accounts[to].id, amount, ""});
    if (source.balance - source.wallet_held < amount) {
      ASSERT_EQ(reply.code, ResultCode::kInsufficientFunds);
      ++outcomes_["transfer refused"];
      return;
    }
    ASSERT_TRUE(reply.ok()) << reply.message;
    source.balance -= amount;
    model_.accounts[to].balance += amount;
    ++outcomes_["transfer"];
  }

  void StepRefund(std::mt19937_64& random) {
    bool usage = random() % 2 == 0 && !usage_ids_.empty();
    std::string target = usage ? usage_ids_[random() % usage_ids_.size()] : AnyReservation(random);
    ModelCharge* charge = nullptr;
    if (usage) {
      charge = &model_.usages[target];
    } else if (auto it = model_.reservations.find(target); it != model_.reservations.end()) {
      if (it->second.status == ModelStatus::kSettled || it->second.expiry_charged) {
        charge = &it->second.charge;
      }
    }
    int64_t amount = 1 + static_cast<int64_t>(random() % 1'500'000);
    Reply reply = Run(cmd::Refund{"f" + std::to_string(next_id_++),
                                  usage ? ChargeKind::kUsage : ChargeKind::kReservation, target,
                                  amount, ""});
    if (!usage && !model_.reservations.contains(target)) {
      ASSERT_EQ(reply.code, ResultCode::kNotFound);
      return;
    }
    if (charge == nullptr || amount > charge->amount - charge->refunded) {
      ASSERT_EQ(reply.code, ResultCode::kRefundExceedsCharged);
      return;
    }
    ASSERT_TRUE(reply.ok()) << reply.message;
    model_.Unspend(charge, amount);
    charge->refunded += amount;
    ++outcomes_["refund"];
  }

  void StepCaps(std::mt19937_64& random) {
    int account = static_cast<int>(random() % model_.accounts.size());
    ModelAccount& m = model_.accounts[account];
    CapsPatch patch;
    auto pick = [&](Patch<int64_t>* field, int64_t* value, int64_t scale) {
      switch (random() % 3) {
        case 0: break;  // keep
        case 1: *field = Patch<int64_t>::Remove(); *value = -1; break;
        default: {
          int64_t v = static_cast<int64_t>(random() % scale);
          *field = Patch<int64_t>::Set(v);
          *value = v;
        }
      }
    };
    pick(&patch.daily_limit_micros, &m.daily, 80'000'000);
    pick(&patch.monthly_limit_micros, &m.monthly, 400'000'000);
    pick(&patch.hard_limit_micros, &m.hard, 40'000'000'000);
    pick(&patch.max_inflight, &m.max_inflight, 40);
    if (random() % 3 == 0) pick(&patch.max_calls_per_minute, &m.max_calls, 60);
    if (random() % 4 == 0) {
      m.charge_on_expiry = !m.charge_on_expiry;
      m.on_expiry_set = true;
      patch.on_expiry = Patch<OnExpiry>::Set(m.charge_on_expiry ? OnExpiry::kCharge : OnExpiry::kRelease);
    }
    ASSERT_TRUE(Caps(m.id, patch).ok());
  }

  void StepFreeze(std::mt19937_64& random) {
    // At most one frozen account at a time, so most traffic is admitted.
    ModelAccount* target = &model_.accounts[random() % model_.accounts.size()];
    for (ModelAccount& a : model_.accounts) {
      if (a.frozen) target = &a;
    }
    ModelAccount& m = *target;
    m.frozen = !m.frozen;
    ASSERT_TRUE(m.frozen ? Run(cmd::Freeze{m.id, ""}).ok() : Run(cmd::Unfreeze{m.id}).ok());
  }

  void StepDeposit(std::mt19937_64& random) {
    int wallets[] = {Find("org"), Find("team-b")};
    ModelAccount& m = model_.accounts[wallets[random() % 2]];
    int64_t amount = 1 + static_cast<int64_t>(random() % 100'000'000);
    ASSERT_TRUE(Deposit(m.id, amount).ok());
    m.balance += amount;
  }

  void StepTime(std::mt19937_64& random) {
    int64_t seconds = random() % 10 == 0 ? 86'400 : static_cast<int64_t>(random() % 1'200);
    Advance(seconds);
    ASSERT_TRUE(Run(cmd::ExpireDue{}).ok());
    // The model expires in (expires, id) order; the policy is the nearest
    // account on the path that sets one (default release).
    std::vector<std::pair<int64_t, std::string>> due;
    for (auto& [id, r] : model_.reservations) {
      if (r.status == ModelStatus::kPending && r.expires <= now_us_) due.emplace_back(r.expires, id);
    }
    std::sort(due.begin(), due.end());
    for (const auto& [expires, id] : due) {
      ModelReservation& r = model_.reservations[id];
      model_.Hold(r, -1);
      r.status = ModelStatus::kExpired;
      bool charge = false;
      for (int a : model_.Path(r.account)) {
        if (model_.accounts[a].on_expiry_set) {
          charge = model_.accounts[a].charge_on_expiry;
          break;
        }
      }
      if (charge && r.amount > 0) {
        r.charge = model_.Spend(r.account, r.amount, now_us_);
        r.expiry_charged = true;
        ++outcomes_["expiry charged"];
      }
      ++outcomes_["expired"];
    }
  }

  Model model_;
  std::map<std::string, int> outcomes_;
  std::vector<std::string> reservation_ids_;
  std::vector<std::string> usage_ids_;
  int64_t next_id_ = 0;
};

TEST_F(ModelTest, HundredFiftyThousandRandomCommandsAgreeWithTheReferenceModelAtEveryStep) {
  std::mt19937_64 random(0x9e3779b97f4a7c15);
  ASSERT_TRUE(Deposit("org", 500'000'000).ok());
  model_.accounts[Find("org")].balance = 500'000'000;
  ASSERT_TRUE(Deposit("team-b", 100'000'000).ok());
  model_.accounts[Find("team-b")].balance = 100'000'000;
  const int kSteps = 150'000;
  for (int step = 0; step < kSteps; ++step) {
    unsigned pick = static_cast<unsigned>(random() % 100);
    if (pick < 38) StepReserve(random);
    else if (pick < 66) StepSettle(random);
    else if (pick < 71) StepVoid(random);
    else if (pick < 80) StepUsage(random);
    else if (pick < 84) StepRefund(random);
    else if (pick < 87) StepCaps(random);
    else if (pick < 89) StepFreeze(random);
    else if (pick < 91) StepDeposit(random);
    else if (pick < 93) StepTransfer(random);
    else StepTime(random);
    if (HasFatalFailure()) FAIL() << "diverged at step " << step;
    CompareAccounts(step);
    if (HasFatalFailure()) FAIL() << "diverged at step " << step;
    // Keep the fixture's event vector from growing without bound.
    if (events_.size() > 100'000) events_.clear();
  }
  // The run must have exercised every interesting path, or it proves little.
  for (const char* outcome : {"reserve admitted", "reserve refused", "settle", "settle with overrun",
                              "late settle", "late settle after expiry charge", "refund", "expired",
                              "expiry charged", "reserve rate limited", "transfer",
                              "transfer refused", "imported usage"}) {
    EXPECT_GE(outcomes_[outcome], 50) << outcome;
  }
  for (const auto& [outcome, count] : outcomes_) std::printf("  %-32s %d\n", outcome.c_str(), count);
}

}  // namespace
}  // namespace purser::testing
