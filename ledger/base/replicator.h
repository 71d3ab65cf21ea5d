// The seam between the log writer and a replicated log of record (cluster/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "ledger/base/status.h"

namespace purser {

// Publishes one write's records to the replicated log before they are
// written locally: the first event's sequence, the number of records and
// the records as a segment holds them (each a 4-byte little-endian length
// and the record). Returns the message's position in that log, or an error:
// then nothing of the write is written locally or acknowledged, and the
// engine stops (a deposed leader's publish is refused: fencing).
using Replicator =
    std::function<Result<uint64_t>(uint64_t first_sequence, size_t count, std::string_view records)>;

}  // namespace purser
