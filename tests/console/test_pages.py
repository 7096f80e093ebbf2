"""The console's pages, templates and static files as the agent serves them (ASGI, no browser):
security headers, no inline script or style, labelled controls, shells without patient data,
card templates present, static files typed and fenced, and house rules for the ES modules."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from sara.agent import fakes
from sara.agent.api.app import create_app
from sara.agent.audit import MemoryAuditSink
from sara.agent.console import pages
from sara.agent.settings import AgentSettings
from sara.common.clock import BENCH_NOW_ISO

KEY = "console-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MRN = "S6315806"
STATIC = Path(pages.__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CARDS = {
    "run": {
        "notice",
        "timeline_step",
        "order_card",
        "result_card",
        "patient_card",
        "lab_table",
        "lab_row",
        "record_list",
        "record_item",
    },
    "start": {"notice"},
    "history": {"notice", "history_row"},
}


def make_app(**kw: Any) -> FastAPI:
    base: dict[str, Any] = {
        "fhir_url": "http://fhir.test/fhir/",
        "model_url": "http://model.test/v1",
        "model": "fake-model",
        "api_keys": KEY,
    }
    return create_app(
        AgentSettings(**{**base, **kw}),
        model_transport=httpx.MockTransport(fakes.model_handler()),
        fhir_transport=httpx.MockTransport(fakes.fhir_handler()),
        audit=MemoryAuditSink(),
    )


@contextlib.asynccontextmanager
async def client(app: FastAPI | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = app or make_app()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a.test") as c,
    ):
        yield c


class Page(HTMLParser):
    """What the tests check in a page: scripts, styles, handlers, ids, labels, templates."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self.wrapped: list[dict[str, str | None]] = []  # controls inside their <label>
        self._open: str | None = None
        self._labels = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag
        self._labels += tag == "label"
        if self._labels and tag in ("input", "select", "textarea"):
            self.wrapped.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._open in ("script", "style") and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None
        self._labels -= tag == "label"

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.mark.parametrize(
    ("path", "name"), [("/", "start"), ("/runs/abc123", "run"), ("/history", "history")]
)
async def test_pages_are_strict_shells(path: str, name: str) -> None:
    async with client() as c:
        r = await c.get(path)
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["content-type"].startswith("text/html")
    page = parse(r.text)
    assert page.inline == []  # no inline script or style: the CSP would refuse them
    scripts = page.all("script")
    assert scripts == [{"type": "module", "src": f"/console/static/js/pages/{name}.js"}]
    for _tag, attrs in page.tags:
        assert "style" not in attrs
        assert not any(a.startswith("on") for a in attrs), attrs
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), value  # nothing off-site
    ids = [a["id"] for _t, a in page.tags if a.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"
    labelled = {a["for"] for a in page.all("label") if a.get("for")}
    for tag in ("input", "select", "textarea"):
        for attrs in page.all(tag):
            if attrs in page.wrapped:
                continue
            assert attrs.get("id") in labelled, f"{tag} {attrs.get('id')} has no label"
    templates = {str(a["id"]).removeprefix("tpl-") for a in page.all("template")}
    assert templates == CARDS[name]
    assert page.all("html")[0]["lang"] == "en"


async def test_the_start_page_offers_every_workflow_with_its_fields() -> None:
    async with client() as c:
        page = parse((await c.get("/")).text)
    catalogue = pages.workflows()
    radios = [a["value"] for a in page.all("input") if a.get("type") == "radio"]
    assert radios == [w["id"] for w in catalogue["workflows"]]
    assert len(radios) == 11
    names = {
        a["name"] for a in page.all("input") + page.all("textarea") if a.get("type") != "radio"
    }
    assert names == set(catalogue["fields"]) | {"api-key"}
    body = next(a for t, a in page.tags if t == "body")
    assert body["data-console-now"] == BENCH_NOW_ISO


async def test_a_run_page_holds_no_patient_data_and_needs_no_key() -> None:
    async with client() as c:
        started = await c.post(
            "/v1/tasks",
            json={"instruction": f"How many magnesium results does {MRN} have?", "patient": MRN},
            headers=AUTH,
        )
        task_id = started.headers["x-task-id"]
        r = await c.get(f"/runs/{task_id}")
        assert r.status_code == 200
        assert f'data-task-id="{task_id}"' in r.text
        assert MRN not in r.text and "magnesium results" not in r.text
        for bad in ("/runs/..%2Fv1", "/runs/" + "x" * 65, "/runs/a%20b"):
            assert (await c.get(bad)).status_code == 404


async def test_the_page_says_when_no_key_is_needed() -> None:
    async with client() as c:
        assert 'data-auth="enabled"' in (await c.get("/")).text
    async with client(make_app(api_keys="", no_auth=True)) as c:
        assert 'data-auth="disabled"' in (await c.get("/history")).text
        me = (await c.get("/v1/me")).json()
        assert me["name"] == "anonymous" and me["auth"] == "disabled"


async def test_the_console_clock_is_a_setting() -> None:
    async with client(make_app(console_now="live")) as c:
        assert 'data-console-now="live"' in (await c.get("/")).text
    assert AgentSettings(console_now="2024-02-01T08:00:00+01:00").console_now.startswith("2024")
    for bad in ("yesterday", "2024-02-01T08:00:00"):
        with pytest.raises(ValidationError):
            AgentSettings(console_now=bad)


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("console.css", "text/css"),
        ("js/pages/run.js", "text/javascript"),
        ("js/steps.js", "text/javascript"),
        ("workflows.json", "application/json"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_typed_and_carry_the_headers(path: str, media: str) -> None:
    async with client() as c:
        r = await c.get(f"/console/static/{path}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media)
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content == (STATIC / path).read_bytes()


async def test_static_files_stay_in_their_folder() -> None:
    async with client() as c:
        for path in (
            "../pages.py",
            "%2e%2e/pages.py",
            "..%2Fpages.py",
            "js/../../templates/base.html",
            "missing.js",
            "js",
            "/etc/passwd",
        ):
            assert (await c.get(f"/console/static/{path}")).status_code == 404, path
        assert (await c.get("/console/static/js/pages/../steps.js")).status_code in (200, 404)


def test_every_module_import_resolves() -> None:
    """A typo in an import would only fail in the browser: check every relative import here."""
    modules = sorted((STATIC / "js").rglob("*.js"))
    assert len(modules) >= 15
    for module in modules:
        text = module.read_text("utf-8")
        for target in re.findall(r'^import [^;]*? from "(\.[^"]+)";', text, re.M | re.S):
            assert (module.parent / target).resolve().is_file(), f"{module.name}: {target}"


def test_data_enters_the_dom_as_text_only() -> None:
    """House rule (docs/console.md): no innerHTML and friends, no eval, no inline handlers."""
    forbidden = re.compile(
        r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setAttribute\(\s*[\"']on|\.style\s*="
    )
    for module in (STATIC / "js").rglob("*.js"):
        assert not forbidden.search(module.read_text("utf-8")), module.name


def test_colours_and_spacing_are_custom_properties() -> None:
    css = (STATIC / "console.css").read_text("utf-8")
    root, _, rest = css.partition(":root {")[2].partition("}")
    assert "--primary:" in root and "--space-4:" in root
    literal = re.compile(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(")
    assert not literal.search(rest), literal.search(rest)
    assert len(list(STATIC.rglob("*.css"))) == 1


def test_templates_are_named_after_what_they_show() -> None:
    cards = {p.stem for p in (Path(pages.__file__).parent / "templates" / "cards").glob("*.html")}
    assert {"timeline_step", "order_card", "patient_card", "result_card", "lab_table"} <= cards
    for path in (Path(pages.__file__).parent / "templates").rglob("*.html"):
        text = path.read_text("utf-8")
        assert "<script>" not in text and " style=" not in text, path.name
        assert "| safe" not in text, path.name


def test_workflows_json_is_what_the_server_reads() -> None:
    data = json.loads((STATIC / "workflows.json").read_text("utf-8"))
    assert data == pages.workflows()
    for workflow in data["workflows"]:
        for name in re.findall(r"\{([a-z_]+)\}", workflow["instruction"] + workflow["context"]):
            assert name in (*workflow["fields"], "now", "patient_sentence"), (workflow["id"], name)
