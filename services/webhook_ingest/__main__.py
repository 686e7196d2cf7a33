from shared.service import serve
from shared.settings import get_settings

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.webhook_ingest.app:create_app", settings.webhook_ingest_port, settings.http_host
    )
