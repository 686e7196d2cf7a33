"""The WhatsApp sender's housekeeping: statuses that never met their send.

A status waits in the backlog for the send it names to be recorded, which takes seconds
(Meta answered, or a timed-out send is reconciled). One still there after the retention
was never ours to apply: most often a message another tool sent from the same number.
"""

from __future__ import annotations

from datetime import timedelta

from shared.db.models import WhatsAppStatusBacklog
from shared.db.retention import Sweep, older_than


def whatsapp_sweeps(backlog_retention: timedelta) -> dict[str, Sweep]:
    received = WhatsAppStatusBacklog.received_at
    return {
        "whatsapp_status_backlog": older_than(
            WhatsAppStatusBacklog, received, lambda now: now - backlog_retention
        )
    }
