"""Credentials verified lately, so a creation by a caller seen before skips the lookup's round trip.

Every agent call starts with its credential's lookup: a round trip of its own, before the
creation's transaction can begin, because the agents' lock needs to know whose rows to lock. A
lone caller sending one tool call after another waits on it every time. Here each server process
remembers the credentials it verified (by the SHA-256 of the whole token: the plaintext is not
kept), and the next creation with one of them goes straight to its transaction. The lookup is
still made, in that transaction's first round trip, next to the agents' lock
(`CredentialsStillActive`, which approvals.services.approval_requests_create sends with it): if a
credential was revoked (or its agent changed) since it was verified, the creation is rolled back
before anything is written (`CredentialsChanged`) and the caller authenticates afresh. So a
revoked credential creates nothing once its revocation has committed, as before: the check runs
under the same transaction that writes.

Only creations use it (agents.api.intake). Other reads authenticate as before.
"""

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from agents.models import Agent
from agents.services import credentials_found, credentials_statement
from console.hot_statements import Statement, instance_from_row

# Enough for every agent of a large fleet on one server process; the oldest goes first.
REMEMBERED_MAX = 4096


@dataclass(frozen=True)
class _Remembered:
    prefix: str
    secret_digest: str
    agent_row: tuple[Any, ...]


_remembered: "OrderedDict[str, _Remembered]" = OrderedDict()
_lock = threading.Lock()  # the intake writers of several event loops (tests) share it


class CredentialsChanged(Exception):
    """A remembered credential is no longer active (revoked, or its agent changed): the
    creation's transaction is rolled back, and the caller authenticates afresh."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__(f"credentials no longer active: {', '.join(prefixes)}")
        self.prefixes = list(prefixes)


@dataclass
class CredentialsStillActive:
    """The lookup of remembered credentials, sent with a creation's first round trip
    (console.hot_statements.RidesAlong). `take` raises CredentialsChanged if one of them is
    no longer what was verified; otherwise it brings the agents up to date (a rename)."""

    agents: dict[str, tuple[str, Agent]]  # prefix -> (secret digest, the caller's instance)

    def statement(self) -> Statement:
        return credentials_statement(sorted(self.agents))

    def take(self, rows: list[tuple[Any, ...]]) -> None:
        by_prefix = {row[0]: row for row in rows}
        changed = []
        for prefix, (secret_digest, agent) in self.agents.items():
            row = by_prefix.get(prefix)
            current = None if row is None else instance_from_row(Agent, row[2:])
            if (
                row is None
                or current is None
                or current.pk != agent.pk
                or not hmac.compare_digest(row[1], secret_digest)
            ):
                changed.append(prefix)
                continue
            agent.__dict__.update(
                {field.attname: getattr(current, field.attname) for field in _FIELDS}
            )
        if changed:
            credentials_forget(changed)
            raise CredentialsChanged(changed)


_FIELDS = Agent._meta.concrete_fields
_ATTNAMES = [field.attname for field in _FIELDS]


def credentials_authenticate_remembered(
    *, tokens: list[str]
) -> tuple[dict[str, Agent | None], CredentialsStillActive | None]:
    """As credentials_authenticate, without a round trip when every token was verified lately.

    Returns the agents by token and, when they come from memory, the check to send with the
    creation's transaction (approval_requests_create's `checks`); None when they were just
    looked up. A token not remembered (new, or malformed, or wrong) sends every token through
    the lookup, and the ones that authenticate are remembered.
    """
    keys = {token: _key(token) for token in tokens}
    with _lock:
        hits = {token: _remembered.get(key) for token, key in keys.items()}
        for token, hit in hits.items():
            if hit is not None:
                _remembered.move_to_end(keys[token])
    if all(hit is not None for hit in hits.values()):
        agents: dict[str, Agent | None] = {}
        checked: dict[str, tuple[str, Agent]] = {}
        for token, hit in hits.items():
            assert hit is not None
            # One instance per credential in the batch, as the lookup gives.
            if hit.prefix not in checked:
                agent = Agent.from_db(DEFAULT_DB_ALIAS, _ATTNAMES, list(hit.agent_row))
                checked[hit.prefix] = (hit.secret_digest, agent)
            agents[token] = checked[hit.prefix][1]
        return agents, CredentialsStillActive(agents=checked)
    found = credentials_found(tokens)
    with _lock:
        for token, match in found.items():
            if match is None:
                continue
            _remembered[keys[token]] = _Remembered(
                prefix=match.prefix,
                secret_digest=match.secret_digest,
                agent_row=tuple(getattr(match.agent, field.attname) for field in _FIELDS),
            )
            _remembered.move_to_end(keys[token])
        while len(_remembered) > REMEMBERED_MAX:
            _remembered.popitem(last=False)
    return {token: match.agent if match else None for token, match in found.items()}, None


def credentials_forget(prefixes: Sequence[str]) -> None:
    """Forget what was remembered of these credentials (by prefix)."""
    gone = set(prefixes)
    with _lock:
        for key in [key for key, hit in _remembered.items() if hit.prefix in gone]:
            del _remembered[key]


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
