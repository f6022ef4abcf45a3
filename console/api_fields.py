"""Serializer building blocks shared by the agent APIs: strict objects and size-capped fields."""

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.utils import html

from console.api_limits import field_size_check, json_size


class StrictSerializer(serializers.Serializer):
    """Rejects unknown top-level fields, naming them, instead of silently dropping them.

    Of a JSON object's fields, it validates those present, those required and those with a
    default. DRF would also look up every other field, find it absent and skip it by raising
    SkipField; most of an agent's request body is optional and left out, and that was about a
    third of validating one (13 of 36 us, for a request that gives three fields of twelve).
    """

    # The JSON object being validated, while to_internal_value runs: which fields it lacks.
    _validating: dict[str, Any] | None = None

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            return super().to_internal_value(data)
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Unknown field."]})
        if html.is_html_input(data) or getattr(self.root, "partial", False):
            return super().to_internal_value(data)  # DRF reads forms and partial updates itself
        self._validating = data
        try:
            return super().to_internal_value(data)
        finally:
            self._validating = None

    @property
    def _writable_fields(self) -> Iterator[serializers.Field]:  # type: ignore[override]
        validating = self._validating
        for field in super()._writable_fields:
            if (
                validating is None
                or field.field_name in validating
                or field.field_name not in self._skipped_when_absent
            ):
                yield field

    @cached_property
    def _skipped_when_absent(self) -> frozenset[str]:
        """The fields DRF skips when a JSON object lacks them: optional, without a default, and
        read from the object by DRF's own get_value (another might read something else)."""
        return frozenset(
            name
            for name, field in self.fields.items()
            if not field.required
            and field.default is empty
            and type(field).get_value.__module__.startswith("rest_framework.")
        )


class BoundedJSONField(serializers.JSONField):
    """Any storable JSON value, at most API_MAX_FIELD_BYTES once serialized."""

    def to_internal_value(self, data: Any) -> Any:
        # DRF's own check of a parsed value is encoding it, which measuring its size does too:
        # one encoding, not two, for every JSON field of every request.
        value = super().to_internal_value(data) if self._is_text(data) else data
        try:
            size = json_size(value)
        except UnicodeEncodeError:
            # "\ud800" is valid JSON but no text: it cannot be stored or shown.
            raise serializers.ValidationError(
                "Must not contain unpaired surrogate characters (such as \\ud800).",
                code="surrogate_characters_not_allowed",
            ) from None
        except (TypeError, ValueError):
            self.fail("invalid")  # not JSON (DRF's check, by the same encoding)
        field_size_check(size)
        if _has_nul(value):
            # PostgreSQL's jsonb cannot hold U+0000; refused here so every database agrees.
            raise serializers.ValidationError(
                "Must not contain the NUL character (\\u0000).", code="null_characters_not_allowed"
            )
        return value

    def _is_text(self, data: Any) -> bool:
        # A value DRF parses from its JSON text (a form field, or a binary field) rather than
        # checks by encoding.
        return bool(self.binary or getattr(data, "is_json_string", False))


def _has_nul(value: Any) -> bool:
    # Iterative, like the parser's depth check: the value may be deeply nested.
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return True
        elif isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


class JSONObjectField(BoundedJSONField):
    """A JSON object (dict) whose contents are the caller's own."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return super().to_internal_value(data)


class CostField(serializers.DecimalField):
    """A non-negative amount of money: a string or a number in, a string out."""

    def __init__(self, **kwargs: Any) -> None:
        from agents.models import COST_DECIMAL_PLACES, COST_MAX_DIGITS

        kwargs.setdefault("min_value", 0)
        super().__init__(
            max_digits=COST_MAX_DIGITS,
            decimal_places=COST_DECIMAL_PLACES,
            coerce_to_string=True,
            **kwargs,
        )
