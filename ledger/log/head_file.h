// The head mark: the last durable event's sequence and chain link, kept in a
// small file beside the RocksDB directory's files (`<data-dir>/purser-head`),
// apart from the log itself.
//
// A log that lost acknowledged events (a write-ahead log truncated to half or
// to zero, a restored older copy) still opens and replays cleanly: its chain
// is intact, only shorter. The head mark is how that is noticed at start and
// by `verify`: the log must reach the marked sequence with the marked link.
// The sequencer rewrites the mark at most once a second after a durable
// write (and at stop), atomically (a temporary file, fsync, rename, fsync of
// the directory), so the mark is never ahead of what the log holds and lags
// it by about a second at most.
#pragma once

#include <optional>
#include <string>

#include "ledger/base/status.h"
#include "ledger/base/types.h"

namespace purser {

inline constexpr char kHeadFileName[] = "purser-head";

struct HeadMark {
  uint64_t sequence = 0;
  Sha256Digest link{};
};

Status WriteHeadFile(const std::string& data_dir, const HeadMark& mark);
// nullopt when there is no head file (a database of an older build, or one
// that never wrote an event); an error when it exists and does not parse.
Result<std::optional<HeadMark>> ReadHeadFile(const std::string& data_dir);

}  // namespace purser
