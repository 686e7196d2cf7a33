"""`autodm`: the operator's command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import typer

from cli.delivery import dlq_app, sending_app
from cli.status import status
from cli.trace import trace_command
from shared.platform.settings import get_settings

app = typer.Typer(
    help="Operate AutoDM: topics, database, a lead's DM status and trace, tokens, dead letters,"
    " sending."
    " Settings come from AUTODM_* variables (shared/platform/settings.py).",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="Kafka topics from the registry in shared/contracts/topics.py.")
db_app = typer.Typer(help="The PostgreSQL schema (Alembic migrations).")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="Instagram access tokens: refresh now, re-encrypt (key rotation).")
app.add_typer(tokens_app, name="tokens")
app.add_typer(dlq_app, name="dlq")
app.add_typer(sending_app, name="sending")

ROOT = Path(__file__).resolve().parent.parent

app.command("status")(status)
app.command("trace")(trace_command)


@topics_app.command("provision")
def provision(
    delete_retired: bool = typer.Option(
        False,
        "--delete-retired",
        help="Also delete retired topics that still hold records nobody read (lost for good).",
    ),
) -> None:
    """Create every registry topic that is missing and delete the retired ones that hold
    nothing unread (safe to run again)."""
    from shared.messaging.topic_admin import provision_topics

    settings = get_settings()
    result = asyncio.run(
        provision_topics(
            settings.kafka_bootstrap,
            delete_retired=delete_retired,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
    )
    typer.echo(f"topics created: {result.created or 'none'}; already present: {result.existing}")
    if result.deleted:
        typer.echo(f"retired topics deleted: {result.deleted}")
    for topic, why in result.kept.items():
        typer.echo(f"retired topic kept: {topic}: {why}")


@db_app.command("migrate")
def migrate() -> None:
    """Upgrade the database to the latest migration."""
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "heads"], cwd=ROOT, check=True)


@tokens_app.command("refresh")
def refresh_token(account_id: UUID) -> None:
    """Refresh one account's token now (it must be >= 24 h old and not expired)."""
    from services.token_refresher.commands import refresh_one
    from services.token_refresher.settings import get_settings as refresher_settings

    outcome = asyncio.run(refresh_one(refresher_settings(), account_id))
    typer.echo(outcome)
    if outcome != "refreshed":
        raise typer.Exit(1)


@tokens_app.command("reencrypt")
def reencrypt() -> None:
    """Re-encrypt every stored token under the first key of AUTODM_TOKEN_ENCRYPTION_KEYS."""
    from services.token_refresher.commands import reencrypt_all
    from services.token_refresher.settings import get_settings as refresher_settings

    count = asyncio.run(reencrypt_all(refresher_settings()))
    typer.echo(f"tokens re-encrypted: {count}")


if __name__ == "__main__":
    app()
