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


def test_it_answers_a_question_through_the_generated_form(
    live_console, page: Page, team, artifacts
) -> None:
    question = submit(
        team=team,
        kind=Kind.QUESTION,
        tool="ask_human",
        arguments={},
        summary="Which region should the new cluster go to?",
        answer_schema=SCHEMA,
    )
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
