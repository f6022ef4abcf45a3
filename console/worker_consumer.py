"""The consumer every worker of this app runs (CELERY_WORKER_CONSUMER, console/settings.py): no
gossip and no mingle, however the worker was started.

Celery has no setting for either, only the command line's `--without-gossip --without-mingle`
(celery/celery#2566: the maintainers keep such worker features out of the configuration), so a
worker started as `celery -A console worker` without them, by an operator's own unit file or
container, got both. Each is one more broker channel, and a second channel is what let a Redis
restart end the worker (console/settings.py, CELERY_WORKER_ENABLE_REMOTE_CONTROL). Their steps
read the flags from the options the worker passes its consumer: this sets them there, so a
worker never has them and the flags, still accepted, change nothing. Nothing here needs them:
mingle syncs revoked tasks between workers (nothing revokes), gossip watches other workers for
remote control and events (both off; a supervisor watches the workers, docs/operations.md).
"""

from typing import Any

from celery.worker.consumer import Consumer

# The options the Mingle and Gossip consumer steps are turned off by (celery/worker/consumer).
ONE_CHANNEL_OPTIONS = {"without_gossip": True, "without_mingle": True}


class OneChannelConsumer(Consumer):
    def __init__(
        self, *args: Any, worker_options: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        options = {**(worker_options or {}), **ONE_CHANNEL_OPTIONS}
        super().__init__(*args, worker_options=options, **kwargs)
