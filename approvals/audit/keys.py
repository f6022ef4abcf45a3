"""The audit chain's keys and digests: what a record's hash covers and how it is computed.

Apart from appending (trail) and verifying (verification) because both use it: a record's hash is
an HMAC-SHA256, under the key it names (settings.AUDIT_HMAC_KEYS, the last one signs), over its
canonical content plus the previous record's hash; records from before keying are plain SHA-256.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any
from uuid import UUID

from django.conf import settings

from approvals.audit.models import AuditRecord

GENESIS_HASH = "0" * 64


def jsonable(value: Any) -> Any:
    """The value as it will read back from a JSON column, so the hash survives the round trip:
    what json.loads(json.dumps(value, default=str, sort_keys=True)) gives.

    Walked rather than encoded and parsed again: every request written makes a few of these
    (its audit records' before and after), and the walk costs a fraction of the round trip.
    Anything the walk does not know goes the round trip itself."""
    if type(value) in _READ_BACK_AS_THEY_ARE:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # an enum member's plain text, as JSON writes it
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        if all(type(key) is str for key in value):
            return {key: jsonable(value[key]) for key in sorted(value)}
        return _read_back(value)  # other keys: their JSON text and sort order, as written
    if isinstance(value, datetime | date | time | UUID | Decimal):
        return str(value)  # json.dumps' default=str
    return _read_back(value)


# Values of these exact types read back from JSON equal to themselves and of the same type
# (subclasses, such as enum members, read back as their base type: the walk below).
_READ_BACK_AS_THEY_ARE = frozenset({type(None), bool, str, int, float})


def _read_back(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


# Records appended together share their moment (approvals.audit.trail): formatted once.
@lru_cache(maxsize=16)
def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# The fields the hash covers: all of them except the hash itself (and the surrogate id).
HASHED_FIELDS = (
    "sequence",
    "created_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "object_type",
    "object_id",
    "object_label",
    "ip_address",
    "user_agent",
    "request_id",
    "before",
    "after",
    "context",
    "prev_hash",
    "key_id",
)


class UnknownAuditKey(Exception):
    """A record names a key this console does not have (retired keys must be kept)."""


@dataclass(frozen=True)
class AuditKeys:
    signing_id: str
    signing_key: bytes
    by_id: dict[str, bytes]


def audit_key_id(key: bytes) -> str:
    # Derived from the key rather than configured beside it, so an id can never be paired with
    # the wrong key. 12 hex digits of a hash say nothing usable about a 256-bit key.
    return hashlib.sha256(b"approvals.audit key id\0" + key).hexdigest()[:12]


@cache
def _keys_from(configured: tuple[str, ...]) -> AuditKeys:
    by_id = {audit_key_id(key.encode()): key.encode() for key in configured}
    signing = configured[-1].encode()
    return AuditKeys(signing_id=audit_key_id(signing), signing_key=signing, by_id=by_id)


def audit_keys() -> AuditKeys:
    """The key new records are signed with (the last configured) and every key known by id."""
    return _keys_from(tuple(settings.AUDIT_HMAC_KEYS))


# What json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes,
# without building an encoder for every record (json.dumps does, given any option).
_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def audit_record_digest(record: AuditRecord, keys: AuditKeys | None = None) -> str:
    """The record's hash: HMAC-SHA256 under the key it names, or SHA-256 for an unkeyed one."""
    content = {name: getattr(record, name) for name in HASHED_FIELDS}
    content["created_at"] = _canonical_time(record.created_at)
    if not record.key_id:
        # Hashed as records were before keying, so upgraded installs still verify.
        del content["key_id"]
        return hashlib.sha256(_canonical_json(content).encode()).hexdigest()
    key = (keys or audit_keys()).by_id.get(record.key_id)
    if key is None:
        raise UnknownAuditKey(record.key_id)
    # hmac.digest: the one-shot form (OpenSSL's), without an HMAC object per record.
    return hmac.digest(key, _canonical_json(content).encode(), "sha256").hex()
