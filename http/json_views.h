// Replies as the JSON bodies of ../shared/API.md, shared by the HTTP API and
// `purser --json`. Money stays integer micro-USD; times are RFC 3339 UTC.
#pragma once

#include <string>
#include <vector>

#include "ledger/machine/commands.h"
#include "ledger/base/json_writer.h"
#include "notify/delivery.h"

namespace purser {

// The success body of a reply (the object API.md shows for its endpoint).
void WriteReplyJson(const Reply& reply, JsonWriter* out);
// {"error":{"code","message","account"?,"limit_micros"?,"available_micros"?}}
void WriteErrorJson(const Reply& reply, JsonWriter* out);
// Either of the two, by the reply's code.
std::string ReplyToJson(const Reply& reply);

void WriteBalanceJson(const BalanceView& view, JsonWriter* out);
void WriteAccountJson(const AccountView& view, JsonWriter* out);
void WriteReservationJson(const ReservationView& view, JsonWriter* out);
// {"deliveries":[{"event_id","type","state","attempts","last_status_code"?,
// "last_error"?,"last_attempt_at"?,"next_attempt_at"?}]}
std::string DeliveriesJson(const std::vector<DeliveryView>& deliveries);

}  // namespace purser
