"""Write the event contracts to the repo: JSON Schema per event and an AsyncAPI document
per service, generated from the services' own brokers. `make contracts` runs it; a test
fails when the checked-in files differ from what the code says."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI

from shared.contracts.events import json_schemas
from shared.platform.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "schemas" / "events"
ASYNCAPI_DIR = ROOT / "docs" / "asyncapi"


def service_brokers() -> dict[str, Any]:
    from services.api.workers.app import create_app as api  # the API's Kafka side
    from services.instagram_sender.app import create_app as instagram_sender
    from services.token_refresher.app import create_app as token_refresher
    from services.webhook_ingest.app import create_app as webhook_ingest
    from services.whatsapp_sender.app import create_app as whatsapp_sender

    factories = {
        "api": api,
        "instagram_sender": instagram_sender,
        "whatsapp_sender": whatsapp_sender,
        "webhook_ingest": webhook_ingest,
        "token_refresher": token_refresher,
    }
    # A fixed server address, so the documents don't change with the environment.
    settings = Settings(kafka_bootstrap="kafka:9092")
    return {name: factory(settings).state.broker for name, factory in factories.items()}


def rendered() -> dict[Path, str]:
    files = {
        SCHEMA_DIR / f"{name}.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in json_schemas().items()
    }
    for name, broker in service_brokers().items():
        spec = AsyncAPI(broker, title=f"AutoDM {name}", version="1.0.0")
        doc = json.loads(spec.to_specification().to_json())
        files[ASYNCAPI_DIR / f"{name}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return files


def main() -> int:
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
