"""What the decision page shows beside the request: read-only selectors, no writes.

- what happens on approve, on deny and if nobody decides (from the request's deadline and the
  policy's timeout behaviour);
- the key amount a high-impact approval's confirmation names (whether one is needed:
  ApprovalRequest.needs_confirmation, enforced by approvals.services.confirmation, which also
  says what the reviewer types), and the unusual characters of the tool's name;
- similar past decisions: the same agent calling the same tool, recent, only ones the reviewer
  may see, each with the arguments that differ from this request's and what happened after;
- the neighbours of a request in the reviewer's queue (j/k on the decision page);
- the preset deny reasons for the request's tool.
"""

import fnmatch
import unicodedata
from dataclasses import dataclass
from typing import Any

from approvals.access import approvals_visible_to
from approvals.models import (
    ApprovalRequest,
    DenyReasonPreset,
    ReviewerPageSettings,
    Status,
)
from approvals.money import MONEY_KEYS, money_text

SIMILAR_DECISIONS = 5
# An argument value longer than this is cut in the "what differs" line.
DIFF_VALUE_CHARS = 80


# Where an Outcomes sentence names the tool: the page puts the agent's name there in a <code>
# (the tool_sentence template tag), so it never reads as the console's own words.
TOOL_PLACEHOLDER = "{tool}"


@dataclass(frozen=True)
class Outcomes:
    """The console's sentences, each naming the tool as TOOL_PLACEHOLDER."""

    on_approve: str
    on_deny: str
    if_nobody: str


def approval_outcomes(approval: ApprovalRequest) -> Outcomes:
    """One sentence each: what approving, denying and not deciding would do (plain text, the
    tool as TOOL_PLACEHOLDER)."""
    tool = TOOL_PLACEHOLDER
    if approval.required_approvals > 1:
        on_approve = (
            f"your approval counts as one of {approval.required_approvals}; once enough "
            f"reviewers approve, the agent runs {tool} with the arguments shown."
        )
    else:
        on_approve = f"the agent runs {tool} with exactly the arguments shown."
    return Outcomes(
        on_approve=on_approve,
        on_deny=f"the agent must not run {tool}; it receives your reason.",
        # Deliberately never approve: OnTimeout has no such choice (approvals.policies.models).
        if_nobody=f"at the deadline the request expires and the agent must not run {tool}.",
    )


def _schema_properties(approval: ApprovalRequest) -> dict[str, Any]:
    schema = approval.arguments_schema
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        return schema["properties"]
    return {}


def approval_key_amount(approval: ApprovalRequest) -> str | None:
    """The amount a confirmation should name ("1,200.00 EUR"), if the arguments carry one."""
    arguments = approval.arguments
    if not isinstance(arguments, dict):
        return None
    props = _schema_properties(approval)
    for key, value in arguments.items():
        found = props.get(key)
        prop: dict[str, Any] = found if isinstance(found, dict) else {}
        hint = prop.get("x-money")
        if isinstance(hint, dict):
            currency = hint.get("currency") or arguments.get(hint.get("currency_field", ""))
            units = hint.get("minor_units")
            text = money_text(
                value,
                currency=str(currency or ""),
                minor_units=units if isinstance(units, int) else None,
            )
            if text:
                return text.strip()
    for key, value in arguments.items():
        if MONEY_KEYS.search(str(key)) and isinstance(value, (int, float, str)):
            if isinstance(value, bool):
                continue
            currency = arguments.get("currency") or arguments.get("currency_code") or ""
            text = money_text(value, currency=str(currency)[:12], minor_units=None)
            if text:
                return f"{key} {text.strip()}"
    return None


# At most this many unusual characters of a tool's name are named on the confirmation step.
UNUSUAL_CHARACTERS_NAMED = 4


def confirmation_unusual_characters(approval: ApprovalRequest) -> list[str]:
    """The tool name's characters outside printable ASCII, each once, as "U+0435 CYRILLIC SMALL
    LETTER IE": letters that can look like Latin ones, and invisible ones, named before the
    reviewer types the name. Empty for a plain ASCII name."""
    named: list[str] = []
    for char in dict.fromkeys(approval.tool.strip()):
        if " " <= char <= "~":
            continue
        named.append(f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}")
        if len(named) == UNUSUAL_CHARACTERS_NAMED:
            break
    return named


@dataclass(frozen=True)
class SimilarDecision:
    approval: ApprovalRequest
    # (argument, its value then, its value now) for every argument that differs.
    differences: list[tuple[str, str, str]]


def _short(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else repr(value) if not isinstance(value, str) else value
    return text if len(text) <= DIFF_VALUE_CHARS else text[: DIFF_VALUE_CHARS - 1] + "…"


_ABSENT = object()


def arguments_differences(then: Any, now: Any) -> list[tuple[str, str, str]]:
    if not isinstance(then, dict) or not isinstance(now, dict):
        return [] if then == now else [("(arguments)", _short(then), _short(now))]
    keys = list(now) + [k for k in then if k not in now]
    return [
        (str(key), _short(then.get(key, _ABSENT)), _short(now.get(key, _ABSENT)))
        for key in keys
        if then.get(key, _ABSENT) != now.get(key, _ABSENT)
    ]


def similar_decisions_for_reviewer(
    *, user: Any, approval: ApprovalRequest, last: int = SIMILAR_DECISIONS
) -> list[SimilarDecision]:
    """The latest decided requests of the same agent and tool that `user` may see."""
    earlier = (
        approvals_visible_to(user=user)
        .filter(agent_id=approval.agent_id, tool=approval.tool)
        .exclude(status=Status.PENDING)
        .exclude(pk=approval.pk)
        .select_related("decision", "decision__reviewer", "policy_evaluation", "outcome")
        .order_by("-decided_at", "-id")[:last]
    )
    return [
        SimilarDecision(
            approval=other, differences=arguments_differences(other.arguments, approval.arguments)
        )
        for other in earlier
    ]


@dataclass(frozen=True)
class Neighbours:
    previous: ApprovalRequest | None
    next: ApprovalRequest | None


def queue_neighbours(*, user: Any, approval: ApprovalRequest) -> Neighbours:
    """The requests before and after this one in the reviewer's queue order (its first page)."""
    from approvals.selectors import QueueFilters, approvals_queue_page

    rows = approvals_queue_page(user=user, filters=QueueFilters.from_query({}), limit=50).rows
    codes = [row.code for row in rows]
    if approval.code not in codes:
        others = [row for row in rows if row.pk != approval.pk]
        return Neighbours(previous=None, next=others[0] if others else None)
    index = codes.index(approval.code)
    # Past the last request, "next" wraps to the first: after deciding the last one, the
    # reviewer goes on with what is still waiting rather than stopping.
    following = rows[index + 1] if index + 1 < len(rows) else rows[0]
    return Neighbours(
        previous=rows[index - 1] if index > 0 else None,
        next=following if following.pk != approval.pk else None,
    )


def deny_reason_presets(approval: ApprovalRequest) -> list[str]:
    return [
        preset.text
        for preset in DenyReasonPreset.objects.all()
        if fnmatch.fnmatchcase(approval.tool, preset.tool_glob)
    ]


def reviewer_opens_next(user: Any) -> bool:
    settings = ReviewerPageSettings.objects.filter(user=user).first()
    return True if settings is None else settings.open_next_after_decision


@dataclass(frozen=True)
class ArgumentField:
    """One argument as a form field of the approve-with-changes editor (static/js/decision.js
    writes the fields back into the JSON that is sent: the JSON stays the one source)."""

    name: str
    kind: str  # string, integer, number, boolean
    value: Any
    text: str
    multiline: bool


_SCHEMA_KINDS = {"string", "integer", "number", "boolean"}


def argument_fields(approval: ApprovalRequest) -> list[ArgumentField]:
    """The top-level arguments that are plain values, typed by the schema or by their value.
    Nested values and nulls are edited in the raw JSON only."""
    arguments = approval.arguments
    if not isinstance(arguments, dict):
        return []
    props = _schema_properties(approval)
    fields = []
    for name, value in arguments.items():
        found = props.get(name)
        prop: dict[str, Any] = found if isinstance(found, dict) else {}
        declared = prop.get("type")
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "integer" if declared != "number" else "number"
        elif isinstance(value, float):
            kind = "number"
        elif isinstance(value, str):
            kind = "string"
        else:
            continue
        if (
            declared in _SCHEMA_KINDS
            and declared != kind
            and not (declared == "number" and kind == "integer")
        ):
            continue  # the value does not match its schema: leave it to the raw JSON
        text = (
            value
            if isinstance(value, str)
            else str(value).lower()
            if kind == "boolean"
            else str(value)
        )
        fields.append(
            ArgumentField(
                name=str(name),
                kind=kind,
                value=value,
                text=text,
                multiline=kind == "string" and ("\n" in value or len(value) > 80),
            )
        )
    return fields
