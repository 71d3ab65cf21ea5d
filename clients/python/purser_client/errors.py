"""Typed exceptions for the error codes of Purser's HTTP/JSON API (API.md).

Every error answer is `{"error": {"code", "message", ...}}`. The client raises
the subclass of `PurserError` registered for the code, so callers can write
`except DailyCapExceeded` or, for any refused spend, `except BudgetExceeded`.
A code this client does not know yet raises the base `PurserError`, never a
wrong subclass.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping


class PurserError(Exception):
    """An error answered by purserd, or a request that never got an answer.

    Attributes:
      status: the HTTP status (None for `TransportError`).
      code: the API error code, e.g. "daily_cap_exceeded".
      message: the server's human-readable message.
      details: the error object's other fields (`account`, `limit_micros`,
        `available_micros`, `retry_after_s`, ...), as sent.
      retry_after_s: the server's retry hint (the `Retry-After` header, else
        the body's `retry_after_s`), or None.
    """

    CODE: ClassVar[str | None] = None

    def __init__(
        self,
        status: int | None,
        code: str | None,
        message: str,
        details: Mapping[str, Any] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        where = code if status is None else f"{status} {code}"
        super().__init__(f"{where}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after_s = retry_after_s

    @property
    def account(self) -> str | None:
        """The account on the path whose cap, wallet or freeze refused, if named."""
        return self.details.get("account")

    @property
    def limit_micros(self) -> int | None:
        """The refusing cap's limit in micro-USD, if the server sent one."""
        return self.details.get("limit_micros")

    @property
    def available_micros(self) -> int | None:
        """What was still available in micro-USD, if the server sent it."""
        return self.details.get("available_micros")


class TransportError(PurserError):
    """No HTTP answer after every retry (connection refused or reset, timeout).

    Whether the server applied the request is unknown; repeating it with the
    same client id is safe and returns the original result if it was applied.
    """

    def __init__(self, message: str) -> None:
        super().__init__(None, "transport_error", message)


# 400
class MalformedJson(PurserError):
    CODE = "malformed_json"


class InvalidArgument(PurserError):
    CODE = "invalid_argument"


# 401
class Unauthenticated(PurserError):
    CODE = "unauthenticated"


# 403
class PermissionDenied(PurserError):
    CODE = "permission_denied"


class AccountFrozen(PurserError):
    CODE = "account_frozen"


# 402: every refusal of a spend for lack of money or room under a cap.
class BudgetExceeded(PurserError):
    """Base of the 402 codes: the spend does not fit the funds or a cap."""


class InsufficientFunds(BudgetExceeded):
    CODE = "insufficient_funds"


class DailyCapExceeded(BudgetExceeded):
    CODE = "daily_cap_exceeded"


class MonthlyCapExceeded(BudgetExceeded):
    CODE = "monthly_cap_exceeded"


class HardLimitExceeded(BudgetExceeded):
    CODE = "hard_limit_exceeded"


# 404, 405, 413
class NotFound(PurserError):
    CODE = "not_found"


class MethodNotAllowed(PurserError):
    CODE = "method_not_allowed"


class PayloadTooLarge(PurserError):
    CODE = "payload_too_large"


# 409
class InflightLimitReached(PurserError):
    CODE = "inflight_limit_reached"


class IdempotencyConflict(PurserError):
    CODE = "idempotency_conflict"


class AlreadyExists(PurserError):
    CODE = "already_exists"


class ReservationNotPending(PurserError):
    CODE = "reservation_not_pending"


class RefundExceedsCharged(PurserError):
    CODE = "refund_exceeds_charged"


# 429, 501, 503
class RateLimited(PurserError):
    CODE = "rate_limited"


class EndpointNotImplemented(PurserError):
    """`not_implemented` (named so as not to shadow the builtin NotImplemented)."""

    CODE = "not_implemented"


class Unavailable(PurserError):
    CODE = "unavailable"


_ERROR_BY_CODE: dict[str, type[PurserError]] = {
    cls.CODE: cls
    for cls in (
        MalformedJson, InvalidArgument, Unauthenticated, PermissionDenied,
        AccountFrozen, InsufficientFunds, DailyCapExceeded, MonthlyCapExceeded,
        HardLimitExceeded, NotFound, MethodNotAllowed, PayloadTooLarge,
        InflightLimitReached, IdempotencyConflict, AlreadyExists,
        ReservationNotPending, RefundExceedsCharged, RateLimited,
        EndpointNotImplemented, Unavailable,
    )
}


def error_from_response(
    status: int, body: bytes, retry_after_s: int | None
) -> PurserError:
    """Builds the typed exception for an error answer.

    A body that is not the API's error JSON (say, a proxy's HTML page) gives a
    plain `PurserError` with code None and the start of the body as message.
    """
    try:
        error = json.loads(body)["error"]
        code = error["code"]
        message = str(error.get("message", ""))
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace")
        return PurserError(status, None, text, retry_after_s=retry_after_s)
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    if retry_after_s is None and isinstance(details.get("retry_after_s"), int):
        retry_after_s = details["retry_after_s"]
    cls = _ERROR_BY_CODE.get(code, PurserError)
    return cls(status, code, message, details, retry_after_s)
