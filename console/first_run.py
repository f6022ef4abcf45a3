"""Files a console makes for itself on its first start (the generated SECRET_KEY, the audit
HMAC key), safely when several processes start at once.

`make run` starts the server, the worker and beat together on a new checkout, and each reads
its settings. Checking whether the file exists, then writing it, lets two processes each write
a key of their own (the last one wins on disk, and the others keep a key nobody else has: links
one signs, another refuses), or read a file another is half-way through writing.
"""

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def file_made_once(path: Path, content: Callable[[], str]) -> str:
    """The text of `path`, written first with `content()` if it does not exist yet: readable by
    its user only from the start, and whole. Every process starting at the same moment ends up
    with the text of the first that wrote it: each writes its own aside, then links it into
    place, which only one can do; the others read the winner's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, draft = tempfile.mkstemp(dir=path.parent)  # 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(content())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    return path.read_text()
