"""Links an agent gives with a request, to the source system (the order, the ticket, the run).

Shown to reviewers as marked external links (templates/approvals/detail.html), so only http and
https are accepted: a `javascript:` or `data:` URL would run or render in the reviewer's browser.
A few, short: they point at context, they are not the context.
"""

from typing import Any
from urllib.parse import urlsplit

from rest_framework import serializers

from console.api_fields import StrictSerializer

MAX_LINKS = 10
MAX_LINK_LABEL = 100
MAX_LINK_URL = 2000
LINK_SCHEMES = ("http", "https")


def link_url_problem(url: str) -> str | None:
    """Why `url` may not be shown as a link, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "Not a URL."
    if parts.scheme.lower() not in LINK_SCHEMES:
        shown = parts.scheme or "none"
        return f"Only http and https links are allowed, not {shown!r}."
    if not parts.netloc:
        return "The URL names no host."
    if not url.isprintable() or any(char.isspace() for char in url):
        return "The URL contains spaces or invisible characters."
    return None


class LinkInput(StrictSerializer):
    # A field named like Field.label: DRF moves declared fields out of the class; the stubs see
    # a clashing attribute (as agents/api/native.py's `context`).
    label = serializers.CharField(max_length=MAX_LINK_LABEL)  # type: ignore[assignment]
    url = serializers.CharField(max_length=MAX_LINK_URL)

    def validate_url(self, url: str) -> str:
        if problem := link_url_problem(url):
            raise serializers.ValidationError(problem)
        return url


def links_field() -> serializers.ListField:
    return serializers.ListField(
        child=LinkInput(),
        max_length=MAX_LINKS,
        required=False,
        help_text=f"Links to the source system, shown to reviewers as external links: at most "
        f"{MAX_LINKS}, each {{label, url}}, http or https only.",
    )


def links_stored(links: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [{"label": str(link["label"]), "url": str(link["url"])} for link in links or []]


class LinkOutput(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]
    url = serializers.CharField()
