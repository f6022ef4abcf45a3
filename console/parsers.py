"""The API's JSON parser: DRF's, with a bound on nesting.

Python's json module recurses per level, so a body of 100 KB of `[` raises RecursionError (a
500) instead of a clear 400, and a deeply nested value that did parse could later exhaust the
stack when rendered for a reviewer. Every agent API but AAP (which reads JSON exactly, with the
same limit: agents/aap/api.py) parses through this class; the limits are console.api_limits.
"""

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from console.api_limits import json_depth_exceeds, too_deep_message


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = json_depth_exceeds(data)
        if too_deep:
            raise ParseError(too_deep_message())
        return data
