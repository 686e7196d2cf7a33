"""Instagram API with Instagram Login: the Send API (graph.instagram.com, §1c, §1e).

Messages go by IGSID (`recipient.id`) or, once per comment, by `recipient.comment_id`.
Never by username: Meta rejects it (100/2534014) and AutoDM never tries.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from shared.providers.graph_http import call_graph

MAX_TEXT_BYTES = 1000  # "Message text must be UTF-8 and be 1,000 bytes or less."


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    recipient_id: str | None


class InstagramClient:
    def __init__(self, http: httpx.AsyncClient, api_version: str) -> None:
        self._http = http
        self._version = api_version

    async def send_text(
        self,
        account_ig_id: str,
        token: str,
        text: str,
        *,
        igsid: str | None = None,
        comment_id: str | None = None,
    ) -> SentMessage:
        if (igsid is None) == (comment_id is None):
            raise ValueError("exactly one of igsid or comment_id")
        if len(text.encode()) > MAX_TEXT_BYTES:
            raise ValueError(f"text is over {MAX_TEXT_BYTES} bytes")
        recipient = {"id": igsid} if igsid else {"comment_id": comment_id}
        body = await call_graph(
            self._http,
            "instagram",
            "private_reply" if comment_id else "send",
            "POST",
            f"/{self._version}/{account_ig_id}/messages",
            json={"recipient": recipient, "message": {"text": text}},
            headers={"Authorization": f"Bearer {token}"},
        )
        return SentMessage(
            message_id=str(body["message_id"]), recipient_id=body.get("recipient_id")
        )
