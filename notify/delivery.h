// What the notifier says of one event's delivery to one webhook, for the
// HTTP and RPC edges and the client (a small header: the client includes it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace purser {

// One attempt: when, and the HTTP status (0: no answer) or the error.
struct DeliveryAttempt {
  int64_t at_us = 0;
  uint32_t status_code = 0;
  std::string error;
};

// A delivery record as GET /v1/webhooks/{id}/deliveries shows it.
struct DeliveryView {
  std::string event_id;
  std::string type;
  std::string state;  // pending | delivered | retrying | dead
  uint32_t attempts = 0;
  uint32_t last_status_code = 0;  // 0: no HTTP answer
  std::string last_error;
  int64_t last_attempt_at_us = 0;
  int64_t next_attempt_at_us = 0;
  uint64_t sequence = 0;
  std::vector<DeliveryAttempt> attempt_log;  // the newest attempts (up to 32), oldest first
};

}  // namespace purser
