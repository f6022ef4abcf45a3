"""StrictSerializer: DRF's validation, refusing unknown fields, without validating the optional
fields a JSON object leaves out."""

from typing import Any

import pytest
from django.http import QueryDict
from rest_framework import serializers

from console.api_fields import StrictSerializer

touched: list[str] = []


class RecordingCharField(serializers.CharField):
    """Notes every validation it is asked for, present or absent."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        touched.append(self.field_name)
        return super().run_validation(data)


class LinkInput(StrictSerializer):
    url = serializers.URLField()
    title = serializers.CharField(required=False)


def _fields() -> dict[str, serializers.Field]:
    return {
        "name": serializers.CharField(max_length=5),
        "note": RecordingCharField(required=False, allow_blank=True),
        "size": serializers.IntegerField(required=False, allow_null=True),
        "mode": serializers.ChoiceField(choices=["a", "b"], default="a"),
        "tags": serializers.ListField(child=serializers.CharField(), required=False),
        "meta": serializers.JSONField(required=False),
        "link": LinkInput(required=False),
    }


Strict = type("Strict", (StrictSerializer,), _fields())
Plain = type("Plain", (serializers.Serializer,), _fields())


def _outcome(serializer: serializers.Serializer, data: Any) -> Any:
    try:
        return ("valid", serializer.run_validation(data))
    except serializers.ValidationError as error:
        return ("invalid", error.detail)


@pytest.mark.parametrize(
    "data",
    [
        {"name": "x"},
        {"name": "x", "note": "", "size": None, "mode": "b", "tags": ["t"], "meta": [1]},
        {"name": "x", "link": {"url": "https://example.test/a"}},
        {"name": "x", "link": {"url": "not a url"}},
        {"name": "toolong"},
        {},
        {"name": "x", "size": "many"},
        {"name": "x", "mode": "c", "tags": "no list"},
        ["not", "an", "object"],
    ],
)
def test_it_validates_as_drf_does(data: Any) -> None:
    assert _outcome(Strict(), data) == _outcome(Plain(), data)


def test_optional_fields_left_out_are_not_validated_and_given_ones_are() -> None:
    touched.clear()
    assert Strict().run_validation({"name": "x"}) == {"name": "x", "mode": "a"}
    assert touched == []
    assert Strict().run_validation({"name": "x", "note": "n"})["note"] == "n"
    assert touched == ["note"]


def test_a_reused_serializer_forgets_the_last_object() -> None:
    serializer = Strict()
    serializer.run_validation({"name": "x", "note": "n"})
    touched.clear()
    assert serializer.run_validation({"name": "y"}) == {"name": "y", "mode": "a"}
    assert touched == []
    with pytest.raises(serializers.ValidationError):
        serializer.run_validation({"note": "n"})  # name is still required
    assert serializer.run_validation({"name": "z"}) == {"name": "z", "mode": "a"}


def test_unknown_fields_are_refused_by_name() -> None:
    assert _outcome(Strict(), {"name": "x", "colour": 1}) == (
        "invalid",
        {"colour": ["Unknown field."]},
    )


def test_forms_and_partial_updates_are_left_to_drf() -> None:
    form = QueryDict("name=x&tags=a&tags=b")
    assert _outcome(Strict(data=form), form) == _outcome(Plain(data=form), form)
    touched.clear()
    partial = Strict(data={"note": "n"}, partial=True)
    assert partial.is_valid(), partial.errors
    assert partial.validated_data == {"note": "n"}
    assert touched == ["note"]
