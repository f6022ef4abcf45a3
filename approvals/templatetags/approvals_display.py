"""Template filters for showing agent-supplied JSON. Output is plain text: templates escape it."""

from typing import Any

from django import template

from approvals.presentation import pretty_json as _pretty_json

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    return _pretty_json(value)
