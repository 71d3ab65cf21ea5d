// The pure state machine: decides what a request does to the ledger.
//
// Execute() validates a request, checks the sender's key, role and scope,
// applies the admission rules of SPEC section 2, and emits the events that
// record the outcome. Each event is applied to the State at once (through
// State::Apply, the code replay uses) and appended to the caller's vector.
// There is no I/O, no clock and no randomness here: the sequencer passes the
// time in (prepare phase), and the same state, request and time always give
// the same events and reply.
//
// Thread-safety: none. The machine borrows *state, which must outlive it;
// one thread (the sequencer's) owns both.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "ledger/machine/commands.h"
#include "ledger/machine/events.h"
#include "ledger/machine/state.h"

namespace purser {

// Who is asking: resolved from a request's credentials on every call, so a
// revoked key stops working at once.
struct Principal {
  std::string key_id;              // "system" for the service
  Role role = Role::kReader;
  AccountIndex root = kNoAccount;  // kNoAccount = global (every account)
  bool system = false;             // the service itself (in-process callers)
  bool global() const { return root == kNoAccount; }
};

class Machine {
 public:
  explicit Machine(State* state);

  // Executes one request at service time `now_us` (which must not be earlier
  // than the state's last event). Emitted events are applied and appended to
  // *events; a refused command emits none and changes nothing.
  Reply Execute(const Request& request, int64_t now_us, std::vector<Event>* events);

  // Rejections of admission checks since the last call, as one
  // CountRejections command for every minute before `before_minute` (all of
  // them when `before_minute` is INT64_MAX). They are metrics until the
  // command is executed, and are not part of the state or its digest.
  std::optional<cmd::CountRejections> TakeRejectionCounts(int64_t before_minute);
  bool HasRejectionCounts() const { return !rejections_.empty(); }

  const State& state() const { return *state_; }

  // Debug builds (no NDEBUG): every reservation or usage record a command
  // looks for and memory does not hold must be one that `looked_for(kind,
  // id)` says the caller's prefetch looked for in the cold store ('r' or
  // 'u', as RecordNeededBy names it), or a bug would answer "not found" (or
  // create a duplicate) for a record that exists. Unset: no check. Release
  // builds ignore it.
  using LookedForFn = std::function<bool(char kind, std::string_view id)>;
  void CheckMissesAgainst(LookedForFn looked_for) { looked_for_ = std::move(looked_for); }

 private:
  struct Context;
  class Handler;

  State* state_;
  LookedForFn looked_for_;
  // (account id, minute, code) -> count.
  std::map<std::tuple<std::string, int64_t, uint32_t>, uint64_t> rejections_;
};

}  // namespace purser
