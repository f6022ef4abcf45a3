"""Template filters for showing agent-supplied trace data to reviewers (always escaped)."""

import json
from decimal import Decimal
from typing import Any

from django import template

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre>; autoescaping still applies to the result."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def cost(value: Decimal | None) -> str:
    """A cost without trailing zeros (0.25, not 0.25000000), and never in exponent form."""
    if value is None:
        return ""
    return format(value.normalize(), "f")
