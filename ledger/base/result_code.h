// The typed outcome of every command and query.
//
// Business outcomes are values, never exceptions (STYLE.md). The numbers are
// part of the on-disk format (RejectionsCounted.code) and of the RPC contract:
// they never change; new codes take the next free number.
#pragma once

#include <cstdint>
#include <string_view>

namespace purser {

enum class ResultCode : uint32_t {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kIdempotencyConflict = 4,
  kPermissionDenied = 5,
  kAccountFrozen = 6,
  kInsufficientFunds = 7,
  kDailyCapExceeded = 8,
  kMonthlyCapExceeded = 9,
  kHardLimitExceeded = 10,
  kInflightLimitReached = 11,
  kReservationNotPending = 12,
  kRefundExceedsCharged = 13,
  kUnauthenticated = 14,
  kUnavailable = 15,
  kNotImplemented = 16,
  kRateLimited = 17,  // a rate cap on the path (max calls or tokens per minute)
  kNotLeader = 18,    // cluster mode: another node (or shard) serves this; its address is in the message
};

inline constexpr uint32_t kResultCodeCount = 19;

// The snake_case name API.md uses for a code ("daily_cap_exceeded").
std::string_view ResultCodeName(ResultCode code);

class Status;
// The result code an edge answers for an operating error: invalid_argument
// and not_found for the caller's mistakes, unavailable for damage and I/O
// (the service cannot do it now, the request may be right).
ResultCode ToResultCode(const Status& status);

// The HTTP status API.md assigns to a code.
int ResultCodeHttpStatus(ResultCode code);

// True for the refusals of an admission check that are counted in
// RejectionsCounted instead of being logged one by one.
bool IsCountedRejection(ResultCode code);

}  // namespace purser
