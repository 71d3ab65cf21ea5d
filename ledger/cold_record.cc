#include "ledger/cold_record.h"

#include "ledger/binary.h"

namespace purser {

namespace {

constexpr uint8_t kColdVersion = 1;

void WriteCharge(BinaryWriter& w, const ChargeRecord& c) {
  w.U64(c.account);
  w.I64(c.charged_micros);
  w.I64(c.refunded_micros);
  w.I64(c.day);
  w.U64(c.row_keys.size());
  for (uint64_t key : c.row_keys) w.U64(key);
}

void ReadCharge(BinaryReader& r, ChargeRecord* c) {
  c->account = static_cast<AccountIndex>(r.U64());
  c->charged_micros = r.I64();
  c->refunded_micros = r.I64();
  c->day = r.I64();
  uint64_t count = r.Count();
  for (uint64_t i = 0; i < count && r.ok(); ++i) c->row_keys.push_back(r.U64());
}

}  // namespace

std::string EncodeColdReservation(const Reservation& x) {
  std::string out;
  out.reserve(160 + x.id.size() + 48 * x.tags.size() + 8 * x.charge.row_keys.size());
  BinaryWriter w(&out, false);
  w.U8(kColdVersion);
  w.Str(x.id);
  w.U64(x.account);
  w.U64(x.funding);
  w.U8(static_cast<uint8_t>(x.status));
  for (int64_t value : {x.amount_micros, x.created_us, x.expires_us, x.original_expires_us,
                        x.ttl_s, x.headroom_after_micros, x.cost_micros, x.released_micros,
                        x.overrun_micros}) {
    w.I64(value);
  }
  w.U64(x.request_hash);
  w.U64(x.settle_hash);
  w.U64(x.run_id);
  w.U64(x.action);
  w.U64(x.tags.size());
  for (const Tag& tag : x.tags) {
    w.Str(tag.key);
    w.Str(tag.value);
  }
  w.Bool(x.late);
  w.Bool(x.expiry_charged);
  WriteCharge(w, x.charge);
  w.U64(x.version);
  return out;
}

bool DecodeColdReservation(std::string_view bytes, Reservation* x) {
  BinaryReader r(bytes);
  if (r.U8() != kColdVersion) return false;
  x->id = r.Str();
  x->account = static_cast<AccountIndex>(r.U64());
  x->funding = static_cast<AccountIndex>(r.U64());
  x->status = static_cast<ReservationStatus>(r.U8());
  for (int64_t* value : {&x->amount_micros, &x->created_us, &x->expires_us,
                         &x->original_expires_us, &x->ttl_s, &x->headroom_after_micros,
                         &x->cost_micros, &x->released_micros, &x->overrun_micros}) {
    *value = r.I64();
  }
  x->request_hash = r.U64();
  x->settle_hash = r.U64();
  x->run_id = static_cast<uint32_t>(r.U64());
  x->action = static_cast<uint32_t>(r.U64());
  uint64_t tags = r.Count();
  for (uint64_t i = 0; i < tags && r.ok(); ++i) {
    Tag tag;
    tag.key = r.Str();
    tag.value = r.Str();
    x->tags.push_back(std::move(tag));
  }
  x->late = r.Bool();
  x->expiry_charged = r.Bool();
  ReadCharge(r, &x->charge);
  x->version = r.U64();
  return r.done();
}

std::string EncodeColdUsage(std::string_view id, const UsageRecord& usage) {
  std::string out;
  BinaryWriter w(&out, false);
  w.U8(kColdVersion);
  w.Str(id);
  w.U64(usage.request_hash);
  w.I64(usage.cost_micros);
  w.I64(usage.overrun_micros);
  WriteCharge(w, usage.charge);
  w.U64(usage.version);
  return out;
}

bool DecodeColdUsage(std::string_view bytes, std::string* id, UsageRecord* usage) {
  BinaryReader r(bytes);
  if (r.U8() != kColdVersion) return false;
  *id = r.Str();
  usage->request_hash = r.U64();
  usage->cost_micros = r.I64();
  usage->overrun_micros = r.I64();
  ReadCharge(r, &usage->charge);
  usage->version = r.U64();
  return r.done();
}

Status LogColdStore::ForEachReservation(const std::function<void(Reservation&&)>& visit) {
  return log_->ForEachColdRecord('r', [&](std::string_view, std::string_view value) {
    Reservation reservation;
    if (!DecodeColdReservation(value, &reservation)) {
      return Status::Error("a cold reservation record is corrupt");
    }
    visit(std::move(reservation));
    return Status::Ok();
  });
}

Status LogColdStore::ForEachUsage(const std::function<void(std::string&&, UsageRecord&&)>& visit) {
  return log_->ForEachColdRecord('u', [&](std::string_view, std::string_view value) {
    std::string id;
    UsageRecord usage;
    if (!DecodeColdUsage(value, &id, &usage)) return Status::Error("a cold usage record is corrupt");
    visit(std::move(id), std::move(usage));
    return Status::Ok();
  });
}

Status LoadColdRecordsFor(EventLog* log, const Event& event, State* state) {
  std::string key;
  if (const auto* settled = std::get_if<event::Settled>(&event.body)) {
    if (state->FindReservation(settled->reservation_id) == nullptr) {
      key = ColdKey('r', settled->reservation_id);
    }
  } else if (const auto* refunded = std::get_if<event::Refunded>(&event.body)) {
    if (refunded->target_kind == ChargeKind::kReservation) {
      if (state->FindReservation(refunded->target_id) == nullptr) {
        key = ColdKey('r', refunded->target_id);
      }
    } else if (!state->usages.contains(refunded->target_id)) {
      key = ColdKey('u', refunded->target_id);
    }
  }
  if (key.empty()) return Status::Ok();
  std::vector<std::string> values;
  std::vector<bool> found;
  if (Status status = log->GetColdRecords({key}, &values, &found); !status.ok()) return status;
  if (!found[0]) {
    return Status::Error("event " + std::to_string(event.sequence) + " needs record " +
                         key.substr(1) + ", which is neither in the checkpoint nor the cold store");
  }
  if (key[0] == 'r') {
    Reservation reservation;
    if (!DecodeColdReservation(values[0], &reservation)) return Status::Error("corrupt cold record");
    state->LoadReservation(std::move(reservation));
  } else {
    std::string id;
    UsageRecord usage;
    if (!DecodeColdUsage(values[0], &id, &usage)) return Status::Error("corrupt cold record");
    state->LoadUsage(std::move(id), std::move(usage));
  }
  return Status::Ok();
}

}  // namespace purser
