"""What a webhook item means for AutoDM (platform facts §3c). Pure, so it is unit-tested
without Kafka: the consumer (inbound.py) acts on the result.

- `message` from a person: inbound (opens the 24 h window; a reply to a DM; may carry an
  ig.me `referral.ref`).
- `message` with `is_echo` (the account's own message, ours or typed in the app): an echo,
  matched to an ambiguous send of ours (shared.delivery.ambiguous_sends).
- `referral` (ig.me link opened, `messaging_referral`): inbound carrying the lead's `ref`.
- `read` (`messaging_seen`): the DM with that mid was read.
- `comments` change: a comment, the start of a 7-day private-reply window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from shared.contracts.events import InstagramWebhookPayload


@dataclass(frozen=True)
class Ignored:
    reason: str


@dataclass(frozen=True)
class Inbound:
    igsid: str
    at: datetime
    via: Literal["message", "referral"]
    ref: str | None = None
    # A message's text: a stop or start word (human_turns.py); not part of what it means.
    text: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Read:
    igsid: str
    mid: str
    at: datetime


@dataclass(frozen=True)
class Echo:
    igsid: str  # the recipient
    mid: str
    text: str
    at: datetime | None = field(default=None, compare=False)  # when (human_turns.py)


@dataclass(frozen=True)
class Comment:
    comment_id: str
    igsid: str
    username: str | None
    text: str
    media_id: str | None
    at: datetime


Action = Ignored | Inbound | Read | Comment | Echo


def map_item(p: InstagramWebhookPayload) -> Action:
    if p.kind == "change":
        return _change(p)
    item = p.item
    sender = str((item.get("sender") or {}).get("id") or "")
    if not sender.isdigit():
        return Ignored("no sender")
    if sender == p.ig_account_id:
        return _echo(item)
    at = _from_ms(item.get("timestamp") or p.entry_time)
    if p.field == "message":
        return _message(item["message"], sender, at)
    if p.field == "referral":
        return Inbound(sender, at, "referral", _ref(item["referral"]))
    if p.field == "read" and (mid := item["read"].get("mid")):
        return Read(sender, str(mid), at)
    return Ignored(f"{p.field} is not used")


def _echo(item: dict[str, Any]) -> Action:
    message = item.get("message") or {}
    recipient = str((item.get("recipient") or {}).get("id") or "")
    if not (message.get("is_echo") and message.get("mid") and recipient.isdigit()):
        return Ignored("sent by the account itself")
    at = _from_ms(item["timestamp"]) if str(item.get("timestamp") or "").isdigit() else None
    return Echo(recipient, str(message["mid"]), str(message.get("text") or ""), at)


def _message(message: dict[str, Any], sender: str, at: datetime) -> Action:
    if message.get("is_echo"):
        return Ignored("echo of the account's own message")
    if message.get("is_deleted"):
        return Ignored("the person deleted the message")
    text = message.get("text")
    ref = _ref(message.get("referral") or {})
    return Inbound(sender, at, "message", ref, text if isinstance(text, str) else None)


def _change(p: InstagramWebhookPayload) -> Action:
    value = p.item.get("value") or {}
    if p.field != "comments":
        return Ignored(f"{p.field} is not used")
    author = str((value.get("from") or {}).get("id") or "")
    comment_id = str(value.get("id") or value.get("comment_id") or "")
    if not author.isdigit() or not comment_id.isdigit():
        return Ignored("comment without author or id")
    if author == p.ig_account_id:
        return Ignored("the account's own comment")
    return Comment(
        comment_id=comment_id,
        igsid=author,
        username=(value.get("from") or {}).get("username"),
        text=str(value.get("text") or ""),
        media_id=(value.get("media") or {}).get("id"),
        # `changes` entries carry `time` in seconds (messaging ones in milliseconds).
        at=datetime.fromtimestamp(p.entry_time, UTC),
    )


def _ref(referral: dict[str, Any]) -> str | None:
    ref = referral.get("ref")
    return str(ref) if ref else None


def _from_ms(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)
