// The rules that make Purser react to spend (SPEC section 4): burn rates,
// anomalies, runaway detection and the degrade advice. Pure functions of the
// state and an event time, in integers only, shared by the machine (which
// raises alerts and freezes) and State::Apply (which ends episodes), so that
// a replay reaches every decision the live service reached.
#pragma once

#include <cstdint>
#include <string>

#include "ledger/machine/state.h"

namespace purser {

// Burn over `window_minutes` whole minutes ending with the minute of `now_us`
// (the current, partial minute included), as spend per hour, rounded down.
struct Burn {
  int64_t spend_micros = 0;
  int64_t calls = 0;
  int64_t micros_per_hour = 0;
};
Burn BurnOver(const MinuteSeries& series, int64_t now_us, int64_t window_minutes);

// The anomaly rule: the 5-minute burn of the account's subtree above its
// baseline x multiplier. False without a baseline. *rate and *threshold
// (either may be null) receive the figures, in micro-USD per hour.
inline constexpr int64_t kAnomalyWindowMinutes = 5;
bool AnomalyHolds(const Account& account, int64_t now_us, int64_t* rate, int64_t* threshold);

// The runaway rules of one account with its effective settings (inherited
// from the nearest ancestor that sets each one, else the defaults).
struct RunawaySettings {
  int64_t error_streak = kDefaultRunawayErrorStreak;
  int64_t burn_multiplier_bp = kDefaultRunawayBurnMultiplierBp;
  int64_t min_micros_per_hour = kDefaultRunawayMinMicrosPerHour;
  RunawayAction action = RunawayAction::kAlert;
};
RunawaySettings EffectiveRunaway(const State& state, AccountIndex account);

struct RunawayVerdict {
  bool streak = false;              // error_streak consecutive errors
  bool burn = false;                // 5-minute burn above multiplier x the hour before
  int64_t recent_micros_per_hour = 0;  // the last 5 minutes
  int64_t before_micros_per_hour = 0;  // the 60 minutes before them
  bool holds() const { return streak || burn; }
};
inline constexpr int64_t kRunawayRecentMinutes = 5;
inline constexpr int64_t kRunawayBeforeMinutes = 60;
RunawayVerdict CheckRunaway(const Account& account, const RunawaySettings& settings,
                            int64_t now_us);

// The message of an overrun alert with its current totals (an hour's
// overruns of one account aggregate into one alert).
std::string OverrunMessage(const std::string& account, int64_t total_micros, int64_t count);

// Tokens of a call for the rate caps: every class, saturating at 10^15.
int64_t RateTokens(const TokenCounts& tokens);

}  // namespace purser
