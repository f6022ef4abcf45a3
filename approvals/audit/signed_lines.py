"""Signed exports on disk: gzip'd JSON Lines of {"kind", "data"} closed by a SHA-256.

One format for every archive the console writes (retention archives, audit archives, a run's
record): each line is {"kind": ..., "data": ...}, and the last is {"kind": "end", "data":
{"sha256": ...}} over every line before it, so a file cut short or edited is caught. Written and
read one line at a time: an audit archive can hold a month of records.
"""

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from django.core.serializers.json import DjangoJSONEncoder


class SignedLinesProblem(Exception):
    """Why an export (a retention archive, an audit archive, a run's record) does not verify."""


def signed_line(kind: str, data: Any) -> bytes:
    return (
        json.dumps({"kind": kind, "data": data}, cls=DjangoJSONEncoder, sort_keys=True) + "\n"
    ).encode()


class SignedLinesWriter:
    """Writes a new gzip'd signed export: never overwrites a file; fsyncs what it calls durable."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.raw: IO[bytes] = path.open("xb")  # never overwrite an archive
        self.gzip = gzip.GzipFile(fileobj=self.raw, mode="wb")
        self.digest = hashlib.sha256()

    def write(self, line: bytes) -> None:
        self.digest.update(line)
        self.gzip.write(line)

    def make_durable(self) -> None:
        self.gzip.flush()  # a sync flush: everything so far is decodable from the file
        self.raw.flush()
        os.fsync(self.raw.fileno())

    def close(self) -> str:
        """Write the closing checksum, fsync the file and its directory entry; the checksum."""
        closing = self.digest.hexdigest()
        self.gzip.write(signed_line("end", {"sha256": closing}))
        self.gzip.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        # A file fsync'd but not its directory entry can vanish in a crash: the name is durable
        # only once the directory is.
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return closing

    def abandon(self) -> None:
        """Close and remove a file this writer created but could not finish."""
        self.raw.close()
        self.path.unlink(missing_ok=True)


class SignedEntries:
    """The (kind, data) of each line of a signed export, in order, streamed; SignedLinesProblem
    when a line is not JSON of that shape, or, at the end, when the closing SHA-256 is missing
    or does not cover the lines. After a whole iteration, `closing_sha256` is that checksum."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self.lines = lines
        self.closing_sha256 = ""

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        digest = hashlib.sha256()
        ended = False
        try:
            for number, line in enumerate(self.lines, start=1):
                if ended:
                    raise SignedLinesProblem(f"line {number}: data after the closing checksum")
                entry = json.loads(line)
                kind, data = entry["kind"], entry["data"]
                if kind == "end":
                    if data["sha256"] != digest.hexdigest():
                        raise SignedLinesProblem(
                            "the closing SHA-256 does not match: lines changed"
                        )
                    ended = True
                    continue
                digest.update(line)
                yield kind, data
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise SignedLinesProblem(f"not a whole export ({error})") from None
        if not ended:
            raise SignedLinesProblem("no closing checksum: the export was cut short")
        self.closing_sha256 = digest.hexdigest()
