#include "ledger/engine/cold_manager.h"

#include <algorithm>
#include <queue>

#include "ledger/base/limits.h"
#include "ledger/log/cold_record.h"

namespace purser {

void ColdStoreManager::AdoptRecovered() {
  for (const auto& [id, reservation] : state_->reservations) {
    if (reservation.status != ReservationStatus::kPending &&
        reservation.stored_version != reservation.version) {
      dirty_.insert(ColdKey('r', id));
    }
  }
  for (const auto& [id, usage] : state_->usages) {
    if (usage.stored_version != usage.version) dirty_.insert(ColdKey('u', id));
  }
}

void ColdStoreManager::Release(uint64_t written) {
  while (!evictions_.empty() && evictions_.front().batch != 0 && evictions_.front().batch <= written) {
    for (const auto& [kind, id, version] : evictions_.front().records) {
      // A record changed since it was stored stays; it is dirty.
      if (kind == 'r') {
        state_->EvictReservation(id, version);
      } else {
        state_->EvictUsage(id, version);
      }
    }
    evictions_.pop_front();
  }
}

ColdStoreManager::Eviction& ColdStoreManager::Current() {
  if (evictions_.empty() || evictions_.back().batch != 0) evictions_.emplace_back();
  return evictions_.back();
}

void ColdStoreManager::Store(Reservation& r, ColdWrites* out, std::vector<const Reservation*>* listed) {
  out->records.emplace_back(ColdKey('r', r.id), EncodeColdReservation(r));
  listed->push_back(&r);
  r.stored_version = r.version;
  Current().records.emplace_back('r', r.id, r.version);
}

void ColdStoreManager::Store(const std::string& id, UsageRecord& usage, ColdWrites* out) {
  out->records.emplace_back(ColdKey('u', id), EncodeColdUsage(id, usage));
  usage.stored_version = usage.version;
  Current().records.emplace_back('u', id, usage.version);
}

void ColdStoreManager::StoreKey(const std::string& key, ColdWrites* out,
                                std::vector<const Reservation*>* listed) {
  const std::string id = key.substr(1);
  if (key[0] == 'r') {
    Reservation* r = state_->FindReservation(id);
    if (r != nullptr && r->status != ReservationStatus::kPending && r->stored_version != r->version) {
      Store(*r, out, listed);
    }
    return;
  }
  auto it = state_->usages.find(id);
  if (it != state_->usages.end() && it->second.stored_version != it->second.version) {
    Store(it->first, it->second, out);
  }
}

void ColdStoreManager::WriteListing(std::vector<const Reservation*>& listed, ColdWrites* out) {
  out->listing.reserve(out->listing.size() + listed.size());
  for (const Reservation* r : listed) out->listing.push_back(ListingEntry(*r));
  listed.clear();
}

void ColdStoreManager::Retire(const std::vector<Event>& events, ColdWrites* out) {
  std::vector<const Reservation*> listed;
  // A record the cold store never held is written now; one it held as of
  // the last checkpoint is rewritten with the next.
  auto never_held = [&](const RecordRef& ref, uint64_t stored) {
    return stored == 0 && (dirty_.empty() || !dirty_.contains(ColdKey(ref.kind, *ref.id)));
  };
  for (const Event& event : events) {
    std::optional<RecordRef> ref = RecordOf(event);
    if (!ref || (ref->creates && ref->kind == 'r')) continue;  // a new reservation is pending
    if (ref->kind == 'r') {
      Reservation* r = state_->FindReservation(*ref->id);
      if (r == nullptr || r->status == ReservationStatus::kPending || r->stored_version == r->version) {
        continue;
      }
      if (never_held(*ref, r->stored_version)) {
        Store(*r, out, &listed);
      } else {
        dirty_.insert(ColdKey('r', *ref->id));
      }
      continue;
    }
    auto it = state_->usages.find(*ref->id);
    if (it == state_->usages.end() || it->second.stored_version == it->second.version) continue;
    if (never_held(*ref, it->second.stored_version)) {
      Store(it->first, it->second, out);
    } else {
      dirty_.insert(ColdKey('u', *ref->id));
    }
  }
  WriteListing(listed, out);
}

void ColdStoreManager::Checkpoint(ColdWrites* out) {
  std::vector<const Reservation*> listed;
  for (const std::string& key : dirty_) StoreKey(key, out, &listed);
  dirty_.clear();
  WriteListing(listed, out);
  Eviction& eviction = Current();
  for (const auto& [key, version] : loaded_) eviction.records.emplace_back(key[0], key.substr(1), version);
  loaded_.clear();
}

void ColdStoreManager::Pushed(uint64_t number) {
  if (!evictions_.empty() && evictions_.back().batch == 0) evictions_.back().batch = number;
}

Status ColdStoreManager::Prefetch(const std::vector<Submission>& submissions) {
  prefetch_keys_.clear();
  prefetch_status_ = Status::Ok();
  prefetch_done_ = false;
  for (const Submission& submission : submissions) {
    for (const Request& request : submission.requests) {
      if (const auto* list = std::get_if<query::ListReservations>(&request.body)) {
        PrefetchListing(*list);
        continue;
      }
      std::optional<RecordRef> ref = RecordNeededBy(request);
      if (ref && !InMemory(*state_, *ref)) prefetch_keys_.push_back(ColdKey(ref->kind, *ref->id));
    }
  }
  if (!prefetch_status_.ok()) return prefetch_status_;
  if (prefetch_keys_.empty()) {
    prefetch_done_ = true;
    return Status::Ok();
  }
  std::sort(prefetch_keys_.begin(), prefetch_keys_.end());
  prefetch_keys_.erase(std::unique(prefetch_keys_.begin(), prefetch_keys_.end()),
                       prefetch_keys_.end());
  std::vector<std::string> values;
  std::vector<bool> found;
  Status status = log_->GetColdRecords(prefetch_keys_, &values, &found);
  for (size_t i = 0; status.ok() && i < prefetch_keys_.size(); ++i) {
    if (!found[i]) continue;
    uint64_t version = 0;
    if (!LoadColdRecord(prefetch_keys_[i], values[i], state_, &version)) {
      return Status::Corruption("corrupt cold record " + prefetch_keys_[i]);
    }
    loaded_[prefetch_keys_[i]] = version;
  }
  prefetch_done_ = status.ok();
  return status;
}

bool ColdStoreManager::LookedFor(char kind, std::string_view id) const {
  return !prefetch_done_ ||
         std::binary_search(prefetch_keys_.begin(), prefetch_keys_.end(), ColdKey(kind, id));
}

void ColdStoreManager::PrefetchListing(const query::ListReservations& q) {
  // Pending reservations are always in memory; finished ones may be in the
  // cold store. The answer is the oldest `limit` of memory and cold store
  // together, so load the oldest `limit` matching cold ones that memory does
  // not hold (merged over the subtree's accounts); the query sees both.
  if (q.status == ReservationStatus::kPending || !prefetch_status_.ok()) return;
  AccountIndex root = state_->FindAccount(q.account);
  if (root == kNoAccount) return;
  size_t limit = std::clamp<size_t>(q.limit, 1, kListLimitMax);
  std::vector<std::string> prefixes;
  for (AccountIndex a = 0; a < state_->accounts.size(); ++a) {
    if (state_->IsInSubtree(a, root)) prefixes.push_back(ListingPrefix(a));
  }
  // The best `limit` so far, greatest (newest) on top.
  std::priority_queue<std::pair<int64_t, std::string>> best;
  prefetch_status_ = log_->ScanListing(prefixes, [&](std::string_view key, std::string_view value) {
    if (key.size() < kListingIdOffset) return false;
    std::pair<int64_t, std::string> entry{ListingCreated(key),
                                          std::string(key.substr(kListingIdOffset))};
    // An account's entries are oldest first: nothing later in it can beat
    // the best `limit` found.
    if (best.size() == limit && entry >= best.top()) return false;
    if (q.status && (value.size() != 1 || static_cast<uint8_t>(value[0]) !=
                                              static_cast<uint8_t>(*q.status))) {
      return true;
    }
    // In memory: its entry here may be stale, and the query sees it anyway.
    if (state_->FindReservation(entry.second) != nullptr) return true;
    best.push(std::move(entry));
    if (best.size() > limit) best.pop();
    return true;
  });
  for (; !best.empty(); best.pop()) prefetch_keys_.push_back(ColdKey('r', best.top().second));
}

}  // namespace purser
