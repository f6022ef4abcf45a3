"""HumanLayer's own client, pointed at the console: existing HumanLayer code keeps working.

    pip install humanlayer==0.7.9
    export HUMANLAYER_API_BASE=http://127.0.0.1:8000/humanlayer/v1
    export HUMANLAYER_API_KEY=acs_…          # the console's agent credential
    python humanlayer_client.py pay_7 4900

HumanLayer's client sends a call's keyword arguments only: call the gated function with keyword
arguments (`issue_refund(payment_id=..., amount=...)`). A positional call reaches the reviewer
with empty arguments (the console shows a warning on such a request). The client polls on its
own schedule (every few seconds), so it learns of a decision a little later than the SDK does.
"""

import json
import sys
import time

from humanlayer import HumanLayer

hl = HumanLayer(run_id="refund-run")  # HUMANLAYER_API_BASE and HUMANLAYER_API_KEY


@hl.require_approval()
def issue_refund(payment_id: str, amount: int) -> dict[str, object]:
    # Runs only once a reviewer approved it.
    return {"refunded": {"payment_id": payment_id, "amount": amount}}


if __name__ == "__main__":
    # Keyword arguments: HumanLayer sends these, and only these, to the reviewer.
    outcome = issue_refund(payment_id=sys.argv[1], amount=int(sys.argv[2]))
    # On a denial HumanLayer returns a message for the model instead of calling the function.
    if isinstance(outcome, str):
        outcome = {"not_run": outcome}
    print(json.dumps({**outcome, "resumed_at": time.time()}), flush=True)
