"""Python SDK for the Agent Approval Console. Depends on httpx only: no Django needed.

from approval_console import Console
console = Console("https://console.example", credential)
decision = console.request_approval("issue_refund", {"payment_id": "pay_1", "amount": 4900})
"""

from ._version import __version__
from ._wire import RetryPolicy
from .client import AsyncConsole, Console
from .errors import (
    ApprovalCancelled,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalNotGranted,
    ConsoleApiError,
    ConsoleError,
    ConsoleUnreachable,
)
from .models import Approval, Decision
from .outcomes import arun_approved, run_approved

__all__ = [
    "Approval",
    "ApprovalCancelled",
    "ApprovalDenied",
    "ApprovalExpired",
    "ApprovalNotGranted",
    "AsyncConsole",
    "Console",
    "ConsoleApiError",
    "ConsoleError",
    "ConsoleUnreachable",
    "Decision",
    "RetryPolicy",
    "__version__",
    "arun_approved",
    "run_approved",
]
