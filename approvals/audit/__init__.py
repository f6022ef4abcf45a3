"""The audit trail: an append-only, hash-chained record of every effectful action.

The bottom layer both apps write to: it imports nothing of approvals or agents above their
models (import-linter holds this). Modules: trail (appending, keys, verification, anchors),
models (its tables), export (streamed exports), api (the export endpoint), admin (audited admin
saves), guards (database triggers' connection hooks), signals (logins and lockouts), signed_lines
(the signed export files), archive and prune (archiving the oldest records, then deleting them).
"""

from approvals.audit.keys import (
    GENESIS_HASH,
    HASHED_FIELDS,
    AuditKeys,
    UnknownAuditKey,
    audit_key_id,
    audit_keys,
    audit_record_digest,
)
from approvals.audit.trail import (
    AuditAction,
    AuditActor,
    AuditEntry,
    audit_record,
    audit_records_append,
)
from approvals.audit.verification import (
    AnchorsCheck,
    AuditAnchor,
    ChainBreak,
    ChainVerification,
    SignedLines,
    SignedLinesProblem,
    audit_anchor_current,
    audit_anchors_check,
    audit_chain_verify,
    audit_records_verify,
    signed_lines_verify,
)

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "AnchorsCheck",
    "AuditAction",
    "AuditActor",
    "AuditAnchor",
    "AuditEntry",
    "AuditKeys",
    "ChainBreak",
    "ChainVerification",
    "SignedLines",
    "SignedLinesProblem",
    "UnknownAuditKey",
    "audit_anchor_current",
    "audit_anchors_check",
    "audit_chain_verify",
    "audit_key_id",
    "audit_keys",
    "audit_record",
    "audit_record_digest",
    "audit_records_append",
    "audit_records_verify",
    "signed_lines_verify",
]
