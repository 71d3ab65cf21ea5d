#include "ledger/machine/state.h"

#include <xxhash.h>

#include <algorithm>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/base/money.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/reactions.h"
#include "ledger/base/status.h"
#include "ledger/machine/validate.h"

namespace purser {

namespace {

// Arithmetic inside Apply() cannot fail for a well-formed log: the machine
// refused every command whose events would overflow. An overflow here is a
// bug or a corrupt log that passed its checksum, so it crashes.
int64_t Add(int64_t a, int64_t b) {
  std::optional<int64_t> sum = CheckedAdd(a, b);
  PURSER_ASSERT(sum.has_value());
  return *sum;
}

void AddTotals(SpendTotals* row, int64_t cost_micros, int64_t calls, const TokenCounts& tokens) {
  row->cost_micros = Add(row->cost_micros, cost_micros);
  row->calls += calls;
  row->input_tokens = Add(row->input_tokens, tokens.input);
  row->output_tokens = Add(row->output_tokens, tokens.output);
  row->cached_input_tokens = Add(row->cached_input_tokens, tokens.cached_input);
  row->cache_write_tokens = Add(row->cache_write_tokens, tokens.cache_write);
  row->reasoning_tokens = Add(row->reasoning_tokens, tokens.reasoning);
}

}  // namespace

size_t StringViewHash::operator()(std::string_view text) const {
  return static_cast<size_t>(XXH3_64bits(text.data(), text.size()));
}

Interner::Interner() { Intern(""); }

uint32_t Interner::Intern(std::string_view text) {
  auto it = ids_.find(text);
  if (it != ids_.end()) return it->second;
  auto id = static_cast<uint32_t>(strings_.size());
  strings_.push_back(std::make_unique<std::string>(text));
  ids_.emplace(*strings_.back(), id);
  return id;
}

std::optional<uint32_t> Interner::Find(std::string_view text) const {
  auto it = ids_.find(text);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

int64_t Headroom(const State& state, AccountIndex account, int64_t now_us) {
  const int64_t day = DayOf(now_us);
  const int64_t month = MonthOfDay(day);
  const Account& self = state.account(account);
  if (self.funding == kNoAccount) return 0;
  const Account& wallet = state.account(self.funding);
  int64_t room = wallet.balance_micros - wallet.wallet_held_micros;
  for (AccountIndex a = account; a != kNoAccount; a = state.account(a).parent) {
    const Account& node = state.account(a);
    if (node.frozen) return 0;
    if (node.caps.max_inflight >= 0 && node.inflight >= node.caps.max_inflight) return 0;
    const int64_t limits[3] = {node.caps.hard_limit_micros, node.caps.monthly_limit_micros,
                               node.caps.daily_limit_micros};
    const int64_t spent[3] = {node.spent_total_micros, node.SpentMonth(month), node.SpentDay(day)};
    for (int i = 0; i < 3; ++i) {
      if (limits[i] < 0) continue;
      int64_t used;  // saturating: a saturated sum is above every limit
      if (__builtin_add_overflow(spent[i], node.held_micros, &used)) used = INT64_MAX;
      room = std::min(room, limits[i] - used);
    }
  }
  return std::max<int64_t>(0, room);
}

State::State() = default;

AccountIndex State::FindAccount(std::string_view id) const {
  if (last_account_ < accounts.size() && accounts[last_account_].id == id) return last_account_;
  auto it = account_ids.find(id);
  if (it == account_ids.end()) return kNoAccount;
  last_account_ = it->second;
  return it->second;
}

const Reservation* State::FindReservation(std::string_view id) const {
  if (last_reservation_ != nullptr && last_reservation_->id == id) return last_reservation_;
  auto it = reservations.find(id);
  if (it == reservations.end()) return nullptr;
  last_reservation_ = &it->second;
  return last_reservation_;
}

Reservation* State::FindReservation(std::string_view id) {
  return const_cast<Reservation*>(std::as_const(*this).FindReservation(id));
}

void State::LoadReservation(Reservation reservation) {
  PURSER_ASSERT(reservation.status != ReservationStatus::kPending);
  std::string id = reservation.id;
  reservations.try_emplace(std::move(id), std::move(reservation));
}

void State::LoadUsage(std::string id, UsageRecord usage) {
  usages.try_emplace(std::move(id), std::move(usage));
}

bool State::EvictReservation(const std::string& id, uint64_t version) {
  auto it = reservations.find(id);
  if (it == reservations.end() || it->second.version != version ||
      it->second.status == ReservationStatus::kPending) {
    return false;
  }
  if (last_reservation_ == &it->second) last_reservation_ = nullptr;
  reservations.erase(it);
  return true;
}

bool State::EvictUsage(const std::string& id, uint64_t version) {
  auto it = usages.find(id);
  if (it == usages.end() || it->second.version != version) return false;
  usages.erase(it);
  return true;
}

DayBook& State::BookOf(Account& account, int64_t day) {
  if (day < DayOf(last_timestamp_us)) ++past_rows_version;
  if (!account.days.empty() && account.days.rbegin()->first == day) {
    return account.days.rbegin()->second;
  }
  return account.days[day];
}

AccountIndex State::MustFindAccount(std::string_view id) const {
  AccountIndex index = FindAccount(id);
  PURSER_ASSERT(index != kNoAccount);
  return index;
}

Reservation& State::MustFindReservation(std::string_view id) {
  Reservation* reservation = FindReservation(id);
  PURSER_ASSERT(reservation != nullptr);
  return *reservation;
}

bool State::IsInSubtree(AccountIndex account, AccountIndex ancestor) const {
  for (AccountIndex a = account; a != kNoAccount; a = accounts[a].parent) {
    if (a == ancestor) return true;
  }
  return false;
}

const PriceRates* State::CurrentRates(std::string_view model) const {
  auto it = prices.find(model);
  if (it == prices.end() || it->second.empty()) {
    // A dated snapshot name costs what its model costs.
    std::string_view alias = PriceAliasOf(model);
    if (alias.empty()) return nullptr;
    it = prices.find(alias);
    if (it == prices.end() || it->second.empty()) return nullptr;
  }
  return &it->second.back().rates;
}

void State::Apply(const Event& event) {
  PURSER_ASSERT(event.sequence == last_sequence + 1);
  PURSER_ASSERT(event.timestamp_us >= last_timestamp_us);
  last_sequence = event.sequence;
  last_timestamp_us = event.timestamp_us;
  ++events_applied;
  std::visit([&](const auto& body) { ApplyBody(event, body); }, event.body);
}

void State::ApplyBody(const Event& event, const event::AccountOpened& e) {
  PURSER_ASSERT(FindAccount(e.account) == kNoAccount);
  auto index = static_cast<AccountIndex>(accounts.size());
  Account& account = accounts.emplace_back();
  account.id = e.account;
  account.name = e.name;
  account.kind = e.kind;
  account.wallet = e.wallet;
  account.request_hash = e.request_hash;
  if (e.parent.empty()) {
    account.root = index;
    account.indexed_tag_keys = e.indexed_tag_keys;
    account.tag_values_seen.resize(e.indexed_tag_keys.size());
    roots.push_back(index);
  } else {
    AccountIndex parent = MustFindAccount(e.parent);
    account.parent = parent;
    account.root = accounts[parent].root;
    account.depth = static_cast<uint8_t>(accounts[parent].depth + 1);
    accounts[parent].children.push_back(index);
  }
  account.funding = e.wallet ? index
                             : (account.parent == kNoAccount ? kNoAccount
                                                             : accounts[account.parent].funding);
  account_ids.emplace(e.account, index);
  // What the create answered, for an identical retry.
  if (account.funding != kNoAccount) {
    account.opened_funding_balance_micros = accounts[account.funding].balance_micros;
    account.opened_funding_held_micros = accounts[account.funding].wallet_held_micros;
  }
  account.opened_headroom_micros = Headroom(*this, index, event.timestamp_us);
}

void State::ApplyBody(const Event&, const event::AccountFrozen& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  account.frozen = true;
  account.frozen_reason = e.reason;
}

void State::ApplyBody(const Event&, const event::AccountUnfrozen& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  account.frozen = false;
  account.frozen_reason.clear();
}

void State::ApplyBody(const Event&, const event::CapsSet& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  account.caps = e.caps;
  for (ThresholdArm& arm : account.arms) arm = ThresholdArm{};  // a cap change re-arms
}

void State::ApplyBody(const Event&, const event::Deposited& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  PURSER_ASSERT(account.wallet);
  account.balance_micros = Add(account.balance_micros, e.amount_micros);
  account.deposited_micros = Add(account.deposited_micros, e.amount_micros);
  deposits.emplace(e.deposit_id, IdEntry{e.request_hash, account.balance_micros});
}

void State::ChangeHold(const Reservation& reservation, int sign) {
  int64_t amount = sign * reservation.amount_micros;
  for (AccountIndex a = reservation.account; a != kNoAccount; a = accounts[a].parent) {
    accounts[a].held_micros = Add(accounts[a].held_micros, amount);
    accounts[a].inflight += sign;
  }
  Account& account = accounts[reservation.account];
  account.own_held_micros = Add(account.own_held_micros, amount);
  account.own_inflight += sign;
  if (reservation.funding != kNoAccount) {
    Account& wallet = accounts[reservation.funding];
    wallet.wallet_held_micros = Add(wallet.wallet_held_micros, amount);
  }
}

void State::ApplyBody(const Event& event, const event::Reserved& e) {
  auto [it, inserted] = reservations.try_emplace(e.reservation_id);
  PURSER_ASSERT(inserted);
  Reservation& r = it->second;
  r.id = e.reservation_id;
  r.account = MustFindAccount(e.account);
  AccountIndex funding = accounts[r.account].funding;
  if (e.funding_account.empty()) {
    r.funding = kNoAccount;
  } else if (funding != kNoAccount && accounts[funding].id == e.funding_account) {
    r.funding = funding;  // the usual case, without a lookup
  } else {
    r.funding = MustFindAccount(e.funding_account);
  }
  r.amount_micros = e.amount_micros;
  r.created_us = event.timestamp_us;
  r.expires_us = e.expires_at_us;
  r.original_expires_us = e.expires_at_us;
  r.ttl_s = e.ttl_s;
  r.headroom_after_micros = e.headroom_after_micros;
  r.request_hash = e.request_hash;
  r.run_id = strings.Intern(e.run_id);
  r.action = strings.Intern(e.action);
  r.tags = e.tags;
  r.version = event.sequence;
  r.reserve_seq = event.sequence;
  r.advice_account = e.advice_account.empty() ? kNoAccount : MustFindAccount(e.advice_account);
  r.estimate_tokens =
      RateTokens(TokenCounts{e.estimate_input_tokens, e.estimate_max_output_tokens, 0, 0, 0});
  ChangeHold(r, +1);
  expiry_queue.emplace(r.expires_us, &r);
  CountRate(r.account, event.timestamp_us, 1, r.estimate_tokens);
}

void State::CountRate(AccountIndex account, int64_t timestamp_us, int64_t calls, int64_t tokens) {
  const int64_t minute = MinuteOf(timestamp_us);
  for (AccountIndex a = account; a != kNoAccount; a = accounts[a].parent) {
    Account& node = accounts[a];
    if (node.rate_minute < minute) {
      node.rate_minute = minute;
      node.calls_in_minute = 0;
      node.tokens_in_minute = 0;
    }
    if (node.rate_minute != minute) continue;  // a minute already over
    node.calls_in_minute += calls;
    node.tokens_in_minute = std::max<int64_t>(0, node.tokens_in_minute + tokens);
  }
}

void State::SettleReactions(AccountIndex account, int64_t now_us, bool live, Outcome outcome) {
  if (!live) return;
  for (AccountIndex a = account; a != kNoAccount; a = accounts[a].parent) {
    Account& node = accounts[a];
    node.error_streak = outcome == Outcome::kError ? node.error_streak + 1 : 0;
    if (node.runaway && !CheckRunaway(node, EffectiveRunaway(*this, a), now_us).holds()) {
      node.runaway = false;  // the episode is over; a later one raises a new alert
    }
  }
}

void State::TrackRun(uint32_t run_id, AccountIndex account, const SpendFacts& facts) {
  if (run_id == 0) return;
  const int64_t now_minute = MinuteOf(facts.event_us);
  if (MinuteOf(facts.spend_us) <= now_minute - MinuteSeries::kMinutesKept) return;
  auto [it, inserted] = runs.try_emplace(run_id);
  Run& run = it->second;
  if (inserted) {
    run.first_us = facts.spend_us;
    run.last_us = facts.spend_us;
  } else {
    runs_by_last.erase({run.last_us, run_id});
    run.first_us = std::min(run.first_us, facts.spend_us);
    run.last_us = std::max(run.last_us, facts.spend_us);
  }
  run.account = account;
  run.burn.Add(MinuteOf(facts.spend_us), facts.cost_micros, 1, now_minute);
  runs_by_last.emplace(run.last_us, run_id);
  // The oldest runs fold away: past the bound, or a day without spend.
  const int64_t day_ago_us = facts.event_us - kMicrosPerDay;
  while (!runs_by_last.empty() &&
         (runs.size() > kActiveRunsMax || runs_by_last.begin()->first < day_ago_us)) {
    runs.erase(runs_by_last.begin()->second);
    runs_by_last.erase(runs_by_last.begin());
  }
}

ChargeRecord State::RecordSpend(AccountIndex account_index, const SpendFacts& facts,
                                const Dimensions& dimensions, const TokenCounts& tokens) {
  const int64_t cost_micros = facts.cost_micros;
  const int64_t day = DayOf(facts.spend_us);
  const int64_t month = MonthOfDay(day);
  const int64_t minute = MinuteOf(facts.spend_us);
  const int64_t now_minute = MinuteOf(facts.event_us);
  for (AccountIndex a = account_index; a != kNoAccount; a = accounts[a].parent) {
    Account& node = accounts[a];
    // Imported history of a closed day or month counts in its own window
    // (the day books below) and leaves the current one alone.
    if (node.spend_day < day) {
      node.spend_day = day;
      node.spent_day_micros = 0;
    }
    if (node.spend_month < month) {
      node.spend_month = month;
      node.spent_month_micros = 0;
    }
    if (node.spend_day == day) node.spent_day_micros = Add(node.spent_day_micros, cost_micros);
    if (node.spend_month == month) {
      node.spent_month_micros = Add(node.spent_month_micros, cost_micros);
    }
    node.spent_total_micros = Add(node.spent_total_micros, cost_micros);
    node.burn.Add(minute, cost_micros, 1, now_minute);
  }
  Account& account = accounts[account_index];
  if (account.funding != kNoAccount) {
    Account& wallet = accounts[account.funding];
    wallet.balance_micros = Add(wallet.balance_micros, -cost_micros);
    wallet.charged_micros = Add(wallet.charged_micros, cost_micros);
  }
  if (facts.calls > 0 || facts.rate_tokens != 0) {
    CountRate(account_index, facts.event_us, facts.calls, facts.rate_tokens);
  }

  ChargeRecord charge;
  charge.account = account_index;
  charge.charged_micros = cost_micros;
  charge.day = day;
  // One allocation, and none for a charge without dimensions.
  const size_t rows_max = !dimensions.model.empty() + !dimensions.action.empty() +
                          !dimensions.waste.empty() + (dimensions.outcome != Outcome::kNone) +
                          !dimensions.run_id.empty() + dimensions.tags.size();
  if (rows_max > 0) charge.row_keys.reserve(rows_max);
  auto add_row = [&](uint64_t key) { charge.row_keys.push_back(key); };
  if (!dimensions.model.empty()) add_row(RowKey(Dimension::kModel, strings.Intern(dimensions.model)));
  if (!dimensions.action.empty()) {
    add_row(RowKey(Dimension::kAction, strings.Intern(dimensions.action)));
  }
  if (!dimensions.waste.empty()) add_row(RowKey(Dimension::kWaste, strings.Intern(dimensions.waste)));
  if (dimensions.outcome != Outcome::kNone) {
    add_row(RowKey(Dimension::kOutcome, static_cast<uint32_t>(dimensions.outcome)));
  }
  DayBook& book = BookOf(account, day);
  if (!dimensions.run_id.empty()) {
    uint32_t run = strings.Intern(dimensions.run_id);
    TrackRun(run, account_index, facts);
    // A day's run rows are bounded: past the bound, new runs share "(other)".
    if (!book.contains(RowKey(Dimension::kRun, run)) && book.size() >= kDayBookRowsMax) {
      run = strings.Intern("(other)");
    }
    add_row(RowKey(Dimension::kRun, run));
  }
  Account& root = accounts[account.root];
  for (const Tag& tag : dimensions.tags) {
    auto slot_it = std::find(root.indexed_tag_keys.begin(), root.indexed_tag_keys.end(), tag.key);
    if (slot_it == root.indexed_tag_keys.end()) continue;  // only declared keys are indexed
    size_t slot = static_cast<size_t>(slot_it - root.indexed_tag_keys.begin());
    uint32_t value = strings.Intern(tag.value);
    std::unordered_set<uint32_t>& seen = root.tag_values_seen[slot];
    if (!seen.contains(value)) {
      if (seen.size() >= kTagValuesPerKeyMax) {
        value = strings.Intern("(other)");
      } else {
        seen.insert(value);
      }
    }
    add_row(TagRowKey(slot, value));
  }

  AddTotals(&book[RowKey(Dimension::kTotal, 0)], cost_micros, 1, tokens);
  for (uint64_t key : charge.row_keys) AddTotals(&book[key], cost_micros, 1, tokens);
  AggregateOverrun(account_index, facts.overrun_micros, facts.event_us);
  return charge;
}

void State::ReverseSpend(ChargeRecord* charge, int64_t amount_micros, Reversal reversal) {
  PURSER_ASSERT(amount_micros >= 0 &&
                amount_micros <= charge->charged_micros - charge->refunded_micros);
  const int64_t day = charge->day;
  const int64_t month = MonthOfDay(day);
  for (AccountIndex a = charge->account; a != kNoAccount; a = accounts[a].parent) {
    Account& node = accounts[a];
    // Headroom is freed only in windows that are still current.
    if (node.spend_day == day) node.spent_day_micros -= amount_micros;
    if (node.spend_month == month) node.spent_month_micros -= amount_micros;
    node.spent_total_micros -= amount_micros;
  }
  Account& account = accounts[charge->account];
  if (account.funding != kNoAccount) {
    Account& wallet = accounts[account.funding];
    wallet.balance_micros = Add(wallet.balance_micros, amount_micros);
    if (reversal == Reversal::kRefund) {
      wallet.refunded_micros = Add(wallet.refunded_micros, amount_micros);
    } else {
      wallet.charged_micros -= amount_micros;
    }
  }
  const int64_t calls = reversal == Reversal::kExpiryCharge ? 1 : 0;
  DayBook& book = BookOf(account, day);
  auto reverse_row = [&](uint64_t key) {
    SpendTotals& row = book[key];
    row.cost_micros -= amount_micros;
    row.calls -= calls;
  };
  reverse_row(RowKey(Dimension::kTotal, 0));
  for (uint64_t key : charge->row_keys) reverse_row(key);
  if (reversal == Reversal::kRefund) charge->refunded_micros += amount_micros;
}

void State::AggregateOverrun(AccountIndex account_index, int64_t overrun_micros,
                             int64_t timestamp_us) {
  if (overrun_micros <= 0) return;
  Account& account = accounts[account_index];
  if (account.overrun_alert_hour != HourOf(timestamp_us)) return;  // the next alert opens the hour
  Alert& alert = alerts[account.overrun_alert_index];
  alert.count += 1;
  alert.value_micros = Add(alert.value_micros, overrun_micros);
  alert.message = OverrunMessage(account.id, alert.value_micros, alert.count);
}

void State::ApplyBody(const Event& event, const event::Settled& e) {
  Reservation& r = MustFindReservation(e.reservation_id);
  if (r.status == ReservationStatus::kPending) {
    PURSER_ASSERT(!e.late);
    ChangeHold(r, -1);
    expiry_queue.erase({r.expires_us, &r});
  } else {
    PURSER_ASSERT(r.status == ReservationStatus::kExpired && e.late);
    if (r.expiry_charged) {
      PURSER_ASSERT(e.expiry_charge_reversed_micros ==
                    r.charge.charged_micros - r.charge.refunded_micros);
      ReverseSpend(&r.charge, e.expiry_charge_reversed_micros, Reversal::kExpiryCharge);
    }
  }
  const bool was_pending = !e.late;
  r.status = ReservationStatus::kSettled;
  r.settle_hash = e.request_hash;
  r.cost_micros = e.cost_micros;
  r.released_micros = e.released_micros;
  r.overrun_micros = e.overrun_micros;
  r.late = e.late;
  r.expiry_charged = false;
  // The rate counters swap the estimate for the real tokens.
  if (was_pending && r.estimate_tokens > 0) {
    CountRate(r.account, r.created_us, 0, -r.estimate_tokens);
  }
  ClearCalmAnomalies(r.account, event.timestamp_us);
  SpendFacts facts;
  facts.cost_micros = e.cost_micros;
  facts.event_us = event.timestamp_us;
  facts.spend_us = event.timestamp_us;
  facts.overrun_micros = e.overrun_micros;
  facts.calls = 0;
  facts.rate_tokens = RateTokens(e.tokens);
  facts.live = true;
  r.charge = RecordSpend(r.account, facts, e.dimensions, e.tokens);
  SettleReactions(r.account, event.timestamp_us, true, e.dimensions.outcome);
  r.version = event.sequence;
  r.settle_seq = event.sequence;
}

void State::ClearCalmAnomalies(AccountIndex account, int64_t now_us) {
  for (AccountIndex a = account; a != kNoAccount; a = accounts[a].parent) {
    Account& node = accounts[a];
    if (node.anomaly_since_us != 0 && !AnomalyHolds(node, now_us, nullptr, nullptr)) {
      node.anomaly_since_us = 0;  // the rate fell back; a new rise raises a new alert
      anomalous_accounts.erase(a);
    }
  }
}

void State::ApplyBody(const Event& event, const event::Voided& e) {
  Reservation& r = MustFindReservation(e.reservation_id);
  PURSER_ASSERT(r.status == ReservationStatus::kPending);
  ChangeHold(r, -1);
  expiry_queue.erase({r.expires_us, &r});
  r.status = ReservationStatus::kVoided;
  r.released_micros = e.released_micros;
  r.settle_hash = VoidHash(e.reason);  // a retry with another reason is a conflict
  r.version = event.sequence;
}

void State::ApplyBody(const Event& event, const event::Expired& e) {
  Reservation& r = MustFindReservation(e.reservation_id);
  PURSER_ASSERT(r.status == ReservationStatus::kPending);
  ChangeHold(r, -1);
  expiry_queue.erase({r.expires_us, &r});
  r.status = ReservationStatus::kExpired;
  r.released_micros = e.released_micros;
  r.version = event.sequence;
  if (e.charged_micros > 0) {
    Dimensions dimensions;
    dimensions.action = strings.Get(r.action);
    dimensions.run_id = strings.Get(r.run_id);
    dimensions.waste = "unreconciled";
    dimensions.tags = r.tags;
    SpendFacts facts;
    facts.cost_micros = e.charged_micros;
    facts.event_us = event.timestamp_us;
    facts.spend_us = event.timestamp_us;
    facts.calls = 0;
    r.charge = RecordSpend(r.account, facts, dimensions, TokenCounts{});
    r.expiry_charged = true;
  }
}

void State::ApplyBody(const Event& event, const event::Extended& e) {
  Reservation& r = MustFindReservation(e.reservation_id);
  PURSER_ASSERT(r.status == ReservationStatus::kPending);
  expiry_queue.erase({r.expires_us, &r});
  r.expires_us = e.expires_at_us;
  r.ttl_s = e.ttl_s;
  r.version = event.sequence;
  expiry_queue.emplace(r.expires_us, &r);
}

void State::ApplyBody(const Event& event, const event::Refunded& e) {
  ChargeRecord* charge = nullptr;
  if (e.target_kind == ChargeKind::kReservation) {
    Reservation& r = MustFindReservation(e.target_id);
    r.version = event.sequence;
    charge = &r.charge;
  } else {
    auto it = usages.find(e.target_id);
    PURSER_ASSERT(it != usages.end());
    it->second.version = event.sequence;
    charge = &it->second.charge;
  }
  ReverseSpend(charge, e.amount_micros, Reversal::kRefund);
  refunds.emplace(e.refund_id, IdEntry{e.request_hash, e.amount_micros});
}

void State::ApplyBody(const Event& event, const event::UsageCharged& e) {
  auto [it, inserted] = usages.try_emplace(e.usage_id);
  PURSER_ASSERT(inserted);
  UsageRecord& usage = it->second;
  usage.request_hash = e.request_hash;
  usage.cost_micros = e.cost_micros;
  usage.overrun_micros = e.overrun_micros;
  AccountIndex account = MustFindAccount(e.account);
  const bool live = e.occurred_at_us == 0;
  if (live) ClearCalmAnomalies(account, event.timestamp_us);
  SpendFacts facts;
  facts.cost_micros = e.cost_micros;
  facts.event_us = event.timestamp_us;
  facts.spend_us = live ? event.timestamp_us : e.occurred_at_us;
  facts.overrun_micros = e.overrun_micros;
  facts.calls = live ? 1 : 0;
  facts.rate_tokens = live ? RateTokens(e.tokens) : 0;
  facts.live = live;
  usage.charge = RecordSpend(account, facts, e.dimensions, e.tokens);
  SettleReactions(account, event.timestamp_us, live, e.dimensions.outcome);
  usage.version = event.sequence;
  usage.seq = event.sequence;
}

void State::ApplyBody(const Event& event, const event::RevenueRecorded& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  account.revenue_total_micros = Add(account.revenue_total_micros, e.amount_micros);
  AddTotals(&BookOf(account, DayOf(event.timestamp_us))[RowKey(Dimension::kRevenue, 0)],
            e.amount_micros, 1, TokenCounts{});
  revenues.emplace(e.revenue_id, IdEntry{e.request_hash, e.amount_micros});
}

void State::ApplyBody(const Event& event, const event::PriceSet& e) {
  PURSER_ASSERT(e.version == price_version + 1);
  price_version = e.version;
  prices[e.model].push_back(PriceVersion{e.version, event.timestamp_us, e.rates});
}

void State::ApplyBody(const Event&, const event::BaselineSet& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  account.baseline_micros_per_hour = e.micros_per_hour;
  account.baseline_multiplier_bp = e.multiplier_bp;
}

void State::ApplyBody(const Event& event, const event::AlertRaised& e) {
  AccountIndex index = MustFindAccount(e.account);
  Alert& alert = alerts.emplace_back();
  alert.id = e.alert_id;
  alert.account = index;
  alert.type = e.type;
  alert.severity = e.severity;
  alert.threshold_pct = e.threshold_pct;
  alert.window = e.window;
  alert.window_instance = e.window_instance;
  alert.limit_micros = e.limit_micros;
  alert.value_micros = e.value_micros;
  alert.message = e.message;
  alert.created_us = event.timestamp_us;
  Account& account = accounts[index];
  if (e.type == AlertType::kBudgetThreshold && e.window != CapWindow::kNone) {
    ThresholdArm& arm = account.arms[static_cast<int>(e.window) - 1];
    if (arm.instance != e.window_instance) {
      arm.instance = e.window_instance;
      arm.fired.reset();
    }
    arm.fired.set(std::min<size_t>(e.threshold_pct, 127));
  } else if (e.type == AlertType::kOverrun) {
    account.overrun_alert_hour = HourOf(event.timestamp_us);
    account.overrun_alert_index = alerts.size() - 1;
  } else if (e.type == AlertType::kAnomaly) {
    account.anomaly_since_us = event.timestamp_us;
    anomalous_accounts.insert(index);
  } else if (e.type == AlertType::kRunaway) {
    account.runaway = true;
  }
}

void State::ApplyBody(const Event&, const event::Adjusted& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  PURSER_ASSERT(account.wallet);
  account.balance_micros = Add(account.balance_micros, e.amount_micros);
  account.adjusted_micros = Add(account.adjusted_micros, e.amount_micros);
  adjustments.emplace(e.adjustment_id, IdEntry{e.request_hash, account.balance_micros});
}

void State::ApplyBody(const Event&, const event::RejectionsCounted& e) {
  Account& account = accounts[MustFindAccount(e.account)];
  DayBook& book = BookOf(account, DayOf(e.minute * kMicrosPerMinute));
  book[RowKey(Dimension::kRejection, e.code)].calls += static_cast<int64_t>(e.count);
}

void State::ApplyBody(const Event& event, const event::ApiKeyIssued& e) {
  auto [it, inserted] = keys.try_emplace(e.key_id);
  PURSER_ASSERT(inserted);
  ApiKey& key = it->second;
  key.key_id = e.key_id;
  key.account = e.account.empty() ? kNoAccount : MustFindAccount(e.account);
  key.role = e.role;
  key.label = e.label;
  key.secret_sha256 = e.secret_sha256;
  key.created_us = event.timestamp_us;
  key.request_id = e.request_id;
  key.request_hash = e.request_hash;
  keys_by_hash[e.secret_sha256] = e.key_id;
  if (!e.request_id.empty()) key_requests[e.request_id] = e.key_id;
  if (!e.rotated_from.empty()) {
    auto old = keys.find(e.rotated_from);
    PURSER_ASSERT(old != keys.end());
    // The expiry of an old secret never moves later.
    old->second.valid_until_us = std::min(old->second.valid_until_us, e.old_key_valid_until_us);
  }
}

void State::ApplyBody(const Event&, const event::ApiKeyRevoked& e) {
  auto it = keys.find(e.key_id);
  PURSER_ASSERT(it != keys.end());
  it->second.revoked = true;
}

void State::ApplyBody(const Event& event, const event::WebhookRegistered& e) {
  auto [it, inserted] = webhooks.try_emplace(e.webhook_id);
  PURSER_ASSERT(inserted);
  Webhook& hook = it->second;
  hook.webhook_id = e.webhook_id;
  hook.url = e.url;
  hook.events = e.events;
  hook.account = e.account.empty() ? kNoAccount : MustFindAccount(e.account);
  hook.created_us = event.timestamp_us;
  hook.actor = event.actor;
  hook.request_id = e.request_id;
  hook.request_hash = e.request_hash;
  hook.secret_sha256 = e.secret_sha256;
  hook.created_seq = event.sequence;
  if (!e.request_id.empty()) webhook_requests[e.request_id] = e.webhook_id;
}

void State::ApplyBody(const Event&, const event::WebhookRemoved& e) {
  auto it = webhooks.find(e.webhook_id);
  PURSER_ASSERT(it != webhooks.end());
  it->second.removed = true;
}

void State::ApplyBody(const Event& event, const event::DailyReportIngested& e) {
  std::optional<int64_t> day = ParseDate(e.date);
  PURSER_ASSERT(day.has_value());
  daily_reports[{e.account, *day}] = DailyReport{event.sequence, e};
  daily_report_ids[e.report_id] = e.request_hash;
}

void State::ApplyBody(const Event&, const event::Transferred& e) {
  Account& from = accounts[MustFindAccount(e.from_account)];
  PURSER_ASSERT(from.wallet);
  from.balance_micros = Add(from.balance_micros, -e.amount_micros);
  from.transferred_out_micros = Add(from.transferred_out_micros, e.amount_micros);
  Account& to = accounts[MustFindAccount(e.to_account)];
  PURSER_ASSERT(to.wallet);
  to.balance_micros = Add(to.balance_micros, e.amount_micros);
  to.transferred_in_micros = Add(to.transferred_in_micros, e.amount_micros);
  transfers.emplace(e.transfer_id, TransferEntry{e.request_hash,
                                                 accounts[MustFindAccount(e.from_account)].balance_micros,
                                                 to.balance_micros});
}

void State::ApplyBody(const Event&, const event::TagKeysIndexed& e) {
  Account& root = accounts[MustFindAccount(e.account)];
  PURSER_ASSERT(root.parent == kNoAccount);
  for (const std::string& key : e.keys) {
    root.indexed_tag_keys.push_back(key);
    root.tag_values_seen.emplace_back();
  }
}

void State::ApplyBody(const Event&, const event::WebhookUpdated& e) {
  auto it = webhooks.find(e.webhook_id);
  PURSER_ASSERT(it != webhooks.end());
  it->second.url = e.url;
  it->second.events = e.events;
  it->second.enabled = e.enabled;
}

uint64_t VoidHash(std::string_view reason) { return RequestHasher().Add(reason).Finish(); }

}  // namespace purser
