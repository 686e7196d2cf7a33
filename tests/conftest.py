"""Test settings: the test instance of Kafka and PostgreSQL (ports apart from `make run`).

`make test` starts that instance (deploy/local/*.sh with the ports below) before pytest;
these defaults only apply when the environment doesn't say otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy" / "local"))

TEST_ENV = {
    "AUTODM_KAFKA_BOOTSTRAP": "127.0.0.1:19192",
    "AUTODM_DATABASE_URL": "postgresql+asyncpg://autodm:autodm@127.0.0.1:15532/autodm_test",
    "AUTODM_LOG_JSON": "true",
    "AUTODM_LOG_LEVEL": "WARNING",
}
for key, value in TEST_ENV.items():
    os.environ.setdefault(key, value)


def suite_ports(sandbox: int, services: int, issuer: int, offset_env: str) -> Any:
    """A process-level suite's stack ports (deploy/local/stack.StackPorts): the test
    Kafka and PostgreSQL, then the sandbox, services (api first, +1 each) and issuer on
    bases of the suite's own, all moved by the environment variable `offset_env`."""
    from stack import StackPorts  # deploy/local

    from shared.platform.settings import get_settings

    settings = get_settings()
    offset = int(os.environ.get(offset_env, "0"))
    base = services + offset
    return StackPorts(
        kafka=int(settings.kafka_bootstrap.rsplit(":", 1)[1]),
        postgres=int(settings.database_url.get_secret_value().rsplit(":", 1)[1].split("/")[0]),
        sandbox=sandbox + offset,
        api=base,
        webhook_ingest=base + 1,
        instagram_sender=base + 2,
        whatsapp_sender=base + 3,
        token_refresher=base + 4,
        api_workers=base + 5,
        local_issuer=issuer + offset,
    )
