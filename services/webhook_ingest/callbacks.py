"""Meta's deauthorize and data-deletion callbacks (platform facts §3e).

Both name a user by the app-scoped id of the verified `signed_request`. For a creator that
is their own account (GET /me `id`): deauthorize disconnects it. Data deletion deletes what
AutoDM holds about whoever it names, a creator or a person who wrote to one
(services/webhook_ingest/erasure.py), and answers with a status URL and a code.

A signed request is accepted only while fresh (`issued_at` within the window, `expires` not
passed) and once: its (callback, user, issued_at) is remembered for the window, so a
captured request can't be replayed to disconnect a creator again or start another deletion.
The user is remembered by a hash only (data deletion must not leave the id behind).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhook_ingest.erasure import erase_subject
from shared.accounts.lifecycle import DISCONNECTED, disconnect_account
from shared.contracts.lifecycle import Provider
from shared.db.models import DataDeletionRequest, SignedRequestUse, SocialAccount
from shared.delivery.reasons import DATA_DELETED, DEAUTHORIZED

# The creator's words (waiting DMs end `skipped` with them; the Instagram page reads them).
DELETION = DATA_DELETED

DEAUTHORIZE = "deauthorize"
DATA_DELETION = "data_deletion"

# Status of a deletion request, as its status URL shows it.
PENDING = "pending"
COMPLETED = "completed"
NOT_FOUND = "not_found"


class StaleSignedRequest(ValueError):
    """A correctly signed request issued outside the window, expired, or without a date."""


@dataclass(frozen=True)
class SignedCallback:
    user_id: str
    issued_at: datetime


def fresh_callback(data: dict[str, Any], now: datetime, max_age: timedelta) -> SignedCallback:
    """The verified payload's user and issue time, if it is fresh; raises otherwise."""
    user_id, issued, expires = data.get("user_id"), data.get("issued_at"), data.get("expires")
    if not user_id:
        raise ValueError("signed_request without user_id")
    if not isinstance(issued, int) or isinstance(issued, bool):
        raise StaleSignedRequest("signed_request without issued_at")
    issued_at = datetime.fromtimestamp(issued, UTC)
    # Both ways: a date in the future would stay "fresh" for as long as it likes.
    if abs(now - issued_at) > max_age:
        raise StaleSignedRequest("issued_at outside the accepted window")
    if expires is not None and (
        not isinstance(expires, int) or datetime.fromtimestamp(expires, UTC) <= now
    ):
        raise StaleSignedRequest("signed_request expired")
    return SignedCallback(user_id=str(user_id), issued_at=issued_at)


def subject_hash(user_id: str) -> str:
    return hashlib.sha256(f"autodm-signed-request:{user_id}".encode()).hexdigest()


async def first_use(
    session: AsyncSession,
    callback: str,
    signed: SignedCallback,
    now: datetime,
    max_age: timedelta,
    code: str | None = None,
) -> SignedRequestUse | None:
    """Record this request's use; None if it is new, else the earlier use (a replay).
    Concurrent replays wait on the primary key for the first one's transaction."""
    # Uses older than twice the window can't match a fresh request any more.
    await session.execute(
        delete(SignedRequestUse).where(SignedRequestUse.used_at < now - 2 * max_age)
    )
    key = {
        "callback": callback,
        "subject": subject_hash(signed.user_id),
        "issued_at": signed.issued_at,
    }
    inserted = await session.execute(
        insert(SignedRequestUse)
        .values(**key, confirmation_code=code, used_at=now)
        .on_conflict_do_nothing()
        .returning(SignedRequestUse.callback)
    )
    if inserted.first() is not None:
        return None
    return await session.get(SignedRequestUse, (key["callback"], key["subject"], key["issued_at"]))


async def deauthorize(
    session: AsyncSession, signed: SignedCallback, now: datetime, max_age: timedelta
) -> int:
    """Disconnect the accounts of this app-scoped user; returns how many were connected
    (0 for a replay of a request already processed)."""
    if await first_use(session, DEAUTHORIZE, signed, now, max_age) is not None:
        return 0
    accounts = await _accounts_of(session, signed.user_id)
    live = [a for a in accounts if a.status != DISCONNECTED]
    for account in live:
        await disconnect_account(
            session, account, reason=DEAUTHORIZED, correlation_id=str(uuid4()), now=now
        )
    return len(live)


async def delete_user_data(
    session: AsyncSession, signed: SignedCallback, now: datetime, max_age: timedelta
) -> str:
    """Delete what the database holds about the user now; the topics' records follow
    (services/webhook_ingest/topic_erasure.py). Returns the confirmation code; a replay
    gets the first request's code and deletes nothing more."""
    code = secrets.token_hex(10)  # alphanumeric, as Meta asks
    earlier = await first_use(session, DATA_DELETION, signed, now, max_age, code)
    if earlier is not None and earlier.confirmation_code:
        return earlier.confirmation_code
    accounts = await _accounts_of(session, signed.user_id)
    for account in accounts:
        await disconnect_account(
            session,
            account,
            reason=DELETION,
            correlation_id=str(uuid4()),
            now=now,
            delete_data=True,
        )
        account.username = None
        account.app_scoped_id = None
    summary = await erase_subject(session, signed.user_id)
    if accounts:
        summary["creator_accounts_disconnected"] = len(accounts)
    found = any(summary.values())
    session.add(
        DataDeletionRequest(
            confirmation_code=code,
            account_id=accounts[0].id if accounts else None,
            # The topics still hold records until topic_erasure has truncated them.
            status=PENDING if found else NOT_FOUND,
            summary=summary,
            requested_at=now,
            completed_at=None if found else now,
        )
    )
    return code


async def deletion_status(session: AsyncSession, code: str) -> DataDeletionRequest | None:
    return await session.get(DataDeletionRequest, code)


async def _accounts_of(session: AsyncSession, user_id: str) -> list[SocialAccount]:
    rows = await session.scalars(
        select(SocialAccount)
        .where(
            SocialAccount.provider == Provider.INSTAGRAM,
            or_(SocialAccount.app_scoped_id == user_id, SocialAccount.external_id == user_id),
        )
        .with_for_update()
    )
    return list(rows.all())
