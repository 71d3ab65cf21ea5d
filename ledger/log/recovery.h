// Reading the log back into a State: used by the sequencer's recovery and by
// every replay tool, so that both check and apply events the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "ledger/log/event_log.h"
#include "ledger/machine/events.h"
#include "ledger/machine/state.h"
#include "ledger/base/status.h"

namespace purser {

struct ReplayOptions {
  // Stop after this sequence (inclusive). Default: the end of the log.
  uint64_t until_sequence = UINT64_MAX;
  // Stop before the first event later than this time. Default: no limit.
  int64_t until_time_us = INT64_MAX;
  // Apply events to the state. Default: true. (verify may read without it.)
  bool apply = true;
  // Called for every event read, after its checks, before it is applied.
  std::function<void(const Event&, std::string_view record)> on_event;
  // Called before an event is applied; an error stops the replay (the
  // sequencer loads records from the cold store here).
  std::function<Status(const Event&)> before_apply;
  // Called every `progress_every` events with the last sequence read.
  std::function<void(uint64_t sequence)> progress;
  uint64_t progress_every = 1'000'000;
};

// Reads the events after state->last_sequence, checking for each record its
// checksum, its version, sequence continuity, and that its link equals
// SHA-256(previous link || sequence || payload), starting from *link (the link
// of state->last_sequence). On success *link is the link of the last event
// read. An error names the first bad event by its sequence number.
Status ReplayLog(EventLog* log, State* state, Sha256Digest* link, const ReplayOptions& options);

// Loads the projection checkpoint (if any) into an empty *state and checks
// that its link matches the log's record at its sequence. *link receives the
// link of the checkpoint's last event (zeros when there is no checkpoint).
// With `buffer`, the checkpoint is read into it: its memory can then take
// the next checkpoint's serialization.
Status LoadCheckpoint(EventLog* log, State* state, Sha256Digest* link,
                      std::string* buffer = nullptr);

}  // namespace purser
