#include "ledger/base/money.h"

#include <charconv>

namespace purser {

std::optional<int64_t> ParseInt64(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    if (__builtin_mul_overflow(value, 10, &value)) return std::nullopt;
    if (__builtin_add_overflow(value, c - '0', &value)) return std::nullopt;
  }
  return value;
}

std::optional<int64_t> ParseUsd(std::string_view text) {
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction;
  if (dot != std::string_view::npos) {
    fraction = text.substr(dot + 1);
    if (fraction.empty() || fraction.size() > 6) return std::nullopt;
  }
  // The whole part: digits only, no leading zeros except a single "0".
  if (whole.empty() || whole.size() > 7) return std::nullopt;
  if (whole.size() > 1 && whole.front() == '0') return std::nullopt;
  std::optional<int64_t> units = ParseInt64(whole);
  if (!units) return std::nullopt;
  int64_t micros = *units * kMicrosPerUsd;
  int64_t scale = kMicrosPerUsd / 10;
  for (char c : fraction) {
    if (c < '0' || c > '9') return std::nullopt;
    micros += (c - '0') * scale;
    scale /= 10;
  }
  if (micros > kInputValueMax) return std::nullopt;
  return negative ? -micros : micros;
}

std::string FormatUsd(int64_t micros) {
  std::string out;
  uint64_t magnitude;
  if (micros < 0) {
    out.push_back('-');
    magnitude = static_cast<uint64_t>(-(micros + 1)) + 1;  // safe for INT64_MIN
  } else {
    magnitude = static_cast<uint64_t>(micros);
  }
  out += std::to_string(magnitude / kMicrosPerUsd);
  uint64_t fraction = magnitude % kMicrosPerUsd;
  if (fraction != 0) {
    char digits[7] = "000000";
    for (int i = 5; i >= 0; --i) {
      digits[i] = static_cast<char>('0' + fraction % 10);
      fraction /= 10;
    }
    int length = 6;
    while (digits[length - 1] == '0') --length;
    out.push_back('.');
    out.append(digits, static_cast<size_t>(length));
  }
  return out;
}

}  // namespace purser
