"""The peer baseline (../shared/peer, a FastAPI + arq/Redis + PostgreSQL job queue) in the
same run as AutoDM: its own `run_bench.sh`, once per phase, with AutoDM's phases (flat-out
count, each fixed rate and its duration), and the peak memory of its processes.

`bench/run.sh --with-peer` runs this before AutoDM's Kafka and PostgreSQL start, so neither
system's idle processes are on the two cores while the other is measured. The peer's path
is `AUTODM_PEER_DIR` (default: ../shared/peer relative to the repository, see peer_dir).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from bench import procstat

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("AUTODM_STATE_DIR", ROOT / ".local" / "bench"))
RESULTS = STATE / "peer.json"
# The peer's processes by a word of their command line (its api, arq worker and sink).
NAMES = {"api:app": "api", "worker.py": "worker", "provider_sink": "sink"}


def peer_dir() -> Path:
    """AUTODM_PEER_DIR, else ../shared/peer beside the repository (or beside the folder of
    worktrees holding this checkout)."""
    if "AUTODM_PEER_DIR" in os.environ:
        return Path(os.environ["AUTODM_PEER_DIR"]).resolve()
    beside = ROOT.parent / "shared" / "peer"
    return beside if beside.exists() else ROOT.parent.parent / "shared" / "peer"


class PeakMemory:
    """Polls VmHWM of the peer's processes (descendants of run_bench.sh) while it runs:
    they are gone once it returns."""

    def __init__(self, root: int) -> None:
        self.root, self.peak_mb, self._stop = root, {}, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    peak_mb: dict[str, float]

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            for pid in procstat.tree_pids(self.root, procstat.children()):
                name = self._name(pid)
                if name is not None:
                    try:
                        mb = procstat.peak_rss_mb(pid)
                    except OSError:
                        continue
                    self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), round(mb, 1))

    @staticmethod
    def _name(pid: int) -> str | None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return next((name for word, name in NAMES.items() if word in cmdline), None)


def run_phase(env: dict[str, str], out: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """One run_bench.sh invocation (one of its runs); its JSON result and peak memory."""
    out.mkdir(parents=True, exist_ok=True)
    env = os.environ | env | {"OUT": str(out)}
    log = (out / "run_bench.log").open("w")
    script = str(peer_dir() / "run_bench.sh")
    proc = subprocess.Popen(["/bin/bash", script], env=env, stdout=log, stderr=log)
    with PeakMemory(proc.pid) as memory:
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"peer run_bench.sh failed ({code}); see {out / 'run_bench.log'}")
    run = env["RUNS"]
    return json.loads((out / f"{run}.json").read_text()), memory.peak_mb


def run_peer(flat_out: int, rates: list[float], seconds: float, concurrency: int) -> dict[str, Any]:
    """Every phase of AutoDM's bench on the peer, in AutoDM's order (rates, then flat out)."""
    phases: dict[str, Any] = {}
    peak: dict[str, float] = {}
    plans = [
        (f"{r:g}/s", {"RUNS": "rate", "RATE": f"{r:g}", "DURATION": f"{seconds:g}"}) for r in rates
    ]
    plans.append(("flat out", {"RUNS": "closed", "N": str(flat_out), "CONC": str(concurrency)}))
    for name, env in plans:
        result, memory = run_phase(
            env, STATE / "peer" / name.replace("/", "_per_").replace(" ", "_")
        )
        phases[name] = result
        for k, v in memory.items():
            peak[k] = max(peak.get(k, 0.0), v)
        print(f"peer {name}:", json.dumps({k: result[k] for k in SUMMARY}), flush=True)
    return {"dir": str(peer_dir()), "phases": phases, "peak_rss_mb": peak}


SUMMARY = (
    "delivered",
    "duplicates",
    "throughput_dms",
    "latency_ms_from_accept",
    "cpu_ms_per_dm_excl_sink",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="*", default=[100.0, 50.0, 10.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flat-out", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    args, _ = parser.parse_known_args()  # the rest are AutoDM's knobs
    results = run_peer(args.flat_out, args.rates, args.seconds, args.connections)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"peer results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
