"""The bench's knobs, shared by `python -m bench` and `python -m bench.peer` (which runs
the peer's phases with the same rates, durations, flat-out count and connections)."""

from __future__ import annotations

import argparse


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--users", type=int, default=3, help="open-window users per account")
    p.add_argument("--rates", type=float, nargs="*", default=[100.0, 50.0, 10.0])
    p.add_argument("--seconds", type=float, default=20.0, help="per fixed-rate phase")
    p.add_argument("--flat-out", type=int, default=2000, help="leads sent flat out")
    p.add_argument(
        "--connections", type=int, default=16, help="keep-alive connections (POSTs in flight)"
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy the api, sender and webhook_ingest"
    )
    p.add_argument(
        "--scale-accounts", type=int, default=10_000, help="accounts of the scale run (0: skip)"
    )
    p.add_argument("--only-scale", action="store_true", help="skip the end-to-end phases")
    p.add_argument(
        "--with-peer",
        action="store_true",
        help="run ../shared/peer's phases first (bench/run.sh) and print both side by side",
    )
    p.add_argument(
        "--no-echo-phase",
        action="store_true",
        help="skip the extra flat-out phase with the sandbox's echo webhooks off",
    )
    return p
