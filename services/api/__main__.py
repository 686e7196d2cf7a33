from shared.service import serve
from shared.settings import get_settings

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.api.app:create_app",
        settings.api_port,
        settings.http_host,
        trusted_proxies=settings.trusted_proxies,
    )
