"""Interactive API docs (Swagger UI at ``/docs``) served from the package.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN: in a hospital cluster without
internet they render blank, and every visit would tell a third party that someone opened the
docs. Sara serves Swagger UI with the assets shipped by the ``fastapi-offline`` package
(Swagger UI 5, which renders FastAPI's OpenAPI 3.1), from ``/docs-assets/``: no request leaves
the browser for anywhere else (a browser test checks it). ReDoc is not offered: its page
fetches a logo from its vendor's CDN.

Usage: ``FastAPI(..., docs_url=None, redoc_url=None)`` then ``offline_docs(app)``.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"


def offline_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """Add a ``/docs`` page whose scripts, styles and icon come from this app."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None first")
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # Swagger UI would send the spec to its vendor's online validator for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
