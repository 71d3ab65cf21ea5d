#include "bench/webhook_load.h"

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "ledger/base/crypto.h"
#include "ledger/ledger.h"

namespace purser::bench {

namespace {

using SteadyClock = std::chrono::steady_clock;

const std::vector<std::string> kEveryKind = {"budget_threshold", "overrun",         "anomaly",
                                             "runaway",          "account_frozen",  "account_unfrozen",
                                             "reservation_expired"};

}  // namespace

WebhookLoad::WebhookLoad() : receiver_(ReceiverOptions{nullptr, "", "", false}) {}

Result<std::unique_ptr<WebhookLoad>> WebhookLoad::Start(Ledger* sequencer, int count,
                                                        const std::string& account) {
  std::unique_ptr<WebhookLoad> load(new WebhookLoad());
  load->sequencer_ = sequencer;
  NotifierOptions options;
  options.allow_private = true;
  Result<std::unique_ptr<Notifier>> notifier = Notifier::Start(sequencer, options);
  if (!notifier.ok()) return notifier.status();
  load->notifier_ = std::move(*notifier);
  for (int i = 0; i < count; ++i) {
    cmd::RegisterWebhook hook;
    hook.webhook_id = "wh_bench_" + std::to_string(i);
    hook.url = load->receiver_.Url("/hook-" + std::to_string(i));
    hook.events = kEveryKind;
    hook.account = account;
    std::string secret = "whsec_" + RandomHex(16);
    hook.secret_sha256 = Sha256(secret);
    if (Status stored = load->notifier_->StoreSecret(hook.webhook_id, secret); !stored.ok()) {
      return stored;
    }
    Reply reply = sequencer->Call(Request{Credentials::System(), std::move(hook)});
    if (!reply.ok()) return Status::Error("registering a webhook: " + reply.message);
  }
  return load;
}

WebhookLoad::~WebhookLoad() { Stop(); }

void WebhookLoad::StartAlarms(const std::string& account, int per_second) {
  alarm_thread_ = std::thread([this, account, per_second] {
    auto next = SteadyClock::now();
    const auto period = std::chrono::microseconds(1'000'000 / std::max(1, per_second));
    bool frozen = false;
    while (!stop_.load()) {
      RequestBody body = frozen ? RequestBody(cmd::Unfreeze{account})
                                : RequestBody(cmd::Freeze{account, "bench alarm"});
      if (sequencer_->Call(Request{Credentials::System(), std::move(body)}).ok()) {
        alarms_.fetch_add(1);
        frozen = !frozen;
      }
      next += period;
      std::this_thread::sleep_until(next);
    }
  });
}

void WebhookLoad::Stop() {
  stop_ = true;
  if (alarm_thread_.joinable()) alarm_thread_.join();
}

int RunWebhookDeliveries(Flags& flags) {
  std::string data_dir = flags.Get("data-dir", "./bench-webhooks");
  int64_t events = flags.GetInt("events").value_or(20'000);
  int64_t webhooks = flags.GetInt("webhooks").value_or(1);
  if (!flags.error().empty() || events < 1 || webhooks < 1 || webhooks > 1000) {
    std::cerr << "purser-bench webhooks: --events N (>= 1) --webhooks W (1..1000) [--data-dir D]\n";
    return 2;
  }
  std::filesystem::remove_all(data_dir);
  LedgerOptions sequencer_options;
  sequencer_options.data_dir = data_dir;
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(sequencer_options);
  if (!opened.ok()) {
    std::cerr << "open: " << opened.status().message() << '\n';
    return 1;
  }
  Ledger& sequencer = **opened;
  for (RequestBody body : {RequestBody(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}}),
                           RequestBody(cmd::OpenAccount{"alarm", "org", AccountKind::kAgent, "", false, {}})}) {
    if (Reply reply = sequencer.Call(Request{Credentials::System(), std::move(body)}); !reply.ok()) {
      std::cerr << reply.message << '\n';
      return 1;
    }
  }
  Result<std::unique_ptr<WebhookLoad>> load = WebhookLoad::Start(&sequencer, static_cast<int>(webhooks), "org");
  if (!load.ok()) {
    std::cerr << load.status().message() << '\n';
    return 1;
  }
  // The events go in first, in batches of freezes and unfreezes; the clock
  // starts with the first and stops when the receiver has every delivery.
  const uint64_t expected = static_cast<uint64_t>(events * webhooks);
  auto start = SteadyClock::now();
  for (int64_t done = 0; done < events;) {
    std::vector<Request> batch;
    for (; done < events && batch.size() < 1000; ++done) {
      batch.push_back(Request{Credentials::System(),
                              done % 2 == 0 ? RequestBody(cmd::Freeze{"alarm", "bench"})
                                            : RequestBody(cmd::Unfreeze{"alarm"})});
    }
    sequencer.CallBatch(std::move(batch));
  }
  auto submitted = SteadyClock::now();
  Receiver& receiver = (*load)->receiver();
  while (receiver.requests() < expected &&
         SteadyClock::now() - start < std::chrono::seconds(600)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  NotifierStats stats = (*load)->notifier().stats();
  const Histogram& latency = (*load)->notifier().attempt_latency();
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "webhooks: events=" << events << " webhooks=" << webhooks << '\n'
            << "  events written   in " << std::chrono::duration<double>(submitted - start).count()
            << " s\n"
            << "  delivered        " << receiver.requests() << " of " << expected << " in " << seconds
            << " s (" << static_cast<uint64_t>(static_cast<double>(receiver.requests()) / seconds)
            << " deliveries/s)\n"
            << "  attempt latency  p50 " << latency.Percentile(50) << " us, p99 "
            << latency.Percentile(99) << " us (connect or send to answer)\n"
            << "  connections      " << receiver.connections() << " (kept alive)\n"
            << "  notifier         delivered " << stats.delivered << ", retried " << stats.retried
            << ", backlog " << stats.backlog << '\n';
  return receiver.requests() >= expected ? 0 : 1;
}

}  // namespace purser::bench
