// The cold store's records: finished reservations and usage records that left
// memory once written (ledger/engine/cold_manager.h). They keep interned
// ids and account indexes as they are: both are stable across restarts,
// because a checkpoint stores the interner and the accounts in their order.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ledger/log/event_log.h"
#include "ledger/log/snapshot.h"
#include "ledger/machine/commands.h"
#include "ledger/machine/state.h"

namespace purser {

// Cold-store keys: 'r' + reservation id, 'u' + usage id.
inline std::string ColdKey(char kind, std::string_view id) {
  std::string key(1, kind);
  key.append(id);
  return key;
}

// Listing-index keys: one entry per finished reservation in the cold store,
// under its account, so that an account lists oldest first by a range scan
// (and a subtree by merging its accounts' scans):
//   account (u32 big-endian) + created_us (i64 as big-endian biased u64) + id
// The value is the reservation's status byte.
std::string ListingPrefix(AccountIndex account);
std::string ListingKey(AccountIndex account, int64_t created_us, std::string_view id);
inline constexpr size_t kListingIdOffset = 4 + 8;
// The created_us of a listing key (at least kListingIdOffset bytes).
int64_t ListingCreated(std::string_view key);
// The listing-index entry (key, value) of a finished reservation.
std::pair<std::string, std::string> ListingEntry(const Reservation& reservation);

std::string EncodeColdReservation(const Reservation& reservation);
bool DecodeColdReservation(std::string_view bytes, Reservation* reservation);
std::string EncodeColdUsage(std::string_view id, const UsageRecord& usage);
bool DecodeColdUsage(std::string_view bytes, std::string* id, UsageRecord* usage);

// The cold store of an EventLog, as the digest reads it.
// With `max_version`, records changed after that sequence are left out: the
// cold store as of a projection checkpoint at that sequence (the engine
// writes records it finishes after a checkpoint before the next one; those
// are newer than it).
class LogColdStore : public ColdStore {
 public:
  explicit LogColdStore(EventLog* log, uint64_t max_version = UINT64_MAX)
      : log_(log), max_version_(max_version) {}
  Status ForEachReservation(const std::function<void(Reservation&&)>& visit) override;
  Status ForEachUsage(const std::function<void(std::string&&, UsageRecord&&)>& visit) override;

 private:
  EventLog* log_;
  uint64_t max_version_;
};

// Which record a command or an event touches: one statement, used by the
// engine's prefetch (before a command runs, every record it may need is in
// memory), by recovery and replay (before an event is applied), and by the
// engine's retirement of finished records (after a group).
struct RecordRef {
  char kind = 0;                   // 'r' reservation, 'u' usage record
  const std::string* id = nullptr;
  bool creates = false;            // the event creates it (nothing to load)
};
// The record an event creates or changes, if any.
std::optional<RecordRef> RecordOf(const Event& event);
// The record a request reads or changes, if any (ListReservations aside: it
// reads many, see the engine's prefetch).
std::optional<RecordRef> RecordNeededBy(const Request& request);
// Whether memory holds the record.
bool InMemory(const State& state, const RecordRef& record);

// Decodes the cold record stored under `key` (from ColdKey()) into *state;
// *version receives its version. False when the record is corrupt.
bool LoadColdRecord(std::string_view key, std::string_view value, State* state,
                    uint64_t* version);

// Loads into *state, from the cold store, the records that `event` changes
// but memory does not hold (recovery of the log tail after a checkpoint).
Status LoadColdRecordsFor(EventLog* log, const Event& event, State* state);

}  // namespace purser
