"""Conditional GETs for clients that poll: an `ETag` on a read, `304 Not Modified` when the
client's `If-None-Match` names the current one (no body, nothing to parse again).

The tag is a digest of the JSON body itself, so it changes exactly when the answer does,
with no version column to keep in step.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Annotated, Any

from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=1024,
        description="An `ETag` from an earlier answer: `304` without a body if still current",
    ),
]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `ETag` in `If-None-Match` is still current"}
}
# Private: one caller's view of its own leads; no-cache: revalidate before every use.
CACHE_CONTROL = "private, no-cache"


def etagged(model: BaseModel, if_none_match: str | None) -> Response:
    """`model` as JSON with its ETag, or 304 if the client already holds that version."""
    answer = JSONResponse(jsonable_encoder(model))
    tag = f'"{sha256(answer.body).hexdigest()[:32]}"'
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if if_none_match and _matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    answer.headers.update(headers)
    return answer


def _matches(header: str, tag: str) -> bool:
    # RFC 9110 §13.1.2: a list of (possibly weak) tags, or "*"; weak comparison applies.
    candidates = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in candidates or tag in candidates
