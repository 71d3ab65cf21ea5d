// Events as JSON objects, for `purser-replay export` and the alert stream.
// Money stays integer micro-USD; no secret or secret hash is ever written.
#pragma once

#include <string>

#include "ledger/events.h"
#include "ledger/json_writer.h"

namespace purser {

// {"seq":..,"time":"..","actor":"..","type":"Settled",...fields}
void WriteEventJson(const Event& event, JsonWriter* out);
std::string EventToJson(const Event& event);

// The account an event is about, when the event names one directly.
std::string EventAccount(const EventBody& body);

}  // namespace purser
