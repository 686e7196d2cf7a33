"""`python -m services.api.workers`: the API's event workers, beside its HTTP process."""

from services.api.settings import get_settings
from shared.platform.service_http import serve

if __name__ == "__main__":
    settings = get_settings()
    serve("services.api.workers.app:create_app", settings.api_workers_port, settings.http_host)
