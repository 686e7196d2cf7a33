from services.whatsapp_sender.settings import get_settings
from shared.platform.service_http import serve

if __name__ == "__main__":
    settings = get_settings()
    serve(
        "services.whatsapp_sender.app:create_app", settings.whatsapp_sender_port, settings.http_host
    )
