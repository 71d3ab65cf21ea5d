// Money: int64 micro-USD (1 USD = 1,000,000), never floating point.
//
// Every arithmetic step on money that could overflow goes through the checked
// helpers here; an overflow is an error the caller turns into a refusal that
// changes nothing (SPEC section 1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace purser {

inline constexpr int64_t kMicrosPerUsd = 1'000'000;
// Every amount, token count and rate in an input is at most 10^12.
inline constexpr int64_t kInputValueMax = 1'000'000'000'000;

// a + b, or nullopt on int64 overflow.
inline std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}

// a - b, or nullopt on int64 overflow.
inline std::optional<int64_t> CheckedSub(int64_t a, int64_t b) {
  int64_t difference;
  if (__builtin_sub_overflow(a, b, &difference)) return std::nullopt;
  return difference;
}

// A markup of `markup_bp` basis points on `subtotal_micros`, rounded half-up
// once (chargeback invoices). False when the markup or the total does not
// fit int64: such an answer is an error, never a wrapped number.
inline bool ApplyMarkup(int64_t subtotal_micros, int64_t markup_bp, int64_t* markup_micros,
                        int64_t* total_micros) {
  __int128 scaled = static_cast<__int128>(subtotal_micros) * markup_bp;
  __int128 markup = (scaled + (scaled >= 0 ? 5'000 : -5'000)) / 10'000;
  __int128 total = static_cast<__int128>(subtotal_micros) + markup;
  if (markup > INT64_MAX || markup < INT64_MIN || total > INT64_MAX || total < INT64_MIN) {
    return false;
  }
  *markup_micros = static_cast<int64_t>(markup);
  *total_micros = static_cast<int64_t>(total);
  return true;
}

// Parses a decimal USD amount exactly from its text: an optional '-', digits,
// an optional '.' and at most 6 more digits ("14.73" -> 14'730'000). No
// exponent, no '+', no spaces, no leading '.', no more than 6 decimals; the
// absolute value is at most kInputValueMax micros. nullopt when not valid.
std::optional<int64_t> ParseUsd(std::string_view text);

// Prints micro-USD as the shortest exact decimal USD: 14'730'000 -> "14.73",
// 5'000'000 -> "5", -1 -> "-0.000001". The output is a valid JSON number.
std::string FormatUsd(int64_t micros);

// Parses a non-negative decimal integer of at most 19 digits ("123");
// nullopt on anything else (sign, spaces, overflow).
std::optional<int64_t> ParseInt64(std::string_view text);

}  // namespace purser
