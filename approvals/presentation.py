"""How agent-supplied JSON is shown to reviewers: exact, pretty-printed, large values folded.

Returns plain strings; templates escape them like any other agent text.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console import exact_json

# A value longer than this (as pretty JSON) starts folded: the reviewer opens it on purpose.
FOLD_CHARS = 400


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


@dataclass(frozen=True)
class ArgumentLine:
    key: str
    text: str  # `"key": value` exactly as JSON
    folded: bool
    size: int


def arguments_folded(
    arguments: Any, *, render: Callable[[Any], str] = pretty_json
) -> list[ArgumentLine]:
    """One entry per top-level argument; non-object arguments come back as a single entry.

    `render` turns a value into text: AAP requests pass the exact-JSON renderer, so reviewers
    see every digit and the key order the agent sent.
    """
    if not isinstance(arguments, dict):
        text = render(arguments)
        return [ArgumentLine(key="", text=text, folded=len(text) > FOLD_CHARS, size=len(text))]
    lines = []
    for key, value in arguments.items():
        value_text = render(value)
        text = f"{json.dumps(key, ensure_ascii=False)}: {value_text}"
        lines.append(
            ArgumentLine(
                key=str(key), text=text, folded=len(value_text) > FOLD_CHARS, size=len(value_text)
            )
        )
    return lines


def arguments_exact_text(approval: Any) -> str:
    """The arguments the agent will run, as one pretty JSON text: for AAP requests the exact JSON
    it sent (every digit, its key order), otherwise the stored arguments. Plain, not escaped;
    invisible characters still raw (see approvals.agent_text)."""
    if approval.arguments_raw:
        return exact_json.pretty(approval.arguments_raw)
    return pretty_json(approval.arguments)


def window_in_words(seconds: int) -> str:
    """ "5 minutes", "90 seconds", "1 hour": the due-soon window as the page explains it."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
