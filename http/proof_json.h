// Audit proofs in API.md's JSON (GET /v1/proofs/inclusion,
// GET /v1/admin/proofs/consistency), written by the service and
// `purser-replay prove`, read back by `purser-replay verify-proof`.
// Hashes are lowercase hex; the inclusion proof also carries the event's
// record (hex), so that its owner can check the leaf and read the event.
#pragma once

#include <string>
#include <string_view>

#include "ledger/base/merkle.h"

namespace purser {

std::string InclusionProofJson(const InclusionProof& proof);
std::string ConsistencyProofJson(const ConsistencyProof& proof);
// False, with *error, when the JSON is not such a proof.
bool ParseInclusionProofJson(std::string_view json, InclusionProof* proof, std::string* error);
bool ParseConsistencyProofJson(std::string_view json, ConsistencyProof* proof, std::string* error);

}  // namespace purser
