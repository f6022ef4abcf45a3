"""Template filters for showing agent-supplied trace data to reviewers (always escaped)."""

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre>; autoescaping still applies to the result."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
