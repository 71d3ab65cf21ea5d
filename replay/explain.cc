// `purser-replay explain`: the story of a subtree's spend over a window, read
// from the log alone (one pass, nothing applied): for a postmortem of last
// night's cost spike.

#include <algorithm>
#include <map>
#include <ostream>

#include "ledger/base/clock.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/money.h"
#include "ledger/base/result_code.h"
#include "ledger/log/recovery.h"
#include "replay/replay.h"
#include "replay/replay_internal.h"

namespace purser {

namespace {

using Tally = ExplainTally;

void Count(std::map<std::string, Tally>* by, const std::string& key, int64_t micros) {
  Tally& tally = (*by)[key.empty() ? "(none)" : key];
  tally.micros += micros;
  ++tally.calls;
}

// The `top` largest entries, by spend then key.
std::vector<std::pair<std::string, Tally>> Top(const std::map<std::string, Tally>& by, size_t top) {
  std::vector<std::pair<std::string, Tally>> items(by.begin(), by.end());
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return a.second.micros != b.second.micros ? a.second.micros > b.second.micros : a.first < b.first;
  });
  if (items.size() > top) items.resize(top);
  return items;
}

class Explainer {
 public:
  Explainer(const ExplainOptions& options, ExplainReport* report)
      : options_(options), report_(report), scope_(options.account) {}

  void Observe(const Event& event) {
    if (const auto* opened = std::get_if<event::AccountOpened>(&event.body)) {
      scope_.Observe(*opened);
      return;
    }
    if (event.timestamp_us < options_.from_us || event.timestamp_us > options_.to_us) return;
    std::visit([&](const auto& body) { On(event, body); }, event.body);
  }

 private:
  bool Scoped(const std::string& account) const { return scope_.Contains(account); }

  void Charge(const Event& event, const std::string& id, const std::string& account, int64_t micros,
              const Dimensions& dimensions) {
    report_->spend_micros += micros;
    ++report_->calls;
    report_->per_minute[MinuteOf(event.timestamp_us)] += micros;
    Count(&report_->models, dimensions.model, micros);
    Count(&report_->actions, dimensions.action, micros);
    Count(&report_->runs, dimensions.run_id, micros);
    report_->largest.push_back(ExplainReport::Call{id, account, dimensions.model, micros, event.timestamp_us});
    if (report_->largest.size() > 2 * kLargestShown) TrimLargest();
  }

  void On(const Event& event, const event::Settled& e) {
    if (Scoped(e.account)) Charge(event, e.reservation_id, e.account, e.cost_micros, e.dimensions);
  }
  void On(const Event& event, const event::UsageCharged& e) {
    if (Scoped(e.account)) Charge(event, e.usage_id, e.account, e.cost_micros, e.dimensions);
  }
  void On(const Event& event, const event::Expired& e) {
    if (!Scoped(e.account)) return;
    ++report_->expiries;
    report_->expiry_charged_micros += e.charged_micros;
    report_->spend_micros += e.charged_micros;
    if (e.charged_micros != 0) report_->per_minute[MinuteOf(event.timestamp_us)] += e.charged_micros;
  }
  void On(const Event& event, const event::AlertRaised& e) {
    if (!Scoped(e.account)) return;
    report_->alerts.push_back({event.timestamp_us, e.account, std::string(AlertTypeName(e.type)), e.message});
  }
  void On(const Event& event, const event::AccountFrozen& e) {
    if (Scoped(e.account)) report_->freezes.push_back({event.timestamp_us, e.account, "frozen", e.reason});
  }
  void On(const Event& event, const event::AccountUnfrozen& e) {
    if (Scoped(e.account)) report_->freezes.push_back({event.timestamp_us, e.account, "unfrozen", ""});
  }
  void On(const Event&, const event::RejectionsCounted& e) {
    if (!Scoped(e.account) || e.code >= kResultCodeCount) return;
    report_->rejections[std::string(ResultCodeName(static_cast<ResultCode>(e.code)))] += e.count;
  }
  template <typename T>
  void On(const Event&, const T&) {}

  // Largest first; of equal calls, the earlier.
  static bool Larger(const ExplainReport::Call& a, const ExplainReport::Call& b) {
    return a.micros != b.micros ? a.micros > b.micros : a.time_us < b.time_us;
  }

  void TrimLargest() {
    std::partial_sort(report_->largest.begin(), report_->largest.begin() + kLargestShown,
                      report_->largest.end(), Larger);
    report_->largest.resize(kLargestShown);
  }

 public:
  void Finish() {
    if (report_->largest.size() > kLargestShown) TrimLargest();
    std::sort(report_->largest.begin(), report_->largest.end(), Larger);
    report_->account_found = scope_.found();
  }

 private:
  static constexpr size_t kLargestShown = 10;
  const ExplainOptions& options_;
  ExplainReport* report_;
  SubtreeScope scope_;
};

}  // namespace

Status Explain(const ExplainOptions& options, ExplainReport* report) {
  if (options.from_us > options.to_us) return Status::InvalidArgument("--from is after --to");
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(options.data_dir);
  if (!log.ok()) return log.status();
  Explainer explainer(options, report);
  State state;
  Sha256Digest link{};
  ReplayOptions replay;
  replay.apply = false;
  replay.until_time_us = options.to_us;
  replay.on_event = [&](const Event& event, std::string_view) { explainer.Observe(event); };
  if (options.progress != nullptr) {
    replay.progress = [out = options.progress](uint64_t sequence) {
      *out << "explain: " << sequence << " events read\n";
      out->flush();
    };
  }
  if (Status status = ReplayLog(log->get(), &state, &link, replay); !status.ok()) return status;
  explainer.Finish();
  if (!report->account_found) return Status::NotFound("no account " + options.account + " in the log");
  return Status::Ok();
}

void WriteExplainText(const ExplainOptions& options, const ExplainReport& r, std::ostream& out) {
  out << "explain " << options.account << " from " << FormatTimestamp(options.from_us) << " to "
      << FormatTimestamp(options.to_us) << '\n';
  out << "spend " << FormatUsd(r.spend_micros) << " USD in " << r.calls << " calls";
  if (r.expiries > 0) {
    out << "; " << r.expiries << " reservations expired, charged " << FormatUsd(r.expiry_charged_micros)
        << " USD";
  }
  out << '\n';
  if (!r.per_minute.empty()) {
    auto peak = std::max_element(r.per_minute.begin(), r.per_minute.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    out << "peak minute " << FormatTimestamp(peak->first * 60 * kMicrosPerSecond) << ": "
        << FormatUsd(peak->second) << " USD\n";
  }
  auto tallies = [&](const char* title, const std::map<std::string, Tally>& by) {
    if (by.empty()) return;
    out << title << ":\n";
    for (const auto& [key, tally] : Top(by, 5)) {
      out << "  " << key << "  " << FormatUsd(tally.micros) << " USD  " << tally.calls << " calls\n";
    }
  };
  tallies("top models", r.models);
  tallies("top actions", r.actions);
  tallies("top runs", r.runs);
  if (!r.largest.empty()) out << "largest calls:\n";
  for (const auto& call : r.largest) {
    out << "  " << FormatTimestamp(call.time_us) << "  " << call.id << "  " << call.account << "  "
        << (call.model.empty() ? "-" : call.model) << "  " << FormatUsd(call.micros) << " USD\n";
  }
  if (!r.alerts.empty()) out << "alerts:\n";
  for (const auto& alert : r.alerts) {
    out << "  " << FormatTimestamp(alert.time_us) << "  " << alert.kind << "  " << alert.account << "  "
        << alert.text << '\n';
  }
  if (!r.freezes.empty()) out << "freezes:\n";
  for (const auto& freeze : r.freezes) {
    out << "  " << FormatTimestamp(freeze.time_us) << "  " << freeze.kind << "  " << freeze.account
        << (freeze.text.empty() ? "" : "  " + freeze.text) << '\n';
  }
  if (!r.rejections.empty()) out << "rejections:\n";
  for (const auto& [code, count] : r.rejections) out << "  " << code << "  " << count << '\n';
}

std::string ExplainJson(const ExplainOptions& options, const ExplainReport& r) {
  JsonWriter w;
  w.BeginObject().Field("account", options.account);
  w.Field("from", FormatTimestamp(options.from_us)).Field("to", FormatTimestamp(options.to_us));
  w.Key("spend_micros").Int(r.spend_micros).Field("calls", r.calls);
  w.Field("expiries", r.expiries).Key("expiry_charged_micros").Int(r.expiry_charged_micros);
  w.Key("per_minute").BeginArray();
  for (const auto& [minute, micros] : r.per_minute) {
    w.BeginObject().Field("minute", FormatTimestamp(minute * 60 * kMicrosPerSecond));
    w.Key("spend_micros").Int(micros).EndObject();
  }
  w.EndArray();
  auto tallies = [&](const char* key, const std::map<std::string, Tally>& by) {
    w.Key(key).BeginArray();
    for (const auto& [name, tally] : Top(by, 10)) {
      w.BeginObject().Field("key", name).Key("spend_micros").Int(tally.micros);
      w.Field("calls", tally.calls).EndObject();
    }
    w.EndArray();
  };
  tallies("models", r.models);
  tallies("actions", r.actions);
  tallies("runs", r.runs);
  w.Key("largest_calls").BeginArray();
  for (const auto& call : r.largest) {
    w.BeginObject().Field("id", call.id).Field("account", call.account).Field("model", call.model);
    w.Key("cost_micros").Int(call.micros).Field("at", FormatTimestamp(call.time_us)).EndObject();
  }
  w.EndArray();
  auto notes = [&](const char* key, const std::vector<ExplainReport::Note>& list) {
    w.Key(key).BeginArray();
    for (const auto& note : list) {
      w.BeginObject().Field("at", FormatTimestamp(note.time_us)).Field("account", note.account);
      w.Field("kind", note.kind).Field("text", note.text).EndObject();
    }
    w.EndArray();
  };
  notes("alerts", r.alerts);
  notes("freezes", r.freezes);
  w.Key("rejections").BeginObject();
  for (const auto& [code, count] : r.rejections) w.Field(code, count);
  w.EndObject().EndObject();
  return w.Take();
}

std::string ExplainSvg(const ExplainOptions& options, const ExplainReport& r) {
  // Spend per minute as bars over the window, with the peak labelled.
  constexpr int kWidth = 960, kHeight = 320, kLeft = 70, kBottom = 40, kTop = 30;
  // From the first minute with spend to the last, within the window.
  int64_t first = MinuteOf(options.from_us);
  int64_t last = MinuteOf(options.to_us);
  if (!r.per_minute.empty()) {
    first = std::max(first, r.per_minute.begin()->first);
    last = std::min(last, r.per_minute.rbegin()->first);
  }
  last = std::max(first, last);
  const int64_t minutes = last - first + 1;
  int64_t peak = 1;
  for (const auto& [minute, micros] : r.per_minute) peak = std::max(peak, micros);
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(kWidth) +
                    "\" height=\"" + std::to_string(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<text x=\"" + std::to_string(kLeft) + "\" y=\"18\">spend per minute, " + options.account + ", " +
         FormatTimestamp(options.from_us) + " .. " + FormatTimestamp(options.to_us) + "</text>\n";
  const double plot_w = kWidth - kLeft - 10, plot_h = kHeight - kTop - kBottom;
  svg += "<line x1=\"" + std::to_string(kLeft) + "\" y1=\"" + std::to_string(kHeight - kBottom) + "\" x2=\"" +
         std::to_string(kWidth - 10) + "\" y2=\"" + std::to_string(kHeight - kBottom) + "\" stroke=\"#444\"/>\n";
  svg += "<text x=\"4\" y=\"" + std::to_string(kTop + 10) + "\">$" + FormatUsd(peak) + "</text>\n";
  svg += "<text x=\"4\" y=\"" + std::to_string(kHeight - kBottom) + "\">$0</text>\n";
  const double bar = std::max(1.0, plot_w / static_cast<double>(minutes));
  for (const auto& [minute, micros] : r.per_minute) {
    if (minute < first || minute > last) continue;
    double x = kLeft + static_cast<double>(minute - first) * plot_w / static_cast<double>(minutes);
    double h = plot_h * static_cast<double>(micros) / static_cast<double>(peak);
    char rect[200];
    std::snprintf(rect, sizeof rect,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d9534f\"/>\n", x,
                  kHeight - kBottom - h, bar, h);
    svg += rect;
  }
  svg += "<text x=\"" + std::to_string(kLeft) + "\" y=\"" + std::to_string(kHeight - 12) + "\">" +
         FormatTimestamp(first * 60 * kMicrosPerSecond) + "</text>\n";
  svg += "<text x=\"" + std::to_string(kWidth - 10) + "\" y=\"" + std::to_string(kHeight - 12) +
         "\" text-anchor=\"end\">" + FormatTimestamp(last * 60 * kMicrosPerSecond) + "</text>\n";
  svg += "</svg>\n";
  return svg;
}

}  // namespace purser
