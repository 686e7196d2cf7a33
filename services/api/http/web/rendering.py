"""Jinja2 rendering of the web pages, with the CSRF token, the signed-in user and the
security headers every page carries."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.api.http.web.security import WebSecurity, security_headers
from shared.contracts.lead_sources import ROUTE_LABELS, SOURCE_LABELS
from shared.contracts.lifecycle import DmStatus

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

STATUS_LABELS: dict[str, str] = {
    DmStatus.QUEUED: "queued",
    DmStatus.AWAITING_CONTACT: "awaiting contact",
    DmStatus.LINK_READY: "link ready",
    DmStatus.SENDING: "sending",
    DmStatus.SENT: "sent",
    DmStatus.DELIVERED: "delivered",
    DmStatus.READ: "read",
    DmStatus.REPLIED: "replied",
    DmStatus.SKIPPED: "skipped",
    DmStatus.FAILED: "failed",
    DmStatus.UNKNOWN: "unknown",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.globals["status_labels"] = STATUS_LABELS
    env.globals["route_labels"] = ROUTE_LABELS
    env.globals["source_labels"] = SOURCE_LABELS
    return env


class Pages:
    def __init__(self, security: WebSecurity) -> None:
        self.env = make_environment()
        self.security = security

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status_code: int = 200,
        embeddable: bool = False,
    ) -> HTMLResponse:
        values = {
            "request": request,
            "csrf_token": self.security.csrf_token(request),
            "user": getattr(request.state, "web_user", None),
            **(context or {}),
        }
        html = self.env.get_template(template).render(values)
        response = HTMLResponse(html, status_code=status_code)
        security_headers(response, embeddable=embeddable)
        return response
