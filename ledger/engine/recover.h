// Opening the engine's state: the last projection checkpoint, then the log's
// tail re-applied through State::Apply (checksums, chain and continuity
// checked, records the tail needs loaded from the cold store), then the head
// mark kept apart from the log checked against the log's head.
#pragma once

#include <cstdint>
#include <string>

#include "ledger/base/status.h"
#include "ledger/log/event_log.h"
#include "ledger/machine/state.h"

namespace purser {

struct RecoverOptions {
  std::string data_dir;
  // Start even when the log lost events that the head mark says were
  // acknowledged, logging the loss and moving the mark.
  bool accept_truncated_log = false;
};

// Fills the empty *state from `log`; *tail_events receives how many events
// were re-applied after the checkpoint. The checkpoint is read into
// *checkpoint_buffer (LoadCheckpoint).
Status RecoverState(EventLog* log, const RecoverOptions& options, State* state, uint64_t* tail_events,
                    std::string* checkpoint_buffer);

}  // namespace purser
