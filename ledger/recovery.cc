#include "ledger/recovery.h"

#include <string>

#include "ledger/event_codec.h"
#include "ledger/snapshot.h"

namespace purser {

Status ReplayLog(EventLog* log, State* state, Sha256Digest* link, const ReplayOptions& options) {
  uint64_t expected = state->last_sequence + 1;
  auto it = log->NewIterator(expected);
  Event event;
  for (; it->Valid(); it->Next()) {
    uint64_t sequence = it->sequence();
    if (sequence > options.until_sequence) break;
    if (sequence != expected) {
      return Status::Error("event " + std::to_string(expected) + " is missing (the log jumps to " +
                           std::to_string(sequence) + ")");
    }
    RecordView view;
    if (Status status = DecodeRecord(sequence, it->record(), &view); !status.ok()) return status;
    if (ChainLink(*link, sequence, view.payload) != view.link) {
      return Status::Error("event " + std::to_string(sequence) + " breaks the hash chain");
    }
    if (Status status = DecodePayload(view.payload, &event); !status.ok()) {
      return Status::Error("event " + std::to_string(sequence) + ": " + status.message());
    }
    if (event.sequence != sequence) {
      return Status::Error("event " + std::to_string(sequence) + " carries sequence " +
                           std::to_string(event.sequence));
    }
    if (event.timestamp_us < state->last_timestamp_us) {
      return Status::Error("event " + std::to_string(sequence) + " goes back in time");
    }
    if (event.timestamp_us > options.until_time_us) break;
    if (options.on_event) options.on_event(event, it->record());
    if (options.before_apply) {
      if (Status status = options.before_apply(event); !status.ok()) return status;
    }
    if (options.apply) {
      state->Apply(event);
    } else {
      state->last_sequence = sequence;
      state->last_timestamp_us = event.timestamp_us;
    }
    *link = view.link;
    if (options.progress && sequence % options.progress_every == 0) options.progress(sequence);
    ++expected;
  }
  return it->status();
}

Status LoadCheckpoint(EventLog* log, State* state, Sha256Digest* link) {
  *link = Sha256Digest{};
  uint64_t sequence = 0;
  Sha256Digest checkpoint_link;
  std::string bytes;
  if (Status status = log->ReadCheckpoint(&sequence, &checkpoint_link, &bytes); !status.ok()) {
    return status;
  }
  if (sequence == 0) return Status::Ok();
  std::string record;
  if (Status status = log->ReadRecord(sequence, &record); !status.ok()) {
    return Status::Error("the checkpoint is at event " + std::to_string(sequence) +
                         " which the log does not hold: " + status.message());
  }
  RecordView view;
  if (Status status = DecodeRecord(sequence, record, &view); !status.ok()) return status;
  if (view.link != checkpoint_link) {
    return Status::Error("the checkpoint does not match the log at event " +
                         std::to_string(sequence));
  }
  if (Status status = DeserializeState(bytes, state); !status.ok()) return status;
  if (state->last_sequence != sequence) return Status::Error("the checkpoint state is inconsistent");
  *link = checkpoint_link;
  return Status::Ok();
}

}  // namespace purser
