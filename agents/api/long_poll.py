"""The long poll (`?wait=`), written once for every agent API that offers it: the native API's
DRF view, its ASGI fast path, and AAP's request read.

A read of a pending request with a wait parks on the process's realtime subscription (no thread,
no connection held) until the request is decided or the wait runs out, then answers what is true
then. It wakes at the request's deadline at the latest, so the re-read records the expiry.
"""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async

from approvals import realtime
from approvals.models import ApprovalRequest, Status

Document = dict[str, Any]


def approval_is_resolved(code: UUID | str) -> bool:
    """Whether a request has left `pending`: the long poll's check before it parks."""
    return ApprovalRequest.objects.filter(code=code).exclude(status=Status.PENDING).exists()


_is_resolved = sync_to_async(approval_is_resolved)


async def long_poll_document(
    *,
    code: Any,
    found: tuple[Document, float],
    wait: float,
    read_again: Callable[[], Awaitable[Document | None]],
    is_resolved: Callable[[], Awaitable[bool]] | None = None,
    take_pushed: bool = False,
) -> Document | None:
    """What a read with `?wait=` answers, given what a read found now (the document and the
    seconds to the request's deadline): that document at once if it is decided or no wait was
    asked; otherwise, once the decision arrives or the wait runs out, `read_again()` (None when
    that finds nothing: the credential was revoked meanwhile, say). `is_resolved` checks the
    table before parking (by default on Django's thread).

    `take_pushed`: answer with the document the decider pushed after its commit instead of
    reading again. Only for a caller that has just been shown to own the request and whose
    document is the native one realtime pushes (the fast path).
    """
    document, deadline_in = found
    if document["status"] != Status.PENDING or wait <= 0:
        return document
    timeout = max(0.0, min(wait, deadline_in + 0.05))
    pushed = await realtime.wait_until_resolved(
        code=code, timeout=timeout, is_resolved=is_resolved or partial(_is_resolved, code)
    )
    if pushed is not None and take_pushed:
        return pushed
    return await read_again()
