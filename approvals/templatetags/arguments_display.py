"""The arguments a request would run, shown by what they are, not as one JSON blob.

Driven by the request's `arguments_schema` where it says something (a property's `format`:
email, uri, date-time; a money hint `x-money`: {"currency": "EUR", "minor_units": 2}, or
{"currency_field": "currency", "minor_units": 2}); otherwise by shape: an object with `to` and a
`subject` or `body` is previewed as an email, an amount beside a currency code as money, an
http(s) string as an external link, nested objects and lists as a collapsible tree, long strings
folded. Every string passes through approvals.agent_text first, so invisible and bidi characters
show as ⟨U+XXXX⟩, and everything is escaped by format_html: these are the agent's values.

The exact JSON stays on the page too (detail.html): this view helps reading, the JSON is what runs.
"""

import json
import re
from datetime import datetime
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from approvals.agent_text import agent_text_cut, agent_text_one_line, agent_text_visible
from approvals.money import MINOR_UNIT_KEYS, MONEY_KEYS, money_text

register = template.Library()

# A string longer than this, or with more lines, starts folded.
FOLD_CHARS = 280
FOLD_LINES = 6
# Nested objects and lists: deeper levels are still shown, folded, up to this depth; beyond it
# the value is shown as JSON text (folded), so a pathological payload cannot blow up the page.
MAX_DEPTH = 6
# A nested value with more entries than this starts folded.
OPEN_ENTRIES = 6
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HTTP_URL = re.compile(r"^https?://[^\s]+$", re.I)
EXTERNAL_REL = "noopener noreferrer nofollow"


def _properties(schema: Any) -> dict[str, Any]:
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        return schema["properties"]
    return {}


def _currency_beside(arguments: dict[str, Any]) -> str | None:
    for key in ("currency", "currency_code"):
        value = arguments.get(key)
        if isinstance(value, str) and CURRENCY_CODE.match(value.upper()):
            return value.upper()
    return None


def _money_hint(
    key: str, prop: dict[str, Any], siblings: dict[str, Any]
) -> tuple[str, int | None] | None:
    """(currency, minor units or None) when `key` holds money, from the schema or the shape."""
    hint = prop.get("x-money")
    if isinstance(hint, dict):
        currency = hint.get("currency")
        if not isinstance(currency, str) and isinstance(hint.get("currency_field"), str):
            currency = siblings.get(hint["currency_field"])
        units = hint.get("minor_units")
        units = units if isinstance(units, int) and 0 <= units <= 4 else None
        if isinstance(currency, str) and currency:
            return agent_text_one_line(currency.upper())[:12], units
    currency = _currency_beside(siblings)
    if currency and MONEY_KEYS.search(key):
        return currency, 2 if MINOR_UNIT_KEYS.search(key) else None
    return None


def _external_link(url: str) -> SafeString:
    shown = agent_text_one_line(url)
    return format_html(
        '<a class="external agent-text" href="{}" rel="{}" target="_blank">{}'
        '<span class="external-mark"> ↗ <span class="visually-hidden">(external link)</span>'
        "</span></a>",
        url,
        EXTERNAL_REL,
        agent_text_cut(shown, 200),
    )


def _is_link(value: str) -> bool:
    # Only http(s), and only if nothing invisible hides in it: such a URL is shown as text.
    return bool(HTTP_URL.match(value)) and value.isprintable()


def _string(value: str, prop: dict[str, Any]) -> SafeString:
    fmt = prop.get("format")
    if fmt in ("uri", None) and _is_link(value):
        return _external_link(value)
    if fmt == "date-time":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            return format_html(
                '<time class="agent-text" datetime="{}">{}</time>',
                value,
                agent_text_one_line(value),
            )
    if fmt == "email" or (fmt is None and EMAIL.match(value)):
        return format_html('<span class="agent-text email">{}</span>', agent_text_one_line(value))
    shown = agent_text_visible(value)
    if len(shown) > FOLD_CHARS or shown.count("\n") >= FOLD_LINES:
        first = agent_text_cut(agent_text_one_line(value), 100)
        return format_html(
            '<details class="long-string"><summary><span class="agent-text">{}</span> '
            '<span class="muted">({} characters, folded)</span></summary>'
            '<div class="agent-text string-body">{}</div></details>',
            first,
            len(value),
            shown,
        )
    return format_html('<span class="agent-text string">{}</span>', shown)


def render_value(
    value: Any, prop: Any = None, *, key: str = "", siblings: Any = None, depth: int = 0
) -> SafeString:
    """One argument's value as HTML (escaped), by its schema property or its shape."""
    prop = prop if isinstance(prop, dict) else {}
    siblings = siblings if isinstance(siblings, dict) else {}
    if value is None:
        return mark_safe('<span class="muted">null</span>')
    if isinstance(value, bool):
        return format_html('<span class="badge">{}</span>', "true" if value else "false")
    money = _money_hint(key, prop, siblings) if key else None
    if money is not None:
        currency, units = money
        text = money_text(value, currency=currency, minor_units=units)
        if text is not None and units is not None:
            return format_html(
                '<span class="money agent-text">{}</span> <span class="muted raw">raw {}</span>',
                text,
                str(value),
            )
        if text is not None:
            # The unit is not stated: 25000 may be 25,000.00 or, in cents, 250.00. Grouping it
            # as money would read as the first; the value is shown as sent, with both readings.
            cents = money_text(value, currency=currency, minor_units=2)
            return format_html(
                '<span class="money-unknown agent-text">{} {}</span> '
                '<span class="muted raw">unit not stated: {}, or {} if in hundredths</span>',
                str(value),
                currency,
                text,
                cents,
            )
    if isinstance(value, (int, float)):
        return format_html('<span class="number agent-text">{}</span>', str(value))
    if isinstance(value, str):
        return _string(value, prop)
    if isinstance(value, (dict, list)):
        return _tree(value, prop, depth=depth)
    return format_html('<span class="agent-text">{}</span>', agent_text_visible(str(value)))


def _tree(value: dict[str, Any] | list[Any], prop: dict[str, Any], *, depth: int) -> SafeString:
    if not value:
        return format_html(
            '<span class="muted">{}</span>', "{}" if isinstance(value, dict) else "[]"
        )
    if depth >= MAX_DEPTH:
        text = agent_text_visible(json.dumps(value, ensure_ascii=False, indent=2))
        return format_html(
            '<details class="json-tree"><summary class="muted">deeper levels as JSON</summary>'
            '<pre class="agent-text">{}</pre></details>',
            text,
        )
    if isinstance(value, dict):
        props = _properties(prop)
        entries = format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            (
                (
                    agent_text_one_line(str(k)),
                    render_value(v, props.get(k), key=str(k), siblings=value, depth=depth + 1),
                )
                for k, v in value.items()
            ),
        )
        label = f"{len(value)} field{'s' if len(value) != 1 else ''}"
        body = format_html('<dl class="tree">{}</dl>', entries)
    else:
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        entries = format_html_join(
            "",
            "<li>{}</li>",
            ((render_value(v, items, depth=depth + 1),) for v in value),
        )
        label = f"{len(value)} item{'s' if len(value) != 1 else ''}"
        body = format_html('<ol class="tree" start="0">{}</ol>', entries)
    is_open = " open" if len(value) <= OPEN_ENTRIES and depth < 2 else ""
    return format_html(
        '<details class="json-tree"{}><summary class="muted">{}</summary>{}</details>',
        mark_safe(is_open),  # noqa: S308 (a constant)
        label,
        body,
    )


def email_parts(arguments: Any) -> dict[str, Any] | None:
    """The fields of an email-like arguments object (to, cc, bcc, subject, body), or None."""
    if not isinstance(arguments, dict):
        return None
    lowered = {str(k).lower(): k for k in arguments}
    if "to" not in lowered or not ({"subject", "body", "text"} & set(lowered)):
        return None
    return lowered


@register.simple_tag
def arguments_view(arguments: Any, schema: Any = None) -> SafeString:
    """The request's arguments, typed: an email preview when they look like one, then every
    argument as a term and its rendered value."""
    props = _properties(schema)
    if not isinstance(arguments, dict):
        return render_value(arguments, schema)
    html = []
    shown: set[str] = set()
    lowered = email_parts(arguments)
    if lowered is not None:

        def field(name: str) -> Any:
            return arguments.get(lowered[name]) if name in lowered else None

        rows = []
        for name in ("to", "cc", "bcc", "subject"):
            if name in lowered:
                shown.add(lowered[name])
                value = field(name)
                text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                rows.append((name.capitalize(), agent_text_one_line(text)))
        body_key = "body" if "body" in lowered else "text" if "text" in lowered else None
        body = ""
        if body_key:
            shown.add(lowered[body_key])
            raw = field(body_key)
            body = agent_text_visible(raw if isinstance(raw, str) else str(raw))
        html.append(
            format_html(
                '<figure class="email-preview"><figcaption class="muted">Email the agent would '
                'send</figcaption><dl class="email-head">{}</dl><div class="agent-text email-body">'
                "{}</div></figure>",
                format_html_join("", '<dt>{}</dt><dd class="agent-text">{}</dd>', rows),
                body,
            )
        )
    rest = [(k, v) for k, v in arguments.items() if k not in shown]
    if rest:
        html.append(
            format_html(
                '<dl class="typed-arguments">{}</dl>',
                format_html_join(
                    "",
                    "<dt><code>{}</code></dt><dd>{}</dd>",
                    (
                        (
                            agent_text_one_line(str(k)),
                            render_value(v, props.get(k), key=str(k), siblings=arguments),
                        )
                        for k, v in rest
                    ),
                ),
            )
        )
    if not html:
        return mark_safe('<p class="muted">No arguments.</p>')
    return mark_safe("".join(html))  # noqa: S308 (every part built with format_html)


@register.filter
def external_link(url: Any) -> SafeString:
    """An http(s) URL as a marked external link; anything else as plain (escaped) text."""
    text = str(url)
    if _is_link(text):
        return _external_link(text)
    return format_html('<span class="agent-text">{}</span>', agent_text_one_line(text))
