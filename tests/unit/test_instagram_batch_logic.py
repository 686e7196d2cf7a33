"""The Instagram sender's batch logic that needs no broker or database
(services/instagram_sender/batch.py), and the decrypted-token cache (shared.platform.crypto)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.fernet import Fernet

from services.instagram_sender.batch import Job, _Read, _split_repeats, jobs_of, paired
from shared.contracts.events import DmRequested, DmRequestedPayload, Recipient
from shared.contracts.lifecycle import Provider, Route
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM
from shared.platform.crypto import DecryptedTokens, TokenCipher
from tests.records import consumer_record


def _request(lead: UUID, route: Route = Route.IG_DM, **recipient: str) -> DmRequested:
    return DmRequested(
        correlation_id="unit",
        creator_id=uuid4(),
        payload=DmRequestedPayload(
            lead_id=lead,
            route=route,
            provider=Provider.INSTAGRAM,
            account_id=uuid4(),
            recipient=Recipient(**recipient or {"igsid": "1"}),
            text="Hi",
        ),
    )


def _job(request: DmRequested, offset: int = 0) -> Job:
    value = request.model_dump_json().encode()
    return Job(request, consumer_record(value, offset, DM_REQUESTED_INSTAGRAM))


def test_a_repeated_dm_waits_for_a_pass_of_its_own_in_order() -> None:
    a, b = uuid4(), uuid4()
    jobs = [
        _job(_request(a), 0),
        _job(_request(b), 1),
        _job(_request(a), 2),  # the same DM again: after the first one's pass
        _job(_request(a, Route.IG_PRIVATE_REPLY, comment_id="c1"), 3),  # another DM of a
        _job(_request(a), 4),
    ]
    first, later = _split_repeats(jobs)
    assert [j.record.offset for j in first] == [0, 1, 3]
    assert [j.record.offset for j in later] == [2, 4]
    again, last = _split_repeats(later)
    assert [j.record.offset for j in again] == [2]
    assert [j.record.offset for j in last] == [4]


async def test_malformed_records_are_parked_by_the_decoder_and_skipped_after() -> None:
    good = _request(uuid4())
    records = [
        consumer_record(b"{not json", 0, DM_REQUESTED_INSTAGRAM),
        consumer_record(good.model_dump_json().encode(), 1, DM_REQUESTED_INSTAGRAM),
    ]
    parked: list[int] = []

    async def park(record: Any, _: BaseException) -> None:
        parked.append(record.offset)

    assert [j.request for j in await jobs_of(records, park)] == [good]
    assert parked == [0]
    assert [j.request for j in await jobs_of(records, None)] == [good]
    assert parked == [0]  # the handler's pass parks nothing twice


async def test_the_handler_pairs_the_decoded_requests_with_their_records_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The decoder parsed every record already: the handler pairs its requests with the
    records in order instead of parsing each record a second time; after a parked
    malformed record it parses (which skips it) to pair them right."""
    first, second = _request(uuid4()), _request(uuid4())
    records = [
        consumer_record(r.model_dump_json().encode(), offset, DM_REQUESTED_INSTAGRAM)
        for offset, r in enumerate((first, second))
    ]
    parsed: list[bytes] = []
    parse = DmRequested.model_validate_json

    def counting(data: Any) -> DmRequested:
        parsed.append(data)
        return parse(data)

    monkeypatch.setattr(DmRequested, "model_validate_json", counting)
    jobs = await paired([first, second], records)
    assert [(j.request, j.record.offset) for j in jobs] == [(first, 0), (second, 1)]
    assert jobs[0].request is first and parsed == []

    malformed = [consumer_record(b"{not json", 0, DM_REQUESTED_INSTAGRAM), records[1]]
    jobs = await paired([second], malformed)
    assert [(j.request, j.record.offset) for j in jobs] == [(second, 1)]


def test_a_private_reply_goes_to_the_author_of_its_comment() -> None:
    reply = _request(uuid4(), Route.IG_PRIVATE_REPLY, comment_id="c9")
    dm = _request(uuid4(), Route.IG_DM, igsid="77")
    read = _Read(intents={}, accounts={}, commenters={"c9": "555"})
    assert read.of(reply).recipient == "555"
    assert read.of(dm).recipient == "77"
    unknown = _Read(intents={}, accounts={}, commenters={})
    assert unknown.of(reply).recipient is None and unknown.of(reply).intent is None


class _CountingCipher(TokenCipher):
    def __init__(self) -> None:
        super().__init__([Fernet.generate_key().decode()])
        self.decrypted = 0

    def decrypt(self, blob: bytes) -> str:
        self.decrypted += 1
        return super().decrypt(blob)


def test_decrypted_tokens_are_kept_by_ciphertext_for_their_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cipher = _CountingCipher()
    now = [1000.0]
    monkeypatch.setattr("shared.platform.crypto.time.monotonic", lambda: now[0])
    tokens = DecryptedTokens(cipher, ttl_s=60)
    old, new = cipher.encrypt("old-token"), cipher.encrypt("new-token")

    assert [tokens.decrypt(old), tokens.decrypt(old)] == ["old-token", "old-token"]
    assert cipher.decrypted == 1
    assert tokens.decrypt(new) == "new-token"  # a refreshed token: a new ciphertext
    assert cipher.decrypted == 2
    now[0] += 61
    assert tokens.decrypt(old) == "old-token"
    assert cipher.decrypted == 3  # decrypted again once its minute is over
