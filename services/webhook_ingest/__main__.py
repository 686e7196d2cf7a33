from services.webhook_ingest.settings import get_settings
from shared.platform.service_http import serve

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.webhook_ingest.app:create_app", settings.webhook_ingest_port, settings.http_host
    )
