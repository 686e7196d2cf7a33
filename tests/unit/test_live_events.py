"""The pages' status stream stops once its session ends (signed out elsewhere, expired):
the session is checked again at least every RECHECK_S while events flow."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.api.http.web.live_events import while_signed_in


async def _events(n: int) -> AsyncIterator[str]:
    for i in range(n):
        yield f"event {i}"


async def test_the_stream_ends_when_the_session_does() -> None:
    now = [0.0]
    signed_in = [True]

    def clock() -> float:
        now[0] += 4.0  # each event comes 4 s after the one before
        return now[0]

    async def check() -> bool:
        return signed_in[0]

    got: list[str] = []
    async for event in while_signed_in(_events(100), check, clock, every_s=10.0):
        got.append(event)
        if len(got) == 3:
            signed_in[0] = False  # signed out in another tab
    assert 3 <= len(got) <= 6  # stopped within one recheck, not after all 100


async def test_a_signed_in_stream_goes_on() -> None:
    async def check() -> bool:
        return True

    ticks = iter(range(0, 1000, 7))
    got = [e async for e in while_signed_in(_events(20), check, lambda: float(next(ticks)))]
    assert len(got) == 20
