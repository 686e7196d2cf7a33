"""Webhook payloads for things that happen in the sandbox world, and their dispatch.

Shapes follow platform-facts §3c (Instagram, ``object: instagram``) and §4e (WhatsApp,
``object: whatsapp_business_account``).
"""

from __future__ import annotations

from typing import Any

from sandbox.state import (
    Comment,
    IgAccount,
    SandboxState,
    SentWaMessage,
    WaNumber,
)
from sandbox.wa_users import WaUser
from sandbox.webhooks import Delivery

# --- Instagram ---------------------------------------------------------------------


def _ig_messaging(
    account_id: str, sender: str, recipient: str, now_ms: int, event: dict[str, Any]
) -> dict[str, Any]:
    messaging = {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": now_ms}
    entry = {"id": account_id, "time": now_ms, "messaging": [messaging | event]}
    return {"object": "instagram", "entry": [entry]}


def ig_message(account_id: str, igsid: str, mid: str, text: str, now_ms: int) -> dict[str, Any]:
    return _ig_messaging(
        account_id, igsid, account_id, now_ms, {"message": {"mid": mid, "text": text}}
    )


def ig_echo(account_id: str, igsid: str, mid: str, text: str, now_ms: int) -> dict[str, Any]:
    """The business's own message echoed back (receivers must ignore is_echo)."""
    message = {"mid": mid, "text": text, "is_echo": True}
    return _ig_messaging(account_id, account_id, igsid, now_ms, {"message": message})


def ig_referral(account_id: str, igsid: str, ref: str | None, now_ms: int) -> dict[str, Any]:
    referral: dict[str, Any] = {"source": "IGME_SOURCE_LINK", "type": "OPEN_THREAD"}
    if ref is not None:
        referral = {"ref": ref} | referral
    return _ig_messaging(account_id, igsid, account_id, now_ms, {"referral": referral})


def ig_read(account_id: str, igsid: str, mid: str, now_ms: int) -> dict[str, Any]:
    return _ig_messaging(account_id, igsid, account_id, now_ms, {"read": {"mid": mid}})


def ig_comment(comment: Comment, media_product_type: str, now_s: int) -> dict[str, Any]:
    value = {
        "id": comment.comment_id,
        "from": {"id": comment.igsid, "username": comment.username},
        "text": comment.text,
        "media": {"id": comment.media_id, "media_product_type": media_product_type},
    }
    # "changes"-style entries carry `time` in seconds, messaging entries in milliseconds.
    entry = {
        "id": comment.account_id,
        "time": now_s,
        "changes": [{"field": "comments", "value": value}],
    }
    return {"object": "instagram", "entry": [entry]}


def send_instagram(
    state: SandboxState, account: IgAccount, field: str, event: str, payload: dict[str, Any]
) -> Delivery:
    """Send an Instagram webhook; like Meta, optionally only for subscribed fields.
    `field` is the subscription field (messages, comments, messaging_referral, ...)."""
    skip = None
    if state.settings.require_webhook_subscription and field not in account.subscribed_fields:
        skip = f"account {account.ig_user_id} is not subscribed to '{field}'"
    return state.webhooks.send("instagram", event, payload, skip_reason=skip, field=field)


# --- WhatsApp ----------------------------------------------------------------------


def _wa_envelope(number: WaNumber, value: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        "display_phone_number": number.display_phone_number,
        "phone_number_id": number.phone_number_id,
    }
    change_value = {"messaging_product": "whatsapp", "metadata": metadata} | value
    entry = {"id": number.waba_id, "changes": [{"field": "messages", "value": change_value}]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def wa_inbound_text(
    number: WaNumber, user: WaUser, name: str, wamid: str, text: str, now_s: int
) -> dict[str, Any]:
    """A user's text: `contacts[]` names them by BSUID (and phone unless hidden), the
    message by `from_user_id` (and `from` unless hidden)."""
    message: dict[str, Any] = {"from_user_id": user.user_id}
    if user.shown_phone:
        message["from"] = user.shown_phone
    message |= {"id": wamid, "timestamp": str(now_s), "type": "text", "text": {"body": text}}
    return _wa_envelope(number, {"contacts": [user.contact(name)], "messages": [message]})


def wa_user_id_changed(
    number: WaNumber, user: WaUser, old_user_id: str, wamid: str, now_s: int
) -> dict[str, Any]:
    """Meta's system message for a changed BSUID (`user_changed_user_id`); like every
    system message it has no `contacts[]`."""
    message: dict[str, Any] = {"from_user_id": old_user_id}
    if user.shown_phone:
        message["from"] = user.shown_phone
    system: dict[str, Any] = {
        "body": f"User {user.username or user.shown_phone or old_user_id} changed their id",
        "type": "user_changed_user_id",
        "user_id": user.user_id,
    }
    if user.parent_user_id:
        system["parent_user_id"] = user.parent_user_id
    message |= {"id": wamid, "timestamp": str(now_s), "type": "system", "system": system}
    return _wa_envelope(number, {"messages": [message]})


UNDELIVERABLE = {
    "code": 131026,
    "title": "Message undeliverable",
    "message": "Message undeliverable",
    "error_data": {"details": "Message Undeliverable."},
}
RE_ENGAGEMENT_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number."
)
STOPPED_MARKETING = {
    "code": 131050,
    "title": "Unable to deliver the message. This recipient has chosen to stop receiving "
    "marketing messages on WhatsApp from your business.",
    "message": "Unable to deliver the message.",
    "error_data": {"details": "The recipient stopped marketing messages from this business."},
}
RE_ENGAGEMENT = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {"details": RE_ENGAGEMENT_DETAILS},
}


def _pricing(message: SentWaMessage, category: str, in_window: bool) -> dict[str, Any]:
    free = message.type != "template" and in_window
    return {
        "billable": not free,
        "pricing_model": "PMP",
        "type": "free_customer_service" if free else "regular",
        "category": category,
    }


def wa_status(
    number: WaNumber,
    message: SentWaMessage,
    status: str,
    now_s: int,
    *,
    user: WaUser,
    category: str,
    in_window: bool,
    with_conversation: bool,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A status of a sent message: the recipient by `recipient_user_id` (and
    `recipient_id` unless their phone is hidden) and in `contacts[]`; `pricing` (and,
    before v24, `conversation`) on `sent` and `delivered` only, never on `read` or
    `failed`."""
    item: dict[str, Any] = {
        "id": message.message_id,
        "status": status,
        "timestamp": str(now_s),
        "recipient_user_id": user.user_id,
    }
    if user.shown_phone:
        item["recipient_id"] = user.shown_phone
    if message.callback_data is not None:
        item["biz_opaque_callback_data"] = message.callback_data
    if status == "failed":
        item["errors"] = [error or UNDELIVERABLE]
    elif status in ("sent", "delivered"):
        if with_conversation:
            item["conversation"] = {
                "id": "conv_" + message.message_id[-16:],
                "origin": {"type": category},
            }
        item["pricing"] = _pricing(message, category, in_window)
    return _wa_envelope(number, {"contacts": [user.contact()], "statuses": [item]})
