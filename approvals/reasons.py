"""A reason the console gives (why a request was held, approved or denied): the console's own words
with every value the agent supplied kept apart.

Policy reasons quote what they matched: the tool name, an argument's value, the run's name. An
argument such as `2'. Policy check passed: finance pre-verified this; reviewers: approve` pasted
into the console's sentence would read as the console speaking. So a reason is a sequence of
parts, each either the console's text or an agent value; an agent value is stored already quoted
(as a JSON literal: the agent's own quotes come out escaped and cannot close it), cut to
QUOTE_MAX_CHARS, with invisible characters made visible. Pages, mail, Slack and insight show the
agent parts in the agent-claim style (templatetags.approvals_display.reason_show); API answers
and the audit trail carry the plain string, in which the agent's values are those quoted literals.

Stored as JSON: [{"console": "Matched rule “x” (#1): tool "}, {"agent": "\\"refund\\""}, ...].
Rows written before reasons had parts have only the plain string; it is shown whole as the
agent's (reason_from_stored), since nobody can tell any more which of its words were.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from approvals.agent_text import (
    QUOTE_MAX_CHARS,
    agent_text_cut,
    agent_text_one_line,
    agent_text_visible,
)

CONSOLE = "console"
AGENT = "agent"


@dataclass(frozen=True)
class AgentValue:
    """A value the agent supplied, to be quoted inside one of the console's sentences."""

    value: Any


def agent_value_quoted(value: Any) -> str:
    """The value as a one-line JSON literal, cut, every invisible character visible."""
    if isinstance(value, str):
        text = json.dumps(agent_text_cut(value, QUOTE_MAX_CHARS), ensure_ascii=False)
    else:
        text = agent_text_cut(json.dumps(value, ensure_ascii=False, default=str), QUOTE_MAX_CHARS)
    # json.dumps escaped the ASCII controls and newlines; format and separator characters
    # (U+202E, U+2028, ...) it leaves as they are.
    return agent_text_visible(text, multiline=False)


_SPEC = re.compile(r"%[sdgr]")

type Piece = str | AgentValue | Reason


@dataclass(frozen=True)
class Reason:
    parts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, *pieces: Piece) -> "Reason":
        """Plain strings are the console's words; AgentValue pieces are the agent's."""
        parts: list[tuple[str, str]] = []
        for piece in pieces:
            if isinstance(piece, Reason):
                parts.extend(piece.parts)
            elif isinstance(piece, AgentValue):
                parts.append((AGENT, agent_value_quoted(piece.value)))
            elif piece:
                parts.append((CONSOLE, piece))
        return cls(tuple(_merged(parts)))

    @classmethod
    def format(cls, template: str, *args: Any) -> "Reason":
        """`template` with %s/%d/%g/%r filled in: AgentValue arguments become agent parts,
        everything else is formatted as the console's text."""
        texts, specs = _SPEC.split(template), _SPEC.findall(template)
        if len(specs) != len(args):
            raise ValueError(f"{template!r} takes {len(specs)} values, given {len(args)}")
        pieces: list[Piece] = []
        for text, spec, arg in zip_longest(texts, specs, args):
            pieces.append(text)
            if spec is None:
                continue
            pieces.append(arg if isinstance(arg, AgentValue | Reason) else spec % (arg,))
        return cls.of(*pieces)

    def __str__(self) -> str:
        return "".join(text for _, text in self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __add__(self, other: Piece) -> "Reason":
        return Reason.of(self, other)

    def as_json(self) -> list[dict[str, str]]:
        return [{kind: text} for kind, text in self.parts]

    @classmethod
    def from_json(cls, data: Any) -> "Reason | None":
        """The stored parts, or None when `data` is not a list of {"console"|"agent": text}."""
        if not isinstance(data, list):
            return None
        parts = []
        for item in data:
            if not (isinstance(item, dict) and len(item) == 1):
                return None
            ((kind, text),) = item.items()
            if kind not in (CONSOLE, AGENT) or not isinstance(text, str):
                return None
            parts.append((kind, text))
        return cls(tuple(parts))


def reason_join(reasons: Iterable[Reason], separator: str) -> Reason:
    pieces: list[Piece] = []
    for index, reason in enumerate(reasons):
        if index:
            pieces.append(separator)
        pieces.append(reason)
    return Reason.of(*pieces)


def reason_from_stored(text: str, parts: Any) -> Reason:
    """What to show for a stored reason: its parts, or, for a row written before reasons had
    parts (or with parts that do not match its text), the whole text as the agent's: old
    reasons pasted agent values into the sentence and cannot be told apart any more."""
    reason = Reason.from_json(parts)
    if reason is not None and str(reason) == text:
        return reason
    if not text:
        return Reason()
    return Reason(((AGENT, agent_text_one_line(text)),))


def _merged(parts: list[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    """Adjacent console parts as one: fewer parts to store and to render."""
    merged: list[tuple[str, str]] = []
    for kind, text in parts:
        if merged and kind == CONSOLE and merged[-1][0] == CONSOLE:
            merged[-1] = (CONSOLE, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged
