// UTC calendar arithmetic on event timestamps (microseconds since the epoch).
//
// Day and month windows, expiry and minute buckets are computed from event
// timestamps with integer arithmetic only, so a replay reproduces every
// decision exactly (SPEC section 1).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace purser {

inline constexpr int64_t kMicrosPerSecond = 1'000'000;
inline constexpr int64_t kMicrosPerMinute = 60 * kMicrosPerSecond;
inline constexpr int64_t kMicrosPerHour = 60 * kMicrosPerMinute;
inline constexpr int64_t kMicrosPerDay = 24 * kMicrosPerHour;

// Floor division that is right for negative timestamps too.
inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t quotient = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? quotient - 1 : quotient;
}

// Days since 1970-01-01 (UTC) of a timestamp.
inline int64_t DayOf(int64_t timestamp_us) { return FloorDiv(timestamp_us, kMicrosPerDay); }
// The steady clock in microseconds (for latencies, never for event times),
// and the microseconds since a steady time point.
int64_t SteadyMicros();
uint64_t MicrosSince(std::chrono::steady_clock::time_point start);

inline int64_t MinuteOf(int64_t timestamp_us) { return FloorDiv(timestamp_us, kMicrosPerMinute); }
inline int64_t HourOf(int64_t timestamp_us) { return FloorDiv(timestamp_us, kMicrosPerHour); }

struct CivilDate {
  int64_t year;
  int month;  // 1..12
  int day;    // 1..31
};

CivilDate CivilFromDays(int64_t days);
int64_t DaysFromCivil(int64_t year, int month, int day);

// The month index of a day: year * 12 + (month - 1).
int64_t MonthOfDay(int64_t days);
inline int64_t MonthOf(int64_t timestamp_us) { return MonthOfDay(DayOf(timestamp_us)); }
// The first day (days since epoch) of a month index.
int64_t FirstDayOfMonth(int64_t month_index);

// "2026-11-23" <-> days. Parse refuses anything but a valid YYYY-MM-DD.
std::string FormatDate(int64_t days);
std::optional<int64_t> ParseDate(std::string_view text);
// "2026-11" <-> month index.
std::string FormatMonth(int64_t month_index);
std::optional<int64_t> ParseMonth(std::string_view text);

// RFC 3339 UTC, to the second when whole ("2026-11-23T14:03:00Z"), else with
// microseconds ("2026-11-23T14:03:00.123456Z").
std::string FormatTimestamp(int64_t timestamp_us);
// Accepts "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" and a bare date (midnight).
std::optional<int64_t> ParseTimestamp(std::string_view text);

// Wall clock, microseconds since the epoch. Only the sequencer calls it.
int64_t WallClockMicros();

}  // namespace purser
