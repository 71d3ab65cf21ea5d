#include "ledger/machine/reactions.h"

#include <algorithm>

#include "ledger/base/clock.h"
#include "ledger/base/money.h"

namespace purser {

namespace {

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

// spend x 60 / minutes, saturating: micro-USD per hour of a sum over whole minutes.
int64_t PerHour(int64_t spend_micros, int64_t minutes) {
  __int128 scaled = static_cast<__int128>(spend_micros) * 60 / std::max<int64_t>(1, minutes);
  return scaled > INT64_MAX ? INT64_MAX : static_cast<int64_t>(scaled);
}

}  // namespace

void MinuteSeries::Add(int64_t minute, int64_t spend_micros, int64_t calls, int64_t now_minute) {
  const int64_t oldest = now_minute - kMinutesKept + 1;
  size_t drop = 0;
  while (drop < buckets_.size() && buckets_[drop].minute < oldest) ++drop;
  if (drop > 0) {
    buckets_.erase(buckets_.begin(), buckets_.begin() + static_cast<std::ptrdiff_t>(drop));
    cache_last_ = cache_first_ - 1;
  }
  if (minute < oldest) return;  // older than a day: in the day totals only
  if (minute <= cache_last_) cache_last_ = cache_first_ - 1;
  auto add = [&](MinuteBucket& bucket) {
    bucket.spend_micros = SaturatingAdd(bucket.spend_micros, spend_micros);
    bucket.calls = SaturatingAdd(bucket.calls, calls);
  };
  if (!buckets_.empty() && buckets_.back().minute == minute) {
    add(buckets_.back());
    return;
  }
  if (buckets_.empty() || buckets_.back().minute < minute) {
    buckets_.push_back(MinuteBucket{minute, 0, 0});
    add(buckets_.back());
    return;
  }
  // An import of recent history: into its place.
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), minute,
                             [](const MinuteBucket& b, int64_t m) { return b.minute < m; });
  if (it == buckets_.end() || it->minute != minute) it = buckets_.insert(it, MinuteBucket{minute, 0, 0});
  add(*it);
}

MinuteBucket MinuteSeries::Sum(int64_t first_minute, int64_t last_minute) const {
  MinuteBucket sum{first_minute, 0, 0};
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), first_minute,
                             [](const MinuteBucket& b, int64_t m) { return b.minute < m; });
  for (; it != buckets_.end() && it->minute <= last_minute; ++it) {
    sum.spend_micros = SaturatingAdd(sum.spend_micros, it->spend_micros);
    sum.calls = SaturatingAdd(sum.calls, it->calls);
  }
  return sum;
}

int64_t MinuteSeries::SpendCached(int64_t first_minute, int64_t last_minute) const {
  if (cache_first_ != first_minute || cache_last_ != last_minute) {
    cache_spend_ = Sum(first_minute, last_minute).spend_micros;
    cache_first_ = first_minute;
    cache_last_ = last_minute;
  }
  return cache_spend_;
}

Burn BurnOver(const MinuteSeries& series, int64_t now_us, int64_t window_minutes) {
  const int64_t now_minute = MinuteOf(now_us);
  MinuteBucket sum = series.Sum(now_minute - window_minutes + 1, now_minute);
  return Burn{sum.spend_micros, sum.calls, PerHour(sum.spend_micros, window_minutes)};
}

bool AnomalyHolds(const Account& account, int64_t now_us, int64_t* rate, int64_t* threshold) {
  if (account.baseline_micros_per_hour <= 0) return false;
  const int64_t now_minute = MinuteOf(now_us);
  int64_t recent = PerHour(
      account.burn.Sum(now_minute - kAnomalyWindowMinutes + 1, now_minute).spend_micros,
      kAnomalyWindowMinutes);
  __int128 limit = static_cast<__int128>(account.baseline_micros_per_hour) *
                   account.baseline_multiplier_bp / 10'000;
  int64_t limit64 = limit > INT64_MAX ? INT64_MAX : static_cast<int64_t>(limit);
  if (rate != nullptr) *rate = recent;
  if (threshold != nullptr) *threshold = limit64;
  return recent > limit64;
}

RunawaySettings EffectiveRunaway(const State& state, AccountIndex account) {
  RunawaySettings settings;
  bool streak = false, burn = false, min = false, action = false;
  for (AccountIndex a = account; a != kNoAccount; a = state.account(a).parent) {
    const Caps& caps = state.account(a).caps;
    if (!streak && caps.runaway_error_streak >= 0) {
      settings.error_streak = caps.runaway_error_streak;
      streak = true;
    }
    if (!burn && caps.runaway_burn_multiplier_bp >= 0) {
      settings.burn_multiplier_bp = caps.runaway_burn_multiplier_bp;
      burn = true;
    }
    if (!min && caps.runaway_min_micros_per_hour >= 0) {
      settings.min_micros_per_hour = caps.runaway_min_micros_per_hour;
      min = true;
    }
    if (!action && caps.runaway_action != RunawayAction::kInherit) {
      settings.action = caps.runaway_action;
      action = true;
    }
  }
  return settings;
}

RunawayVerdict CheckRunaway(const Account& account, const RunawaySettings& settings,
                            int64_t now_us) {
  RunawayVerdict verdict;
  verdict.streak = settings.error_streak > 0 && account.error_streak >= settings.error_streak;
  if (settings.burn_multiplier_bp > 0) {
    const int64_t now_minute = MinuteOf(now_us);
    const int64_t recent_first = now_minute - kRunawayRecentMinutes + 1;
    int64_t recent = account.burn.Sum(recent_first, now_minute).spend_micros;
    int64_t before = account.burn.SpendCached(recent_first - kRunawayBeforeMinutes, recent_first - 1);
    verdict.recent_micros_per_hour = PerHour(recent, kRunawayRecentMinutes);
    verdict.before_micros_per_hour = PerHour(before, kRunawayBeforeMinutes);
    verdict.burn = verdict.before_micros_per_hour >= settings.min_micros_per_hour &&
                   verdict.before_micros_per_hour > 0 &&
                   static_cast<__int128>(verdict.recent_micros_per_hour) * 10'000 >
                       static_cast<__int128>(settings.burn_multiplier_bp) *
                           verdict.before_micros_per_hour;
  }
  return verdict;
}

std::string OverrunMessage(const std::string& account, int64_t total_micros, int64_t count) {
  return "recorded spend of " + account + " went " + FormatUsd(total_micros) +
         " USD past its holds or caps in " + std::to_string(count) +
         (count == 1 ? " overrun" : " overruns") + " this hour";
}

int64_t RateTokens(const TokenCounts& tokens) {
  int64_t total = 0;
  for (int64_t count : {tokens.input, tokens.output, tokens.cached_input, tokens.cache_write,
                        tokens.reasoning}) {
    total = SaturatingAdd(total, std::max<int64_t>(0, count));
  }
  return total;
}

}  // namespace purser
