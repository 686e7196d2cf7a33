"""`python -m sandbox`: serve the sandbox with uvicorn on SANDBOX_HOST:SANDBOX_PORT."""

from __future__ import annotations

import logging

import uvicorn

from sandbox.app import create_app
from sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    logging.basicConfig(level=logging.INFO)
    # A line per webhook delivery is noise next to uvicorn's access log (and costs CPU under load).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
