"""Arguments shown by type (approvals/templatetags/arguments_display.py): email previews, money
with its currency and unit, URLs as marked external links, nested values as a tree, long strings
folded, schema formats, invisible characters visible, and everything escaped."""

from approvals.money import money_text
from approvals.templatetags.arguments_display import arguments_view, external_link


def test_it_previews_an_email_with_its_line_breaks() -> None:
    html = arguments_view(
        {"to": "dana@example.test", "subject": "Your refund", "body": "Hi Dana,\n\nDone.\n— Ops"}
    )
    assert '<figure class="email-preview">' in html
    assert '<dt>To</dt><dd class="agent-text">dana@example.test</dd>' in html
    assert '<dt>Subject</dt><dd class="agent-text">Your refund</dd>' in html
    # The body as text with real line breaks, not a JSON string with \n in it.
    assert '<div class="agent-text email-body">Hi Dana,\n\nDone.\n— Ops</div>' in html
    assert "\\n" not in html


def test_it_shows_money_from_the_schemas_hint_in_major_units() -> None:
    schema = {
        "properties": {
            "amount": {
                "type": "integer",
                "x-money": {"currency_field": "currency", "minor_units": 2},
            }
        }
    }
    html = arguments_view({"amount": 120000, "currency": "eur"}, schema)
    assert '<span class="money agent-text">1,200.00 EUR</span>' in html
    assert "raw 120000" in html


def test_it_shows_money_by_shape_without_guessing_the_unit() -> None:
    html = arguments_view({"refund_amount": 120000, "currency": "GBP"})
    # Never grouped as if it were whole pounds: shown as sent, with both readings named.
    assert '<span class="money-unknown agent-text">120000 GBP</span>' in html
    assert "unit not stated: 120,000 GBP, or 1,200.00 GBP if in hundredths" in html
    assert '<span class="money agent-text">' not in html
    cents = arguments_view({"amount_cents": 4900, "currency": "USD"})
    assert "49.00 USD" in cents
    # No currency beside it: just a number, never a made-up currency.
    assert "money" not in arguments_view({"amount": 5})


def test_money_text_handles_what_is_not_a_number() -> None:
    assert money_text("12.5", currency="EUR", minor_units=None) == "12.5 EUR"
    assert money_text("lots", currency="EUR", minor_units=2) is None
    assert money_text(True, currency="EUR", minor_units=2) is None
    assert money_text(float("nan"), currency="EUR", minor_units=2) is None


def test_it_links_http_urls_as_marked_external_links_only() -> None:
    html = arguments_view({"receipt": "https://pay.example.test/r/1?a=1&b=2"})
    assert (
        '<a class="external agent-text" href="https://pay.example.test/r/1?a=1&amp;b=2" '
        'rel="noopener noreferrer nofollow" target="_blank">'
    ) in html
    assert "(external link)" in html
    for not_a_link in ("javascript:alert(1)", "ftp://x.example.test/", "https://a.test/\u202egpj"):
        assert "<a " not in arguments_view({"u": not_a_link})
        assert "<a " not in external_link(not_a_link)


def test_it_shows_nested_values_as_a_collapsible_tree() -> None:
    nested = {"order": {"id": 1, "lines": [{"sku": "TEA", "qty": 3}] * 10}}
    html = arguments_view({"metadata": nested})
    assert html.count('<details class="json-tree"') >= 3
    assert '<details class="json-tree" open><summary class="muted">1 field</summary>' in html
    # A long list starts folded.
    assert '<details class="json-tree"><summary class="muted">10 items</summary>' in html


def test_it_stops_the_tree_at_a_depth_and_shows_the_rest_as_json() -> None:
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(10):
        deep = {"level": deep}
    html = arguments_view({"deep": deep})
    assert "deeper levels as JSON" in html
    assert "&quot;leaf&quot;: 1" in html


def test_it_folds_long_strings() -> None:
    html = arguments_view({"notes": "word " * 200})
    assert '<details class="long-string">' in html
    assert "(1000 characters, folded)" in html
    assert '<details class="long-string">' not in arguments_view({"notes": "short"})


def test_it_reads_schema_formats() -> None:
    schema = {
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "contact": {"type": "string", "format": "email"},
            "home": {"type": "string", "format": "uri"},
        }
    }
    html = arguments_view(
        {"when": "2026-12-06T04:00:00+00:00", "contact": "a@b.test", "home": "https://b.test/"},
        schema,
    )
    assert '<time class="agent-text" datetime="2026-12-06T04:00:00+00:00">' in html
    assert '<span class="agent-text email">a@b.test</span>' in html
    assert 'href="https://b.test/"' in html
    # A value that does not parse as its format is shown as text.
    assert "<time" not in arguments_view({"when": "tomorrow"}, schema)


def test_it_escapes_and_shows_invisible_characters() -> None:
    html = arguments_view({"<k>": "<script>alert(1)</script>", "name": "pay\u202eexe.fdp\u200b"})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;k&gt;" in html
    assert "pay⟨U+202E⟩exe.fdp⟨U+200B⟩" in html
    assert "\u202e" not in html


def test_it_shows_scalars_and_empty_values_plainly() -> None:
    html = arguments_view({"dry_run": False, "limit": 10, "nothing": None, "tags": []})
    assert '<span class="badge">false</span>' in html
    assert '<span class="number agent-text">10</span>' in html
    assert '<span class="muted">null</span>' in html
    assert '<span class="muted">[]</span>' in html
    assert "No arguments." in arguments_view({})
