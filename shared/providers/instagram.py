"""Instagram API with Instagram Login: the Send API (graph.instagram.com, §1c, §1e), and
the Conversations API's reads (what a conversation holds, for reconciliation).

Messages go by IGSID (`recipient.id`) or, once per comment, by `recipient.comment_id`.
Never by username: Meta rejects it (100/2534014) and AutoDM never tries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


# --- Conversations API (what a conversation holds; 2 calls/s per account, §1h) -----------


@dataclass(frozen=True)
class ListedMessage:
    message_id: str
    created_at: datetime


@dataclass(frozen=True)
class MessageDetail:
    message_id: str
    created_at: datetime
    from_id: str
    to_ids: tuple[str, ...]
    text: str


def _graph_time(value: Any) -> datetime:
    # Meta writes `2024-07-29T21:45:15+0000`; fromisoformat reads that from Python 3.11 on.
    return datetime.fromisoformat(str(value))


class InstagramConversations:
    """Read-only calls of the Conversations API; the caller paces them (2 calls/s)."""

    def __init__(self, http: httpx.AsyncClient, api_version: str) -> None:
        self._http = http
        self._version = api_version

    async def conversation_with(self, account_ig_id: str, token: str, igsid: str) -> str | None:
        """The id of the account's conversation with this person, if Instagram has one."""
        body = await self._get(
            f"/{self._version}/{account_ig_id}/conversations",
            token,
            {"platform": "instagram", "user_id": igsid},
        )
        data = body.get("data") or []
        return str(data[0]["id"]) if data else None

    async def messages(self, conversation_id: str, token: str) -> list[ListedMessage]:
        """The conversation's most recent messages (Instagram lists 20), newest first."""
        body = await self._get(f"/{self._version}/{conversation_id}", token, {"fields": "messages"})
        listed = (body.get("messages") or {}).get("data") or []
        return [ListedMessage(str(m["id"]), _graph_time(m["created_time"])) for m in listed]

    async def message(self, message_id: str, token: str) -> MessageDetail:
        fields = "id,created_time,from,to,message"
        m = await self._get(f"/{self._version}/{message_id}", token, {"fields": fields})
        to = (m.get("to") or {}).get("data") or []
        return MessageDetail(
            message_id=str(m["id"]),
            created_at=_graph_time(m["created_time"]),
            from_id=str((m.get("from") or {}).get("id") or ""),
            to_ids=tuple(str(t.get("id") or "") for t in to),
            text=str(m.get("message") or ""),
        )

    async def _get(self, path: str, token: str, params: dict[str, str]) -> dict[str, Any]:
        return await call_graph(
            self._http,
            "instagram",
            "conversations",
            "GET",
            path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
