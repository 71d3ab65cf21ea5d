#include "ledger/engine/recover.h"

#include <cstdio>
#include <optional>

#include "ledger/log/cold_record.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/head_file.h"
#include "ledger/log/recovery.h"

namespace purser {

namespace {

// The log must reach the head mark written apart from it: a log that lost
// acknowledged events (truncated, or an older copy) is refused unless the
// operator accepts the loss.
Status CheckHeadMark(EventLog* log, const RecoverOptions& options) {
  Result<std::optional<HeadMark>> read = ReadHeadFile(options.data_dir);
  if (!read.ok()) {
    if (!options.accept_truncated_log) return read.status();
    std::fprintf(stderr, "purser: %s; rewriting it as accepted\n", read.status().message().c_str());
    return WriteHeadFile(options.data_dir, HeadMark{log->last_sequence(), log->last_link()});
  }
  if (!read->has_value()) return Status::Ok();
  const HeadMark& mark = **read;
  std::string problem;
  if (mark.sequence > log->last_sequence()) {
    problem = "the log ends at event " + std::to_string(log->last_sequence()) + " but event " +
              std::to_string(mark.sequence) + " was acknowledged (" + kHeadFileName +
              "): acknowledged events are missing";
  } else if (mark.sequence > 0) {
    std::string record;
    RecordView view;
    Status read_record = log->ReadRecord(mark.sequence, &record);
    if (read_record.ok()) read_record = DecodeRecord(mark.sequence, record, &view);
    if (!read_record.ok() || view.link != mark.link) {
      problem = "the log does not hold the acknowledged event " + std::to_string(mark.sequence) +
                " of " + kHeadFileName + ": it was replaced or damaged";
    }
  }
  if (problem.empty()) return Status::Ok();
  if (!options.accept_truncated_log) {
    return Status::Corruption(problem +
                         ". Refusing to start. To accept the loss, run `purser-replay salvage "
                         "--data-dir " +
                         options.data_dir + "` or start with --accept-truncated-log");
  }
  std::fprintf(stderr, "purser: WARNING: %s; accepted by the operator (--accept-truncated-log)\n",
               problem.c_str());
  return WriteHeadFile(options.data_dir, HeadMark{log->last_sequence(), log->last_link()});
}

}  // namespace

Status RecoverState(EventLog* log, const RecoverOptions& options, State* state, uint64_t* tail_events,
                    std::string* checkpoint_buffer) {
  Sha256Digest link;
  if (Status status = LoadCheckpoint(log, state, &link, checkpoint_buffer); !status.ok()) return status;
  uint64_t checkpoint_sequence = state->last_sequence;
  ReplayOptions replay;
  replay.before_apply = [log, state](const Event& event) {
    return LoadColdRecordsFor(log, event, state);
  };
  if (Status status = ReplayLog(log, state, &link, replay); !status.ok()) {
    if (checkpoint_sequence == 0) return status.WithContext("recovery: ");
    // The tail after a checkpoint needs the cold store; when that fails (a
    // damaged cold record), the whole log is replayed without it.
    std::fprintf(stderr, "purser: recovery after the checkpoint failed (%s); replaying the whole "
                         "log\n", status.message().c_str());
    *state = State();
    link = Sha256Digest{};
    checkpoint_sequence = 0;
    replay.before_apply = nullptr;
    if (Status again = ReplayLog(log, state, &link, replay); !again.ok()) {
      return again.WithContext("recovery: ");
    }
  }
  if (state->last_sequence != log->last_sequence() || link != log->last_link()) {
    return Status::Corruption("recovery: the log's head does not match what was replayed");
  }
  if (Status status = CheckHeadMark(log, options); !status.ok()) return status;
  *tail_events = state->last_sequence - checkpoint_sequence;
  return Status::Ok();
}

}  // namespace purser
