"""Graph-style request parameters.

Graph accepts parameters in the query string, a urlencoded or multipart form, or a JSON
body (Meta's own samples use all three, e.g. ``--data 'recipient={"id":..}&message=..'``
and ``curl -F``), so the sandbox merges them. Multipart is parsed with the stdlib email
parser to avoid a python-multipart dependency.
"""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from sandbox.errors import invalid_parameter


def _parse_multipart(content_type: str, body: bytes) -> dict[str, str]:
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = BytesParser(policy=HTTP).parsebytes(raw)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise invalid_parameter("(#100) The request body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise invalid_parameter("(#100) The request body must be a JSON object")
    return parsed


async def body_params(request: Request) -> dict[str, Any]:
    """Form fields or JSON object from the request body (empty if there is none)."""
    body = await request.body()
    if not body.strip():
        return {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    if content_type.startswith("multipart/form-data"):
        return _parse_multipart(content_type, body)
    return _parse_json(body)


async def graph_params(request: Request) -> dict[str, Any]:
    """Query parameters overlaid with body parameters (body wins, as on Graph)."""
    return dict(request.query_params) | await body_params(request)


def json_param(params: dict[str, Any], name: str) -> dict[str, Any] | None:
    """An object parameter that may arrive as JSON text (form bodies) or as an object."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise invalid_parameter(f"(#100) Param {name} must be a JSON object") from exc
    if not isinstance(value, dict):
        raise invalid_parameter(f"(#100) Param {name} must be a JSON object")
    return value


def access_token(request: Request, params: dict[str, Any]) -> str | None:
    """`Authorization: Bearer|OAuth <token>` header, else the `access_token` parameter."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = params.get("access_token")
    return token if isinstance(token, str) and token else None
