"""JSON that survives a round trip unchanged: numbers keep every digit, objects keep key order.

Python's json turns 0.1000000000000000055511151231257827 into 0.1 and PostgreSQL's jsonb sorts
keys, so neither can echo an agent's tool arguments exactly. We parse numbers into JsonNumber,
which remembers the text it was written as, and serialize back with that text.
"""

import json
import math
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any


class JsonNumber(Decimal):
    """A non-integer JSON number, with the exact text it was written as."""

    text: str

    def __new__(cls, text: str) -> "JsonNumber":
        number = super().__new__(cls, text)
        number.text = text
        return number


class RawJSON(str):
    """Already-serialized JSON text, written out verbatim by dumps()."""


def loads(text: str | bytes) -> Any:
    """Parse JSON, keeping non-integer numbers exact. Integers are Python ints (unbounded)."""
    return json.loads(text, parse_float=JsonNumber, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Serialize compactly: JsonNumber as written, RawJSON verbatim, key order kept."""
    parts: list[str] = []
    _write(value, parts, sort_keys)
    return "".join(parts)


def _write(value: Any, parts: list[str], sort_keys: bool) -> None:
    if isinstance(value, RawJSON):
        parts.append(value)
    elif isinstance(value, str) or value is None or isinstance(value, bool):
        parts.append(json.dumps(value))
    elif isinstance(value, JsonNumber):
        # In canonical (sorted) form numbers compare by value: 1.50 and 1.5 are the same number.
        parts.append(_canonical_number(value) if sort_keys else value.text)
    elif isinstance(value, Decimal):
        parts.append(_canonical_number(value))
    elif isinstance(value, int):
        parts.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and Infinity are not JSON")
        parts.append(_canonical_number(Decimal(repr(value))) if sort_keys else repr(value))
    elif isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        parts.append("{")
        for index, (key, item) in enumerate(items):
            if index:
                parts.append(",")
            parts.append(json.dumps(str(key)))
            parts.append(":")
            _write(item, parts, sort_keys)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts, sort_keys)
        parts.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _canonical_number(number: Decimal) -> str:
    # Exact (precision as wide as the number) and unbounded exponents: "1e999999999" must neither
    # round nor overflow, nor be expanded into a billion digits.
    context = Context(prec=max(1, len(number.as_tuple().digits)), Emax=MAX_EMAX, Emin=MIN_EMIN)
    normalized = number.normalize(context)
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and 0 <= exponent <= 20:
        return str(int(normalized))  # so 1.0 and 1 are the same number
    return str(normalized)


def canonical(value: Any) -> str:
    """One text per parsed value: keys sorted, numbers by value. Whitespace and order drop out."""
    return dumps(value, sort_keys=True)


def to_plain(value: Any) -> Any:
    """A copy that Django's JSONField and PostgreSQL jsonb accept.

    Numbers become floats (the exact text stays in the raw copy); NUL, which jsonb cannot store,
    becomes U+FFFD. This copy is for display and search only, never echoed to the agent.
    """
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else str(value)
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {to_plain(str(key)): to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


def has_lone_surrogate(value: Any) -> bool:
    """True if any string (or key) is not valid Unicode, which no database can store."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    return False


def pretty(text: str, indent: int = 2) -> str:
    """Indented for people, otherwise exactly as `text`: same digits, same key order."""
    return _pretty(loads(text), indent, 0)


def pretty_value(value: Any, indent: int = 2) -> str:
    """Like `pretty`, for a value already parsed with `loads`."""
    return _pretty(value, indent, 0)


def _pretty(value: Any, indent: int, level: int) -> str:
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(value, dict) and value:
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_pretty(v, indent, level + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        items = [f"{inner}{_pretty(v, indent, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return dumps(value)
