"""Gate a function on a reviewer's approval with the SDK's decorator.

    pip install ./agents/sdk            # or the wheel: agent-approval-console-sdk
    export APPROVAL_CONSOLE_URL=http://127.0.0.1:8000 APPROVAL_CONSOLE_CREDENTIAL=acs_…
    python decorator.py pay_7 4900

The call blocks while the request waits in the console (a long poll: it returns the moment a
reviewer decides), then runs with the arguments the reviewer approved, which may be changed ones.
A denial, an expiry or a cancellation raises instead, and the refund does not happen.
"""

import json
import sys
import time

from approval_console import ApprovalNotGranted, Console

# The URL and the agent credential come from APPROVAL_CONSOLE_URL and APPROVAL_CONSOLE_CREDENTIAL.
console = Console()


@console.requires_approval(
    impact="high",
    timeout="10m",  # how long reviewers have to decide; no decision means no refund
    summary=lambda payment_id, amount, currency: f"Refund {amount / 100:.2f} {currency}",
)
def issue_refund(payment_id: str, amount: int, currency: str = "EUR") -> dict[str, object]:
    # Runs only once approved, with the approved arguments.
    refunded = {"payment_id": payment_id, "amount": amount, "currency": currency}
    return {"refunded": refunded, "resumed_at": time.time()}


if __name__ == "__main__":
    payment_id, amount = sys.argv[1], int(sys.argv[2])
    try:
        outcome = issue_refund(payment_id, amount)
    except ApprovalNotGranted as refusal:  # denied, expired or cancelled
        outcome = {"not_run": refusal.decision.status, "note": refusal.decision.note}
    # When the answer arrived (the refund ran, or the refusal was raised), for the example's test
    # to measure the wait after the decision.
    print(json.dumps({"resumed_at": time.time(), **outcome}), flush=True)
