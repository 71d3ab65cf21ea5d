// Conversions between the RPC schema (schema/purser.capnp) and the ledger's
// requests and replies (ledger/commands.h), both ways: the server decodes
// commands and encodes results, the client does the opposite.
//
// Decoding never trusts the wire: enums are range-checked, list lengths
// bounded, and a bad input becomes an error message for a 400-style
// invalid_argument result, never a crash.
#pragma once

#include <string>

#include "ledger/machine/commands.h"
#include "purser.capnp.h"

namespace purser {

// Server side. Returns an empty string on success, else what is wrong.
std::string DecodeCommand(rpc::Command::Reader command, RequestBody* body);
std::string DecodeQuery(rpc::Query::Reader query, RequestBody* body);
void EncodeReply(const Reply& reply, rpc::Result::Builder result);

// Client side.
void EncodeRequest(const RequestBody& body, rpc::Command::Builder command);
// False when `body` is not a query (it cannot go through Reader.query).
bool EncodeQuery(const RequestBody& body, rpc::Query::Builder query);
Reply DecodeReply(rpc::Result::Reader result);

}  // namespace purser
