#include "ledger/base/clock.h"

#include <chrono>
#include <cstdio>

#include "ledger/base/money.h"

namespace purser {

// Howard Hinnant's days_from_civil / civil_from_days (public domain
// algorithms), exact for the proleptic Gregorian calendar.
CivilDate CivilFromDays(int64_t days) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t day_of_era = days - era * 146097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t mp = (5 * day_of_year + 2) / 153;
  const int day = static_cast<int>(day_of_year - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return CivilDate{year_of_era + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

int64_t MonthOfDay(int64_t days) {
  // Asked several times per command, almost always of the same day.
  thread_local int64_t last_day = INT64_MIN;
  thread_local int64_t last_month = 0;
  if (days == last_day) return last_month;
  CivilDate date = CivilFromDays(days);
  last_day = days;
  last_month = date.year * 12 + (date.month - 1);
  return last_month;
}

int64_t FirstDayOfMonth(int64_t month_index) {
  return DaysFromCivil(FloorDiv(month_index, 12), static_cast<int>(month_index - FloorDiv(month_index, 12) * 12) + 1, 1);
}

std::string FormatDate(int64_t days) {
  CivilDate date = CivilFromDays(days);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02d-%02d", static_cast<long long>(date.year),
                date.month, date.day);
  return buffer;
}

namespace {

std::optional<int> ParseDigits(std::string_view text) {
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

}  // namespace

std::optional<int64_t> ParseDate(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  auto year = ParseDigits(text.substr(0, 4));
  auto month = ParseDigits(text.substr(5, 2));
  auto day = ParseDigits(text.substr(8, 2));
  if (!year || !month || !day || *year < 1970) return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > DaysInMonth(*year, *month)) {
    return std::nullopt;
  }
  return DaysFromCivil(*year, *month, *day);
}

std::string FormatMonth(int64_t month_index) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02d",
                static_cast<long long>(FloorDiv(month_index, 12)),
                static_cast<int>(month_index - FloorDiv(month_index, 12) * 12) + 1);
  return buffer;
}

std::optional<int64_t> ParseMonth(std::string_view text) {
  if (text.size() != 7 || text[4] != '-') return std::nullopt;
  auto year = ParseDigits(text.substr(0, 4));
  auto month = ParseDigits(text.substr(5, 2));
  if (!year || !month || *year < 1970 || *month < 1 || *month > 12) return std::nullopt;
  return int64_t{*year} * 12 + (*month - 1);
}

std::string FormatTimestamp(int64_t timestamp_us) {
  int64_t days = DayOf(timestamp_us);
  int64_t in_day = timestamp_us - days * kMicrosPerDay;
  int64_t seconds = in_day / kMicrosPerSecond;
  int64_t micros = in_day % kMicrosPerSecond;
  char buffer[64];
  int length = std::snprintf(buffer, sizeof buffer, "%sT%02lld:%02lld:%02lld",
                             FormatDate(days).c_str(), static_cast<long long>(seconds / 3600),
                             static_cast<long long>(seconds / 60 % 60),
                             static_cast<long long>(seconds % 60));
  if (micros != 0) {
    std::snprintf(buffer + length, sizeof buffer - length, ".%06lldZ",
                  static_cast<long long>(micros));
  } else {
    std::snprintf(buffer + length, sizeof buffer - length, "Z");
  }
  return buffer;
}

std::optional<int64_t> ParseTimestamp(std::string_view text) {
  auto days = ParseDate(text.substr(0, 10));
  if (!days) return std::nullopt;
  if (text.size() == 10) return *days * kMicrosPerDay;
  if (text.size() < 20 || text[10] != 'T' || text[13] != ':' || text[16] != ':' ||
      text.back() != 'Z') {
    return std::nullopt;
  }
  auto hour = ParseDigits(text.substr(11, 2));
  auto minute = ParseDigits(text.substr(14, 2));
  auto second = ParseDigits(text.substr(17, 2));
  if (!hour || !minute || !second || *hour > 23 || *minute > 59 || *second > 59) {
    return std::nullopt;
  }
  int64_t micros = 0;
  std::string_view rest = text.substr(19, text.size() - 20);
  if (!rest.empty()) {
    if (rest.front() != '.' || rest.size() < 2 || rest.size() > 7) return std::nullopt;
    auto fraction = ParseDigits(rest.substr(1));
    if (!fraction) return std::nullopt;
    micros = *fraction;
    for (size_t i = rest.size() - 1; i < 6; ++i) micros *= 10;
  }
  return *days * kMicrosPerDay + ((*hour * 60 + *minute) * 60 + *second) * kMicrosPerSecond + micros;
}

int64_t WallClockMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace purser
