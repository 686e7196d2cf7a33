"""The public form's counting windows: fixed one-minute windows (http/web/form_limits.py
counts in them; the workers' housekeeping deletes the ones no estimate reads any more)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WINDOW = timedelta(minutes=1)


def window_start(now: datetime) -> datetime:
    seconds = WINDOW.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)
