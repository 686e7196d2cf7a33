"""Test settings: the test instance of Kafka and PostgreSQL (ports apart from `make run`).

`make test` starts that instance (deploy/local/*.sh with the ports below) before pytest;
these defaults only apply when the environment doesn't say otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
