"""Settings of both senders' delivery gate: pacing bursts, circuits, throttles, retries."""

from __future__ import annotations

from pydantic import Field

from shared.platform.settings import Settings


class SenderSettings(Settings):
    instagram_send_burst: int = Field(default=10, ge=1, le=100)
    instagram_private_reply_burst: int = Field(default=20, ge=1, le=150)
    # A send waits in-process for a rate-limit token at most this long; longer waits are
    # deferred (shared.delivery.deferrals) so the partition moves on. Every inline wait also
    # holds up the other accounts on that partition: the bench's scale run (5/s accounts, 100 DMs
    # each) delayed cold accounts by tens of seconds at 1 s, so it is about a round trip.
    max_inline_wait_s: float = Field(default=0.05, ge=0)
    # Delivery attempts of one DM (each after the fast in-process retries) before the DLQ.
    delivery_max_attempts: int = Field(default=5, ge=1)
    retry_base_delay_s: float = 2.0
    retry_max_delay_s: float = 300.0
    # A throttle signal without a usable time blocks the account this long.
    throttle_default_block_s: float = 60.0
    # Circuit breaker: consecutive failures that open it, how long it stays open first
    # (doubling per failed probe, up to the max).
    circuit_account_failures: int = 5
    circuit_provider_failures: int = 20
    circuit_open_s: float = 5.0
    circuit_max_open_s: float = 300.0
    # How often each sender re-reads pauses and open circuits (shared across replicas).
    delivery_state_refresh_s: float = 1.0
    # A paused DM is looked at again this often; resume sends it within this delay.
    paused_recheck_s: float = 2.0
    # How often each sender re-requests its due deferred DMs (shared.delivery.deferrals).
    deferral_poll_s: float = Field(default=0.5, gt=0)
    # A sender's poller sleeps until its earliest deferred DM is due, woken by the deferrals
    # of its own process; one written elsewhere (another replica, SQL) is seen within this.
    deferral_idle_poll_s: float = Field(default=5.0, gt=0)
