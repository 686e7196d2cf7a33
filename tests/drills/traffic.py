"""Steady traffic for the drills: leads through the API's POST /api/dm/send at a fixed rate,
over every route (Instagram DM in an open window, private reply to a comment, WhatsApp
template to an opted-in phone, wa.me link for a bare phone, a cold Instagram handle that
waits for contact), each retried with its Idempotency-Key until accepted, as a client
answered 503 would. What was accepted is what must be neither lost nor sent twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx
from demo import DemoCreator  # deploy/local

from shared.contracts.events import utcnow

# One lead in ten a private reply: Instagram allows 750 an hour per account (the rest of a
# burst waits `rate_limited`, with its reason, and sends later).
ROUTES = (
    "instagram_dm",
    "whatsapp_template",
    "private_reply",
    "instagram_dm",
    "wa_link",
    "instagram_dm",
    "whatsapp_template",
    "cold_instagram",
    "instagram_dm",
    "whatsapp_template",
)
# Statuses a drill's lead may end in: terminal, or waiting for the person (with a reason).
SETTLED = {"sent", "delivered", "read", "replied", "skipped", "failed", "unknown"}
WAITING = {"awaiting_contact", "link_ready"}


@dataclass
class Accepted:
    lead_id: str
    route: str
    target: tuple[str, str]  # (account or number, recipient) as the sandbox records it
    sends: bool  # the route sends a message (others make a link or wait)


@dataclass
class Traffic:
    """Leads at `rate_per_s` until stopped; `accepted` grows as the API answers 202."""

    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    creators: list[DemoCreator]
    wa_numbers: dict[str, str]  # creator id -> sandbox phone_number_id
    rate_per_s: float
    run: str = field(default_factory=lambda: uuid4().hex[:6])
    accepted: list[Accepted] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    first_offset: int = 0
    # At most this many leads in flight: an overloaded machine slows the rate, not the
    # sandbox's accept queue (connect timeouts).
    _in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(40))
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run_until_stopped(self) -> None:
        n, started = 0, time.monotonic()
        while not self._stop.is_set():
            due = started + n / self.rate_per_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._in_flight.acquire()
            if self._stop.is_set():  # stopped while waiting for room: start nothing more
                self._in_flight.release()
                break
            task = asyncio.create_task(self._one(self.first_offset + n))
            task.add_done_callback(lambda _: self._in_flight.release())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1

    async def stop(self) -> None:
        """No new leads; wait until every started one is accepted (or given up)."""
        self._stop.set()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _one(self, n: int) -> None:
        route = ROUTES[n % len(ROUTES)]
        creator = self.creators[(n // len(ROUTES)) % len(self.creators)]
        body, target = await self._person(n, route, creator)
        body |= {"creator_id": str(creator.creator_id), "name": f"D{self.run}x{n}"}
        key = f"drill-{self.run}-{n}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                response = await self.api.post(
                    "/api/dm/send", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError as error:
                self.refusals[type(error).__name__] += 1
            else:
                if response.status_code == 202:
                    lead_id = str(response.json()["lead_id"])
                    sends = route not in ("wa_link", "cold_instagram")
                    self.accepted.append(Accepted(lead_id, route, target, sends))
                    return
                self.refusals[str(response.status_code)] += 1
                if response.status_code < 500 and response.status_code not in (409, 429):
                    raise AssertionError(f"lead {n} refused: {response.text}")
            await asyncio.sleep(1.0)
        self.refusals["gave_up"] += 1

    async def _person(
        self, n: int, route: str, creator: DemoCreator
    ) -> tuple[dict[str, Any], tuple[str, str]]:
        """The person's side first (a message opens the window, a comment can be answered)."""
        now = utcnow().isoformat()
        who = {"account_id": creator.ig_user_id, "username": f"p{self.run}.{n}"}
        if route == "instagram_dm":
            sent = await _post(self.sandbox, "/_sandbox/instagram/users/message", who, "hi")
            ig = {"igsid": sent["igsid"], "last_inbound_at": now}
            return {"instagram": ig}, (creator.ig_user_id, str(sent["igsid"]))
        if route == "private_reply":
            sent = await _post(self.sandbox, "/_sandbox/instagram/users/comment", who, "guide?")
            ig = {"comment_id": sent["comment_id"], "commented_at": now}
            return {"instagram": ig}, (creator.ig_user_id, str(sent["comment_id"]))
        if route == "cold_instagram":
            return {"instagram": {"username": who["username"]}}, ("", "")
        digits = f"49151{n:08d}"  # n is unique in the session: one recipient per lead
        number = self.wa_numbers[str(creator.creator_id)]
        if route == "whatsapp_template":
            return {"phone": f"+{digits}", "whatsapp_opt_in": True}, (number, digits)
        return {"phone": f"+{digits}"}, ("", "")


async def _post(
    sandbox: httpx.AsyncClient, path: str, who: dict[str, str], text: str
) -> dict[str, Any]:
    for _ in range(30):  # the sandbox plays the person: it is not the part under test
        try:
            response = await sandbox.post(path, json=who | {"text": text})
            response.raise_for_status()
            return dict(response.json())
        except httpx.HTTPError:
            await asyncio.sleep(1.0)
    raise AssertionError(f"the sandbox did not answer {path}")
