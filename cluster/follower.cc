#include "cluster/follower.h"

#include <utility>
#include <vector>

#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"

namespace purser {

Follower::Follower(EventLog* log, NatsShard* shard)
    : log_(log), shard_(shard), position_(log->ReplicaPosition()) {
  // The local log's last time: the stream's events must not go back before
  // it, as recovery requires. A record that does not read here fails
  // recovery at takeover anyway.
  std::string record;
  RecordView view;
  Event event;
  if (log->last_sequence() > 0 && log->ReadRecord(log->last_sequence(), &record).ok() &&
      DecodeRecord(log->last_sequence(), record, &view).ok() && DecodePayload(view.payload, &event).ok()) {
    last_timestamp_us_ = event.timestamp_us;
  }
}

Follower::~Follower() = default;

Status Follower::Subscribe() {
  if (subscription_) return Status::Ok();
  Result<std::unique_ptr<NatsShard::Subscription>> opened = shard_->Subscribe(position_ + 1);
  if (!opened.ok()) return opened.status();
  subscription_ = std::move(*opened);
  return Status::Ok();
}

Status Follower::Poll(int64_t wait_ms) {
  if (Status status = Subscribe(); !status.ok()) return status;
  // At most this many at once, so that the caller looks around (a stop,
  // the lease) even while a leader publishes without pause.
  for (int applied = 0; applied < 1'000; ++applied) {
    Result<std::optional<StreamMessage>> next = subscription_->Next(wait_ms);
    if (!next.ok()) {
      subscription_.reset();  // resubscribe from our position next time
      return next.status();
    }
    if (!next->has_value()) return Status::Ok();
    if (Status status = Apply(**next); !status.ok()) return status;
  }
  return Status::Ok();
}

Status Follower::CatchUp(uint64_t until, int64_t timeout_ms) {
  if (position_ >= until) return Status::Ok();
  if (Status status = Subscribe(); !status.ok()) return status;
  while (position_ < until) {
    Result<std::optional<StreamMessage>> next = subscription_->Next(timeout_ms);
    if (!next.ok()) {
      subscription_.reset();
      return next.status();
    }
    if (!next->has_value()) {
      return Status::IOError("catching up: no message after position " + std::to_string(position_) +
                             " within " + std::to_string(timeout_ms) + " ms (the stream ends at " +
                             std::to_string(until) + ")");
    }
    if (Status status = Apply(**next); !status.ok()) return status;
  }
  return Status::Ok();
}

Status Follower::Apply(const StreamMessage& message) {
  if (message.position <= position_) return Status::Ok();  // a redelivery
  if (message.kind == StreamMessage::Kind::kRecords) {
    if (Status status = AppendRecords(message); !status.ok()) {
      return status.WithContext("stream message " + std::to_string(message.position) + ": ");
    }
  } else {
    LogBatch batch;
    log_->SetReplicaPosition(message.position, &batch);
    if (Status status = log_->Write(&batch, /*sync=*/false); !status.ok()) return status;
  }
  position_ = message.position;
  return Status::Ok();
}

Status Follower::AppendRecords(const StreamMessage& message) {
  if (message.first != log_->last_sequence() + 1) {
    return Status::Corruption("its records start at event " + std::to_string(message.first) +
                              " but the local log ends at " + std::to_string(log_->last_sequence()));
  }
  // Not synced: the stream is the log of record, and a restart resumes from
  // the position written with these records. The next leader's first synced
  // write syncs them with it.
  // Everything is checked before anything is appended: a bad message leaves
  // the log as it was.
  std::vector<std::pair<std::string_view, Event>> checked;
  checked.reserve(message.count);
  std::string_view rest = message.body;
  Sha256Digest link = log_->last_link();
  int64_t timestamp_us = last_timestamp_us_;
  for (uint64_t i = 0; i < message.count; ++i) {
    const uint64_t sequence = message.first + i;
    if (rest.size() < kSegmentLengthBytes) {
      return Status::Corruption("truncated at event " + std::to_string(sequence));
    }
    const uint32_t length = SegmentRecordLength(rest);
    rest.remove_prefix(kSegmentLengthBytes);
    if (length > rest.size()) return Status::Corruption("bad record length at event " + std::to_string(sequence));
    std::string_view record = rest.substr(0, length);
    rest.remove_prefix(length);
    Event event;
    if (Status status = DecodeChainedRecord(sequence, record, link, &event, &link); !status.ok()) {
      return status;
    }
    if (event.timestamp_us < timestamp_us) {
      return Status::Corruption("event " + std::to_string(sequence) + " goes back in time");
    }
    timestamp_us = event.timestamp_us;
    checked.emplace_back(record, std::move(event));
  }
  if (!rest.empty()) return Status::Corruption("bytes after its last record");
  LogBatch batch;
  for (const auto& [record, event] : checked) log_->AppendRecord(event, record, &batch);
  log_->SetReplicaPosition(message.position, &batch);
  if (Status status = log_->Write(&batch, /*sync=*/false); !status.ok()) return status;
  last_timestamp_us_ = timestamp_us;
  return Status::Ok();
}

}  // namespace purser
