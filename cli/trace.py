"""`autodm trace <trace id>`: one trace read back from AUTODM_TRACE_DIR (the JSON-lines
exporter, shared/platform/trace_files.py) as a tree: every span's start, duration and service.

For `make run` and for an operator on a host without a tracing backend; with Tempo or
Jaeger, search the same trace id there (docs/RUNBOOK.md, "Traces").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.platform.settings import get_settings

# Where `make run` writes (deploy/local/run.sh), for a shell that did not set the variable.
MAKE_RUN_DIR = Path(".local/run/traces")


def trace_command(
    trace_id: Annotated[str, typer.Argument(help="32 hex digits (`autodm status <lead>`)")],
) -> None:
    """Print one trace's spans as a tree, from AUTODM_TRACE_DIR (else `make run`'s
    .local/run/traces)."""
    from shared.platform.trace_files import read_spans, render

    directory = get_settings().trace_dir or (str(MAKE_RUN_DIR) if MAKE_RUN_DIR.is_dir() else "")
    if not directory:
        typer.echo("AUTODM_TRACE_DIR is not set: traces go to OTLP or nowhere", err=True)
        raise typer.Exit(2)
    wanted = trace_id.strip().lower()
    spans = [s for s in read_spans(directory) if s["trace_id"] == wanted]
    if not spans:
        typer.echo(f"no span of trace {wanted} in {directory}", err=True)
        raise typer.Exit(1)
    typer.echo(render(spans))
