"""Exact conversions between USD amounts and integer micro-USD.

Purser counts money as integer micro-USD everywhere; these helpers exist for
people who think in dollars. They never go through binary floating point: a
`float` is refused, because 0.1 as a float is not 0.1.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000


def usd_to_micros(amount_usd: Decimal | str | int) -> int:
    """Converts "12.34", Decimal("12.34") or 12 USD to micro-USD, exactly.

    Raises TypeError for a float or bool, and ValueError for text that is not a
    number, or an amount finer than one micro-USD (more than 6 decimals).
    """
    if isinstance(amount_usd, (bool, float)):
        raise TypeError(
            "pass USD as Decimal, str or int, never float (floats are inexact)")
    try:
        usd = Decimal(amount_usd)
    except (InvalidOperation, TypeError) as error:
        raise ValueError(f"not a USD amount: {amount_usd!r}") from error
    if not usd.is_finite():
        raise ValueError(f"not a USD amount: {amount_usd!r}")
    micros = usd * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{amount_usd!r} USD is not a whole number of micro-USD")
    return int(micros)


def micros_to_usd(micros: int) -> Decimal:
    """Converts integer micro-USD to an exact Decimal in USD (1234567 -> 1.234567)."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"micro-USD must be an int, not {type(micros).__name__}")
    return Decimal(micros).scaleb(-6)
