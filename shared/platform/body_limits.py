"""Request body limits for every HTTP-facing service, enforced before a route reads a byte.

Each app factory installs one `BodyLimits` middleware with its rules: per path (exact, or a
prefix) the most bytes a body may have and, for signed webhooks, the header without which
the body is not read at all. So nobody without a secret can make a service buffer a body:

- a request missing its rule's required header is answered 401 before its body is read;
- a declared Content-Length over the limit is answered 413 at once;
- a body without one (chunked), or longer than it claimed, is counted as it arrives and cut
  off with 413 as soon as the count crosses the limit.

After a refusal the server reads the rest of the body and drops it unbuffered (uvicorn
discards a finished request's data): closing the connection instead would reset it under
the client, which then never sees its 401 or 413.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.platform.logs import get_logger
from shared.platform.metrics import HTTP_BODIES_REFUSED

log = get_logger(__name__)

# Methods whose requests carry a body a route may read; only these need the signature.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOO_LARGE = "too_large"
UNSIGNED = "unsigned"


@dataclass(frozen=True)
class BodyRule:
    """`path` is matched exactly, or as a prefix when `prefix` is set (longest wins)."""

    path: str
    max_bytes: int
    # A header every body-carrying request to this path must have (e.g. the webhook's
    # X-Hub-Signature-256): its presence is checked here, its value by the route.
    require_header: str | None = None
    prefix: bool = False
    label: str = ""  # e.g. the webhook's provider, for the refusal hook

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body crosses its limit mid-read; the app's own
    handler for HTTP errors renders it (problem+json in the API)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit))


def too_large_detail(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


Responder = Callable[[int, str], Response]
RefusalHook = Callable[[BodyRule | None, str], None]


def plain_refusal(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


class BodyLimits:
    def __init__(
        self,
        app: ASGIApp,
        default_max_bytes: int,
        rules: Sequence[BodyRule] = (),
        respond: Responder = plain_refusal,
        on_refused: RefusalHook | None = None,
    ) -> None:
        self.app = app
        self.default_max_bytes = default_max_bytes
        # Exact rules first, then prefixes longest first: the first match is the most specific.
        self.rules = sorted(rules, key=lambda r: (r.prefix, -len(r.path)))
        self.respond = respond
        self.on_refused = on_refused

    def rule_for(self, path: str) -> BodyRule | None:
        return next((r for r in self.rules if r.matches(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rule_for(scope["path"])
        limit = rule.max_bytes if rule else self.default_max_bytes
        headers = Headers(scope=scope)
        refusal = _early_refusal(scope["method"], headers, rule, limit)
        if refusal is not None:
            status, reason, detail = refusal
            self._count(rule, reason)
            await self._refuse(status, detail, scope, receive, send)
            return
        await self._guarded(scope, receive, send, rule, limit)

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, rule: BodyRule | None, limit: int
    ) -> None:
        seen = 0
        crossed = False
        started = False

        async def counted() -> Message:
            nonlocal seen, crossed
            if crossed:  # a route that reads on after the refusal gets it again
                raise BodyTooLarge(limit)
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                crossed = True
                self._count(rule, TOO_LARGE)
                raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # Only reaches here from an app without a handler for HTTP errors.
            if started:
                raise
            await self._refuse(413, too_large_detail(limit), scope, receive, send)

    async def _refuse(
        self, status: int, detail: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        await self.respond(status, detail)(scope, receive, send)

    def _count(self, rule: BodyRule | None, reason: str) -> None:
        HTTP_BODIES_REFUSED.labels(path=rule.path if rule else "*", reason=reason).inc()
        log.info("request body refused", path=rule.path if rule else "*", reason=reason)
        if self.on_refused is not None:
            self.on_refused(rule, reason)


def _early_refusal(
    method: str, headers: Headers, rule: BodyRule | None, limit: int
) -> tuple[int, str, str] | None:
    """(status, reason, detail) when the request can be refused on its headers alone."""
    required = rule.require_header if rule is not None else None
    if required and method in BODY_METHODS and not headers.get(required):
        return 401, UNSIGNED, f"signature missing: no {required} header"
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return 413, TOO_LARGE, too_large_detail(limit)
    return None
