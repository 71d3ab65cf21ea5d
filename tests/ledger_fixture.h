// A pure-machine fixture: a State, a Machine and a fake clock, with short
// helpers for the commands tests use most. No I/O.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ledger/base/clock.h"
#include "ledger/machine/machine.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/state.h"

namespace purser::testing {

// 2026-11-23T10:00:00Z
inline constexpr int64_t kTestEpochUs = 1'795'428'000'000'000;

class LedgerFixture : public ::testing::Test {
 protected:
  LedgerFixture() : machine_(&state_) {
    for (const ModelPrice& price : DefaultPriceTable()) {
      EXPECT_TRUE(Run(cmd::SetPrice{price.model, price.rates}).ok());
    }
  }

  Reply Run(RequestBody body, Credentials credentials = Credentials::System()) {
    return machine_.Execute(Request{credentials, std::move(body)}, now_us_, &events_);
  }

  void Advance(int64_t seconds) { now_us_ += seconds * kMicrosPerSecond; }

  Reply Open(const std::string& id, const std::string& parent = "", bool wallet = false,
             AccountKind kind = AccountKind::kAgent) {
    return Run(cmd::OpenAccount{id, parent, kind, id, wallet, {}});
  }

  Reply Deposit(const std::string& account, int64_t amount, const std::string& id = "") {
    static int counter = 0;
    return Run(cmd::Deposit{id.empty() ? "dep-" + std::to_string(++counter) : id, account, amount,
                            ""});
  }

  Reply Caps(const std::string& account, CapsPatch patch) {
    return Run(cmd::SetCaps{account, std::move(patch)});
  }

  Reply Hold(const std::string& id, const std::string& account, int64_t amount,
                int64_t ttl_s = 0) {
    cmd::Reserve c;
    c.reservation_id = id;
    c.account = account;
    c.amount_micros = amount;
    c.ttl_s = ttl_s;
    return Run(c);
  }

  Reply SettleWith(const std::string& id, int64_t cost) {
    cmd::Settle c;
    c.reservation_id = id;
    c.amount_micros = cost;
    return Run(c);
  }

  Reply Usage(const std::string& id, const std::string& account, int64_t cost) {
    cmd::RecordUsage c;
    c.usage_id = id;
    c.account = account;
    c.amount_micros = cost;
    return Run(c);
  }

  BalanceView Balance(const std::string& account) {
    Reply reply = Run(query::GetBalance{account});
    EXPECT_TRUE(reply.ok()) << reply.message;
    return std::get<BalanceView>(reply.body);
  }

  // org (wallet) -> team -> agent, funded with `funds`.
  void Tree(int64_t funds) {
    ASSERT_TRUE(Open("org", "", true, AccountKind::kOrg).ok());
    ASSERT_TRUE(Open("team", "org", false, AccountKind::kTeam).ok());
    ASSERT_TRUE(Open("agent", "team").ok());
    if (funds > 0) {
      ASSERT_TRUE(Deposit("org", funds).ok());
    }
  }

  size_t EventsOf(const char* type) const {
    size_t n = 0;
    for (const Event& e : events_) n += std::string(EventTypeName(e.body)) == type ? 1 : 0;
    return n;
  }

  State state_;
  Machine machine_;
  std::vector<Event> events_;
  int64_t now_us_ = kTestEpochUs;
};

template <typename T>
CapsPatch PatchOf(Patch<int64_t> CapsPatch::*field, T value) {
  CapsPatch patch;
  patch.*field = Patch<int64_t>::Set(value);
  return patch;
}

}  // namespace purser::testing
