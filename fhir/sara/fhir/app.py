"""The HTTP edge: a Starlette app serving FHIR R4 under ``settings.base_path``.

Handlers parse the request, call :class:`~sara.fhir.searches.Searcher` or
:class:`~sara.fhir.writes.Writer`, and answer ``application/fhir+json;charset=UTF-8`` with
HAPI's pretty layout. Every :class:`~sara.fhir.errors.FhirError` becomes an OperationOutcome
with its status. The store is used from the event loop thread only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sara.fhir import bundle, capability, openapi, pretty, resource, writes
from sara.fhir.errors import BadRequest, FhirError, NotFound, PayloadTooLarge, RequestTimeout
from sara.fhir.paging import SearchCache
from sara.fhir.searches import Searcher
from sara.fhir.settings import ServerSettings
from sara.fhir.store import Store

CONTENT_TYPE = "application/fhir+json;charset=UTF-8"
#: Deeper bodies are refused: rendering and indexing recurse, and no FHIR resource nests this far.
MAX_JSON_DEPTH = 100
Handler = Callable[[Request], Awaitable[Response]]

log = structlog.get_logger("sara.fhir")


class FhirApp:
    """State shared by the handlers: store, remembered searches, writer, searcher."""

    def __init__(self, settings: ServerSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.cache = SearchCache(
            reuse_seconds=settings.reuse_seconds, keep_seconds=settings.keep_seconds
        )
        self.searcher = Searcher(
            store,
            self.cache,
            max_count=settings.max_count,
            query_timeout=settings.query_timeout_seconds,
        )
        self.writer = writes.Writer(store, self.cache)
        self._capability: dict[str, str] = {}  # per base URL: rendered once
        self._openapi: bytes | None = None

    def base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + self.settings.base_path

    async def body(self, request: Request) -> Any:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive within {self.settings.body_timeout_seconds} s"
            ) from None
        try:
            parsed = json.loads(b"".join(chunks), parse_float=Decimal, parse_constant=_no_constant)
            _check_tree(parsed)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest(
                "HAPI-0450: Failed to parse request body as JSON resource. Error was: "
                f"HAPI-1861: Failed to parse JSON encoded FHIR content: {exc}"
            ) from None
        return parsed

    # ---- handlers ----------------------------------------------------------------------

    async def metadata(self, request: Request) -> Response:
        base = self.base(request)
        text = self._capability.get(base)
        if text is None:
            if len(self._capability) > 16:  # Host headers are client-chosen: keep this small
                self._capability.clear()
            statement = capability.statement(base, resource.now_text())
            text = self._capability[base] = pretty.render(statement)
        return _json(text)

    async def api_docs(self, request: Request) -> Response:
        """The OpenAPI document (``sara.fhir.openapi``), built once."""
        if self._openapi is None:
            self._openapi = json.dumps(openapi.document(self.settings.base_path)).encode()
        return Response(self._openapi, media_type="application/json")

    async def root_get(self, request: Request) -> Response:
        pairs = request.query_params.multi_items()
        if not any(k == "_getpages" for k, _ in pairs):
            raise BadRequest(
                "Invalid request: The FHIR endpoint on this server does not know how "
                "to handle GET operation[] with parameters [" + ", ".join(k for k, _ in pairs) + "]"
            )
        text, is_pretty = self.searcher.page(pairs, base=self.base(request))
        return _json(text, pretty_=is_pretty)

    async def root_post(self, request: Request) -> Response:
        body = writes.check_body(await self.body(request), "Bundle")
        result = self.writer.bundle(body)
        return _json(pretty.render(result))

    async def search(self, request: Request) -> Response:
        rtype = request.path_params["rtype"]
        base = self.base(request)
        text, is_pretty = self.searcher.search(
            rtype, request.query_params.multi_items(), url=f"{base}/{rtype}", base=base
        )
        return _json(text, pretty_=is_pretty)

    async def read(self, request: Request) -> Response:
        rtype, rid = request.path_params["rtype"], request.path_params["rid"]
        writes.check_type(rtype)
        stored = self.store.read(rtype, rid)
        version = request.path_params.get("vid")
        if stored is None or (version is not None and version != str(stored.version)):
            raise NotFound(f"HAPI-2001: Resource {rtype}/{rid} is not known")
        text = pretty.reindent(stored.body, pretty.ENTRY_DEPTH)
        return _json(
            text,
            pretty_=request.query_params.get("_pretty", "true").lower() != "false",
            headers=_version_headers(stored.version, stored.updated),
        )

    async def create(self, request: Request) -> Response:
        rtype = request.path_params["rtype"]
        writes.check_type(rtype)
        body = writes.check_body(await self.body(request), rtype)
        prepared = self.writer.create(rtype, body)
        return self._written(request, prepared, created=True)

    async def update(self, request: Request) -> Response:
        rtype, rid = request.path_params["rtype"], request.path_params["rid"]
        writes.check_type(rtype)
        body = writes.check_body(await self.body(request), rtype)
        outcome = self.writer.upsert(rtype, rid, body)
        return self._written(request, outcome.prepared, created=outcome.created)

    def _written(self, request: Request, prepared: resource.Prepared, *, created: bool) -> Response:
        location = (
            f"{self.base(request)}/{prepared.rtype}/{prepared.id}/_history/{prepared.version}"
        )
        return _json(
            pretty.reindent(prepared.body, pretty.ENTRY_DEPTH),
            status=201 if created else 200,
            headers={"Location": location, **_version_headers(prepared.version, prepared.updated)},
        )


def create_app(settings: ServerSettings, store: Store | None = None) -> Starlette:
    """The ASGI app. Opens ``settings.db`` unless a store is handed in; closes it on shutdown."""
    owned = store is None
    state = FhirApp(settings, store if store is not None else Store(settings.db))
    base = settings.base_path.rstrip("/")

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except FhirError as exc:
                response = _json(bundle.outcome(exc.diagnostics, code=exc.code), status=exc.status)
            except Exception:
                log.exception("fhir.request.failed", method=request.method)
                response = _json(bundle.outcome("Internal server error"), status=500)
            if settings.request_log:
                log.info(
                    "fhir.request",
                    method=request.method,
                    resource_type=request.path_params.get("rtype"),
                    status=response.status_code,
                    elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            return response

        return endpoint

    routes = [
        Route(f"{base}/metadata", wrap(state.metadata), methods=["GET"]),
        Route(f"{base}", wrap(state.root_get), methods=["GET"]),
        Route(f"{base}/", wrap(state.root_get), methods=["GET"]),
        Route(f"{base}", wrap(state.root_post), methods=["POST"]),
        Route(f"{base}/", wrap(state.root_post), methods=["POST"]),
        Route(f"{base}/api-docs", state.api_docs, methods=["GET"]),
        Route(f"{base}/{{rtype}}", wrap(state.search), methods=["GET"]),
        Route(f"{base}/{{rtype}}", wrap(state.create), methods=["POST"]),
        # HAPI answers a trailing slash as the same search or create, not with a redirect
        Route(f"{base}/{{rtype}}/", wrap(state.search), methods=["GET"]),
        Route(f"{base}/{{rtype}}/", wrap(state.create), methods=["POST"]),
        Route(f"{base}/{{rtype}}/{{rid}}", wrap(state.read), methods=["GET"]),
        Route(f"{base}/{{rtype}}/{{rid}}", wrap(state.update), methods=["PUT"]),
        Route(f"{base}/{{rtype}}/{{rid}}/_history/{{vid}}", wrap(state.read), methods=["GET"]),
    ]

    async def unknown(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _json(
            bundle.outcome(
                f"Invalid request: The FHIR endpoint on this server does not know how "
                f"to handle {request.method} operation[{request.url.path}]"
            ),
            status=400 if status in (404, 405) else status,
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if owned:
            state.store.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: unknown}, lifespan=lifespan)
    app.router.redirect_slashes = False  # any other slashed path: an OperationOutcome, not a 307
    app.state.fhir = state
    return app


def _version_headers(version: int, updated: str) -> dict[str, str]:
    headers = {"ETag": f'W/"{version}"'}
    # a loaded record with an unusual lastUpdated gets no header rather than a wrong one
    with suppress(ValueError):
        stamp = datetime.fromisoformat(updated).astimezone(UTC)
        headers["Last-Modified"] = format_datetime(stamp, usegmt=True)
    return headers


def _check_tree(value: Any) -> None:
    """Refuse what parses but cannot be stored: deep nesting, unpaired surrogates (``\\ud800``)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
        elif isinstance(item, str) and not item.isascii():
            item.encode()  # UnicodeEncodeError (a ValueError) on an unpaired surrogate


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes")


def _json(
    text: str,
    *,
    status: int = 200,
    pretty_: bool = True,
    headers: dict[str, str] | None = None,
) -> Response:
    content = text.encode() if pretty_ else pretty.compact(text)
    response = Response(content, status_code=status, headers=headers)
    response.headers["content-type"] = CONTENT_TYPE
    return response
