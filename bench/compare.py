"""AutoDM beside the peer, per phase: each one's figure and their ratio (AutoDM / peer).

Both come from the same `bench/run.sh --with-peer` run (the peer's phases first, then
AutoDM's), so the ratio is the figure to read: the two cores are shared and noisy.
CPU per DM counts every project process (AutoDM: the five services, Kafka, PostgreSQL;
the peer: api, worker, PostgreSQL, Redis; neither's provider stand-in).
"""

from __future__ import annotations

import json
import math
from typing import Any

from bench.peer import RESULTS

Row = tuple[str, str, str, str]


def load_peer() -> dict[str, Any] | None:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else None


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or math.isnan(ours) or math.isnan(theirs) or not theirs:
        return ""
    return f"{ours / theirs:.2f}x"


def _peer_cpu_ms(peer: dict[str, Any]) -> dict[str, float]:
    delivered = max(peer["delivered"], 1)
    return {k: 1000 * v / delivered for k, v in peer["cpu_s"].items() if k != "sink"}


def phase_rows(ours: dict[str, Any], peer: dict[str, Any] | None) -> list[Row]:
    """The rows of one phase (ours from PhaseResult, peer from its load.py JSON)."""
    sent = max(ours["sent"], 1)
    our_cpu = {k: 1000 * v / sent for k, v in ours["cpu_s_by_process"].items()}
    lat = peer["latency_ms_from_accept"] if peer else {}
    peer_cpu = _peer_cpu_ms(peer) if peer else {}
    peer_total = peer["cpu_ms_per_dm_excl_sink"] if peer else None
    peer_dms = peer["throughput_dms"] if peer else None
    name = ours["name"]
    by_process = ", ".join(
        f"{k} {v:.2f}" for k, v in sorted(our_cpu.items(), key=lambda kv: -kv[1])
    )
    peer_by_process = ", ".join(f"{k} {v:.2f}" for k, v in peer_cpu.items())
    return [
        (
            f"{name}: DMs/s (sent {ours['sent']}/{ours['leads']})",
            _f(ours["dms_per_s"]),
            _f(peer_dms) + (f" ({peer['delivered']}/{peer['n']})" if peer else ""),
            _ratio(ours["dms_per_s"], peer_dms),
        ),
        (
            f"{name}: accept -> provider p50 ms",
            _f(ours["provider_p50_ms"]),
            _f(lat.get("p50")),
            _ratio(ours["provider_p50_ms"], lat.get("p50")),
        ),
        (
            f"{name}: accept -> provider p99 ms",
            _f(ours["provider_p99_ms"]),
            _f(lat.get("p99")),
            _ratio(ours["provider_p99_ms"], lat.get("p99")),
        ),
        (f"{name}: accept -> `sent` projected p99 ms", _f(ours["p99_ms"]), "", ""),
        (
            f"{name}: CPU ms per DM, all processes (AutoDM: net of its idle)",
            f"{_f(ours['cpu_ms_per_dm'], 2)} ({_f(ours['cpu_ms_per_dm_net_of_idle'], 2)})",
            _f(peer_total, 2),
            _ratio(ours["cpu_ms_per_dm"], peer_total),
        ),
        (f"{name}: CPU ms per DM by process", by_process, peer_by_process, ""),
    ]


def table(results: dict[str, Any]) -> str:
    peer = results.get("peer") or {}
    peer_phases = peer.get("phases", {})
    rows: list[Row] = [("phase / figure", "AutoDM", "peer", "AutoDM / peer")]
    for phase in results["phases"]:
        key = "flat out" if phase["name"].startswith("flat out") else phase["name"]
        rows += phase_rows(phase, peer_phases.get(key))
    idle = results.get("idle_cpu_s_per_s_by_process", {})
    idle_by = ", ".join(f"{k} {v:.3f}" for k, v in sorted(idle.items(), key=lambda kv: -kv[1]))
    rows.append(("idle: CPU-s per s", _f(results.get("idle_cpu_s_per_s"), 3), "not measured", ""))
    rows.append(("idle: CPU-s per s by process", idle_by, "", ""))
    ours_mem = ", ".join(f"{k} {v:.0f}" for k, v in results.get("peak_rss_mb", {}).items())
    peer_mem = ", ".join(f"{k} {v:.0f}" for k, v in peer.get("peak_rss_mb", {}).items())
    rows.append(("peak memory MB (VmHWM)", ours_mem, peer_mem, ""))
    return "\n".join("| " + " | ".join(row) + " |" for row in _with_rule(rows))


def _with_rule(rows: list[Row]) -> list[Row]:
    return [rows[0], ("---", "---", "---", "---"), *rows[1:]]
