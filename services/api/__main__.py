import uvicorn

from shared.settings import get_settings

if __name__ == "__main__":
    uvicorn.run(
        "services.api.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=get_settings().api_port,
        log_level="warning",
    )
