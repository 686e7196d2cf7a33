import uvicorn

from shared.settings import get_settings

if __name__ == "__main__":
    uvicorn.run(
        "services.instagram_sender.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=get_settings().instagram_sender_port,
        log_level="warning",
    )
