// Conversions between the value types of ledger/types.h and their structs in
// schema/events.capnp, shared by the event codec (ledger/event_codec.cc) and
// the RPC codec (api/rpc_codec.cc), whose schema imports these structs.
#pragma once

#include <capnp/list.h>
#include <kj/string.h>

#include <string>

#include "events.capnp.h"
#include "ledger/base/types.h"

namespace purser {

inline std::string Str(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }
// A view of `text` for a builder; `text` must outlive the call.
inline kj::StringPtr Text(const std::string& text) {
  return kj::StringPtr(text.c_str(), text.size());
}

void PutTags(capnp::List<schema::Tag>::Builder list, const Tags& tags);
Tags GetTags(capnp::List<schema::Tag>::Reader list);
void Put(schema::TokenCounts::Builder b, const TokenCounts& t);
TokenCounts Get(schema::TokenCounts::Reader r);
void Put(schema::PriceRates::Builder b, const PriceRates& r);
PriceRates Get(schema::PriceRates::Reader r);
void Put(schema::Caps::Builder b, const Caps& c);
Caps Get(schema::Caps::Reader r);

}  // namespace purser
