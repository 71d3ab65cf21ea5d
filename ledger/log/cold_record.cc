#include "ledger/log/cold_record.h"

#include "ledger/base/binary.h"

namespace purser {

namespace {

// Version 2: varints (zig-zag for signed values), times after the first as
// deltas from the creation time, payload hashes fixed-width. About 40% of the
// fixed-width version 1, which no stored data uses any more.
// Version 3 appends the receipts replies repeat: the sequence numbers of the
// Reserved and Settled events (of the UsageCharged event for a usage) and the
// account of a degrade advice (+1, 0 = none). Version 2 still decodes, with
// those receipts unknown (0).
constexpr uint8_t kColdVersion = 3;
constexpr uint8_t kColdVersionReceiptless = 2;

// Exact for any two values: the difference wraps, and so does the sum.
int64_t Delta(int64_t value, int64_t base) {
  return static_cast<int64_t>(static_cast<uint64_t>(value) - static_cast<uint64_t>(base));
}
int64_t Undelta(int64_t delta, int64_t base) {
  return static_cast<int64_t>(static_cast<uint64_t>(delta) + static_cast<uint64_t>(base));
}

void WriteCharge(BinaryWriter& w, const ChargeRecord& c) {
  w.Var(c.account);
  w.ZigZag(c.charged_micros);
  w.ZigZag(c.refunded_micros);
  w.ZigZag(c.day);
  w.Var(c.row_keys.size());
  for (uint64_t key : c.row_keys) {
    w.Var(key >> 32);
    w.Var(key & 0xffffffffu);
  }
}

void ReadCharge(BinaryReader& r, ChargeRecord* c) {
  c->account = static_cast<AccountIndex>(r.Var());
  c->charged_micros = r.ZigZag();
  c->refunded_micros = r.ZigZag();
  c->day = r.ZigZag();
  uint64_t count = r.VarCount();
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    uint64_t high = r.Var();
    uint64_t low = r.Var();
    c->row_keys.push_back(high << 32 | (low & 0xffffffffu));
  }
}

}  // namespace

std::string ListingPrefix(AccountIndex ancestor) {
  std::string key;
  for (int i = 3; i >= 0; --i) key.push_back(static_cast<char>(ancestor >> (8 * i)));
  return key;
}

std::string ListingKey(AccountIndex ancestor, int64_t created_us, std::string_view id) {
  std::string key = ListingPrefix(ancestor);
  uint64_t biased = static_cast<uint64_t>(created_us) ^ (uint64_t{1} << 63);
  for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(biased >> (8 * i)));
  key.append(id);
  return key;
}

int64_t ListingCreated(std::string_view key) {
  uint64_t biased = 0;
  for (size_t i = 4; i < kListingIdOffset; ++i) biased = biased << 8 | static_cast<uint8_t>(key[i]);
  return static_cast<int64_t>(biased ^ (uint64_t{1} << 63));
}

std::pair<std::string, std::string> ListingEntry(const Reservation& r) {
  return {ListingKey(r.account, r.created_us, r.id), std::string(1, static_cast<char>(r.status))};
}

std::string EncodeColdReservation(const Reservation& x) {
  std::string out;
  out.reserve(96 + x.id.size() + 24 * x.tags.size() + 4 * x.charge.row_keys.size());
  BinaryWriter w(&out, false);
  w.U8(kColdVersion);
  w.VarStr(x.id);
  w.Var(x.account);
  w.Var(x.funding);
  w.U8(static_cast<uint8_t>(x.status));
  w.ZigZag(x.created_us);
  w.ZigZag(Delta(x.expires_us, x.created_us));
  w.ZigZag(Delta(x.original_expires_us, x.created_us));
  for (int64_t value : {x.amount_micros, x.ttl_s, x.headroom_after_micros, x.cost_micros,
                        x.released_micros, x.overrun_micros}) {
    w.ZigZag(value);
  }
  w.U64(x.request_hash);
  w.U64(x.settle_hash);
  w.Var(x.run_id);
  w.Var(x.action);
  w.Var(x.tags.size());
  for (const Tag& tag : x.tags) {
    w.VarStr(tag.key);
    w.VarStr(tag.value);
  }
  w.U8(static_cast<uint8_t>((x.late ? 1 : 0) | (x.expiry_charged ? 2 : 0)));
  WriteCharge(w, x.charge);
  w.Var(x.version);
  w.Var(x.reserve_seq);
  w.Var(x.settle_seq);
  w.Var(x.advice_account == kNoAccount ? 0 : uint64_t{x.advice_account} + 1);
  return out;
}

bool DecodeColdReservation(std::string_view bytes, Reservation* x) {
  BinaryReader r(bytes);
  const uint8_t version = r.U8();
  if (version != kColdVersion && version != kColdVersionReceiptless) return false;
  x->id = r.VarStr();
  x->account = static_cast<AccountIndex>(r.Var());
  x->funding = static_cast<AccountIndex>(r.Var());
  x->status = static_cast<ReservationStatus>(r.U8());
  x->created_us = r.ZigZag();
  x->expires_us = Undelta(r.ZigZag(), x->created_us);
  x->original_expires_us = Undelta(r.ZigZag(), x->created_us);
  for (int64_t* value : {&x->amount_micros, &x->ttl_s, &x->headroom_after_micros,
                         &x->cost_micros, &x->released_micros, &x->overrun_micros}) {
    *value = r.ZigZag();
  }
  x->request_hash = r.U64();
  x->settle_hash = r.U64();
  x->run_id = static_cast<uint32_t>(r.Var());
  x->action = static_cast<uint32_t>(r.Var());
  uint64_t tags = r.VarCount();
  for (uint64_t i = 0; i < tags && r.ok(); ++i) {
    Tag tag;
    tag.key = r.VarStr();
    tag.value = r.VarStr();
    x->tags.push_back(std::move(tag));
  }
  uint8_t flags = r.U8();
  if (flags > 3) return false;
  x->late = (flags & 1) != 0;
  x->expiry_charged = (flags & 2) != 0;
  ReadCharge(r, &x->charge);
  x->version = r.Var();
  if (version == kColdVersion) {
    x->reserve_seq = r.Var();
    x->settle_seq = r.Var();
    uint64_t advice = r.Var();
    if (advice > kNoAccount) return false;
    x->advice_account = advice == 0 ? kNoAccount : static_cast<AccountIndex>(advice - 1);
  }
  return r.done();
}

std::string EncodeColdUsage(std::string_view id, const UsageRecord& usage) {
  std::string out;
  BinaryWriter w(&out, false);
  w.U8(kColdVersion);
  w.VarStr(id);
  w.U64(usage.request_hash);
  w.ZigZag(usage.cost_micros);
  w.ZigZag(usage.overrun_micros);
  WriteCharge(w, usage.charge);
  w.Var(usage.version);
  w.Var(usage.seq);
  return out;
}

bool DecodeColdUsage(std::string_view bytes, std::string* id, UsageRecord* usage) {
  BinaryReader r(bytes);
  const uint8_t version = r.U8();
  if (version != kColdVersion && version != kColdVersionReceiptless) return false;
  *id = r.VarStr();
  usage->request_hash = r.U64();
  usage->cost_micros = r.ZigZag();
  usage->overrun_micros = r.ZigZag();
  ReadCharge(r, &usage->charge);
  usage->version = r.Var();
  if (version == kColdVersion) usage->seq = r.Var();
  return r.done();
}

Status LogColdStore::ForEachReservation(const std::function<void(Reservation&&)>& visit) {
  return log_->ForEachColdRecord('r', [&](std::string_view, std::string_view value) {
    Reservation reservation;
    if (!DecodeColdReservation(value, &reservation)) {
      return Status::Corruption("a cold reservation record is corrupt");
    }
    if (reservation.version <= max_version_) visit(std::move(reservation));
    return Status::Ok();
  });
}

Status LogColdStore::ForEachUsage(const std::function<void(std::string&&, UsageRecord&&)>& visit) {
  return log_->ForEachColdRecord('u', [&](std::string_view, std::string_view value) {
    std::string id;
    UsageRecord usage;
    if (!DecodeColdUsage(value, &id, &usage)) return Status::Corruption("a cold usage record is corrupt");
    if (usage.version <= max_version_) visit(std::move(id), std::move(usage));
    return Status::Ok();
  });
}

std::optional<RecordRef> RecordOf(const Event& event) {
  return std::visit(
      [](const auto& body) -> std::optional<RecordRef> {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, event::Reserved>) {
          return RecordRef{'r', &body.reservation_id, true};
        } else if constexpr (std::is_same_v<T, event::Settled> || std::is_same_v<T, event::Voided> ||
                             std::is_same_v<T, event::Expired> ||
                             std::is_same_v<T, event::Extended>) {
          return RecordRef{'r', &body.reservation_id, false};
        } else if constexpr (std::is_same_v<T, event::Refunded>) {
          return RecordRef{body.target_kind == ChargeKind::kUsage ? 'u' : 'r', &body.target_id, false};
        } else if constexpr (std::is_same_v<T, event::UsageCharged>) {
          return RecordRef{'u', &body.usage_id, true};
        } else {
          return std::nullopt;
        }
      },
      event.body);
}

std::optional<RecordRef> RecordNeededBy(const Request& request) {
  return std::visit(
      [](const auto& body) -> std::optional<RecordRef> {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, cmd::Reserve> || std::is_same_v<T, cmd::Settle> ||
                      std::is_same_v<T, cmd::Void> || std::is_same_v<T, cmd::Extend> ||
                      std::is_same_v<T, query::GetReservation>) {
          return RecordRef{'r', &body.reservation_id, false};
        } else if constexpr (std::is_same_v<T, cmd::RecordUsage>) {
          return RecordRef{'u', &body.usage_id, false};
        } else if constexpr (std::is_same_v<T, cmd::Refund>) {
          return RecordRef{body.target_kind == ChargeKind::kUsage ? 'u' : 'r', &body.target_id, false};
        } else {
          return std::nullopt;
        }
      },
      request.body);
}

bool InMemory(const State& state, const RecordRef& record) {
  return record.kind == 'r' ? state.FindReservation(*record.id) != nullptr
                            : state.usages.contains(*record.id);
}

Status LoadColdRecordsFor(EventLog* log, const Event& event, State* state) {
  std::optional<RecordRef> record = RecordOf(event);
  if (!record || record->creates || InMemory(*state, *record)) return Status::Ok();
  std::string key = ColdKey(record->kind, *record->id);
  std::vector<std::string> values;
  std::vector<bool> found;
  if (Status status = log->GetColdRecords({key}, &values, &found); !status.ok()) return status;
  if (!found[0]) {
    return Status::Corruption("event " + std::to_string(event.sequence) + " needs record " +
                         key.substr(1) + ", which is neither in the checkpoint nor the cold store");
  }
  uint64_t version = 0;
  if (!LoadColdRecord(key, values[0], state, &version)) {
    return Status::Corruption("corrupt cold record " + key);
  }
  return Status::Ok();
}

bool LoadColdRecord(std::string_view key, std::string_view value, State* state,
                    uint64_t* version) {
  if (!key.empty() && key[0] == 'r') {
    Reservation reservation;
    if (!DecodeColdReservation(value, &reservation)) return false;
    *version = reservation.version;
    reservation.stored_version = reservation.version;
    state->LoadReservation(std::move(reservation));
  } else {
    std::string id;
    UsageRecord usage;
    if (!DecodeColdUsage(value, &id, &usage)) return false;
    *version = usage.version;
    usage.stored_version = usage.version;
    state->LoadUsage(std::move(id), std::move(usage));
  }
  return true;
}

}  // namespace purser
