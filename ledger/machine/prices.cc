#include "ledger/machine/prices.h"

#include "ledger/base/money.h"

#include <algorithm>

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
  // Public list prices per million tokens, in micro-USD, as the vendors'
  // price pages gave them when this table was read (kDefaultPricesReadOn).
  // Cached input is the cache-read price; cache write is the 5-minute write
  // where a vendor charges one; reasoning is billed as output. A dated
  // snapshot name ("gpt-4o-2024-08-06", "claude-sonnet-4-20250514") resolves
  // to its model's price (PriceAliasOf). Prices change: an operator sets
  // current ones with PUT /v1/prices/{model} or `purser prices import`.
  static const std::vector<ModelPrice> kTable = {
      // Anthropic
      {"claude-3-5-haiku", {800'000, 4'000'000, 80'000, 1'000'000, -1}},
      {"claude-3-5-sonnet", {3'000'000, 15'000'000, 300'000, 3'750'000, -1}},
      {"claude-3-7-sonnet", {3'000'000, 15'000'000, 300'000, 3'750'000, -1}},
      {"claude-3-haiku", {250'000, 1'250'000, 30'000, 300'000, -1}},
      {"claude-haiku-4-5", {1'000'000, 5'000'000, 100'000, 1'250'000, -1}},
      {"claude-opus-4", {15'000'000, 75'000'000, 1'500'000, 18'750'000, -1}},
      {"claude-opus-4-1", {15'000'000, 75'000'000, 1'500'000, 18'750'000, -1}},
      {"claude-sonnet-4", {3'000'000, 15'000'000, 300'000, 3'750'000, -1}},
      {"claude-sonnet-4-5", {3'000'000, 15'000'000, 300'000, 3'750'000, -1}},
      // DeepSeek (cache hits are the cached-input price)
      {"deepseek-chat", {270'000, 1'100'000, 70'000, -1, -1}},
      {"deepseek-reasoner", {550'000, 2'190'000, 140'000, -1, -1}},
      // Google (prompts up to 200k tokens)
      {"gemini-1.5-flash", {75'000, 300'000, 18'750, -1, -1}},
      {"gemini-1.5-pro", {1'250'000, 5'000'000, 312'500, -1, -1}},
      {"gemini-2.0-flash", {100'000, 400'000, 25'000, -1, -1}},
      {"gemini-2.5-flash", {300'000, 2'500'000, 75'000, -1, -1}},
      {"gemini-2.5-flash-lite", {100'000, 400'000, 25'000, -1, -1}},
      {"gemini-2.5-pro", {1'250'000, 10'000'000, 310'000, -1, -1}},
      // OpenAI
      {"gpt-4.1", {2'000'000, 8'000'000, 500'000, -1, -1}},
      {"gpt-4.1-mini", {400'000, 1'600'000, 100'000, -1, -1}},
      {"gpt-4.1-nano", {100'000, 400'000, 25'000, -1, -1}},
      {"gpt-4o", {2'500'000, 10'000'000, 1'250'000, -1, -1}},
      {"gpt-4o-mini", {150'000, 600'000, 75'000, -1, -1}},
      {"gpt-5", {1'250'000, 10'000'000, 125'000, -1, -1}},
      {"gpt-5-mini", {250'000, 2'000'000, 25'000, -1, -1}},
      {"gpt-5-nano", {50'000, 400'000, 5'000, -1, -1}},
      {"o1", {15'000'000, 60'000'000, 7'500'000, -1, -1}},
      {"o1-mini", {1'100'000, 4'400'000, 550'000, -1, -1}},
      {"o3", {2'000'000, 8'000'000, 500'000, -1, -1}},
      {"o3-mini", {1'100'000, 4'400'000, 550'000, -1, -1}},
      {"o4-mini", {1'100'000, 4'400'000, 275'000, -1, -1}},
      {"text-embedding-3-large", {130'000, 0, -1, -1, -1}},
      {"text-embedding-3-small", {20'000, 0, -1, -1, -1}},
  };
  return kTable;
}

std::string_view PriceAliasOf(std::string_view model) {
  auto digits = [](std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  // "-YYYY-MM-DD" (OpenAI snapshots)
  if (model.size() > 11 && model[model.size() - 11] == '-' && model[model.size() - 6] == '-' &&
      model[model.size() - 3] == '-' && digits(model.substr(model.size() - 10, 4)) &&
      digits(model.substr(model.size() - 5, 2)) && digits(model.substr(model.size() - 2))) {
    return model.substr(0, model.size() - 11);
  }
  // "-YYYYMMDD" (Anthropic snapshots)
  if (model.size() > 9 && model[model.size() - 9] == '-' && digits(model.substr(model.size() - 8))) {
    return model.substr(0, model.size() - 9);
  }
  // "-latest", and "-001" style versions (Google)
  if (model.size() > 7 && model.substr(model.size() - 7) == "-latest") {
    return model.substr(0, model.size() - 7);
  }
  if (model.size() > 4 && model[model.size() - 4] == '-' && digits(model.substr(model.size() - 3))) {
    return model.substr(0, model.size() - 4);
  }
  return {};
}

std::string VendorOf(std::string_view model) {
  auto starts = [&](std::string_view prefix) { return model.substr(0, prefix.size()) == prefix; };
  if (starts("gpt-") || starts("o1") || starts("o3") || starts("o4") || starts("chatgpt") ||
      starts("text-embedding")) {
    return "openai";
  }
  if (starts("claude")) return "anthropic";
  if (starts("gemini")) return "google";
  if (starts("deepseek")) return "deepseek";
  if (starts("mistral") || starts("codestral") || starts("ministral")) return "mistral";
  return std::string(model.substr(0, model.find('-')));
}

}  // namespace purser
