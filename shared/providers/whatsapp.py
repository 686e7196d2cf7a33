"""WhatsApp Cloud API: `POST /{phone-number-id}/messages` (platform facts §4b).

Free-form text may only go inside the 24 h customer-service window; outside it only an
approved template. This client sends what it is told: the window and opt-in rules are the
sender's, checked before a request is built.

Every send may carry `biz_opaque_callback_data`, which Meta echoes in each status webhook
of the message (platform facts §4e): a send whose answer never came is recognised by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.providers.graph_http import call_graph

MAX_TEXT_CHARS = 4096
MAX_CALLBACK_DATA_CHARS = 512


@dataclass(frozen=True)
class TemplateMessage:
    name: str
    language: str
    body_parameters: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        template: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if self.body_parameters:
            params = [{"type": "text", "text": value} for value in self.body_parameters]
            template["components"] = [{"type": "body", "parameters": params}]
        return template


@dataclass(frozen=True)
class AcceptedMessage:
    wamid: str
    wa_id: str | None
    # The recipient's business-scoped user id, when Meta's answer names it.
    user_id: str | None = None


def addressed(to: str) -> dict[str, str]:
    """Meta's send addresses a phone number by `to` and a business-scoped user id (BSUID,
    `US.1349…`: never digits alone) by `recipient` (issue 19)."""
    return {"recipient": to} if "." in to else {"to": to}


class WhatsAppClient:
    def __init__(self, http: httpx.AsyncClient, api_version: str) -> None:
        self._http = http
        self._version = api_version

    async def phone_number(self, phone_number_id: str, token: str) -> dict[str, Any]:
        """The number's fields, as this token sees them: a MetaError if the token may not use
        the number (or either does not exist)."""
        return await call_graph(
            self._http,
            "whatsapp",
            "get_phone_number",
            "GET",
            f"/{self._version}/{phone_number_id}",
            params={"fields": "id,display_phone_number,verified_name"},
            headers={"Authorization": f"Bearer {token}"},
        )

    async def send_text(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        text: str,
        callback_data: str | None = None,
    ) -> AcceptedMessage:
        if not text or len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text must be 1..{MAX_TEXT_CHARS} characters")
        body = {"type": "text", "text": {"preview_url": False, "body": text}}
        return await self._send(phone_number_id, token, to, "send_text", body, callback_data)

    async def send_template(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        template: TemplateMessage,
        callback_data: str | None = None,
    ) -> AcceptedMessage:
        body = {"type": "template", "template": template.as_json()}
        return await self._send(phone_number_id, token, to, "send_template", body, callback_data)

    async def _send(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        operation: str,
        body: dict[str, Any],
        callback_data: str | None,
    ) -> AcceptedMessage:
        if callback_data is not None:
            if len(callback_data) > MAX_CALLBACK_DATA_CHARS:
                raise ValueError(f"callback data must be at most {MAX_CALLBACK_DATA_CHARS} chars")
            body = body | {"biz_opaque_callback_data": callback_data}
        answer = await call_graph(
            self._http,
            "whatsapp",
            operation,
            "POST",
            f"/{self._version}/{phone_number_id}/messages",
            json={"messaging_product": "whatsapp", "recipient_type": "individual"}
            | addressed(to)
            | body,
            headers={"Authorization": f"Bearer {token}"},
        )
        return accepted_from(answer)


def accepted_from(answer: dict[str, Any]) -> AcceptedMessage:
    """Meta's answer to a send. "This response only indicates that the API successfully
    accepted your request": delivery comes by status webhook, keyed by this wamid."""
    contacts = answer.get("contacts") or [{}]
    return AcceptedMessage(
        wamid=str(answer["messages"][0]["id"]),
        wa_id=contacts[0].get("wa_id"),
        user_id=contacts[0].get("user_id"),
    )
