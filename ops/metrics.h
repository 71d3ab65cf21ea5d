// /metrics: Prometheus text format 0.0.4, named by Prometheus conventions
// (purser_ prefix, _total counters, _seconds histograms, base units). Label
// values are bounded: request types, result codes, models from the price
// table, token classes, alert types — never account ids.
//
// Thread-safety: Render() from any thread; the event observer runs on the
// sequencer's log thread.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "ledger/ledger.h"

namespace purser {

class Metrics {
 public:
  // Observes `*sequencer` (which must outlive this object) for spend, tokens
  // and alerts; the rest is read from the sequencer's own counters.
  // `account_depth`: accounts at that depth or above get per-account series.
  Metrics(Ledger* sequencer, int account_depth = 2,
          const class StorageHealth* health = nullptr, const class Notifier* notifier = nullptr);
  // The text of /metrics; `accounts` is the reply of query::AccountMetrics.
  std::string Render(const AccountMetricsView& accounts) const;
  int account_depth() const { return account_depth_; }

 private:
  struct ModelTotals {
    uint64_t spend_micros = 0;
    uint64_t tokens[5] = {};
  };
  void Observe(const std::vector<Event>& events);

  Ledger* sequencer_;
  int account_depth_;
  const class StorageHealth* health_;
  const class Notifier* notifier_;
  mutable std::mutex mutex_;
  std::map<std::string, ModelTotals> by_model_;
  std::array<std::atomic<uint64_t>, 4> alerts_{};
};

}  // namespace purser
