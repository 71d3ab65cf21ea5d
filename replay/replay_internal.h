// Shared by the replay tools' sources; not part of replay.h's interface.
#pragma once

#include <memory>
#include <string>

#include "ledger/base/status.h"
#include "ledger/log/event_log.h"

namespace purser {

// Opens a database read-only (NotFound when the directory does not exist).
Result<std::unique_ptr<EventLog>> OpenReadOnly(const std::string& dir);

}  // namespace purser
