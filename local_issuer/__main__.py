import uvicorn

from local_issuer.settings import IssuerSettings

if __name__ == "__main__":
    settings = IssuerSettings()
    uvicorn.run(
        "local_issuer.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level="warning",
    )
