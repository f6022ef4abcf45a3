"""Serializer building blocks shared by the agent APIs: strict objects and size-capped fields."""

from typing import Any

from rest_framework import serializers

from console.api_limits import field_size_check, json_size


class StrictSerializer(serializers.Serializer):
    """Rejects unknown top-level fields, naming them, instead of silently dropping them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["Unknown field."]})
        return super().to_internal_value(data)


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
