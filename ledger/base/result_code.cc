#include "ledger/base/result_code.h"

#include "ledger/base/status.h"

namespace purser {

std::string_view ResultCodeName(ResultCode code) {
  switch (code) {
    case ResultCode::kOk: return "ok";
    case ResultCode::kInvalidArgument: return "invalid_argument";
    case ResultCode::kNotFound: return "not_found";
    case ResultCode::kAlreadyExists: return "already_exists";
    case ResultCode::kIdempotencyConflict: return "idempotency_conflict";
    case ResultCode::kPermissionDenied: return "permission_denied";
    case ResultCode::kAccountFrozen: return "account_frozen";
    case ResultCode::kInsufficientFunds: return "insufficient_funds";
    case ResultCode::kDailyCapExceeded: return "daily_cap_exceeded";
    case ResultCode::kMonthlyCapExceeded: return "monthly_cap_exceeded";
    case ResultCode::kHardLimitExceeded: return "hard_limit_exceeded";
    case ResultCode::kInflightLimitReached: return "inflight_limit_reached";
    case ResultCode::kReservationNotPending: return "reservation_not_pending";
    case ResultCode::kRefundExceedsCharged: return "refund_exceeds_charged";
    case ResultCode::kUnauthenticated: return "unauthenticated";
    case ResultCode::kUnavailable: return "unavailable";
    case ResultCode::kNotImplemented: return "not_implemented";
    case ResultCode::kRateLimited: return "rate_limited";
    case ResultCode::kNotLeader: return "not_leader";
  }
  return "unknown";
}

int ResultCodeHttpStatus(ResultCode code) {
  switch (code) {
    case ResultCode::kOk: return 200;
    case ResultCode::kInvalidArgument: return 400;
    case ResultCode::kNotFound: return 404;
    case ResultCode::kAlreadyExists: return 409;
    case ResultCode::kIdempotencyConflict: return 409;
    case ResultCode::kPermissionDenied: return 403;
    case ResultCode::kAccountFrozen: return 403;
    case ResultCode::kInsufficientFunds: return 402;
    case ResultCode::kDailyCapExceeded: return 402;
    case ResultCode::kMonthlyCapExceeded: return 402;
    case ResultCode::kHardLimitExceeded: return 402;
    case ResultCode::kInflightLimitReached: return 409;
    case ResultCode::kReservationNotPending: return 409;
    case ResultCode::kRefundExceedsCharged: return 409;
    case ResultCode::kUnauthenticated: return 401;
    case ResultCode::kUnavailable: return 503;
    case ResultCode::kNotImplemented: return 501;
    case ResultCode::kRateLimited: return 429;
    case ResultCode::kNotLeader: return 421;
  }
  return 500;
}

bool IsCountedRejection(ResultCode code) {
  switch (code) {
    case ResultCode::kAccountFrozen:
    case ResultCode::kInsufficientFunds:
    case ResultCode::kDailyCapExceeded:
    case ResultCode::kMonthlyCapExceeded:
    case ResultCode::kHardLimitExceeded:
    case ResultCode::kInflightLimitReached:
    case ResultCode::kRateLimited:
      return true;
    default:
      return false;
  }
}

ResultCode ToResultCode(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return ResultCode::kOk;
    case StatusCode::kInvalidArgument:
      return ResultCode::kInvalidArgument;
    case StatusCode::kNotFound:
      return ResultCode::kNotFound;
    case StatusCode::kFailed:
    case StatusCode::kCorruption:
    case StatusCode::kIOError:
      break;
  }
  return ResultCode::kUnavailable;
}

}  // namespace purser
