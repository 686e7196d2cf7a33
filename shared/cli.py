"""`autodm`: the operator's command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import typer

from shared.cli_delivery import dlq_app, sending_app
from shared.cli_status import status
from shared.settings import get_settings

app = typer.Typer(
    help="Operate AutoDM: topics, database, a lead's DM status, tokens, dead letters, sending."
    " Settings come from AUTODM_* variables (shared/settings.py).",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="Kafka topics from the registry in shared/topics.py.")
db_app = typer.Typer(help="The PostgreSQL schema (Alembic migrations).")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="Instagram access tokens: refresh now, re-encrypt (key rotation).")
app.add_typer(tokens_app, name="tokens")
app.add_typer(dlq_app, name="dlq")
app.add_typer(sending_app, name="sending")

ROOT = Path(__file__).resolve().parent.parent

app.command("status")(status)


@topics_app.command("provision")
def provision() -> None:
    """Create every registry topic that is missing (safe to run again)."""
    from shared.topic_admin import provision_topics

    settings = get_settings()
    result = asyncio.run(
        provision_topics(
            settings.kafka_bootstrap,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
    )
    typer.echo(f"topics created: {result.created or 'none'}; already present: {result.existing}")


@db_app.command("migrate")
def migrate() -> None:
    """Upgrade the database to the latest migration."""
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "heads"], cwd=ROOT, check=True)


@tokens_app.command("refresh")
def refresh_token(account_id: UUID) -> None:
    """Refresh one account's token now (it must be >= 24 h old and not expired)."""
    from services.token_refresher.commands import refresh_one

    outcome = asyncio.run(refresh_one(get_settings(), account_id))
    typer.echo(outcome)
    if outcome != "refreshed":
        raise typer.Exit(1)


@tokens_app.command("reencrypt")
def reencrypt() -> None:
    """Re-encrypt every stored token under the first key of AUTODM_TOKEN_ENCRYPTION_KEYS."""
    from services.token_refresher.commands import reencrypt_all

    count = asyncio.run(reencrypt_all(get_settings()))
    typer.echo(f"tokens re-encrypted: {count}")


if __name__ == "__main__":
    app()
