"""Python client of Purser, the ledger for AI-agent spend (HTTP/JSON API v1).

    from purser_client import PurserClient, Usage, DailyCapExceeded

    client = PurserClient("http://127.0.0.1:8480", api_key)
    with client.reservation("agent-7", estimate_micros=50_000) as r:
        ...  # call the model
        r.settle(cost_micros=41_250)

Standard library only. Money is integer micro-USD; `usd_to_micros` and
`micros_to_usd` convert exactly.
"""

from .client import PurserClient, Reservation, Usage
from .errors import (
    AccountFrozen,
    AlreadyExists,
    BudgetExceeded,
    DailyCapExceeded,
    EndpointNotImplemented,
    HardLimitExceeded,
    IdempotencyConflict,
    InflightLimitReached,
    InsufficientFunds,
    InvalidArgument,
    MalformedJson,
    MethodNotAllowed,
    MonthlyCapExceeded,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PurserError,
    RateLimited,
    RefundExceedsCharged,
    ReservationNotPending,
    TransportError,
    Unauthenticated,
    Unavailable,
)
from .money import MICROS_PER_USD, micros_to_usd, usd_to_micros

__all__ = [
    "PurserClient", "Reservation", "Usage",
    "PurserError", "TransportError",
    "MalformedJson", "InvalidArgument", "Unauthenticated", "PermissionDenied",
    "AccountFrozen", "BudgetExceeded", "InsufficientFunds", "DailyCapExceeded",
    "MonthlyCapExceeded", "HardLimitExceeded", "NotFound", "MethodNotAllowed",
    "PayloadTooLarge", "InflightLimitReached", "IdempotencyConflict",
    "AlreadyExists", "ReservationNotPending", "RefundExceedsCharged",
    "RateLimited", "EndpointNotImplemented", "Unavailable",
    "MICROS_PER_USD", "usd_to_micros", "micros_to_usd",
]
