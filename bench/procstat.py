"""CPU seconds and peak memory of process trees, from /proc (Linux).

A root's tree is the root and every live descendant (PostgreSQL's backends, uvicorn's
children); CPU is user + system time of each, read before and after a phase.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def children() -> dict[int, list[int]]:
    """pid -> its child pids, for every live process."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def tree_pids(root: int, children: Mapping[int, list[int]]) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, ()))
    return pids


def cpu_seconds(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process tree."""
    tree = children()
    used: dict[str, float] = {}
    for name, root in roots.items():
        total = 0
        for pid in tree_pids(root, tree):
            try:
                fields = _stat_fields(pid)
            except OSError:
                continue  # exited since the listing
            total += int(fields[11]) + int(fields[12])  # utime, stime
        used[name] = total / TICK
    return used


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident memory (its own, not its children's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
