"""How text an agent wrote is shown: every character visible, one-line fields on one line.

Agent text is data. A right-to-left override (U+202E) makes a reviewer read `exe.fdp` where the
agent wrote `pdf.exe`; a zero-width space makes two tool names look alike; a newline in a summary
starts a line of its own in a plain-text mail, where it can read like the console's. So wherever
agent text is shown (pages, email, Slack), these functions run on it first: invisible and
direction-changing characters become visible escapes like ⟨U+202E⟩, and fields meant to be one
line have their line breaks collapsed. They return plain text; templates still escape it.

Which characters: every format (Cf) and control (Cc) character, which covers the bidi controls
U+202A-202E, U+2066-2069, U+200E/F and U+061C, the zero-width U+200B-200D, U+2060 and U+FEFF,
and the tag characters; plus the line and paragraph separators (Zl, Zp), which break lines like a
newline. The categories come from `unicodedata`, so new Unicode versions are covered by Python's.
"""

import unicodedata
from functools import lru_cache

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Kept as they are where a field is shown on several lines (summaries, reasoning, arguments).
_MULTILINE_KEPT = frozenset({"\n", "\t"})
# Longest agent value quoted inside a sentence of the console's (reasons): the value is shown
# whole elsewhere (the arguments), the sentence only needs to point at it.
QUOTE_MAX_CHARS = 120


@lru_cache(maxsize=4096)
def _needs_escape(char: str) -> bool:
    return unicodedata.category(char) in _ESCAPED_CATEGORIES


def _escape(char: str) -> str:
    return f"⟨U+{ord(char):04X}⟩"


def agent_text_visible(text: str, *, multiline: bool = True) -> str:
    """`text` with every invisible, control or direction-changing character as ⟨U+XXXX⟩.

    multiline=True keeps newlines and tabs (and turns "\\r\\n" into "\\n"); otherwise they are
    escaped too: use agent_text_one_line for a field that must read as one line.
    """
    if text.isprintable():
        # No control, format or separator character (nor any other unprintable): as it is.
        return text
    if multiline:
        text = text.replace("\r\n", "\n")
    out = []
    for char in text:
        if _needs_escape(char) and not (multiline and char in _MULTILINE_KEPT):
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


def agent_text_one_line(text: str) -> str:
    """One line: runs of whitespace (newlines included) become one space, the rest visible."""
    return agent_text_visible(" ".join(text.split()), multiline=False)


# A tool's name that shows as nothing (empty, or only whitespace), in the console's words.
TOOL_UNNAMED = "(a tool with no readable name)"


def agent_text_in_quotes(text: str, limit: int | None = None) -> str:
    """Agent text inside the console's plain text (a title, an attribute, a notification, a
    mail's subject): one line, in quotes, so it never reads as the console's own words; cut to
    `limit` characters inside the quotes."""
    shown = agent_text_one_line(text)
    if limit is not None:
        shown = agent_text_cut(shown, limit)
    return f"\u201c{shown}\u201d"


def agent_tool_quoted(tool: str) -> str:
    """A tool's name inside the console's plain text: `tool “issue_refund”`, so a tool named
    "Approved" never reads as a verdict; a name that shows as nothing is said so (TOOL_UNNAMED)."""
    name = agent_tool_name_quoted(tool)
    return name if name == TOOL_UNNAMED else f"tool {name}"


def agent_tool_name_quoted(tool: str) -> str:
    """A tool's name after the console's own label (a plain-text mail's `Tool: “issue_refund”`):
    quoted, on one line; a name that shows as nothing is said so (TOOL_UNNAMED)."""
    if not agent_text_one_line(tool):
        return TOOL_UNNAMED
    return agent_text_in_quotes(tool)


def agent_text_cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


def agent_text_quoted_block(text: str, *, prefix: str = "> ") -> str:
    """Every line of `text` behind `prefix`, for plain text where the agent's lines must never
    start a line of their own (a mail's "Impact:" or "Decide here:" line)."""
    lines = agent_text_visible(text).split("\n")
    return "\n".join(f"{prefix}{line}".rstrip() or prefix.rstrip() for line in lines)


def agent_json_visible(json_text: str) -> str:
    """JSON text with every invisible or bidi character inside its strings written as a \\uXXXX
    escape: the same JSON value, so an editor prefilled with it (approve with changes) submits
    exactly what the agent sent, yet the reviewer sees every character. Newlines stay (outside
    strings, json.dumps writes them only as layout; inside, it escapes them itself)."""
    out = []
    for char in json_text:
        if char != "\n" and _needs_escape(char):
            code = ord(char)
            if code > 0xFFFF:  # JSON escapes astral characters as a surrogate pair
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
