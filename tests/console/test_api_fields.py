"""The agent APIs' JSON fields: any storable JSON value, refused with a reason otherwise."""

from typing import Any

import pytest
from rest_framework import serializers

from console.api_fields import BoundedJSONField, JSONObjectField


def _codes(error: serializers.ValidationError) -> list[str]:
    detail: Any = error.detail
    return [item.code for item in detail]


def test_a_json_value_is_kept_as_it_came() -> None:
    value = {"amount": 12.5, "items": [1, "two", None, {"ünïcode": True}]}
    assert BoundedJSONField().run_validation(value) == value


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"x": "a\ud800b"}, "surrogate_characters_not_allowed"),
        ({"x": ["a\x00b"]}, "null_characters_not_allowed"),
        ({"x\x00": 1}, "null_characters_not_allowed"),
        ({"not json": {1, 2}}, "invalid"),
        ({"not json": object()}, "invalid"),
    ],
)
def test_what_cannot_be_stored_is_refused_naming_why(value: Any, code: str) -> None:
    with pytest.raises(serializers.ValidationError) as refused:
        BoundedJSONField().run_validation(value)
    assert _codes(refused.value) == [code]


def test_a_value_over_the_field_cap_is_refused(settings) -> None:
    settings.API_MAX_FIELD_BYTES = 20
    assert BoundedJSONField().run_validation({"x": "a" * 10}) == {"x": "a" * 10}
    with pytest.raises(serializers.ValidationError) as refused:
        BoundedJSONField().run_validation({"x": "a" * 20})
    assert _codes(refused.value) == ["too_large"]


def test_a_binary_field_reads_json_text() -> None:
    assert BoundedJSONField(binary=True).run_validation('{"a": [1]}') == {"a": [1]}
    with pytest.raises(serializers.ValidationError) as refused:
        BoundedJSONField(binary=True).run_validation("{not json")
    assert _codes(refused.value) == ["invalid"]


def test_an_object_field_refuses_other_json() -> None:
    with pytest.raises(serializers.ValidationError):
        JSONObjectField().run_validation([1, 2])
