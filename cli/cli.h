// purser: the command-line client (tools/purser.cc is its main).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/status.h"
#include "ledger/machine/commands.h"

namespace purser {

int CliMain(int argc, char** argv);

// The request a `purser` command line means (its words after the program
// name, e.g. {"balance", "org"}), as the CLI would send it at `now_us` (the
// default date ranges, "this month" and "today", are of that moment); a
// usage error is an InvalidArgument status. For tools that answer reads
// themselves (`purser-replay query`).
Result<RequestBody> ParseCommandLine(const std::vector<std::string>& words, int64_t now_us);

// A USD-per-token price as written in a gateway's price map ("2.5e-06",
// "0.0000025") converted exactly, from its decimal text, to micro-USD per
// million tokens (x 10^12). nullopt when negative, malformed, above 10^12,
// or not a whole number of micro-USD per million tokens.
std::optional<int64_t> PerTokenToMicrosPerMtok(std::string_view text);

}  // namespace purser
