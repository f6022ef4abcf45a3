"""A question answered in real Chromium: the form its answer schema generated, a bad answer
refused under its field with nothing stored, then the answer sent and shown as the outcome."""

import pytest
from playwright.sync_api import Page, expect

from approvals.models import Decision, Kind, Status
from tests.browser.live import log_in, off_loop, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "enum": ["eu-west-1", "us-east-1"]},
        "replicas": {"type": "integer", "minimum": 1, "description": "How many nodes"},
        "dry_run": {"type": "boolean"},
    },
    "required": ["region", "replicas"],
}


def _question(team):
    return submit(
        team=team,
        kind=Kind.QUESTION,
        tool="ask_human",
        arguments={},
        summary="Which region should the new cluster go to?",
        answer_schema=SCHEMA,
    )


def test_it_answers_a_question_through_the_generated_form(
    live_console, page: Page, team, artifacts
) -> None:
    question = _question(team)
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{question.code}")
    expect(page.locator("#approve-button")).to_have_count(0)
    form = page.locator("#answer-form")
    form.get_by_label("region").select_option(label="us-east-1")
    form.get_by_label("replicas").fill("0")
    form.get_by_label("dry_run").select_option(label="No")
    page.locator("#answer-button").click()

    expect(form.get_by_role("alert")).to_contain_text("$.replicas")
    page.screenshot(path=str(artifacts / "question-refused.png"))
    assert off_loop(lambda: Decision.objects.filter(approval=question).exists()) is False

    page.locator("#answer-form").get_by_label("replicas").fill("3")
    page.locator("#answer-button").click()
    expect(page.locator("#question-answer")).to_contain_text('"replicas": 3')
    page.screenshot(path=str(artifacts / "question-answered.png"))

    def stored():
        decision = Decision.objects.get(approval=question)
        return decision.status, decision.answer

    assert off_loop(stored) == (
        Status.APPROVED,
        {"region": "us-east-1", "replicas": 3, "dry_run": False},
    )


def test_on_a_phone_the_end_of_the_page_scrolls_out_from_under_the_answer_form(
    live_console, phone_page: Page, team, artifacts
) -> None:
    question = _question(team)
    page = phone_page
    log_in(page, live_console.url, "alice")
    page.goto(f"{live_console.url}/requests/{question.code}")
    expect(page.locator("#answer-form")).to_be_visible()

    # The answer form makes the bar far taller than approve and deny: scrolled to the end, the
    # comment box and its button show above the bar, not under it. (Scrolled again on each try:
    # the page's room for the bar follows the bar's size as the browser lays it out.)
    clear_of_the_bar = """() => {
        window.scrollTo(0, document.documentElement.scrollHeight);
        const button = document.querySelector("form.comment button").getBoundingClientRect();
        return button.bottom <= document.getElementById("decide").getBoundingClientRect().top;
    }"""
    try:
        page.wait_for_function(clear_of_the_bar, timeout=5000)
    finally:
        page.screenshot(path=str(artifacts / "question-phone-end.png"))
    bar = page.locator("#decide").bounding_box()
    comment = page.get_by_role("button", name="Comment", exact=True).bounding_box()
    assert comment is not None and bar is not None
    assert comment["y"] + comment["height"] <= bar["y"], (comment, bar)
