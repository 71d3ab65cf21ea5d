// Webhook delivery under load (issue 8): webhooks pointed at a loopback
// receiver in this process, for `purser-bench webhooks` and
// `purser-bench inproc --webhooks N`.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "bench/webhook_receiver.h"
#include "ledger/base/flags.h"
#include "notify/notifier.h"

namespace purser::bench {

// `count` webhooks on `account`'s subtree for every event kind, delivered by
// a notifier to a receiver that answers 200 at once.
class WebhookLoad {
 public:
  static Result<std::unique_ptr<WebhookLoad>> Start(Ledger* sequencer, int count,
                                                     const std::string& account);
  ~WebhookLoad();

  // Freezes and unfreezes `account` (which must exist), `per_second` events
  // a second, on a thread of its own, until Stop().
  void StartAlarms(const std::string& account, int per_second);
  void Stop();

  uint64_t alarms() const { return alarms_.load(); }
  Notifier& notifier() { return *notifier_; }
  Receiver& receiver() { return receiver_; }

 private:
  WebhookLoad();
  Ledger* sequencer_ = nullptr;
  Receiver receiver_;
  std::unique_ptr<Notifier> notifier_;
  std::thread alarm_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> alarms_{0};
};

// `purser-bench webhooks`: deliveries per second to a local receiver.
int RunWebhookDeliveries(Flags& flags);

}  // namespace purser::bench
