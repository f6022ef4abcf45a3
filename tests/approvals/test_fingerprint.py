"""A submission's fingerprint is stored with its request and compared when an agent sends the
same Idempotency-Key again (a different fingerprint is a 409). So its value must never change
from one version of the console to the next: a request created before an upgrade and retried
after it would be refused. These digests were computed by the console as it was when they were
written; a change here means stored requests no longer match their own retries."""

import pytest

from approvals.services.creation import Submission

FINGERPRINTS = [
    (
        Submission(
            tool="refund",
            arguments={"order": "A-1", "amount": 12.5, "items": [1, {"b": 2, "a": None}]},
            timeout="10m",
        ),
        "7f755c721403287ff17adf81011e33d6cadd0f3a5bcc7c88d4e0144ed2632ac0",
    ),
    (
        Submission(
            tool="send_email",
            arguments={"to": "a@example.test"},
            timeout="1h",
            summary="Say hi",
            reasoning="asked",
            context={"k": [1, 2]},
            confidence=0.75,
            impact="high",
            run="r-1",
            labels=["x", "y"],
            arguments_schema={"type": "object"},
            links=[{"label": "Ticket", "url": "https://example.test/1"}],
            arguments_raw='{"to": "a@example.test", "n": 1.0000000000000001}',
            context_raw='{"k":[1,2]}',
            server_raw='"srv"',
        ),
        "f1ee154df64d85a8cfbe14762e9461f67008683df0ee0f7af3b3bacc9fa37226",
    ),
    (
        Submission(
            tool="ask",
            arguments={},
            timeout="5m",
            kind="question",
            answer_schema={"type": "string"},
        ),
        "e28c2fde024c1fcfeaa67d0fb94ad15ce61228ec8cf584c9772c5ab3d3d012a4",
    ),
]


@pytest.mark.parametrize(("submission", "digest"), FINGERPRINTS)
def test_a_fingerprint_is_the_one_earlier_versions_stored(
    submission: Submission, digest: str
) -> None:
    assert submission.fingerprint() == digest


def test_the_fingerprint_reads_the_arguments_without_changing_them() -> None:
    arguments = {"nested": {"list": [1, 2]}}
    submission = Submission(tool="t", arguments=arguments, timeout="1m")
    submission.fingerprint()
    assert arguments == {"nested": {"list": [1, 2]}}
    assert submission.arguments is arguments
