"""Reconciling ambiguous Instagram sends with Instagram's echo of them.

A send whose request left but whose answer never came (a timeout) may or may not have
reached the person: it is parked as `unknown` and never resent. Instagram sends a
`message` webhook with `is_echo: true` for every message the account sends, through the
API or not (platform facts §3c). The send intent records what was sent, from which
account, to whom (`dm_sends.account_id`, `recipient_igsid`, `text_sha256`); an echo that
matches an intent still `sending` or `unknown` proves the DM was sent and carries its
message id (services/webhook_ingest/inbound.py). Whichever comes second, the echo or the
sender's timeout, settles it as `sent` (services/instagram_sender/sending.py).

WhatsApp has no echo; its status webhooks name the send instead
(services/whatsapp_sender/reconciliation.py).
"""

from __future__ import annotations

import hashlib

# The states whose outcome an echo can still settle.
UNSETTLED = ("sending", "unknown")

RECONCILED_REASON = "no answer from Instagram, but its echo of the message shows it was sent"


def text_digest(text: str) -> str:
    """What is compared: the text itself is not kept on the intent (it is the lead's data)."""
    return hashlib.sha256(text.encode()).hexdigest()
