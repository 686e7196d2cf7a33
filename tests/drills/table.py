"""Print .local/drills-report.json as the Markdown table docs/RELIABILITY.md quotes."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(rows: dict[str, dict[str, object]]) -> str:
    lines = [
        "| drill | what failed | leads accepted | DMs stopped (longest gap) | first DM after "
        "the fault | lost | duplicated | outcomes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(dict(row["outcomes"]).items()))  # type: ignore[call-overload]
        lines.append(
            f"| {name} | {row['failed']} | {row['accepted']} | {row['dm_pause_s']} s | "
            f"{row['first_dm_after_fault_s']} s | {row['lost']} | {row['duplicated']} | "
            f"{outcomes} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ".local/drills-report.json")
    if path.exists():
        print(table(json.loads(path.read_text())))
