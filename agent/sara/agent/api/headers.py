"""Security headers on every response, as pure ASGI middleware (streams pass through untouched).

Applied outermost (inside Starlette's own 500 handler only), so the API's JSON, SSE streams,
the console's pages and files, the docs and every refusal (404, 413, 422, 429) carry them. A
header the response set itself wins: the console's pages bring their own Content-Security-Policy
and ``Cache-Control: no-cache`` (``sara.agent.console.pages``), SSE its ``no-cache``.

- ``Content-Security-Policy``: nothing may load and nothing may frame the API's answers; the
  Swagger UI page at ``/docs`` runs FastAPI's one inline start-up script, so it (and only it)
  gets a policy that allows inline script from this origin's page.
- ``Cache-Control: no-store`` where the response says nothing: API answers hold PHI, and no
  browser or proxy cache should keep them (the docs' static assets are left cacheable).
- ``Strict-Transport-Security`` only when the settings say the agent is reached over TLS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: FastAPI's Swagger UI page: its assets from /docs-assets, one inline script to start it.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
DOCS_PATH = "/docs"
CACHEABLE_PREFIX = "/docs-assets/"

_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", PERMISSIONS.encode()),
)


class SecurityHeaders:
    """Adds the security headers to each ``http.response.start`` that lacks them."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        extra = [(b"strict-transport-security", f"max-age={hsts_seconds}".encode())]
        self.always = _ALWAYS + (tuple(extra) if hsts_seconds > 0 else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = (DOCS_CSP if path == DOCS_PATH else DEFAULT_CSP).encode()
        cacheable = path.startswith(CACHEABLE_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self.always if h[0] not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if b"cache-control" not in present and not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
