from services.token_refresher.settings import get_settings
from shared.platform.service_http import serve

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.token_refresher.app:create_app", settings.token_refresher_port, settings.http_host
    )
