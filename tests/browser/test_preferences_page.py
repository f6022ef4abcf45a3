"""The notification preferences page in real Chromium: each checkbox and radio button sits on
the line of the words it goes with."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.live import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_every_box_and_dot_sits_beside_its_words(live_console, page: Page, team, artifacts) -> None:
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/notifications/preferences")
    expect(page.get_by_role("heading", name="How to reach you")).to_be_visible()
    page.screenshot(path=str(artifacts / "preferences.png"), full_page=True)

    choices = page.locator("form input[type=checkbox], form input[type=radio]")
    assert choices.count() >= 5
    for index in range(choices.count()):
        choice = choices.nth(index)
        label = page.locator(f"label[for='{choice.get_attribute('id')}']")
        box, words = choice.bounding_box(), label.bounding_box()
        assert box is not None and words is not None
        # Not a field stretched across the line above its words: small, on the words' line
        # (inside the label, as Django renders a radio button, or right after it).
        assert box["width"] < 40, (choice.get_attribute("id"), box)
        middle = box["y"] + box["height"] / 2
        assert words["y"] <= middle <= words["y"] + words["height"], (
            label.inner_text(),
            box,
            words,
        )
        assert words["height"] < 2 * box["height"] + 10, (label.inner_text(), words)
