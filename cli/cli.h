// purser: the command-line client (tools/purser.cc is its main).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace purser {

int CliMain(int argc, char** argv);

// A USD-per-token price as written in a gateway's price map ("2.5e-06",
// "0.0000025") converted exactly, from its decimal text, to micro-USD per
// million tokens (x 10^12). nullopt when negative, malformed, above 10^12,
// or not a whole number of micro-USD per million tokens.
std::optional<int64_t> PerTokenToMicrosPerMtok(std::string_view text);

}  // namespace purser
