"""Read-only admin fields for what an agent wrote, shown as the agent's words.

The admin shows a read-only field as it is stored: a summary's line break starts a line of its
own beside the console's labels, a right-to-left override reverses what follows it, a tool named
"Approved" reads like a verdict. These build admin display methods (for `readonly_fields` and
`list_display`) that show such a field as the reviewer's pages do (approvals.agent_text): a
one-line field quoted, text on several lines behind "> ", JSON with its invisible characters
escaped. `shows_agent_text` adds them to a ModelAdmin as `<field>_shown`.
"""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString

from approvals.agent_text import agent_json_visible, agent_text_in_quotes, agent_text_quoted_block
from approvals.presentation import pretty_json

type DisplayMethod = Callable[[Any, Any], str]


def agent_line_field(name: str, *, ordering: bool = False) -> DisplayMethod:
    """The field `name` on one line, in quotes; nothing when empty."""

    @admin.display(description=name.replace("_", " "), ordering=name if ordering else None)
    def shown(model_admin: Any, obj: Any) -> str:
        value = getattr(obj, name)
        return agent_text_in_quotes(value) if value else ""

    return shown


def agent_lines_field(name: str) -> DisplayMethod:
    """The field `name` on its own lines, each behind "> " (the admin keeps the line breaks)."""

    @admin.display(description=name.replace("_", " "))
    def shown(model_admin: Any, obj: Any) -> str:
        value = getattr(obj, name)
        return agent_text_quoted_block(value) if value else ""

    return shown


def agent_json_field(name: str) -> DisplayMethod:
    """The JSON field `name`, pretty-printed, every invisible character as a \\uXXXX escape;
    nothing when null."""

    @admin.display(description=name.replace("_", " "))
    def shown(model_admin: Any, obj: Any) -> SafeString | str:
        value = getattr(obj, name)
        if value is None:
            return ""
        return format_html("<pre>{}</pre>", agent_json_visible(pretty_json(value)))

    return shown


def shows_agent_text[T: type](
    *, line: tuple[str, ...] = (), lines: tuple[str, ...] = (), json: tuple[str, ...] = ()
) -> Callable[[T], T]:
    """A ModelAdmin class decorator: a `<field>_shown` display method for each field named, to
    list in `fields`/`readonly_fields` instead of the field."""

    def add(model_admin_class: T) -> T:
        builders = ((line, agent_line_field), (lines, agent_lines_field), (json, agent_json_field))
        for names, build in builders:
            for name in names:
                setattr(model_admin_class, f"{name}_shown", build(name))
        return model_admin_class

    return add
