import uvicorn

from shared.settings import get_settings

if __name__ == "__main__":
    uvicorn.run(
        "services.whatsapp_sender.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=get_settings().whatsapp_sender_port,
        log_level="warning",
    )
