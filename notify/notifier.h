// Webhook delivery: a signed, retried, durable outbox over the log (SPEC
// section 8).
//
// The notifier reads the log after its own durable cursor, in sequence order,
// and turns each event a webhook subscribes to (alerts, freezes, unfreezes,
// expiries of its account's subtree) into a delivery record. Records and the
// cursor are written together, in the database's `notify` column family and
// never in the command log, so a restart resumes where it stopped: delivery
// is at least once, and a receiver deduplicates on the event id
// (`evt_<seq>_<n>`), which every retry keeps.
//
// Each webhook has its own queue and works through it in log order, one
// attempt at a time: a POST with `Purser-Signature: t=<unix>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">`, answered 2xx within the timeout, or retried
// with exponential backoff and jitter until the attempts run out (then the
// delivery is dead, and can be redelivered). Webhooks do not wait for each
// other: a bounded number of attempts run at once, each with its own
// deadline, over a kept-alive connection per receiver. The private-address
// rule is applied to what the receiver's name resolves to at each attempt,
// and redirects are not followed.
//
// Threads: the notifier runs one Asio event loop thread of its own. It never
// blocks the sequencer: it learns of durable events through a sequencer
// observer that only wakes it, and reads them from RocksDB itself.
// Public methods are thread-safe. `*sequencer` must outlive the notifier.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ledger/base/histogram.h"
#include "notify/delivery.h"
#include "ledger/ledger.h"
#include "ledger/base/status.h"

namespace purser {

struct NotifierOptions {
  // An attempt's deadline: connect, TLS, write and read. Default: 5,000 ms.
  int64_t timeout_ms = 5'000;
  // The first retry's delay, doubled each time, capped, jittered by ±20%.
  // Default: 1,000 ms; cap: 10 minutes.
  int64_t retry_base_ms = 1'000;
  int64_t retry_max_ms = 600'000;
  // Attempts before a delivery is dead. Default: 15.
  int max_attempts = 15;
  // Attempts in flight at once, over all webhooks. Default: 16.
  int concurrency = 16;
  // Deliver to names that resolve to loopback, link-local or private
  // addresses (tests, private networks). Default: false.
  bool allow_private = false;
  // Trust this CA (PEM) for https receivers, besides OpenSSL's default
  // paths. Default: none.
  std::string ca_file;
  // Finished (delivered or dead) records kept per webhook. Default: 1,000.
  size_t history_per_webhook = 1'000;
};

struct NotifierStats {
  uint64_t delivered = 0;
  uint64_t retried = 0;  // failed attempts that will be retried
  uint64_t dead = 0;
  uint64_t backlog = 0;  // records pending or retrying
  uint64_t cursor = 0;   // the last event read
};

class Notifier {
 public:
  static Result<std::unique_ptr<Notifier>> Start(Ledger* sequencer, NotifierOptions options);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Keeps a webhook's signing secret (not hashed: it must sign). Called by
  // the edge before the registration command, so a durable webhook always
  // has its secret. Synced.
  Status StoreSecret(const std::string& webhook_id, const std::string& secret);

  // The webhook's records, newest first; `state` filters when given.
  std::vector<DeliveryView> Deliveries(const std::string& webhook_id, size_t limit,
                                       const std::string& state);
  // Queues an event for the webhook again. NotFound-style error when the
  // webhook has no record of it.
  Status Redeliver(const std::string& webhook_id, const std::string& event_id);

  NotifierStats stats() const;
  // Time of attempts (connect to answer), in microseconds.
  const Histogram& attempt_latency() const;

  // Stops the loop; pending deliveries stay recorded for the next start.
  void Stop();

  class Impl;

 private:
  explicit Notifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
std::string SignWebhookPayload(const std::string& secret, int64_t unix_seconds,
                               const std::string& body);

}  // namespace purser
