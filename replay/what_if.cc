// `purser-replay what-if`: the log replayed through the same state machine
// with other caps on a subtree, to tell a budget owner what a cap would have
// stopped, when, and what it would have saved.
//
// Outside the subtree or before the window, events are applied as they are.
// Inside both, the commands the events record are executed again on the
// hypothetical state (reserve, settle, void, extend, usage), so that
// admission, threshold alerts and the runaway policy decide anew; the log's
// own alerts, rejection counts and runaway freezes there are the old
// decisions and are dropped. A refused call is assumed not made: its later
// settle, void, extension, expiry and refunds are dropped and what it cost
// in the log is the spend avoided.

#include <ostream>
#include <unordered_map>
#include <unordered_set>

#include "ledger/base/clock.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/money.h"
#include "ledger/log/recovery.h"
#include "ledger/machine/machine.h"
#include "ledger/wire/event_json.h"
#include "replay/replay.h"
#include "replay/replay_internal.h"

namespace purser {

namespace {

constexpr std::string_view kRunawayFreezePrefix = "runaway: ";

// The spend an event records (settles, usage, expiry charges), and the day
// it counts in.
bool SpendOf(const Event& event, int64_t* micros, int64_t* day) {
  *day = DayOf(event.timestamp_us);
  if (const auto* e = std::get_if<event::Settled>(&event.body)) {
    *micros = e->cost_micros - e->expiry_charge_reversed_micros;
    return true;
  }
  if (const auto* e = std::get_if<event::UsageCharged>(&event.body)) {
    *micros = e->cost_micros;
    if (e->occurred_at_us != 0) *day = DayOf(e->occurred_at_us);
    return true;
  }
  if (const auto* e = std::get_if<event::Expired>(&event.body)) {
    *micros = e->charged_micros;
    return e->charged_micros != 0;
  }
  return false;
}

// The command a settle or usage event records: by tokens when it was costed
// through the price table (the same table stands at that moment), else by
// amount.
void SetCost(const std::string& model, const TokenCounts& tokens, int64_t cost,
             std::optional<int64_t>* amount, std::optional<UsageTokens>* usage) {
  if (!model.empty()) {
    *usage = UsageTokens{model, tokens};
  } else {
    *amount = cost;
  }
}

class WhatIfRun {
 public:
  WhatIfRun(const WhatIfOptions& options, WhatIfReport* report, Evictor* evictor)
      : options_(options), report_(report), evictor_(evictor), scope_(options.account),
        machine_(&state_) {}

  Status Step(const Event& event) {
    if (const auto* opened = std::get_if<event::AccountOpened>(&event.body)) scope_.Observe(*opened);
    const bool in_window = event.timestamp_us >= options_.from_us;
    if (in_window) {
      if (Status status = MaybeChangeCaps(event.timestamp_us); !status.ok()) return status;
      if (DropForRefused(event)) return Status::Ok();
    }
    if (Status status = evictor_->BeforeApply(event, &state_); !status.ok()) return status;
    std::string account = AccountOf(event);
    Status status;
    if (!in_window || account.empty() || !scope_.Contains(account)) {
      status = ApplyAsIs(event);
    } else {
      TallyActual(event);
      status = std::visit([&](const auto& body) { return Redo(event, body); }, event.body);
    }
    // An account opened in the window takes the caps at once.
    if (status.ok() && in_window) status = MaybeChangeCaps(event.timestamp_us);
    return status;
  }

  void Finish() {
    report_->account_found = scope_.found();
    report_->stopped_at_us = refused_since_admitted_us_;
  }

 private:
  // The account an event is about (a reservation's, for the events that
  // name only the reservation).
  std::string AccountOf(const Event& event) const {
    std::string account = EventAccount(event.body);
    if (!account.empty()) return account;
    std::string reservation;
    if (const auto* e = std::get_if<event::Voided>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Extended>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Expired>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Refunded>(&event.body)) {
      if (e->target_kind == ChargeKind::kUsage) {
        auto it = state_.usages.find(e->target_id);
        if (it == state_.usages.end() || it->second.charge.account == kNoAccount) return {};
        return state_.account(it->second.charge.account).id;
      }
      reservation = e->target_id;
    }
    if (reservation.empty()) return {};
    const Reservation* r = state_.FindReservation(reservation);
    return r == nullptr || r->account == kNoAccount ? std::string() : state_.account(r->account).id;
  }

  // The later events of a refused call: what they charged is avoided.
  bool DropForRefused(const Event& event) {
    std::string reservation;
    if (const auto* e = std::get_if<event::Settled>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Voided>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Extended>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Expired>(&event.body)) reservation = e->reservation_id;
    if (const auto* e = std::get_if<event::Refunded>(&event.body)) {
      // A refund of a call never made refunds nothing; spend counts charges.
      return (e->target_kind == ChargeKind::kUsage ? refused_usages_.contains(e->target_id)
                                                   : refused_reservations_.contains(e->target_id));
    }
    auto it = reservation.empty() ? refused_reservations_.end() : refused_reservations_.find(reservation);
    if (it == refused_reservations_.end()) return false;
    int64_t micros = 0;
    int64_t day = 0;
    if (SpendOf(event, &micros, &day)) {
      report_->per_day[day].actual_micros += micros;
      report_->actual_micros += micros;
      report_->avoided_micros += micros;
      report_->refused[it->second].avoided_micros += micros;
    }
    return true;
  }

  // The caps change at the window's first event, or when the account opens
  // in the window.
  Status MaybeChangeCaps(int64_t now_us) {
    if (caps_changed_ || state_.FindAccount(options_.account) == kNoAccount) return Status::Ok();
    caps_changed_ = true;
    return ChangeCaps(now_us);
  }

  Status ChangeCaps(int64_t now_us) {
    Reply reply = Execute(cmd::SetCaps{options_.account, options_.caps}, now_us);
    if (!reply.ok()) return Status::InvalidArgument("the caps are refused: " + reply.message);
    return Status::Ok();
  }

  Reply Execute(RequestBody body, int64_t now_us) {
    std::vector<Event> events;
    Reply reply = machine_.Execute(Request{Credentials::System(), std::move(body)}, now_us, &events);
    // Rejection counts are metrics of the live service, not outcomes here.
    if (machine_.HasRejectionCounts()) machine_.TakeRejectionCounts(INT64_MAX);
    for (const Event& e : events) TallyHypothetical(e);
    return reply;
  }

  Status ApplyAsIs(const Event& original) {
    Event event = original;
    event.sequence = state_.last_sequence + 1;  // the hypothetical log's numbering
    if (auto* alert = std::get_if<event::AlertRaised>(&event.body)) alert->alert_id = event.sequence;
    ThrowOnAssertion checked;
    try {
      state_.Apply(event);
    } catch (const AssertionFailure& failure) {
      return Status::Corruption("event " + std::to_string(original.sequence) + " (" +
                                EventTypeName(original.body) +
                                ") cannot be applied to the hypothetical state: " + failure.what());
    }
    if (original.timestamp_us >= options_.from_us) TallyHypothetical(event);
    return Status::Ok();
  }

  void TallyActual(const Event& event) {
    int64_t micros = 0;
    int64_t day = 0;
    if (SpendOf(event, &micros, &day)) {
      report_->per_day[day].actual_micros += micros;
      report_->actual_micros += micros;
    }
    if (std::holds_alternative<event::AlertRaised>(event.body)) ++report_->actual_alerts;
  }

  void TallyHypothetical(const Event& event) {
    std::string account = AccountOf(event);
    if (account.empty() || !scope_.Contains(account)) return;
    int64_t micros = 0;
    int64_t day = 0;
    if (SpendOf(event, &micros, &day)) {
      report_->per_day[day].hypothetical_micros += micros;
      report_->hypothetical_micros += micros;
    }
    if (const auto* alert = std::get_if<event::AlertRaised>(&event.body)) {
      report_->hypothetical_alerts.push_back(FormatTimestamp(event.timestamp_us) + " " + alert->message);
    }
  }

  void Refuse(const std::string& id, const std::string& account, int64_t time_us, const Reply& reply) {
    report_->refused.push_back(WhatIfReport::Refused{id, account, time_us,
                                                     std::string(ResultCodeName(reply.code)),
                                                     reply.message, 0});
    ++report_->refused_by_code[report_->refused.back().code];
  }

  Status Redo(const Event& event, const event::Reserved& e) {
    ++report_->reservations;
    cmd::Reserve c;
    c.reservation_id = e.reservation_id;
    c.account = e.account;
    if (e.estimate_model.empty()) {
      c.amount_micros = e.amount_micros;
    } else {
      c.estimate = Estimate{e.estimate_model, e.estimate_input_tokens, e.estimate_max_output_tokens};
    }
    c.ttl_s = e.ttl_s;
    c.run_id = e.run_id;
    c.action = e.action;
    c.tags = e.tags;
    Reply reply = Execute(std::move(c), event.timestamp_us);
    if (reply.ok()) {
      refused_since_admitted_us_ = 0;
      return Status::Ok();
    }
    ++report_->refused_reservations;
    refused_reservations_.emplace(e.reservation_id, report_->refused.size());
    Refuse(e.reservation_id, e.account, event.timestamp_us, reply);
    if (refused_since_admitted_us_ == 0) refused_since_admitted_us_ = event.timestamp_us;
    return Status::Ok();
  }

  Status Redo(const Event& event, const event::Settled& e) {
    cmd::Settle c;
    c.reservation_id = e.reservation_id;
    SetCost(e.dimensions.model, e.tokens, e.cost_micros, &c.amount_micros, &c.usage);
    c.action = e.dimensions.action;
    if (!e.dimensions.waste.empty()) c.waste = e.dimensions.waste;
    c.outcome = e.dimensions.outcome;
    c.tags = e.dimensions.tags;
    return Diverged(event, Execute(std::move(c), event.timestamp_us));
  }

  Status Redo(const Event& event, const event::Voided& e) {
    return Diverged(event, Execute(cmd::Void{e.reservation_id, e.reason}, event.timestamp_us));
  }

  Status Redo(const Event& event, const event::Extended& e) {
    return Diverged(event, Execute(cmd::Extend{e.reservation_id, e.ttl_s}, event.timestamp_us));
  }

  Status Redo(const Event& event, const event::UsageCharged& e) {
    ++report_->usages;
    cmd::RecordUsage c;
    c.usage_id = e.usage_id;
    c.account = e.account;
    SetCost(e.dimensions.model, e.tokens, e.cost_micros, &c.amount_micros, &c.usage);
    c.action = e.dimensions.action;
    c.waste = e.dimensions.waste;
    c.outcome = e.dimensions.outcome;
    c.run_id = e.dimensions.run_id;
    c.tags = e.dimensions.tags;
    c.occurred_at_us = e.occurred_at_us;
    Reply reply = Execute(std::move(c), event.timestamp_us);
    if (reply.ok()) return Status::Ok();
    // Refused only while frozen (a freeze of the hypothetical runaway policy).
    ++report_->refused_usages;
    refused_usages_.insert(e.usage_id);
    Refuse(e.usage_id, e.account, event.timestamp_us, reply);
    report_->refused.back().avoided_micros = e.cost_micros;
    report_->avoided_micros += e.cost_micros;
    return Status::Ok();
  }

  // The old decisions of the subtree: the machine makes its own.
  Status Redo(const Event&, const event::AlertRaised&) { return Status::Ok(); }
  Status Redo(const Event&, const event::RejectionsCounted&) { return Status::Ok(); }
  Status Redo(const Event& event, const event::AccountFrozen& e) {
    if (e.reason.starts_with(kRunawayFreezePrefix)) return Status::Ok();
    return ApplyAsIs(event);
  }

  // A change of the root's caps in the window keeps the hypothetical ones on top.
  Status Redo(const Event& event, const event::CapsSet& e) {
    if (Status status = ApplyAsIs(event); !status.ok()) return status;
    return e.account == options_.account ? ChangeCaps(event.timestamp_us) : Status::Ok();
  }

  template <typename T>
  Status Redo(const Event& event, const T&) {
    return ApplyAsIs(event);
  }

  // A settle, void or extension of an admitted reservation that the
  // hypothetical state refuses: the replay cannot follow the log any more.
  static Status Diverged(const Event& event, const Reply& reply) {
    if (reply.ok()) return Status::Ok();
    return Status::Error("event " + std::to_string(event.sequence) + " (" + EventTypeName(event.body) +
                         ") is refused with the hypothetical caps (" +
                         std::string(ResultCodeName(reply.code)) + ": " + reply.message +
                         "); the what-if cannot follow the log past it");
  }

  const WhatIfOptions& options_;
  WhatIfReport* report_;
  Evictor* evictor_;
  SubtreeScope scope_;
  State state_;  // the hypothetical one
  Machine machine_;
  bool caps_changed_ = false;
  std::unordered_map<std::string, size_t> refused_reservations_;  // id -> index in report.refused
  std::unordered_set<std::string> refused_usages_;
  int64_t refused_since_admitted_us_ = 0;
};

}  // namespace

Status WhatIf(const WhatIfOptions& options, WhatIfReport* report) {
  if (options.account.empty()) return Status::InvalidArgument("what-if needs --account");
  if (options.from_us > options.to_us) return Status::InvalidArgument("--from is after --to");
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(options.data_dir);
  if (!log.ok()) return log.status();
  ScratchLog scratch;
  if (Status opened = scratch.Open(); !opened.ok()) return opened;
  Evictor evictor(scratch.get(), options.max_records_in_memory, /*with_listing=*/false);
  WhatIfRun run(options, report, &evictor);
  // The log is read (and checked) as every tool reads it; the run keeps
  // its own state, so the reader's is only a cursor.
  State cursor;
  Sha256Digest link{};
  ReplayOptions replay;
  replay.apply = false;
  replay.until_time_us = options.to_us;
  replay.progress = ProgressPrinter(options.progress, "what-if");
  replay.before_apply = [&](const Event& event) { return run.Step(event); };
  if (Status status = ReplayLog(log->get(), &cursor, &link, replay); !status.ok()) return status;
  run.Finish();
  if (!report->account_found) return Status::NotFound("account " + options.account + " is not in the log");
  return Status::Ok();
}

void WriteWhatIfText(const WhatIfOptions& options, const WhatIfReport& r, std::ostream& out) {
  out << "what-if for " << options.account << " from " << FormatTimestamp(options.from_us) << " to "
      << FormatTimestamp(options.to_us) << '\n';
  out << "reservations: " << r.reservations << " in the window, " << r.refused_reservations
      << " refused\n";
  if (!r.refused.empty()) {
    const auto& first = r.refused.front();
    out << "first refused: " << first.id << " of " << first.account << " at "
        << FormatTimestamp(first.time_us) << ", " << first.code << ": " << first.message << '\n';
    out << "refused by:";
    for (const auto& [code, count] : r.refused_by_code) out << ' ' << code << ' ' << count;
    out << '\n';
  }
  out << "usage records: " << r.usages << " in the window, " << r.refused_usages << " refused\n";
  out << "spend: actual " << FormatUsd(r.actual_micros) << " USD, hypothetical "
      << FormatUsd(r.hypothetical_micros) << " USD, avoided " << FormatUsd(r.avoided_micros)
      << " USD\n";
  if (r.stopped_at_us != 0) {
    out << "the money would have stopped at " << FormatTimestamp(r.stopped_at_us)
        << " (no reserve passed after it in the window)\n";
  } else {
    out << "the money would not have stopped\n";
  }
  out << "alerts: " << r.actual_alerts << " in the log, " << r.hypothetical_alerts.size()
      << " hypothetical\n";
  out << "per day (actual, hypothetical USD):\n";
  for (const auto& [day, spend] : r.per_day) {
    out << "  " << FormatDate(day) << "  " << FormatUsd(spend.actual_micros) << "  "
        << FormatUsd(spend.hypothetical_micros) << '\n';
  }
  constexpr size_t kShown = 20;
  if (!r.refused.empty()) out << "refused calls (first " << std::min(kShown, r.refused.size()) << "):\n";
  for (size_t i = 0; i < r.refused.size() && i < kShown; ++i) {
    const auto& call = r.refused[i];
    out << "  " << FormatTimestamp(call.time_us) << "  " << call.id << "  " << call.account << "  "
        << call.code << "  avoided " << FormatUsd(call.avoided_micros) << " USD\n";
  }
}

std::string WhatIfJson(const WhatIfOptions& options, const WhatIfReport& r) {
  JsonWriter w;
  w.BeginObject().Field("account", options.account);
  w.Field("from", FormatTimestamp(options.from_us)).Field("to", FormatTimestamp(options.to_us));
  w.Field("reservations", r.reservations).Field("usages", r.usages);
  w.Field("refused_reservations", r.refused_reservations).Field("refused_usages", r.refused_usages);
  w.Key("refused_by_code").BeginObject();
  for (const auto& [code, count] : r.refused_by_code) w.Field(code, count);
  w.EndObject();
  w.Key("actual_micros").Int(r.actual_micros);
  w.Key("hypothetical_micros").Int(r.hypothetical_micros);
  w.Key("avoided_micros").Int(r.avoided_micros);
  w.Key("stopped_at");
  if (r.stopped_at_us != 0) {
    w.String(FormatTimestamp(r.stopped_at_us));
  } else {
    w.Null();
  }
  w.Field("actual_alerts", r.actual_alerts);
  w.Key("hypothetical_alerts").BeginArray();
  for (const std::string& alert : r.hypothetical_alerts) w.String(alert);
  w.EndArray();
  w.Key("per_day").BeginArray();
  for (const auto& [day, spend] : r.per_day) {
    w.BeginObject().Field("date", FormatDate(day));
    w.Key("actual_micros").Int(spend.actual_micros);
    w.Key("hypothetical_micros").Int(spend.hypothetical_micros).EndObject();
  }
  w.EndArray();
  w.Key("refused").BeginArray();
  for (const auto& call : r.refused) {
    w.BeginObject().Field("id", call.id).Field("account", call.account);
    w.Field("at", FormatTimestamp(call.time_us)).Field("code", call.code).Field("message", call.message);
    w.Key("avoided_micros").Int(call.avoided_micros).EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.Take();
}

}  // namespace purser
