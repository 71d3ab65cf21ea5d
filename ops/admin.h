// Operations shared by the HTTP and RPC edges: the consistent copy of a live
// database for audits (SPEC section 7), with its path checked first.
#pragma once

#include <string>

#include "ledger/ledger.h"
#include "ledger/base/status.h"

namespace purser {

// "" when `dir` may name a new checkpoint directory, else why not: an
// absolute path without NUL bytes or ".." components, each component at most
// 255 bytes and the whole at most 4,096. Nothing here touches the disk.
std::string CheckCheckpointDir(const std::string& dir);

// Creates a RocksDB checkpoint of the live log at `dir` (checked with
// CheckCheckpointDir; it must not exist and its parent must). Never throws:
// every failure is a Status.
Status CreateCheckpointAt(Ledger* sequencer, const std::string& dir);

}  // namespace purser
