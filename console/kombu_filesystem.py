"""kombu's filesystem transport, with messages written atomically.

The stock transport creates `<name>.msg` and then writes into it, while a consuming worker lists
the folder, moves any `.msg` file away and reads it: a worker that picks a file up between the
create and the write reads an empty or partial message, fails to decode it and loses it. Here a
message is written under a name the consumer ignores and renamed into place when complete
(rename is atomic within a folder), so a consumer only ever sees whole messages.
"""

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # Same signature as filesystem.Channel._put, which kombu itself declares with `payload` where
    # its base AbstractChannel._put says `message`: mypy reports kombu's mismatch on us.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.writing"
        try:
            with open(partial, "wb") as message_file:
                message_file.write(str_to_bytes(dumps(payload)))
                message_file.flush()
                os.fsync(message_file.fileno())
            os.rename(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
