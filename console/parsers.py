"""The API's JSON parser: DRF's, with a bound on nesting.

Python's json module recurses per level, so a body of 100 KB of `[` raises RecursionError (a
500) instead of a clear 400, and a deeply nested value that did parse could later exhaust the
stack when rendered for a reviewer. Every agent API parses through this class.
"""

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = json_depth_exceeds(data, settings.API_MAX_JSON_DEPTH)
        if too_deep:
            raise ParseError(
                f"JSON parse error - nested deeper than {settings.API_MAX_JSON_DEPTH} levels."
            )
        return data


def json_depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative, so checking depth cannot itself run out of stack.
    pending = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list):
            if depth > limit:
                return True
            children = current.values() if isinstance(current, dict) else current
            pending.extend((child, depth + 1) for child in children)
    return False
