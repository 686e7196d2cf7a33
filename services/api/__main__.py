from services.api.settings import get_settings
from shared.platform.service_http import serve

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.api.http.app:create_app",
        settings.api_port,
        settings.http_host,
        trusted_proxies=settings.trusted_proxies,
    )
