"""One log record of a kind per minute, with a count of the ones held back.

While Redis is down, channels_redis's pub/sub reader logs the same error with its traceback
every second, and every decision's push to reviewers logs its failure: an operator reading the
log for what changed would find only that. A record of a kind (logger and message template)
that was let through within the window is dropped, and the next one let through says how many
were. Attached to those loggers only (console.settings LOGGING): everything else is kept whole.
"""

import logging
import time
from collections.abc import Callable


class OncePerWindow(logging.Filter):
    def __init__(self, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.clock = seconds, clock
        # (logger, template) -> (when one was last let through, how many dropped since)
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.seconds:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        self._seen[key] = (now, 0)
        if seen is not None and seen[1]:
            # Rendered here: the template may hold % placeholders that the arguments fill.
            record.msg = f"{record.getMessage()} ({seen[1]} more like this not logged)"
            record.args = None
        return True
