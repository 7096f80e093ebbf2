"""The clinician console's pages, card templates and static files, served by the agent itself.

GET /                      start: pick a workflow, fill in the patient and values
GET /runs/{id}             one run: live timeline, artifacts, orders to sign, the answer
GET /history               past runs, searchable, pending sign-offs first
GET /console/static/{…}    CSS, ES modules, the workflow templates, the icon (package data)

Pages are shells: they hold no patient data and need no key. The ES modules ask the API for
everything with the key the clinician typed (session storage) and fill the ``<template>`` cards
the pages carry (``cards/*.html``, named after what they show) with ``textContent`` only. Every
response here carries a strict Content-Security-Policy (no inline script or style, nothing from
another origin), so a cluster without internet serves the same console.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from sara.agent.settings import AgentSettings

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_URL = "/console/static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

router = APIRouter(include_in_schema=False)


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def workflows() -> dict[str, Any]:
    """The workflow templates (``static/workflows.json``), shared with ``workflows.js``."""
    data: dict[str, Any] = json.loads((STATIC / "workflows.json").read_text("utf-8"))
    return data


def render(template: str, settings: AgentSettings, **context: Any) -> HTMLResponse:
    """A page: its template with the console's settings, and the security headers."""
    html = (
        environment()
        .get_template(template)
        .render(
            console_now=settings.console_now,
            auth="disabled" if settings.no_auth else "enabled",  # public already (/readyz)
            static=STATIC_URL,
            **context,
        )
    )
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


def _settings(request: Request) -> AgentSettings:
    settings: AgentSettings = request.app.state.service.settings
    return settings


@router.get("/", response_class=HTMLResponse)
async def start_page(request: Request) -> HTMLResponse:
    data = workflows()
    return render(
        "start.html",
        _settings(request),
        page="start",
        title="New run",
        workflows=data["workflows"],
        fields=data["fields"],
    )


@router.get("/runs/{task_id}", response_class=HTMLResponse)
async def run_page(task_id: str, request: Request) -> HTMLResponse:
    if not TASK_ID.match(task_id):
        raise HTTPException(404, "no such run")
    return render("run.html", _settings(request), page="run", title="Run", task_id=task_id)


@router.get("/history", response_class=HTMLResponse)
async def history_page(request: Request) -> HTMLResponse:
    return render("history.html", _settings(request), page="history", title="History")


@router.get(STATIC_URL + "/{path:path}")
async def static_file(path: str) -> FileResponse:
    """A file of ``static/``: known types only, never outside the folder."""
    target = (STATIC / path).resolve()
    media_type = MEDIA_TYPES.get(target.suffix)
    if media_type is None or not target.is_relative_to(STATIC.resolve()) or not target.is_file():
        raise HTTPException(404, "not found")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}  # revalidate (ETag) each load
    return FileResponse(target, media_type=media_type, headers=headers)
