"""The OpenAPI UI at /docs, served whole by the API: Swagger UI's files come from the
`fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1), not a CDN, and the page
carries the same policy as the web pages (nothing from elsewhere, no inline script, no
framing). `AUTODM_API_DOCS_ENABLED=false` takes it and /openapi.json away."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from services.api.http.web.rendering import Pages
from services.api.http.web.security import security_headers

router = APIRouter(include_in_schema=False)
SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"
# Only what the page loads (not the package's ReDoc bundle).
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"})


@router.get("/docs")
async def docs_page(request: Request) -> Response:
    pages: Pages = request.app.state.web.pages
    html = pages.env.get_template("api_docs.html").render(
        title=request.app.title, openapi_url=request.app.openapi_url
    )
    response = HTMLResponse(html)
    security_headers(response)
    return response


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404)
    response = FileResponse(SWAGGER_UI / name)
    security_headers(response)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
