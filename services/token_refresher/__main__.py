from shared.service import serve
from shared.settings import get_settings

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.token_refresher.app:create_app", settings.token_refresher_port, settings.http_host
    )
