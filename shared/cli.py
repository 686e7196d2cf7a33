"""`autodm`: the operator's command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import typer

from shared.settings import get_settings

app = typer.Typer(help="Operate AutoDM: topics, database, DM status.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics from the registry in shared/topics.py.")
db_app = typer.Typer(help="The PostgreSQL schema (Alembic migrations).")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")

ROOT = Path(__file__).resolve().parent.parent


@topics_app.command("provision")
def provision() -> None:
    """Create every registry topic that is missing (safe to run again)."""
    from shared.topic_admin import provision_topics

    result = asyncio.run(provision_topics(get_settings().kafka_bootstrap))
    typer.echo(f"topics created: {result.created or 'none'}; already present: {result.existing}")


@db_app.command("migrate")
def migrate() -> None:
    """Upgrade the database to the latest migration."""
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "heads"], cwd=ROOT, check=True)


if __name__ == "__main__":
    app()
