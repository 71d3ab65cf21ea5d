// Resident memory per account: opens N accounts (org -> teams of 100 ->
// agents) with caps set on every one, through the state machine alone, and
// reports the growth of the process's resident set per account.
#include <iostream>

#include "bench/inproc_load.h"
#include "ledger/base/flags.h"
#include "ledger/machine/machine.h"

namespace purser::bench {

int RunAccountsMemory(Flags& flags) {
  const int64_t count = flags.GetInt("count").value_or(1'000'000);
  State state;
  Machine machine(&state);
  std::vector<Event> events;
  const int64_t now = 1'795'428'000'000'000;
  auto run = [&](RequestBody body) {
    Reply reply = machine.Execute(Request{Credentials::System(), std::move(body)}, now, &events);
    if (!reply.ok()) {
      std::cerr << "accounts: " << reply.message << '\n';
      std::abort();
    }
    events.clear();
  };
  run(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}});
  uint64_t before = ResidentBytes();
  CapsPatch caps;
  caps.daily_limit_micros = Patch<int64_t>::Set(50'000'000);
  caps.monthly_limit_micros = Patch<int64_t>::Set(1'000'000'000);
  caps.max_inflight = Patch<int64_t>::Set(8);
  for (int64_t i = 0; i < count; ++i) {
    std::string id = "agent-" + std::to_string(i);
    if (i % 100 == 0) {
      run(cmd::OpenAccount{"team-" + std::to_string(i / 100), "org", AccountKind::kTeam, "", false, {}});
    }
    run(cmd::OpenAccount{id, "team-" + std::to_string(i / 100), AccountKind::kAgent, "", false, {}});
    run(cmd::SetCaps{id, caps});
  }
  uint64_t after = ResidentBytes();
  double per_account = static_cast<double>(after - before) / static_cast<double>(count + count / 100);
  std::cout << "accounts: " << count << " agents + " << count / 100 << " teams, caps on every agent\n"
            << "  resident growth " << (after - before) / (1 << 20) << " MiB, "
            << static_cast<uint64_t>(per_account) << " bytes per account\n";
  return 0;
}

}  // namespace purser::bench
