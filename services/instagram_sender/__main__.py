from services.instagram_sender.settings import get_settings
from shared.platform.service_http import serve

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.instagram_sender.app:create_app",
        settings.instagram_sender_port,
        settings.http_host,
    )
