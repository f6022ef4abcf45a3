"""Template filters for showing agent-supplied text and JSON, and the console's reasons.

Filters return plain text (templates escape it); reason_show returns escaped HTML.
"""

import json
from typing import Any

from django import template
from django.core.exceptions import ObjectDoesNotExist
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from approvals.agent_text import (
    TOOL_UNNAMED,
    agent_text_cut,
    agent_text_in_quotes,
    agent_text_one_line,
    agent_text_visible,
    agent_tool_quoted,
)
from approvals.decision_context import TOOL_PLACEHOLDER
from approvals.presentation import pretty_json as _pretty_json
from approvals.reasons import AGENT, Reason, reason_from_stored

AGENT_VALUE_TITLE = "The agent's value, quoted: its claim, not the console's words"

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    return _pretty_json(value)


@register.filter
def outcome_result_text(value: Any) -> str:
    """An outcome's result (any JSON the agent sent) as one line of text: a string as it is,
    anything else as compact JSON. Still agent text: pass it through visible_line."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@register.filter
def percent(value: float | None) -> str:
    """A rate (0-1) as a whole percentage; a dash when there is nothing to divide."""
    return "\u2013" if value is None else f"{value:.0%}"


@register.filter
def visible(value: Any) -> str:
    """Agent text on several lines, every invisible or bidi character shown as ⟨U+XXXX⟩."""
    return agent_text_visible(str(value))


@register.filter
def visible_line(value: Any) -> str:
    """Agent text for a one-line field: line breaks collapsed, the rest as `visible`."""
    return agent_text_one_line(str(value))


@register.filter
def tool_quoted(tool: Any) -> str:
    """A tool's name in plain text beside the console's words (a page title, a title or
    aria-label attribute): `tool “name”` (approvals.agent_text.agent_tool_quoted)."""
    return agent_tool_quoted(str(tool))


@register.filter
def in_quotes(value: Any) -> str:
    """Agent text in quotes, on one line, inside the console's words (an attribute, a chip, a
    heading): an agent's name, always after the console's label, `agent “refund-bot”`, for agents
    name themselves (AAP provisioning) and a name must never read as the console speaking."""
    return agent_text_in_quotes(str(value))


@register.simple_tag
def tool_code(tool: Any, css_class: str = "") -> SafeString:
    """A tool's name inside the console's words: the agent's value as visible_line, in a <code>.
    A name that shows as nothing (empty, or only whitespace) is said so in the console's words,
    outside any <code>, so a sentence never reads as if it named no tool."""
    shown = agent_text_one_line(str(tool))
    if not shown:
        return format_html('<span class="muted tool-unnamed">{}</span>', TOOL_UNNAMED)
    if css_class:
        return format_html('<code class="{}">{}</code>', css_class, shown)
    return format_html("<code>{}</code>", shown)


@register.simple_tag
def tool_sentence(sentence: Any, tool: Any) -> SafeString:
    """A sentence of the console's naming the tool where it says TOOL_PLACEHOLDER
    (approvals.decision_context.Outcomes): the sentence escaped, the name as tool_code."""
    parts = [conditional_escape(part) for part in str(sentence).split(TOOL_PLACEHOLDER)]
    return mark_safe(tool_code(tool).join(parts))  # noqa: S308 (every part escaped, the name too)


@register.simple_tag
def reason_show(
    reason: Any, parts: Any = None, limit: int | None = None, style: str = ""
) -> SafeString:
    """A reason the console gives, the agent's values in the agent-claim style.

    `reason` is a Reason, or a stored reason's text with its stored `parts` (old rows have
    none: their whole text is shown as the agent's, see approvals.reasons). `limit` cuts the
    whole to that many characters, for one-line rows. `style`: inline CSS for the agent's values,
    where no stylesheet applies (mail).
    """
    if not isinstance(reason, Reason):
        reason = reason_from_stored(str(reason or ""), parts)
    html = []
    left = limit if limit is not None else -1
    for kind, text in reason.parts:
        if left == 0:
            break
        if left > 0:
            text = agent_text_cut(text, left) if len(text) > left else text
            left = max(0, left - len(text))
        if kind == AGENT:
            html.append(
                format_html(
                    '<span class="agent-value" title="{}"{}>{}</span>',
                    AGENT_VALUE_TITLE,
                    format_html(' style="{}"', style) if style else "",
                    text,
                )
            )
        else:
            html.append(conditional_escape(text))
    return mark_safe("".join(html))  # noqa: S308 (every part escaped above)


@register.simple_tag
def note_show(note: str, approval: Any, limit: int | None = None) -> SafeString:
    """A decision's or event's note. A policy's decision carries the policy's reason as its note:
    that one is shown with its parts, like reason_show. Other notes are people's (a reviewer's)
    or the console's own and are shown as they are."""
    evaluation = _policy_evaluation_of(approval)
    if evaluation is not None and note == evaluation.reason:
        return reason_show(note, evaluation.reason_parts, limit=limit)
    text = note if limit is None else agent_text_cut(note, limit)
    return conditional_escape(agent_text_visible(text))


def _policy_evaluation_of(approval: Any) -> Any:
    try:
        return approval.policy_evaluation
    except ObjectDoesNotExist:
        return None
