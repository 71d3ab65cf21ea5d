// A standby's half of replication: copies a shard's stream (cluster/
// nats_shard.h) into the local RocksDB log, so that taking over needs only
// the usual recovery of the local log. Every record is checked as recovery
// checks it (checksum, chain link, payload, sequence) before it is
// appended byte for byte; the message's position is written with it
// (EventLog::ReplicaPosition), so a restart resumes where it stopped.
#pragma once

#include <cstdint>
#include <memory>

#include "cluster/nats_shard.h"
#include "ledger/base/status.h"

namespace purser {

class EventLog;

class Follower {
 public:
  // `log` is open for writing and outlives the follower.
  Follower(EventLog* log, NatsShard* shard);
  ~Follower();

  // Applies the messages that arrive within `wait_ms`; returns at the first
  // wait without one, or after 1,000.
  Status Poll(int64_t wait_ms);
  // Applies messages until the position `until` is applied (or an error, or
  // `timeout_ms` without progress).
  Status CatchUp(uint64_t until, int64_t timeout_ms = 10'000);
  // The position of the last message applied.
  uint64_t position() const { return position_; }

 private:
  Status Subscribe();
  Status Apply(const StreamMessage& message);
  Status AppendRecords(const StreamMessage& message);

  EventLog* const log_;
  NatsShard* const shard_;
  std::unique_ptr<NatsShard::Subscription> subscription_;
  uint64_t position_ = 0;
  int64_t last_timestamp_us_ = INT64_MIN;  // of the local log's last event
};

}  // namespace purser
