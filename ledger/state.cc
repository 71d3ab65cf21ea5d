#include "ledger/state.h"

#include <xxhash.h>

#include <algorithm>

#include "ledger/clock.h"
#include "ledger/limits.h"
#include "ledger/money.h"
#include "ledger/status.h"

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
  if (it == prices.end() || it->second.empty()) return nullptr;
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

void State::ApplyBody(const Event&, const event::AccountOpened& e) {
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
}

void State::ApplyBody(const Event&, const event::AccountFrozen& e) {
  accounts[MustFindAccount(e.account)].frozen = true;
}

void State::ApplyBody(const Event&, const event::AccountUnfrozen& e) {
  accounts[MustFindAccount(e.account)].frozen = false;
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
  ChangeHold(r, +1);
  expiry_queue.emplace(r.expires_us, &r);
}

ChargeRecord State::RecordSpend(AccountIndex account_index, int64_t cost_micros,
                                int64_t timestamp_us, const Dimensions& dimensions,
                                const TokenCounts& tokens, int64_t overrun_micros) {
  const int64_t day = DayOf(timestamp_us);
  const int64_t month = MonthOfDay(day);
  for (AccountIndex a = account_index; a != kNoAccount; a = accounts[a].parent) {
    Account& node = accounts[a];
    if (node.spend_day != day) {
      node.spend_day = day;
      node.spent_day_micros = 0;
    }
    if (node.spend_month != month) {
      node.spend_month = month;
      node.spent_month_micros = 0;
    }
    node.spent_day_micros = Add(node.spent_day_micros, cost_micros);
    node.spent_month_micros = Add(node.spent_month_micros, cost_micros);
    node.spent_total_micros = Add(node.spent_total_micros, cost_micros);
  }
  Account& account = accounts[account_index];
  if (account.funding != kNoAccount) {
    Account& wallet = accounts[account.funding];
    wallet.balance_micros = Add(wallet.balance_micros, -cost_micros);
    wallet.charged_micros = Add(wallet.charged_micros, cost_micros);
  }

  ChargeRecord charge;
  charge.account = account_index;
  charge.charged_micros = cost_micros;
  charge.day = day;
  auto add_row = [&](uint64_t key) { charge.row_keys.push_back(key); };
  if (!dimensions.model.empty()) add_row(RowKey(Dimension::kModel, strings.Intern(dimensions.model)));
  if (!dimensions.action.empty()) {
    add_row(RowKey(Dimension::kAction, strings.Intern(dimensions.action)));
  }
  if (!dimensions.waste.empty()) add_row(RowKey(Dimension::kWaste, strings.Intern(dimensions.waste)));
  if (dimensions.outcome != Outcome::kNone) {
    add_row(RowKey(Dimension::kOutcome, static_cast<uint32_t>(dimensions.outcome)));
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

  DayBook& book = BookOf(account, day);
  AddTotals(&book[RowKey(Dimension::kTotal, 0)], cost_micros, 1, tokens);
  for (uint64_t key : charge.row_keys) AddTotals(&book[key], cost_micros, 1, tokens);
  AggregateOverrun(account_index, overrun_micros, timestamp_us);
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
  DayBook& book = account.days[day];
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
  r.status = ReservationStatus::kSettled;
  r.settle_hash = e.request_hash;
  r.cost_micros = e.cost_micros;
  r.released_micros = e.released_micros;
  r.overrun_micros = e.overrun_micros;
  r.late = e.late;
  r.expiry_charged = false;
  r.charge = RecordSpend(r.account, e.cost_micros, event.timestamp_us, e.dimensions, e.tokens,
                         e.overrun_micros);
  r.version = event.sequence;
}

void State::ApplyBody(const Event& event, const event::Voided& e) {
  Reservation& r = MustFindReservation(e.reservation_id);
  PURSER_ASSERT(r.status == ReservationStatus::kPending);
  ChangeHold(r, -1);
  expiry_queue.erase({r.expires_us, &r});
  r.status = ReservationStatus::kVoided;
  r.released_micros = e.released_micros;
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
    r.charge = RecordSpend(r.account, e.charged_micros, event.timestamp_us, dimensions,
                           TokenCounts{}, 0);
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
  usage.charge = RecordSpend(MustFindAccount(e.account), e.cost_micros, event.timestamp_us,
                             e.dimensions, e.tokens, e.overrun_micros);
  usage.version = event.sequence;
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
  DayBook& book = account.days[DayOf(e.minute * kMicrosPerMinute)];
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
    old->second.valid_until_us = e.old_key_valid_until_us;
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

}  // namespace purser
