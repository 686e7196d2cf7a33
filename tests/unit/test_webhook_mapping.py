"""Splitting Meta's batches into items with stable dedupe ids, and what each item means."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from services.webhook_ingest.ingest import split_instagram
from services.webhook_ingest.mapping import Comment, Echo, Ignored, Inbound, Read, map_item
from shared.contracts.events import InstagramWebhookPayload

ACCOUNT = "17841400000000001"
PERSON = "5550001000000001"
MS = 1_764_300_000_123


def messaging(
    event: dict[str, Any], sender: str = PERSON, recipient: str = ACCOUNT
) -> dict[str, Any]:
    item = {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": MS} | event
    return {"object": "instagram", "entry": [{"id": ACCOUNT, "time": MS, "messaging": [item]}]}


def comment(author: str = PERSON) -> dict[str, Any]:
    value = {
        "id": "17900000000000001",
        "from": {"id": author, "username": "ann"},
        "text": "guide please",
        "media": {"id": "18000000000000001", "media_product_type": "FEED"},
    }
    change = {"field": "comments", "value": value}
    return {
        "object": "instagram",
        "entry": [{"id": ACCOUNT, "time": 1_764_300_000, "changes": [change]}],
    }


def action(payload: dict[str, Any]) -> Any:
    (item,) = split_instagram(payload)
    return map_item(
        InstagramWebhookPayload(
            account_id=uuid4(),
            ig_account_id=item.ig_account_id,
            kind=item.kind,
            field=item.field,
            item=item.item,
            entry_time=item.entry_time,
        )
    )


def test_a_batch_is_split_into_one_item_per_event() -> None:
    batch = [messaging({"message": {"mid": "m1", "text": "a"}}), comment()]
    batch[0]["entry"][0]["messaging"].append(
        {
            "sender": {"id": PERSON},
            "recipient": {"id": ACCOUNT},
            "timestamp": MS,
            "read": {"mid": "m9"},
        }
    )
    items = split_instagram(batch)
    assert [(i.kind, i.field) for i in items] == [
        ("messaging", "message"),
        ("messaging", "read"),
        ("change", "comments"),
    ]
    assert len({i.event_id for i in items}) == 3


def test_a_retried_delivery_gets_the_same_event_ids() -> None:
    first = split_instagram(messaging({"message": {"mid": "m1", "text": "a"}}))
    retry = messaging({"message": {"mid": "m1", "text": "a"}})
    retry["entry"][0]["time"] = MS + 60_000  # Meta re-batches retries: entry.time changes
    assert [i.event_id for i in first] == [i.event_id for i in split_instagram(retry)]
    assert [i.event_id for i in split_instagram(comment())] == [
        i.event_id for i in split_instagram(comment())
    ]


def test_other_objects_are_not_instagram_items() -> None:
    assert split_instagram({"object": "whatsapp_business_account", "entry": [{"id": "1"}]}) == []


def test_an_inbound_message_opens_the_window() -> None:
    got = action(messaging({"message": {"mid": "m1", "text": "hi"}}))
    assert got == Inbound(PERSON, datetime.fromtimestamp(MS / 1000, UTC), "message", None)


def test_an_echo_of_our_own_message_names_its_recipient_mid_and_text() -> None:
    echo = messaging({"message": {"mid": "m1", "text": "hi", "is_echo": True}}, ACCOUNT, PERSON)
    assert action(echo) == Echo(PERSON, "m1", "hi")


def test_the_accounts_own_non_echo_items_are_ignored() -> None:
    own_read = messaging({"read": {"mid": "m1"}}, ACCOUNT, PERSON)
    assert isinstance(action(own_read), Ignored)
    no_recipient = messaging({"message": {"mid": "m1", "is_echo": True}}, ACCOUNT, "")
    assert isinstance(action(no_recipient), Ignored)


def test_an_ig_me_referral_carries_the_lead_ref() -> None:
    got = action(
        messaging({"referral": {"ref": "abc", "source": "IGME_SOURCE_LINK", "type": "OPEN_THREAD"}})
    )
    assert isinstance(got, Inbound)
    assert (got.via, got.ref) == ("referral", "abc")


def test_a_message_started_from_an_ig_me_link_carries_the_ref_too() -> None:
    got = action(messaging({"message": {"mid": "m2", "text": "hi", "referral": {"ref": "abc"}}}))
    assert isinstance(got, Inbound)
    assert (got.via, got.ref) == ("message", "abc")


def test_a_read_receipt_names_the_message() -> None:
    got = action(messaging({"read": {"mid": "m_42"}}))
    assert got == Read(PERSON, "m_42", datetime.fromtimestamp(MS / 1000, UTC))


def test_a_comment_is_a_private_reply_opportunity_timed_in_seconds() -> None:
    got = action(comment())
    assert isinstance(got, Comment)
    assert (got.comment_id, got.igsid, got.username) == ("17900000000000001", PERSON, "ann")
    assert got.at == datetime.fromtimestamp(1_764_300_000, UTC)


def test_the_accounts_own_comment_is_ignored() -> None:
    assert isinstance(action(comment(author=ACCOUNT)), Ignored)
