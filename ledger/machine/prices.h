// Token prices and exact cost computation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/types.h"

namespace purser {

// The cost of a call in micro-USD: every token class times its rate (micro-USD
// per million tokens) summed in 128-bit integers, then divided by one million
// and rounded half-up once. A missing cached-input or cache-write rate falls
// back to the input rate, a missing reasoning rate to the output rate.
// nullopt when the cost exceeds kInputValueMax or a count is negative.
std::optional<int64_t> Cost(const PriceRates& rates, const TokenCounts& tokens);

struct ModelPrice {
  std::string model;
  PriceRates rates;
};

// The vendor of a model by its name ("gpt-4o" -> "openai", "claude-..." ->
// "anthropic"), for recommendations of a cheaper model of the same vendor.
std::string VendorOf(std::string_view model);

// The table written as PriceSet events on a service's first start, and the
// day its prices were read from the vendors' price pages.
const std::vector<ModelPrice>& DefaultPriceTable();
inline constexpr char kDefaultPricesReadOn[] = "2025-08-15";

// The model a dated snapshot name stands for ("gpt-4o-2024-08-06" ->
// "gpt-4o", "claude-sonnet-4-20250514" -> "claude-sonnet-4", "-latest" and
// "-001" suffixes too); empty when the name carries no such suffix. A name
// with a price of its own always uses that price.
std::string_view PriceAliasOf(std::string_view model);

}  // namespace purser
