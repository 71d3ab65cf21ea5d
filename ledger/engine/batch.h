// What travels between the engine's pieces: a producer's submission (command
// queue -> committer -> log writer) and a group commit's batch (committer ->
// log writer). See ledger/engine/sequencer.h for the whole path.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ledger/machine/commands.h"
#include "ledger/machine/events.h"

namespace purser {

// Completes a submission: one reply per request, in order. Runs on the log
// thread after the batch holding the submission's events is durable; keep it
// short (hand the replies to another thread).
using Completion = std::function<void(std::vector<Reply>&&)>;

struct Submission {
  std::vector<Request> requests;
  std::vector<Reply> replies;
  Completion done;
  std::vector<uint8_t> types;  // RequestBody index of each request, for metrics
  int64_t submitted_us = 0;    // steady clock
};

// Cold-store and listing-index entries, (key, value), written with a batch.
struct ColdWrites {
  std::vector<std::pair<std::string, std::string>> records;
  std::vector<std::pair<std::string, std::string>> listing;  // in key order
  bool empty() const { return records.empty() && listing.empty(); }
};

struct Batch {
  std::vector<Submission> submissions;
  std::vector<Event> events;
  // Chain-head queries answered by the log writer, which computes links:
  // the reply to fill and the sequence it asks about.
  std::vector<std::pair<Reply*, uint64_t>> chain_heads;
  // Finished records retired with this batch, and at a checkpoint those
  // changed since they were stored.
  ColdWrites cold;
  // A projection checkpoint of the state after the batch's last event.
  std::optional<std::string> checkpoint;
  // The checkpoint rewrote cold records changed since they were stored:
  // recovery from an older checkpoint would find them too new, so it must
  // be durable with them, in the synced write (ledger/engine/cold_manager.h).
  // Otherwise it is written after the batch, outside the write-ahead log.
  bool checkpoint_rewrote_records = false;
  uint64_t number = 0;  // batches are numbered 1, 2, ... in order
};

}  // namespace purser
