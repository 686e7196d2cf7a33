"""Traces without a network: spans as JSON lines on disk, and `autodm trace <id>` to read
one trace back as a tree (where the time went, which service, which hop).

Each process appends to its own file (`<dir>/<service>-<pid>.jsonl`), so processes never
interleave lines; the reader takes every file in the directory. `make run` writes to
`.local/run/traces/`; the e2e tests read their stack's spans the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    def __init__(self, directory: str, service: str) -> None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self._path = path / f"{service}-{os.getpid()}.jsonl"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # Called on the SDK's export thread, never on the event loop.
        lines = "".join(span_line(s) for s in spans)
        with self._path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_line(span: ReadableSpan) -> str:
    return json.dumps(span_record(span), separators=(",", ":"), default=_text) + "\n"


def _text(value: Any) -> str:
    # faststream records a Kafka key as bytes (AutoDM's keys are ids); anything else odd
    # becomes its repr rather than losing the whole export batch.
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return repr(value)


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


def read_spans(directory: str | Path) -> list[dict[str, Any]]:
    spans = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    spans.append(json.loads(line))
                except ValueError:
                    continue  # a line being written right now
    return spans


@dataclass
class Node:
    span: dict[str, Any]
    children: list[Node] = field(default_factory=list)


def tree(spans: Iterable[dict[str, Any]]) -> list[Node]:
    """The spans of one trace as trees (roots first by start time; a span whose parent was
    not exported, e.g. an unsampled upstream, is shown as a root)."""
    nodes = {s["span_id"]: Node(s) for s in spans}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.span["parent_id"] or "")
        (parent.children if parent else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.span["start_ns"])
    return sorted(roots, key=lambda n: n.span["start_ns"])


def render(spans: Sequence[dict[str, Any]]) -> str:
    if not spans:
        return "no spans"
    start = min(s["start_ns"] for s in spans)
    lines: list[str] = []

    def walk(node: Node, depth: int) -> None:
        s = node.span
        at = (s["start_ns"] - start) / 1e6
        took = ((s["end_ns"] or s["start_ns"]) - s["start_ns"]) / 1e6
        service = str(s.get("service") or "-").removeprefix("autodm-")
        marks = " ERROR" if s.get("status") == "ERROR" else ""
        marks += f" links={len(s['links'])}" if s.get("links") else ""
        lines.append(f"{at:9.1f} ms {took:8.1f} ms  {service:<16} {'  ' * depth}{s['name']}{marks}")
        for child in node.children:
            walk(child, depth + 1)

    for root in tree(spans):
        walk(root, 0)
    return "\n".join(["   start       took   service          span", *lines])
