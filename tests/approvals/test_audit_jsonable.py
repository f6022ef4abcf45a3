"""An audit record's JSON values are hashed as they will read back from their column; jsonable
gives that value without encoding and parsing it (what it stands for is the round trip)."""

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest

from approvals.audit.keys import jsonable
from approvals.models import Status


class _Level(IntEnum):
    HIGH = 5


class _Shown(str):
    def __str__(self) -> str:
        return "not what JSON writes"


def _round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same plain types all the way down, dict keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b  # NaN
    return bool(a == b)


MOMENT = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        True, False, 0, -3, 2**70, 1.5, float("inf"), float("nan"), "text", "",
        Status.PENDING, _Level.HIGH, _Shown("plain"), [], {}, (1, "two"),
        {"b": 1, "a": [MOMENT, date(2026, 1, 2), time(1, 2, 3)]},
        {"d": Decimal("1.50"), "u": uuid.UUID(int=7), "t": timedelta(seconds=3), "n": None},
        {1: "int keys", 2: "become text"}, {"nested": {True: "bool key"}},
        {"deep": [{"z": Status.APPROVED, "y": _Level.HIGH, "x": (MOMENT,)}]},
        {Status.DENIED: "an enum key"},
    ],
)  # fmt: skip
def test_it_is_what_the_json_round_trip_gives(value: Any) -> None:
    expected = _round_trip(value)
    assert _same(jsonable(value), expected), (jsonable(value), expected)


def test_an_object_json_has_no_type_for_is_its_text() -> None:
    thing = object()
    assert _same(jsonable({"thing": thing}), _round_trip({"thing": thing}))


def test_none_stays_none() -> None:
    assert jsonable(None) is None


def test_what_the_round_trip_refuses_it_refuses() -> None:
    with pytest.raises(TypeError):
        jsonable({(1, 2): "a tuple key"})
