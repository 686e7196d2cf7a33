"""What a background loop (outbox relay, sweeper, poller) says about a dependency outage:
one warning when it starts, one when it ends, and the `autodm_background_outage` gauge
meanwhile; not a traceback on every failed pass (issue #14: one a second per process).

A failure that is not an outage is still logged in full each time: that is a bug to see.
"""

from __future__ import annotations

import time

from shared.platform.logs import get_logger
from shared.platform.metrics import BACKGROUND_OUTAGE, BACKGROUND_OUTAGES
from shared.platform.outages import is_outage

log = get_logger(__name__)


class OutageLog:
    def __init__(self, loop: str) -> None:
        self.loop = loop
        self._since: float | None = None
        BACKGROUND_OUTAGE.labels(loop=loop).set(0)

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, message: str) -> None:
        """Call from the loop's `except`: `message` is what a non-outage failure logs."""
        if not is_outage(exc):
            log.error(message, loop=self.loop, exc_info=exc)
            return
        if self._since is not None:
            log.debug("dependency still unavailable", loop=self.loop, error=repr(exc)[:200])
            return
        self._since = time.monotonic()
        BACKGROUND_OUTAGE.labels(loop=self.loop).set(1)
        BACKGROUND_OUTAGES.labels(loop=self.loop).inc()
        log.warning("dependency outage started", loop=self.loop, error=repr(exc)[:200])

    def succeeded(self) -> None:
        """Call after each pass that went through."""
        if self._since is None:
            return
        lasted = time.monotonic() - self._since
        self._since = None
        BACKGROUND_OUTAGE.labels(loop=self.loop).set(0)
        log.warning("dependency outage ended", loop=self.loop, lasted_s=round(lasted, 1))
