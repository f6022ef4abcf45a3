"""Domain events: services say what happened; whoever cares reacts.

A service emits an event and does not know who listens, so the core (the state machine, run
closing) imports none of the things that react to it: realtime pushes, notifications, AAP
webhooks, the circuit breaker. Subscribers are wired in each app's AppConfig.ready().

Two moments, chosen by the subscriber:
- IN_TRANSACTION: called at once, inside the emitter's transaction. For writes that must commit
  with the change or not at all (outbox rows: notifications, AAP webhook events), and for
  reactions the rest of the same transaction depends on (the circuit breaker after a denial).
- AFTER_COMMIT: scheduled with transaction.on_commit, so nobody is told of a change that was
  rolled back (realtime pushes). They are scheduled before the in-transaction subscribers run,
  so they go out before anything those schedule (waiting agents hear of a decision first).
"""

from collections import defaultdict
from collections.abc import Callable
from enum import StrEnum
from functools import partial
from typing import Any

from django.db import transaction


class Phase(StrEnum):
    IN_TRANSACTION = "in_transaction"
    AFTER_COMMIT = "after_commit"


Handler = Callable[[Any], None]

_subscribers: dict[type, list[tuple[Phase, Handler]]] = defaultdict(list)


def subscribe(event_type: type, handler: Handler, *, phase: Phase) -> None:
    """Call `handler(event)` for every `event_type` emitted. Subscribing twice is a no-op
    (ready() may run more than once in tests)."""
    if (phase, handler) not in _subscribers[event_type]:
        _subscribers[event_type].append((phase, handler))


def emit(event: object) -> None:
    subscribers = _subscribers.get(type(event), [])
    for phase, handler in subscribers:
        if phase == Phase.AFTER_COMMIT:
            transaction.on_commit(partial(handler, event))
    for phase, handler in subscribers:
        if phase == Phase.IN_TRANSACTION:
            handler(event)
