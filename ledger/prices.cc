#include "ledger/prices.h"

#include "ledger/money.h"

namespace purser {

std::optional<int64_t> Cost(const PriceRates& rates, const TokenCounts& tokens) {
  auto rate_or = [](int64_t rate, int64_t fallback) { return rate >= 0 ? rate : fallback; };
  const int64_t counts[5] = {tokens.input, tokens.output, tokens.cached_input, tokens.cache_write,
                             tokens.reasoning};
  const int64_t per_mtok[5] = {rates.input_per_mtok, rates.output_per_mtok,
                               rate_or(rates.cached_input_per_mtok, rates.input_per_mtok),
                               rate_or(rates.cache_write_per_mtok, rates.input_per_mtok),
                               rate_or(rates.reasoning_per_mtok, rates.output_per_mtok)};
  unsigned __int128 total = 0;
  for (int i = 0; i < 5; ++i) {
    if (counts[i] < 0 || counts[i] > kInputValueMax || per_mtok[i] < 0 ||
        per_mtok[i] > kInputValueMax) {
      return std::nullopt;
    }
    // Each product is below 10^24 < 2^80, and five of them cannot overflow.
    total += static_cast<unsigned __int128>(counts[i]) * static_cast<unsigned __int128>(per_mtok[i]);
  }
  unsigned __int128 micros = (total + 500'000) / 1'000'000;  // half-up, once
  if (micros > static_cast<unsigned __int128>(kInputValueMax)) return std::nullopt;
  return static_cast<int64_t>(micros);
}

const std::vector<ModelPrice>& DefaultPriceTable() {
  // Public list prices per million tokens, in micro-USD. Cached input is the
  // provider's cache-read price; cache write is Anthropic's 5-minute write.
  static const std::vector<ModelPrice> kTable = {
      {"claude-3-5-haiku", {800'000, 4'000'000, 80'000, 1'000'000, -1}},
      {"claude-opus-4", {15'000'000, 75'000'000, 1'500'000, 18'750'000, -1}},
      {"claude-sonnet-4", {3'000'000, 15'000'000, 300'000, 3'750'000, -1}},
      {"gpt-4.1", {2'000'000, 8'000'000, 500'000, -1, -1}},
      {"gpt-4.1-mini", {400'000, 1'600'000, 100'000, -1, -1}},
      {"gpt-4o", {2'500'000, 10'000'000, 1'250'000, -1, -1}},
      {"gpt-4o-mini", {150'000, 600'000, 75'000, -1, -1}},
      {"o3-mini", {1'100'000, 4'400'000, 550'000, -1, -1}},
      {"text-embedding-3-large", {130'000, 0, -1, -1, -1}},
      {"text-embedding-3-small", {20'000, 0, -1, -1, -1}},
  };
  return kTable;
}

}  // namespace purser
