#include "ledger/log/recovery.h"

#include <cstdio>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ledger/log/event_codec.h"
#include "ledger/log/snapshot.h"

namespace purser {

namespace {

// The replay runs on two threads: a reader that checks and decodes records
// (checksum, chain link, Cap'n Proto) and the caller's thread that applies
// them. Chunks of events travel between them through a small bounded queue,
// and come back empty to be refilled, so that events keep their capacity.
struct Decoded {
  Event event;
  Sha256Digest link{};
  std::string record;  // only when on_event wants it
};

struct Chunk {
  std::vector<Decoded> items;
  size_t size = 0;
  Status status = Status::Ok();
  bool last = false;
};

constexpr size_t kChunkEvents = 512;
constexpr size_t kChunksInFlight = 8;

class ChunkQueue {
 public:
  // Returns false once the queue is closed.
  bool Push(std::deque<Chunk>* queue, Chunk&& chunk) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return closed_ || queue == &free_ || queue->size() < kChunksInFlight; });
    if (closed_) return false;
    queue->push_back(std::move(chunk));
    cv_.notify_all();
    return true;
  }
  bool Pop(std::deque<Chunk>* queue, Chunk* chunk) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return closed_ || !queue->empty(); });
    if (queue->empty()) return false;
    *chunk = std::move(queue->front());
    queue->pop_front();
    return true;
  }
  // Non-blocking: a recycled chunk if one is free.
  bool TryPopFree(Chunk* chunk) {
    std::lock_guard lock(mutex_);
    if (free_.empty()) return false;
    *chunk = std::move(free_.front());
    free_.pop_front();
    return true;
  }
  void Close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    cv_.notify_all();
  }
  std::deque<Chunk> full_;
  std::deque<Chunk> free_;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool closed_ = false;
};

// The reader thread's loop: every check of ReplayLog's contract except
// those that need the state.
void ReadRecords(EventLog* log, uint64_t expected, Sha256Digest link, int64_t last_timestamp_us,
                 const ReplayOptions& options, ChunkQueue* queue) {
  auto it = log->NewIterator(expected);
  Chunk chunk;
  auto fail = [&](std::string message) { chunk.status = Status::Corruption(std::move(message)); };
  for (; it->Valid(); it->Next()) {
    uint64_t sequence = it->sequence();
    if (sequence > options.until_sequence) break;
    if (sequence != expected) {
      fail("event " + std::to_string(expected) + " is missing (the log jumps to " +
           std::to_string(sequence) + ")");
      break;
    }
    if (chunk.size == chunk.items.size()) chunk.items.emplace_back();
    Decoded& item = chunk.items[chunk.size];
    if (Status status = DecodeChainedRecord(sequence, it->record(), link, &item.event, &item.link);
        !status.ok()) {
      chunk.status = status;
      break;
    }
    if (item.event.timestamp_us < last_timestamp_us) {
      fail("event " + std::to_string(sequence) + " goes back in time");
      break;
    }
    if (item.event.timestamp_us > options.until_time_us) break;
    last_timestamp_us = item.event.timestamp_us;
    if (options.on_event) item.record.assign(it->record());
    link = item.link;
    ++chunk.size;
    ++expected;
    if (chunk.size == kChunkEvents) {
      if (!queue->Push(&queue->full_, std::move(chunk))) return;
      chunk = Chunk();
      queue->TryPopFree(&chunk);
    }
  }
  if (chunk.status.ok()) chunk.status = it->status();
  chunk.last = true;
  queue->Push(&queue->full_, std::move(chunk));
}

}  // namespace

Status ReplayLog(EventLog* log, State* state, Sha256Digest* link, const ReplayOptions& options) {
  ChunkQueue queue;
  std::thread reader(ReadRecords, log, state->last_sequence + 1, *link, state->last_timestamp_us,
                     std::cref(options), &queue);
  auto apply = [&](const Decoded& item) -> Status {
    const Event& event = item.event;
    if (options.on_event) options.on_event(event, item.record);
    if (options.before_apply) {
      if (Status status = options.before_apply(event); !status.ok()) return status;
    }
    if (options.apply) {
      // A log can be hashed correctly and still hold an event the state
      // cannot take (a forger, a buggy writer): an error naming it, not a crash.
      ThrowOnAssertion checked;
      try {
        state->Apply(event);
      } catch (const AssertionFailure& failure) {
        state->last_sequence = event.sequence - 1;  // the last event applied whole
        return Status::Corruption("event " + std::to_string(event.sequence) + " (" +
                                  std::string(EventTypeName(event.body)) +
                                  ") cannot be applied to the state: " + failure.what());
      }
    } else {
      state->last_sequence = event.sequence;
      state->last_timestamp_us = event.timestamp_us;
    }
    *link = item.link;
    if (options.progress && event.sequence % options.progress_every == 0) {
      options.progress(event.sequence);
    }
    return Status::Ok();
  };
  Status result = Status::Ok();
  Chunk chunk;
  while (queue.Pop(&queue.full_, &chunk)) {
    for (size_t i = 0; i < chunk.size && result.ok(); ++i) result = apply(chunk.items[i]);
    if (!result.ok() || chunk.last) {
      if (result.ok()) result = chunk.status;
      break;
    }
    chunk.size = 0;
    queue.Push(&queue.free_, std::move(chunk));
    chunk = Chunk();
  }
  queue.Close();
  reader.join();
  return result;
}

Status LoadCheckpoint(EventLog* log, State* state, Sha256Digest* link, std::string* buffer) {
  *link = Sha256Digest{};
  uint64_t sequence = 0;
  Sha256Digest checkpoint_link;
  std::string read_into;
  std::string& bytes = buffer != nullptr ? *buffer : read_into;
  Status status = log->ReadCheckpoint(&sequence, &checkpoint_link, &bytes);
  if (status.ok() && sequence == 0) return Status::Ok();
  // The projection checkpoint is derived data: when it cannot be used, the
  // whole log is replayed instead (it is checked record by record anyway).
  auto replay_all = [&](const std::string& why) {
    std::fprintf(stderr, "purser: the projection checkpoint cannot be used (%s); replaying the "
                         "whole log\n", why.c_str());
    *state = State();
    *link = Sha256Digest{};
    return Status::Ok();
  };
  if (!status.ok()) return replay_all(status.message());
  std::string record;
  if (Status read = log->ReadRecord(sequence, &record); !read.ok()) {
    return replay_all("it is at event " + std::to_string(sequence) +
                      ", which the log does not hold: " + read.message());
  }
  RecordView view;
  if (Status decoded = DecodeRecord(sequence, record, &view); !decoded.ok()) {
    return replay_all(decoded.message());
  }
  if (view.link != checkpoint_link) {
    return replay_all("it does not match the log at event " + std::to_string(sequence));
  }
  if (!IsCurrentSnapshot(bytes)) return replay_all("it is of an older format");
  if (Status loaded = DeserializeState(bytes, state); !loaded.ok()) {
    return replay_all(loaded.message());
  }
  if (state->last_sequence != sequence) return replay_all("its state is inconsistent");
  *link = checkpoint_link;
  return Status::Ok();
}

}  // namespace purser
