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

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "schemas" / "events"
ASYNCAPI_DIR = ROOT / "docs" / "asyncapi"


def service_brokers() -> dict[str, Any]:
    from services.api.settings import ApiSettings
    from services.api.workers.app import create_app as api  # the API's Kafka side
    from services.instagram_sender.app import create_app as instagram_sender
    from services.instagram_sender.settings import InstagramSenderSettings
    from services.token_refresher.app import create_app as token_refresher
    from services.token_refresher.settings import TokenRefresherSettings
    from services.webhook_ingest.app import create_app as webhook_ingest
    from services.webhook_ingest.settings import WebhookIngestSettings
    from services.whatsapp_sender.app import create_app as whatsapp_sender
    from services.whatsapp_sender.settings import WhatsAppSenderSettings

    # A fixed server address, so the documents don't change with the environment.
    kafka = "kafka:9092"
    apps = {
        "api": api(ApiSettings(kafka_bootstrap=kafka)),
        "instagram_sender": instagram_sender(InstagramSenderSettings(kafka_bootstrap=kafka)),
        "whatsapp_sender": whatsapp_sender(WhatsAppSenderSettings(kafka_bootstrap=kafka)),
        "webhook_ingest": webhook_ingest(WebhookIngestSettings(kafka_bootstrap=kafka)),
        "token_refresher": token_refresher(TokenRefresherSettings(kafka_bootstrap=kafka)),
    }
    return {name: app.state.broker for name, app in apps.items()}


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
