// Events as JSON objects, for `purser-replay export` and the alert stream.
// Money stays integer micro-USD; no secret or secret hash is ever written.
#pragma once

#include <string>

#include "ledger/machine/events.h"
#include "ledger/base/json_writer.h"

namespace purser {

// {"seq":..,"time":"..","actor":"..","type":"Settled",...fields}
void WriteEventJson(const Event& event, JsonWriter* out);
std::string EventToJson(const Event& event);

// A caps object: limits as numbers or null, thresholds, expiry and runaway
// policies (absent when inherited), and the time zone when asked for.
void WriteCapsJson(const Caps& caps, bool with_time_zone, JsonWriter* out);

// The account an event is about, when the event names one directly.
std::string EventAccount(const EventBody& body);

}  // namespace purser
