"""An ambiguous send end to end: the sandbox accepts the message but never answers (a
timeout after the request left). AutoDM must not resend it, and Instagram's echo webhook
must settle it as `sent` with the real message id."""

from __future__ import annotations

import httpx
import pytest
from demo import DemoCreator, user_messages

from shared.contracts.events import utcnow
from tests.e2e.test_backbone import sandbox_messages, settle

pytestmark = pytest.mark.e2e


async def test_a_send_whose_answer_never_came_is_settled_by_its_echo_not_resent(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    igsid = await user_messages(sandbox, creator, "hung.up")
    # Longer than the sender's provider timeout (10 s): the message is recorded (and echoed)
    # first, then the answer never comes.
    fault = {
        "error": "timeout",
        "scope": "instagram",
        "timeout_seconds": 12,
        "timeout_records_message": True,
    }
    (await sandbox.put("/_sandbox/faults", json=fault)).raise_for_status()
    try:
        body = {
            "creator_id": str(creator.creator_id),
            "name": "Hugo",
            "instagram": {
                "username": "hung.up",
                "igsid": igsid,
                "last_inbound_at": utcnow().isoformat(),
            },
        }
        created = await api.post("/api/leads", json=body)
        assert created.status_code == 201, created.text
        lead = await settle(api, created.json()["id"], "sent", timeout_s=40)
    finally:
        await sandbox.delete("/_sandbox/faults")

    [message] = await sandbox_messages(sandbox, creator)  # exactly one: never resent
    assert message["recipient_id"] == igsid
    assert lead["dm"]["provider_message_id"] == message["message_id"]
    assert "echo" in (lead["dm"]["reason"] or "")
