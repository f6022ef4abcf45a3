"""Amounts of money in an agent's arguments, as a reviewer should read them."""

import re
from decimal import Decimal, InvalidOperation
from typing import Any

# Keys read as an amount of money when a currency is beside them.
MONEY_KEYS = re.compile(r"(^|_)(amount|total|price|sum|value|cost|fee|refund)s?($|_)", re.I)
# ... and read in hundredths.
MINOR_UNIT_KEYS = re.compile(r"_(cents|minor|pence)$", re.I)


def money_text(value: Any, *, currency: str, minor_units: int | None) -> str | None:
    """`value` as an amount in `currency`: "1,200.00 EUR". With minor_units known the number is
    scaled (120000 with 2 -> 1,200.00); unknown, it is shown as given, grouped. None when the
    value is no number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    if minor_units:
        amount = amount.scaleb(-minor_units)
        return f"{amount:,.{minor_units}f} {currency}"
    return f"{amount:,} {currency}" if amount == amount.to_integral() else f"{amount:,f} {currency}"
