// Token prices and exact cost computation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ledger/types.h"

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

// The table written as PriceSet events on a service's first start.
const std::vector<ModelPrice>& DefaultPriceTable();

}  // namespace purser
