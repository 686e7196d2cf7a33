"""A request that meets a database or broker outage is answered 503 on a connection that
stays usable.

Starlette hands an exception to the handler registered for `Exception` from its outermost
middleware, which re-raises it after the answer; uvicorn then logs "Exception in ASGI
application" with a traceback and closes the connection. A client that reused that
keep-alive connection for its next request (it had not seen the close yet) got no answer
at all: 58 requests in issue #14's 8 s PostgreSQL outage. Handlers registered for the
outage classes themselves run in the inner exception middleware instead, which answers
and does not re-raise; anything that is not an outage goes on to the 500 handler.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from shared.platform.outages import is_outage, outage_types


def install_outage_answers(app: FastAPI) -> None:
    """Call after every handler for `Exception` is installed (problems, then web pages):
    an outage is answered by that handler, as a problem document or a page."""
    answer: Any = app.exception_handlers[Exception]

    async def outage(request: Request, exc: Exception) -> Response:
        if not is_outage(exc):
            raise exc  # a bug after all: the 500 handler takes it
        response: Response = await answer(request, exc)
        return response

    for exc_class in outage_types():
        app.add_exception_handler(exc_class, outage)
