#include "ledger/log/snapshot.h"

#include <algorithm>
#include <bitset>
#include <cstring>
#include <string_view>
#include <system_error>
#include <thread>

#include "ledger/base/binary.h"
#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"

namespace purser {

namespace {

bool IsStringDimension(Dimension dimension) {
  return dimension == Dimension::kModel || dimension == Dimension::kAction ||
         dimension == Dimension::kWaste || dimension == Dimension::kRun ||
         static_cast<uint8_t>(dimension) >= static_cast<uint8_t>(Dimension::kTagBase);
}

// The low 64 of a threshold arm's 128 bits.
const std::bitset<128> kLowWord(~uint64_t{0});

// ---- shared value types ------------------------------------------------------

void Write(BinaryWriter& w, const Tags& tags) {
  w.U64(tags.size());
  for (const Tag& tag : tags) {
    w.Str(tag.key);
    w.Str(tag.value);
  }
}
void Read(BinaryReader& r, Tags* tags) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    Tag tag;
    tag.key = r.Str();
    tag.value = r.Str();
    tags->push_back(std::move(tag));
  }
}

void Write(BinaryWriter& w, const Caps& caps) {
  w.I64(caps.daily_limit_micros);
  w.I64(caps.monthly_limit_micros);
  w.I64(caps.hard_limit_micros);
  w.I64(caps.max_inflight);
  w.I64(caps.reservation_ttl_s);
  w.U64(caps.alert_thresholds_pct.size());
  for (uint8_t pct : caps.alert_thresholds_pct) w.U8(pct);
  w.U8(static_cast<uint8_t>(caps.on_expiry));
  w.U8(static_cast<uint8_t>(caps.runaway_action));
  w.Str(caps.time_zone);
  for (int64_t value : {caps.runaway_error_streak, caps.runaway_burn_multiplier_bp,
                        caps.runaway_min_micros_per_hour, caps.max_calls_per_minute,
                        caps.max_tokens_per_minute, caps.degrade_at_pct}) {
    w.I64(value);
  }
}
void Read(BinaryReader& r, Caps* caps) {
  caps->daily_limit_micros = r.I64();
  caps->monthly_limit_micros = r.I64();
  caps->hard_limit_micros = r.I64();
  caps->max_inflight = r.I64();
  caps->reservation_ttl_s = r.I64();
  caps->alert_thresholds_pct.clear();
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count; ++i) caps->alert_thresholds_pct.push_back(r.U8());
  caps->on_expiry = static_cast<OnExpiry>(r.U8());
  caps->runaway_action = static_cast<RunawayAction>(r.U8());
  caps->time_zone = r.Str();
  for (int64_t* value : {&caps->runaway_error_streak, &caps->runaway_burn_multiplier_bp,
                         &caps->runaway_min_micros_per_hour, &caps->max_calls_per_minute,
                         &caps->max_tokens_per_minute, &caps->degrade_at_pct}) {
    *value = r.I64();
  }
}

void Write(BinaryWriter& w, const MinuteSeries& series) {
  w.U64(series.buckets().size());
  for (const MinuteBucket& b : series.buckets()) {
    w.I64(b.minute);
    w.I64(b.spend_micros);
    w.I64(b.calls);
  }
}
void Read(BinaryReader& r, MinuteSeries* series) {
  uint64_t count = r.Count();
  std::vector<MinuteBucket>& buckets = series->mutable_buckets();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    MinuteBucket b;
    b.minute = r.I64();
    b.spend_micros = r.I64();
    b.calls = r.I64();
    buckets.push_back(b);
  }
}

void Write(BinaryWriter& w, const SpendTotals& t) {
  w.I64(t.cost_micros);
  w.I64(t.calls);
  w.I64(t.input_tokens);
  w.I64(t.output_tokens);
  w.I64(t.cached_input_tokens);
  w.I64(t.cache_write_tokens);
  w.I64(t.reasoning_tokens);
}
void Read(BinaryReader& r, SpendTotals* t) {
  t->cost_micros = r.I64();
  t->calls = r.I64();
  t->input_tokens = r.I64();
  t->output_tokens = r.I64();
  t->cached_input_tokens = r.I64();
  t->cache_write_tokens = r.I64();
  t->reasoning_tokens = r.I64();
}

// A DayBook row key with its interned value resolved to a string.
void WriteRowKey(BinaryWriter& w, const State& state, uint64_t key) {
  Dimension dimension = RowDimension(key);
  w.U8(static_cast<uint8_t>(dimension));
  if (IsStringDimension(dimension)) {
    w.Str(state.strings.Get(RowValue(key)));
  } else {
    w.U64(RowValue(key));
  }
}
uint64_t ReadRowKey(BinaryReader& r, State* state) {
  auto dimension = static_cast<Dimension>(r.U8());
  uint32_t value = IsStringDimension(dimension) ? state->strings.Intern(r.Str())
                                                : static_cast<uint32_t>(r.U64());
  return RowKey(dimension, 0) | value;
}

// Sort key of a row in canonical order: (dimension, value string or number).
std::pair<uint8_t, std::string> RowSortKey(const State& state, uint64_t key) {
  Dimension dimension = RowDimension(key);
  if (IsStringDimension(dimension)) {
    return {static_cast<uint8_t>(dimension), state.strings.Get(RowValue(key))};
  }
  std::string number(8, '\0');
  for (int i = 0; i < 8; ++i) number[i] = static_cast<char>(uint64_t{RowValue(key)} >> (56 - 8 * i));
  return {static_cast<uint8_t>(dimension), number};
}

void Write(BinaryWriter& w, const State& state, const ChargeRecord& charge) {
  w.Str(charge.account == kNoAccount ? "" : state.account(charge.account).id);
  w.I64(charge.charged_micros);
  w.I64(charge.refunded_micros);
  w.I64(charge.day);
  w.U64(charge.row_keys.size());
  for (uint64_t key : charge.row_keys) WriteRowKey(w, state, key);
}
void Read(BinaryReader& r, State* state, ChargeRecord* charge) {
  std::string account = r.Str();
  charge->account = account.empty() ? kNoAccount : state->FindAccount(account);
  charge->charged_micros = r.I64();
  charge->refunded_micros = r.I64();
  charge->day = r.I64();
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) charge->row_keys.push_back(ReadRowKey(r, state));
}

// The first 8 bytes of `key` from `offset`, big-endian and zero-padded, so
// that integer order is the strings' byte order (as std::string's compare).
uint64_t KeyWord(std::string_view key, size_t offset) {
  uint64_t word = 0;
  for (size_t i = 0; i < 8; ++i) {
    const size_t at = offset + i;
    word = (word << 8) | (at < key.size() ? static_cast<unsigned char>(key[at]) : 0u);
  }
  return word;
}

// Sorts `items` by the string `key(item)`, for the canonical form. Sorting
// millions of records by an id read through each record's pointer was half
// of a rebuild's state digest (cache misses): each entry carries its key's
// first 16 bytes, so most comparisons touch no record, and a large vector
// is sorted in two halves on two threads, then merged.
template <typename T, typename KeyOf>
void SortByKey(std::vector<const T*>* items, KeyOf key_of) {
  struct Entry {
    uint64_t high;
    uint64_t low;
    std::string_view key;
    const T* item;
  };
  std::vector<Entry> entries;
  entries.reserve(items->size());
  for (const T* item : *items) {
    const std::string_view key = key_of(*item);
    entries.push_back({KeyWord(key, 0), KeyWord(key, 8), key, item});
  }
  auto less = [](const Entry& a, const Entry& b) {
    if (a.high != b.high) return a.high < b.high;
    if (a.low != b.low) return a.low < b.low;
    return a.key < b.key;
  };
  constexpr size_t kWorthAThread = 1 << 16;
  std::thread upper;
  const auto middle = entries.begin() + static_cast<std::ptrdiff_t>(entries.size() / 2);
  if (entries.size() >= kWorthAThread) {
    try {
      upper = std::thread([&] { std::sort(middle, entries.end(), less); });
    } catch (const std::system_error&) {
      // No thread to be had (a process limit): one thread sorts it all.
    }
  }
  if (upper.joinable()) {
    std::sort(entries.begin(), middle, less);
    upper.join();
    std::inplace_merge(entries.begin(), middle, entries.end(), less);
  } else {
    std::sort(entries.begin(), entries.end(), less);
  }
  for (size_t i = 0; i < entries.size(); ++i) (*items)[i] = entries[i].item;
}

template <typename Map>
std::vector<const typename Map::value_type*> Sorted(const BinaryWriter& w, const Map& map) {
  std::vector<const typename Map::value_type*> items;
  items.reserve(map.size());
  for (const auto& item : map) items.push_back(&item);
  if (w.canonical()) SortByKey(&items, [](const auto& item) { return std::string_view(item.first); });
  return items;
}

// ---- accounts ------------------------------------------------------------------

void WriteAccount(BinaryWriter& w, const State& state, const Account& a) {
  w.Str(a.id);
  w.Str(a.name);
  w.Str(a.parent == kNoAccount ? "" : state.account(a.parent).id);
  w.U8(static_cast<uint8_t>(a.kind));
  w.Bool(a.wallet);
  w.Bool(a.frozen);
  Write(w, a.caps);
  for (int64_t value : {a.balance_micros, a.wallet_held_micros, a.deposited_micros,
                        a.adjusted_micros, a.refunded_micros, a.charged_micros, a.held_micros,
                        a.inflight, a.spend_day, a.spent_day_micros, a.spend_month,
                        a.spent_month_micros, a.spent_total_micros, a.own_held_micros,
                        a.own_inflight, a.revenue_total_micros, a.baseline_micros_per_hour,
                        a.baseline_multiplier_bp, a.overrun_alert_hour, a.transferred_in_micros,
                        a.transferred_out_micros, a.rate_minute, a.calls_in_minute,
                        a.tokens_in_minute, a.error_streak, a.anomaly_since_us,
                        a.opened_funding_balance_micros, a.opened_funding_held_micros,
                        a.opened_headroom_micros}) {
    w.I64(value);
  }
  w.Bool(a.runaway);
  w.Str(a.frozen_reason);
  Write(w, a.burn);
  w.U64(a.overrun_alert_index);
  for (const ThresholdArm& arm : a.arms) {
    w.I64(arm.instance);
    if (w.compact()) {
      w.U64((arm.fired >> 64).to_ullong());
      w.U64((arm.fired & kLowWord).to_ullong());
    } else {
      w.Str(arm.fired.to_string());
    }
  }
  w.U64(a.request_hash);
  w.U64(a.indexed_tag_keys.size());
  for (size_t slot = 0; slot < a.indexed_tag_keys.size(); ++slot) {
    w.Str(a.indexed_tag_keys[slot]);
    std::vector<std::string> seen;
    for (uint32_t id : a.tag_values_seen[slot]) seen.push_back(state.strings.Get(id));
    if (w.canonical()) std::sort(seen.begin(), seen.end());
    w.U64(seen.size());
    for (const std::string& value : seen) w.Str(value);
  }
  w.U64(a.days.size());
  for (const auto& [day, book] : a.days) {
    w.I64(day);
    w.U64(book.size());
    if (!w.canonical()) {
      for (const auto& [key, totals] : book) {
        WriteRowKey(w, state, key);
        Write(w, totals);
      }
      continue;
    }
    // Canonical: rows in (dimension, value string or number) order.
    std::vector<std::pair<std::pair<uint8_t, std::string>, const DayBook::value_type*>> rows;
    rows.reserve(book.size());
    for (const auto& row : book) rows.push_back({RowSortKey(state, row.first), &row});
    std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const auto& [sort_key, row] : rows) {
      WriteRowKey(w, state, row->first);
      Write(w, row->second);
    }
  }
}

// Reads an account; its parent link is resolved after all accounts are read.
void ReadAccount(BinaryReader& r, State* state, Account* a, std::string* parent) {
  a->id = r.Str();
  a->name = r.Str();
  *parent = r.Str();
  a->kind = static_cast<AccountKind>(r.U8());
  a->wallet = r.Bool();
  a->frozen = r.Bool();
  Read(r, &a->caps);
  for (int64_t* value : {&a->balance_micros, &a->wallet_held_micros, &a->deposited_micros,
                         &a->adjusted_micros, &a->refunded_micros, &a->charged_micros,
                         &a->held_micros, &a->inflight, &a->spend_day, &a->spent_day_micros,
                         &a->spend_month, &a->spent_month_micros, &a->spent_total_micros,
                         &a->own_held_micros, &a->own_inflight, &a->revenue_total_micros,
                         &a->baseline_micros_per_hour, &a->baseline_multiplier_bp,
                         &a->overrun_alert_hour, &a->transferred_in_micros,
                         &a->transferred_out_micros, &a->rate_minute, &a->calls_in_minute,
                         &a->tokens_in_minute, &a->error_streak, &a->anomaly_since_us,
                         &a->opened_funding_balance_micros, &a->opened_funding_held_micros,
                         &a->opened_headroom_micros}) {
    *value = r.I64();
  }
  a->runaway = r.Bool();
  a->frozen_reason = r.Str();
  Read(r, &a->burn);
  a->overrun_alert_index = r.U64();
  for (ThresholdArm& arm : a->arms) {
    arm.instance = r.I64();
    if (r.compact()) {
      const uint64_t high = r.U64();
      arm.fired = (std::bitset<128>(high) << 64) | std::bitset<128>(r.U64());
      continue;
    }
    std::string bits = r.Str();
    // Exactly the bitset's width, in '0' and '1' (std::bitset throws on
    // anything else: a damaged checkpoint is refused, never a crash; found by
    // purser_fuzz_decoders).
    if (bits.size() != arm.fired.size() || bits.find_first_not_of("01") != std::string::npos) {
      r.Fail();
      return;
    }
    arm.fired = std::bitset<128>(bits);
  }
  a->request_hash = r.U64();
  uint64_t keys = r.Count();
  for (uint64_t slot = 0; slot < keys && r.ok(); ++slot) {
    a->indexed_tag_keys.push_back(r.Str());
    std::unordered_set<uint32_t>& seen = a->tag_values_seen.emplace_back();
    uint64_t count = r.Count();
    for (uint64_t i = 0; i < count && r.ok(); ++i) seen.insert(state->strings.Intern(r.Str()));
  }
  uint64_t days = r.Count();
  for (uint64_t d = 0; d < days && r.ok(); ++d) {
    DayBook& book = a->days[r.I64()];
    uint64_t rows = r.Count();
    for (uint64_t i = 0; i < rows && r.ok(); ++i) {
      uint64_t key = ReadRowKey(r, state);
      Read(r, &book[key]);
    }
  }
}

// ---- reservations and id entries --------------------------------------------------

void WriteReservation(BinaryWriter& w, const State& state, const Reservation& x) {
  w.Str(x.id);
  w.Str(state.account(x.account).id);
  w.Str(x.funding == kNoAccount ? "" : state.account(x.funding).id);
  w.U8(static_cast<uint8_t>(x.status));
  for (int64_t value : {x.amount_micros, x.created_us, x.expires_us, x.original_expires_us,
                        x.ttl_s, x.headroom_after_micros, x.cost_micros, x.released_micros,
                        x.overrun_micros}) {
    w.I64(value);
  }
  w.U64(x.request_hash);
  w.U64(x.settle_hash);
  w.Str(state.strings.Get(x.run_id));
  w.Str(state.strings.Get(x.action));
  Write(w, x.tags);
  w.Bool(x.late);
  w.Bool(x.expiry_charged);
  Write(w, state, x.charge);
  w.U64(x.version);
  if (!w.canonical()) {
    // Receipts and rate bookkeeping that replies repeat; the digest leaves
    // them out (SPEC section 7 lists what it covers).
    w.U64(x.reserve_seq);
    w.U64(x.settle_seq);
    w.Str(x.advice_account == kNoAccount ? "" : state.account(x.advice_account).id);
    w.I64(x.estimate_tokens);
  }
}

void ReadReservation(BinaryReader& r, State* state, Reservation* x) {
  x->id = r.Str();
  x->account = state->FindAccount(r.Str());
  std::string funding = r.Str();
  x->funding = funding.empty() ? kNoAccount : state->FindAccount(funding);
  x->status = static_cast<ReservationStatus>(r.U8());
  for (int64_t* value : {&x->amount_micros, &x->created_us, &x->expires_us,
                         &x->original_expires_us, &x->ttl_s, &x->headroom_after_micros,
                         &x->cost_micros, &x->released_micros, &x->overrun_micros}) {
    *value = r.I64();
  }
  x->request_hash = r.U64();
  x->settle_hash = r.U64();
  x->run_id = state->strings.Intern(r.Str());
  x->action = state->strings.Intern(r.Str());
  Read(r, &x->tags);
  x->late = r.Bool();
  x->expiry_charged = r.Bool();
  Read(r, state, &x->charge);
  x->version = r.U64();
  x->reserve_seq = r.U64();
  x->settle_seq = r.U64();
  std::string advice = r.Str();
  x->advice_account = advice.empty() ? kNoAccount : state->FindAccount(advice);
  x->estimate_tokens = r.I64();
}

void WriteIds(BinaryWriter& w, const StringMap<IdEntry>& ids) {
  w.U64(ids.size());
  for (const auto* item : Sorted(w, ids)) {
    w.Str(item->first);
    w.U64(item->second.request_hash);
    w.I64(item->second.value);
  }
}

void ReadIds(BinaryReader& r, StringMap<IdEntry>* ids) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    std::string id = r.Str();
    IdEntry entry;
    entry.request_hash = r.U64();
    entry.value = r.I64();
    ids->emplace(std::move(id), entry);
  }
}

// ---- keys, webhooks, alerts, reports ------------------------------------------------

void WriteKeys(BinaryWriter& w, const State& state) {
  w.U64(state.keys.size());
  for (const auto* item : Sorted(w, state.keys)) {
    const ApiKey& k = item->second;
    w.Str(k.key_id);
    w.Str(k.account == kNoAccount ? "" : state.account(k.account).id);
    w.U8(static_cast<uint8_t>(k.role));
    w.Str(k.label);
    w.Digest(k.secret_sha256);
    w.Bool(k.revoked);
    w.I64(k.valid_until_us);
    w.I64(k.created_us);
    w.Str(k.request_id);
    w.U64(k.request_hash);
  }
}

void ReadKeys(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    ApiKey k;
    k.key_id = r.Str();
    std::string account = r.Str();
    k.account = account.empty() ? kNoAccount : state->FindAccount(account);
    k.role = static_cast<Role>(r.U8());
    k.label = r.Str();
    k.secret_sha256 = r.Digest();
    k.revoked = r.Bool();
    k.valid_until_us = r.I64();
    k.created_us = r.I64();
    k.request_id = r.Str();
    k.request_hash = r.U64();
    state->keys_by_hash[k.secret_sha256] = k.key_id;
    if (!k.request_id.empty()) state->key_requests[k.request_id] = k.key_id;
    std::string id = k.key_id;
    state->keys.emplace(std::move(id), std::move(k));
  }
}

void WriteWebhooks(BinaryWriter& w, const State& state) {
  w.U64(state.webhooks.size());
  for (const auto* item : Sorted(w, state.webhooks)) {
    const Webhook& h = item->second;
    w.Str(h.webhook_id);
    w.Str(h.url);
    w.U64(h.events.size());
    for (const std::string& kind : h.events) w.Str(kind);
    w.Str(h.account == kNoAccount ? "" : state.account(h.account).id);
    w.Bool(h.removed);
    w.I64(h.created_us);
    w.Str(h.actor);
    w.Str(h.request_id);
    w.U64(h.request_hash);
    w.Digest(h.secret_sha256);
    w.Bool(h.enabled);
    w.U64(h.created_seq);
  }
}

void ReadWebhooks(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    Webhook h;
    h.webhook_id = r.Str();
    h.url = r.Str();
    uint64_t kinds = r.Count();
    for (uint64_t k = 0; k < kinds && r.ok(); ++k) h.events.push_back(r.Str());
    std::string account = r.Str();
    h.account = account.empty() ? kNoAccount : state->FindAccount(account);
    h.removed = r.Bool();
    h.created_us = r.I64();
    h.actor = r.Str();
    h.request_id = r.Str();
    h.request_hash = r.U64();
    h.secret_sha256 = r.Digest();
    h.enabled = r.Bool();
    h.created_seq = r.U64();
    if (!h.request_id.empty()) state->webhook_requests[h.request_id] = h.webhook_id;
    std::string id = h.webhook_id;
    state->webhooks.emplace(std::move(id), std::move(h));
  }
}

void WriteAlerts(BinaryWriter& w, const State& state) {
  w.U64(state.alerts.size());
  for (const Alert& a : state.alerts) {
    w.U64(a.id);
    w.Str(state.account(a.account).id);
    w.U8(static_cast<uint8_t>(a.type));
    w.Str(a.severity);
    w.U8(a.threshold_pct);
    w.U8(static_cast<uint8_t>(a.window));
    for (int64_t value : {a.window_instance, a.limit_micros, a.value_micros, a.created_us,
                          a.count}) {
      w.I64(value);
    }
    w.Str(a.message);
  }
}

void ReadAlerts(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    Alert& a = state->alerts.emplace_back();
    a.id = r.U64();
    a.account = state->FindAccount(r.Str());
    a.type = static_cast<AlertType>(r.U8());
    a.severity = r.Str();
    a.threshold_pct = r.U8();
    a.window = static_cast<CapWindow>(r.U8());
    for (int64_t* value : {&a.window_instance, &a.limit_micros, &a.value_micros, &a.created_us,
                           &a.count}) {
      *value = r.I64();
    }
    a.message = r.Str();
  }
}

void WriteAmounts(BinaryWriter& w, const std::vector<event::NamedAmount>& amounts) {
  w.U64(amounts.size());
  for (const auto& entry : amounts) {
    w.Str(entry.name);
    w.I64(entry.amount_micros);
  }
}

void ReadAmounts(BinaryReader& r, std::vector<event::NamedAmount>* amounts) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    event::NamedAmount entry;
    entry.name = r.Str();
    entry.amount_micros = r.I64();
    amounts->push_back(std::move(entry));
  }
}

void WriteReports(BinaryWriter& w, const State& state) {
  w.U64(state.daily_reports.size());
  for (const auto& [key, stored] : state.daily_reports) {
    const event::DailyReportIngested& d = stored.report;
    w.U64(stored.sequence);
    w.Str(d.report_id);
    w.Str(d.account);
    w.Str(d.date);
    for (int64_t value : {d.total_tokens, d.total_cost_micros, d.total_requests,
                          d.efficiency_score_millionths}) {
      w.I64(value);
    }
    WriteAmounts(w, d.cost_by_model);
    WriteAmounts(w, d.cost_by_action);
    WriteAmounts(w, d.waste_categories);
    w.U64(d.request_hash);
    w.Str(d.metadata_json);
  }
  w.U64(state.daily_report_ids.size());
  for (const auto* item : Sorted(w, state.daily_report_ids)) {
    w.Str(item->first);
    w.U64(item->second);
  }
}

Status ReadReports(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    DailyReport stored;
    event::DailyReportIngested& d = stored.report;
    stored.sequence = r.U64();
    d.report_id = r.Str();
    d.account = r.Str();
    d.date = r.Str();
    for (int64_t* value : {&d.total_tokens, &d.total_cost_micros, &d.total_requests,
                           &d.efficiency_score_millionths}) {
      *value = r.I64();
    }
    ReadAmounts(r, &d.cost_by_model);
    ReadAmounts(r, &d.cost_by_action);
    ReadAmounts(r, &d.waste_categories);
    d.request_hash = r.U64();
    d.metadata_json = r.Str();
    std::optional<int64_t> day = ParseDate(d.date);
    if (!day) return Status::Corruption("checkpoint holds a daily report with a bad date");
    state->daily_reports[{d.account, *day}] = std::move(stored);
  }
  uint64_t ids = r.Count();
  for (uint64_t i = 0; i < ids && r.ok(); ++i) {
    std::string id = r.Str();
    state->daily_report_ids[id] = r.U64();
  }
  return Status::Ok();
}

void WriteTransfers(BinaryWriter& w, const State& state) {
  w.U64(state.transfers.size());
  for (const auto* item : Sorted(w, state.transfers)) {
    w.Str(item->first);
    w.U64(item->second.request_hash);
    w.I64(item->second.from_balance_micros);
    w.I64(item->second.to_balance_micros);
  }
}

void ReadTransfers(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    std::string id = r.Str();
    TransferEntry entry;
    entry.request_hash = r.U64();
    entry.from_balance_micros = r.I64();
    entry.to_balance_micros = r.I64();
    state->transfers.emplace(std::move(id), entry);
  }
}

// Runs by run id string in canonical order; the checkpoint keeps interned ids.
void WriteRuns(BinaryWriter& w, const State& state) {
  std::vector<std::pair<std::string, const Run*>> runs;
  runs.reserve(state.runs.size());
  for (const auto& [id, run] : state.runs) runs.emplace_back(state.strings.Get(id), &run);
  if (w.canonical()) std::sort(runs.begin(), runs.end());
  w.U64(runs.size());
  for (const auto& [id, run] : runs) {
    w.Str(id);
    w.Str(state.account(run->account).id);
    w.I64(run->first_us);
    w.I64(run->last_us);
    Write(w, run->burn);
  }
}

Status ReadRuns(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    uint32_t id = state->strings.Intern(r.Str());
    Run run;
    run.account = state->FindAccount(r.Str());
    run.first_us = r.I64();
    run.last_us = r.I64();
    Read(r, &run.burn);
    if (run.account == kNoAccount) return Status::Corruption("checkpoint run without its account");
    state->runs_by_last.emplace(run.last_us, id);
    state->runs.emplace(id, std::move(run));
  }
  return Status::Ok();
}

void WriteUsage(BinaryWriter& w, const State& state, const std::string& id, const UsageRecord& u) {
  w.U8(1);
  w.Str(id);
  w.U64(u.request_hash);
  w.I64(u.cost_micros);
  w.I64(u.overrun_micros);
  Write(w, state, u.charge);
  w.U64(u.version);
  if (!w.canonical()) w.U64(u.seq);
  w.MaybeFlush();
}

// Reservations: those in memory (all, or only pending ones when the finished
// ones are in the cold store), merged in id order with the cold store's when
// one is given. Each item is preceded by 1, the list ends with 0.
Status WriteReservations(BinaryWriter& w, const State& state, const SnapshotOptions& options,
                         ColdStore* cold) {
  std::vector<const Reservation*> hot;
  if (options.finished_records) {
    hot.reserve(state.reservations.size());
    for (const auto& [id, r] : state.reservations) hot.push_back(&r);
  } else {
    // The pending ones are the expiry queue's: visiting the whole map, with
    // the finished records of a million events not yet evicted, was most of
    // a checkpoint's pause (a cache miss per record).
    hot.reserve(state.expiry_queue.size());
    for (const auto& [expires, r] : state.expiry_queue) {
      PURSER_ASSERT(r->status == ReservationStatus::kPending);
      hot.push_back(r);
    }
  }
  if (w.canonical()) SortByKey(&hot, [](const Reservation& r) { return std::string_view(r.id); });
  auto write = [&](const Reservation& r) {
    w.U8(1);
    WriteReservation(w, state, r);
    w.MaybeFlush();
  };
  size_t i = 0;
  if (cold != nullptr) {
    Status status = cold->ForEachReservation([&](Reservation&& c) {
      while (i < hot.size() && hot[i]->id < c.id) write(*hot[i++]);
      if (i < hot.size() && hot[i]->id == c.id) {
        write(*hot[i++]);  // memory holds the newer version
      } else {
        write(c);
      }
    });
    if (!status.ok()) return status;
  }
  while (i < hot.size()) write(*hot[i++]);
  w.U8(0);
  return Status::Ok();
}

Status WriteUsages(BinaryWriter& w, const State& state, const SnapshotOptions& options,
                   ColdStore* cold) {
  std::vector<const StableStringMap<UsageRecord>::value_type*> hot;
  if (options.finished_records) {
    for (const auto& item : state.usages) hot.push_back(&item);
  }
  if (w.canonical()) SortByKey(&hot, [](const auto& item) { return std::string_view(item.first); });
  size_t i = 0;
  if (cold != nullptr) {
    Status status = cold->ForEachUsage([&](std::string&& id, UsageRecord&& c) {
      while (i < hot.size() && hot[i]->first < id) {
        WriteUsage(w, state, hot[i]->first, hot[i]->second);
        ++i;
      }
      if (i < hot.size() && hot[i]->first == id) {
        WriteUsage(w, state, hot[i]->first, hot[i]->second);
        ++i;
      } else {
        WriteUsage(w, state, id, c);
      }
    });
    if (!status.ok()) return status;
  }
  for (; i < hot.size(); ++i) WriteUsage(w, state, hot[i]->first, hot[i]->second);
  w.U8(0);
  return Status::Ok();
}

Status WriteState(BinaryWriter& w, const State& state, const SnapshotOptions& options,
                  ColdStore* cold) {
  if (w.canonical()) {
    w.Str(kCanonicalMagic);
  } else if (options.version == 2) {
    w.Str(kSnapshotMagicV2);
  } else {
    PURSER_ASSERT(options.version == 3);
    w.Str(kSnapshotMagic);
    w.SetCompact(true);
  }
  w.U64(state.last_sequence);
  w.I64(state.last_timestamp_us);
  w.U64(state.price_version);
  if (!w.canonical()) {
    // The interner in id order, so that interned ids (kept by cold records)
    // are the same after a restart. The digest uses strings instead.
    w.U64(state.strings.size());
    for (uint32_t id = 1; id < state.strings.size(); ++id) w.Str(state.strings.Get(id));
  }

  std::vector<const Account*> accounts;
  for (const Account& a : state.accounts) accounts.push_back(&a);
  if (w.canonical()) {
    std::sort(accounts.begin(), accounts.end(),
              [](const Account* a, const Account* b) { return a->id < b->id; });
  }
  w.U64(accounts.size());
  for (const Account* a : accounts) WriteAccount(w, state, *a);

  if (Status status = WriteReservations(w, state, options, cold); !status.ok()) return status;
  if (Status status = WriteUsages(w, state, options, cold); !status.ok()) return status;
  WriteIds(w, state.deposits);
  WriteIds(w, state.refunds);
  WriteIds(w, state.revenues);
  WriteIds(w, state.adjustments);

  w.U64(state.prices.size());
  for (const auto* item : Sorted(w, state.prices)) {
    w.Str(item->first);
    w.U64(item->second.size());
    for (const PriceVersion& v : item->second) {
      w.U64(v.version);
      w.I64(v.since_us);
      for (int64_t rate : {v.rates.input_per_mtok, v.rates.output_per_mtok,
                           v.rates.cached_input_per_mtok, v.rates.cache_write_per_mtok,
                           v.rates.reasoning_per_mtok}) {
        w.I64(rate);
      }
    }
  }
  WriteKeys(w, state);
  WriteWebhooks(w, state);
  WriteAlerts(w, state);
  WriteReports(w, state);
  WriteTransfers(w, state);
  WriteRuns(w, state);
  w.Flush();
  return Status::Ok();
}

Status ReadAccounts(BinaryReader& r, State* state) {
  uint64_t count = r.Count();
  std::vector<std::string> parents;
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    Account& account = state->accounts.emplace_back();
    ReadAccount(r, state, &account, &parents.emplace_back());
    state->account_ids.emplace(account.id, static_cast<AccountIndex>(i));
  }
  if (!r.ok()) return Status::Corruption("checkpoint accounts are truncated");
  // Link parents, then derive depth, root and funding top-down.
  for (AccountIndex i = 0; i < state->accounts.size(); ++i) {
    if (parents[i].empty()) {
      state->roots.push_back(i);
      continue;
    }
    AccountIndex parent = state->FindAccount(parents[i]);
    if (parent == kNoAccount) return Status::Corruption("checkpoint account without its parent");
    state->accounts[i].parent = parent;
    state->accounts[parent].children.push_back(i);
  }
  std::vector<AccountIndex> order = state->roots;
  for (size_t k = 0; k < order.size(); ++k) {
    AccountIndex i = order[k];
    Account& a = state->accounts[i];
    if (a.parent == kNoAccount) {
      a.root = i;
      a.depth = 0;
      a.funding = a.wallet ? i : kNoAccount;
    } else {
      const Account& parent = state->accounts[a.parent];
      a.root = parent.root;
      a.depth = static_cast<uint8_t>(parent.depth + 1);
      a.funding = a.wallet ? i : parent.funding;
    }
    order.insert(order.end(), a.children.begin(), a.children.end());
  }
  if (order.size() != state->accounts.size()) return Status::Corruption("checkpoint tree has a cycle");
  for (AccountIndex i = 0; i < state->accounts.size(); ++i) {
    if (state->accounts[i].anomaly_since_us != 0) state->anomalous_accounts.insert(i);
  }
  return Status::Ok();
}

// Reads the magic and sets the reader to its version's form; false when it
// is no checkpoint this build reads.
bool ReadMagic(BinaryReader& r) {
  const std::string magic = r.Str();
  if (!r.ok()) return false;
  if (magic == kSnapshotMagic) r.SetCompact(true);
  return magic == kSnapshotMagic || magic == kSnapshotMagicV2;
}

Status ReadState(BinaryReader& r, State* state) {
  if (!ReadMagic(r)) return Status::Corruption("not a Purser state checkpoint");
  state->last_sequence = r.U64();
  state->events_applied = state->last_sequence;
  state->last_timestamp_us = r.I64();
  state->price_version = r.U64();
  uint64_t strings = r.Count();
  for (uint64_t id = 1; id < strings && r.ok(); ++id) {
    if (state->strings.Intern(r.Str()) != id) return Status::Corruption("checkpoint interner is corrupt");
  }
  if (Status status = ReadAccounts(r, state); !status.ok()) return status;

  while (r.ok() && r.U8() == 1) {
    Reservation x;
    ReadReservation(r, state, &x);
    if (x.account == kNoAccount) return Status::Corruption("checkpoint reservation without account");
    std::string id = x.id;
    auto [it, inserted] = state->reservations.emplace(std::move(id), std::move(x));
    if (!inserted) return Status::Corruption("checkpoint repeats a reservation");
    const Reservation& stored = it->second;
    if (stored.status == ReservationStatus::kPending) {
      state->expiry_queue.emplace(stored.expires_us, &stored);
    }
  }
  while (r.ok() && r.U8() == 1) {
    std::string id = r.Str();
    UsageRecord usage;
    usage.request_hash = r.U64();
    usage.cost_micros = r.I64();
    usage.overrun_micros = r.I64();
    Read(r, state, &usage.charge);
    usage.version = r.U64();
    usage.seq = r.U64();
    state->usages.emplace(std::move(id), std::move(usage));
  }
  ReadIds(r, &state->deposits);
  ReadIds(r, &state->refunds);
  ReadIds(r, &state->revenues);
  ReadIds(r, &state->adjustments);

  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    std::vector<PriceVersion>& versions = state->prices[r.Str()];
    uint64_t n = r.Count();
    for (uint64_t k = 0; k < n && r.ok(); ++k) {
      PriceVersion v;
      v.version = r.U64();
      v.since_us = r.I64();
      for (int64_t* rate : {&v.rates.input_per_mtok, &v.rates.output_per_mtok,
                            &v.rates.cached_input_per_mtok, &v.rates.cache_write_per_mtok,
                            &v.rates.reasoning_per_mtok}) {
        *rate = r.I64();
      }
      versions.push_back(v);
    }
  }
  ReadKeys(r, state);
  ReadWebhooks(r, state);
  ReadAlerts(r, state);
  if (Status status = ReadReports(r, state); !status.ok()) return status;
  ReadTransfers(r, state);
  if (Status status = ReadRuns(r, state); !status.ok()) return status;
  if (!r.done()) return Status::Corruption("checkpoint is truncated or has trailing bytes");
  return Status::Ok();
}

}  // namespace

std::string SerializeState(const State& state, const SnapshotOptions& options) {
  std::string out;
  SerializeState(state, options, &out);
  return out;
}

void SerializeState(const State& state, const SnapshotOptions& options, std::string* out) {
  PURSER_ASSERT(!options.canonical || options.finished_records);
  out->clear();
  BinaryWriter writer(out, options.canonical);
  Status status = WriteState(writer, state, options, nullptr);
  PURSER_ASSERT(status.ok());  // no cold store, no I/O
}

Result<Sha256Digest> StateDigest(const State& state, ColdStore* cold) {
  Sha256Stream sha;
  std::string buffer;
  BinaryWriter writer(&buffer, /*canonical=*/true);
  writer.SetSink([&sha](std::string_view bytes) { sha.Update(bytes); });
  SnapshotOptions options;
  options.canonical = true;
  if (Status status = WriteState(writer, state, options, cold); !status.ok()) return status;
  return sha.Finish();
}

bool IsCurrentSnapshot(std::string_view bytes) {
  BinaryReader reader(bytes);
  return ReadMagic(reader);
}

Status DeserializeState(std::string_view bytes, State* state) {
  PURSER_ASSERT(state->last_sequence == 0 && state->accounts.empty());
  BinaryReader reader(bytes);
  return ReadState(reader, state);
}

}  // namespace purser
