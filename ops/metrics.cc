#include "ops/metrics.h"

#include "ops/health.h"
#include "notify/notifier.h"

#include <sstream>

namespace purser {

namespace {

constexpr const char* kTokenClasses[5] = {"input", "output", "cached_input", "cache_write",
                                          "reasoning"};

std::string Seconds(uint64_t micros) {
  std::string text = std::to_string(micros / 1'000'000);
  uint64_t fraction = micros % 1'000'000;
  if (fraction == 0) return text;
  char digits[8];
  std::snprintf(digits, sizeof digits, ".%06llu", static_cast<unsigned long long>(fraction));
  text += digits;
  while (text.back() == '0') text.pop_back();
  return text;
}

// A Prometheus histogram from one of ours (microseconds -> seconds, or counts).
// One series without labels, with its HELP and TYPE lines.
void WriteScalar(std::ostream& out, const char* name, const char* type, const char* help, uint64_t value) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
      << name << ' ' << value << '\n';
}

void WriteHistogram(std::ostream& out, const std::string& name, const std::string& labels,
                    const Histogram& histogram, const std::vector<uint64_t>& bounds, bool seconds) {
  std::vector<uint64_t> cumulative = histogram.CumulativeAt(bounds);
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < bounds.size(); ++i) {
    out << name << "_bucket{" << labels << sep << "le=\""
        << (seconds ? Seconds(bounds[i]) : std::to_string(bounds[i])) << "\"} " << cumulative[i]
        << '\n';
  }
  out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << histogram.count() << '\n';
  out << name << "_sum" << (labels.empty() ? "" : "{" + labels + "}") << ' '
      << (seconds ? Seconds(histogram.sum()) : std::to_string(histogram.sum())) << '\n';
  out << name << "_count" << (labels.empty() ? "" : "{" + labels + "}") << ' ' << histogram.count()
      << '\n';
}

}  // namespace

Metrics::Metrics(Ledger* sequencer, int account_depth, const StorageHealth* health,
                 const Notifier* notifier)
    : sequencer_(sequencer), account_depth_(account_depth), health_(health), notifier_(notifier) {
  sequencer_->AddObserver([this](const std::vector<Event>& events) { Observe(events); });
}

void Metrics::Observe(const std::vector<Event>& events) {
  std::lock_guard lock(mutex_);
  for (const Event& event : events) {
    const Dimensions* dimensions = nullptr;
    const TokenCounts* tokens = nullptr;
    int64_t cost = 0;
    if (const auto* settled = std::get_if<event::Settled>(&event.body)) {
      dimensions = &settled->dimensions;
      tokens = &settled->tokens;
      cost = settled->cost_micros;
    } else if (const auto* usage = std::get_if<event::UsageCharged>(&event.body)) {
      dimensions = &usage->dimensions;
      tokens = &usage->tokens;
      cost = usage->cost_micros;
    } else if (const auto* alert = std::get_if<event::AlertRaised>(&event.body)) {
      alerts_[static_cast<size_t>(alert->type) % alerts_.size()].fetch_add(1);
      continue;
    } else {
      continue;
    }
    // A usage model has a price (the machine refused any other): the label
    // set is bounded by the price table. Amount-only spend has no model.
    ModelTotals& totals = by_model_[dimensions->model.empty() ? "(none)" : dimensions->model];
    totals.spend_micros += static_cast<uint64_t>(std::max<int64_t>(0, cost));
    const int64_t counts[5] = {tokens->input, tokens->output, tokens->cached_input,
                               tokens->cache_write, tokens->reasoning};
    for (int i = 0; i < 5; ++i) totals.tokens[i] += static_cast<uint64_t>(counts[i]);
  }
}

namespace {

// basis points as a ratio ("0.9512").
std::string Ratio(int64_t bp) {
  if (bp == INT64_MAX) return "+Inf";
  std::string text = std::to_string(bp / 10'000);
  int64_t fraction = bp % 10'000;
  if (fraction == 0) return text;
  char digits[8];
  std::snprintf(digits, sizeof digits, ".%04lld", static_cast<long long>(fraction));
  text += digits;
  while (text.back() == '0') text.pop_back();
  return text;
}

void WriteAccountSeries(std::ostream& out, const AccountMetricsView& view) {
  out << "# HELP purser_runs_active Runs that spent in the last hour.\n"
      << "# TYPE purser_runs_active gauge\npurser_runs_active " << view.runs_active << '\n';
  out << "# HELP purser_accounts_frozen Accounts frozen now.\n"
      << "# TYPE purser_accounts_frozen gauge\npurser_accounts_frozen " << view.accounts_frozen
      << '\n';
  out << "# HELP purser_anomalies_active Accounts whose burn is above baseline x multiplier now.\n"
      << "# TYPE purser_anomalies_active gauge\npurser_anomalies_active " << view.anomalies_active
      << '\n';
  out << "# HELP purser_account_spend_today_micro_usd Spend of the account's subtree today (UTC).\n"
      << "# TYPE purser_account_spend_today_micro_usd gauge\n";
  for (const AccountMetric& m : view.accounts) {
    out << "purser_account_spend_today_micro_usd{account=\"" << m.account << "\"} "
        << m.spend_today_micros << '\n';
  }
  out << "# HELP purser_account_budget_utilization_ratio Spend over the cap of each window that has one.\n"
      << "# TYPE purser_account_budget_utilization_ratio gauge\n";
  for (const AccountMetric& m : view.accounts) {
    for (const auto& [window, bp] : {std::pair{"daily", m.daily_utilization_bp},
                                     std::pair{"monthly", m.monthly_utilization_bp},
                                     std::pair{"lifetime", m.lifetime_utilization_bp}}) {
      if (bp < 0) continue;
      out << "purser_account_budget_utilization_ratio{account=\"" << m.account << "\",window=\""
          << window << "\"} " << Ratio(bp) << '\n';
    }
  }
  out << "# HELP purser_account_burn_rate_micro_usd_per_hour Burn of the subtree over the last 5 minutes.\n"
      << "# TYPE purser_account_burn_rate_micro_usd_per_hour gauge\n";
  for (const AccountMetric& m : view.accounts) {
    out << "purser_account_burn_rate_micro_usd_per_hour{account=\"" << m.account << "\"} "
        << m.burn_micros_per_hour << '\n';
  }
}

}  // namespace

// Long by design: every metric family is written in this one place, so that
// the names served can be read (and checked against the README) at a glance.
std::string Metrics::Render(const AccountMetricsView& accounts) const {
  std::ostringstream out;
  out << "# HELP purser_commands_total Requests answered, by type and result.\n"
      << "# TYPE purser_commands_total counter\n";
  std::array<uint64_t, kResultCodeCount> rejections{};
  for (size_t type = 0; type < kRequestTypeCount; ++type) {
    for (uint32_t code = 0; code < kResultCodeCount; ++code) {
      uint64_t count = sequencer_->command_count(type, static_cast<ResultCode>(code));
      if (count == 0) continue;
      out << "purser_commands_total{type=\"" << RequestTypeNameAt(type) << "\",result=\""
          << ResultCodeName(static_cast<ResultCode>(code)) << "\"} " << count << '\n';
      if (IsCountedRejection(static_cast<ResultCode>(code))) rejections[code] += count;
    }
  }
  static const std::vector<uint64_t> kLatencyBoundsUs = {100,    250,    500,     1'000,   2'500,
                                                         5'000,  10'000, 25'000,  50'000,  100'000,
                                                         250'000, 1'000'000, 5'000'000};
  out << "# HELP purser_command_duration_seconds Time from queueing to the durable answer.\n"
      << "# TYPE purser_command_duration_seconds histogram\n";
  for (size_t type = 0; type < kRequestTypeCount; ++type) {
    const Histogram& histogram = sequencer_->command_latency(type);
    if (histogram.count() == 0) continue;
    WriteHistogram(out, "purser_command_duration_seconds",
                   std::string("type=\"") + RequestTypeNameAt(type) + "\"", histogram,
                   kLatencyBoundsUs, true);
  }
  out << "# HELP purser_group_commit_size Commands per group commit.\n"
      << "# TYPE purser_group_commit_size histogram\n";
  WriteHistogram(out, "purser_group_commit_size", "", sequencer_->group_size_histogram(),
                 {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}, false);
  out << "# HELP purser_fsync_duration_seconds Synced RocksDB writes of the log.\n"
      << "# TYPE purser_fsync_duration_seconds histogram\n";
  WriteHistogram(out, "purser_fsync_duration_seconds", "", sequencer_->fsync_histogram(),
                 kLatencyBoundsUs, true);
  LedgerStats stats = sequencer_->stats();
  WriteScalar(out, "purser_events_total", "counter", "Events in the log.", stats.events_total);
  WriteScalar(out, "purser_command_queue_depth", "gauge", "Commands waiting in the command queue.",
              stats.queued_commands);
  WriteScalar(out, "purser_command_queue_capacity", "gauge", "Commands the queue holds at most (--queue-max).",
              stats.queue_capacity);
  WriteScalar(out, "purser_command_queue_full_total", "counter",
              "Submissions refused with 503 because the queue was full.", stats.queue_full_refusals);
  WriteScalar(out, "purser_reservations_pending", "gauge", "Reservations holding money now.",
              stats.pending_reservations);
  out << "# HELP purser_rejections_total Reservations and usage refused by an admission rule.\n"
      << "# TYPE purser_rejections_total counter\n";
  for (uint32_t code = 0; code < kResultCodeCount; ++code) {
    if (!IsCountedRejection(static_cast<ResultCode>(code))) continue;
    out << "purser_rejections_total{code=\"" << ResultCodeName(static_cast<ResultCode>(code))
        << "\"} " << rejections[code] << '\n';
  }
  out << "# HELP purser_alerts_total Alerts raised, by type.\n# TYPE purser_alerts_total counter\n";
  for (size_t type = 0; type < alerts_.size(); ++type) {
    out << "purser_alerts_total{type=\"" << AlertTypeName(static_cast<AlertType>(type)) << "\"} "
        << alerts_[type].load() << '\n';
  }
  std::lock_guard lock(mutex_);
  out << "# HELP purser_spend_micro_usd_total Spend recorded (gross of refunds), by model.\n"
      << "# TYPE purser_spend_micro_usd_total counter\n";
  for (const auto& [model, totals] : by_model_) {
    out << "purser_spend_micro_usd_total{model=\"" << model << "\"} " << totals.spend_micros << '\n';
  }
  out << "# HELP purser_tokens_total Tokens recorded, by model and class.\n"
      << "# TYPE purser_tokens_total counter\n";
  for (const auto& [model, totals] : by_model_) {
    for (int i = 0; i < 5; ++i) {
      out << "purser_tokens_total{model=\"" << model << "\",class=\"" << kTokenClasses[i] << "\"} "
          << totals.tokens[i] << '\n';
    }
  }
  WriteAccountSeries(out, accounts);
  if (notifier_ != nullptr) {
    NotifierStats delivery = notifier_->stats();
    out << "# HELP purser_webhook_deliveries_total Webhook delivery attempts, by result "
           "(retried: failed and retried later; dead: failed for the last time).\n"
        << "# TYPE purser_webhook_deliveries_total counter\n"
        << "purser_webhook_deliveries_total{result=\"delivered\"} " << delivery.delivered << '\n'
        << "purser_webhook_deliveries_total{result=\"retried\"} " << delivery.retried << '\n'
        << "purser_webhook_deliveries_total{result=\"dead\"} " << delivery.dead << '\n';
    WriteScalar(out, "purser_webhook_backlog", "gauge", "Deliveries pending or waiting to be retried.",
                delivery.backlog);
    out << "# HELP purser_webhook_attempt_duration_seconds One delivery attempt, connect to answer.\n"
        << "# TYPE purser_webhook_attempt_duration_seconds histogram\n";
    WriteHistogram(out, "purser_webhook_attempt_duration_seconds", "", notifier_->attempt_latency(),
                   {1'000, 5'000, 25'000, 100'000, 250'000, 1'000'000, 5'000'000, 10'000'000}, true);
  }
  if (health_ != nullptr) {
    WriteScalar(out, "purser_storage_corruption", "gauge", "1 once a scrub or a read met corruption.",
                health_->corrupt() ? 1 : 0);
    WriteScalar(out, "purser_scrubs_total", "counter", "Checksum scrubs of the whole database.", health_->scrubs());
  }
  return out.str();
}

}  // namespace purser
