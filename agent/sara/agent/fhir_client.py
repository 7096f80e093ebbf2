"""The FHIR edge: GET and POST over httpx, one base, no redirects, bounded answers.

The client does not decide *what* may be requested (that is :mod:`sara.agent.urlguard`); it
makes the request it is given with a per-call timeout (for the whole call: a server trickling
bytes cannot hold it open), never follows redirects, ignores proxy environment variables, and
reads at most ``max_response_bytes`` of an answer — after decompression, which is bounded too
(:func:`read_capped`; a gzip bomb never expands past the cap). Failures without an HTTP answer
raise :class:`~sara.agent.errors.FhirError`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import httpx

from sara.agent.errors import FhirError

#: Idle connections are dropped before the server drops them: uvicorn (the embedded FHIR
#: server, vLLM) closes an idle one after 5 s, httpx's default keeps it 5 s too, and a request
#: sent on a connection the server is closing at that moment fails before any byte (found by
#: benchmarks/load_agent.py). Idle connections closed by servers with longer keep-alive cost
#: nothing but a new handshake.
KEEPALIVE_SECONDS = 4.0

FHIR_JSON = "application/fhir+json"


def quiet_http_logs() -> None:
    """Keep httpx/httpcore request lines (full URLs: patient ids) out of INFO logs."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class FhirReply:
    status: int
    reason: str  # the server's reason phrase, possibly empty (HAPI sends none)
    url: str  # the URL as sent, percent-encoded
    content_type: str
    text: str  # decoded body, cut at the size cap
    size: int  # bytes kept
    truncated: bool
    location: str | None
    elapsed: float  # seconds


class FhirClient:
    """Async FHIR HTTP client; share one per process, it pools connections."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_response_bytes: int = 8 * 1024 * 1024,
        bearer_token: str | None = None,
        ca_bundle: Path | None = None,
    ) -> None:
        headers = {"Accept": f"{FHIR_JSON}, application/json", "Accept-Encoding": "gzip, deflate"}
        if bearer_token:
            headers["Authorization"] = f"Bearer {bearer_token}"
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        self.max_response_bytes = max_response_bytes
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers=headers,
            verify=verify,
            limits=httpx.Limits(
                max_connections=256,
                max_keepalive_connections=64,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )

    async def get(self, url: str) -> FhirReply:
        return await self._send("GET", url, None)

    async def post(self, url: str, body: bytes) -> FhirReply:
        return await self._send("POST", url, body)

    async def reachable(self, base: str) -> bool:
        """True when ``{base}metadata`` answers 200."""
        try:
            reply = await self.get(base + "metadata")
        except FhirError:
            return False
        return reply.status == 200

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(self, method: str, url: str, body: bytes | None) -> FhirReply:
        headers = {"Content-Type": f"{FHIR_JSON}; charset=utf-8"} if body is not None else None
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                request = self._client.build_request(method, url, content=body, headers=headers)
                response = await self._client.send(request, stream=True)
                try:
                    raw, truncated = await read_capped(response, self.max_response_bytes)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise FhirError("timed out (the whole call took too long)") from exc
        except httpx.TimeoutException as exc:
            raise FhirError(f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise FhirError(f"{type(exc).__name__}: {exc}") from exc
        except zlib.error as exc:
            raise FhirError(f"DecodingError: {exc}") from exc
        content_type = response.headers.get("content-type", "")
        size = len(raw)
        return FhirReply(
            status=response.status_code,
            reason=_reason(response),
            url=str(response.request.url),
            content_type=content_type,
            text=_text(raw, response.charset_encoding),
            size=size,
            truncated=truncated,
            location=response.headers.get("location"),
            elapsed=time.perf_counter() - start,
        )


async def read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the decoded body, and whether there was more.

    httpx would inflate each received chunk whole (and stack ``gzip, gzip`` layers), so a few
    KiB of gzip could become GiBs before any cap applies; here inflating stops at the cap.
    Encodings other than one of gzip/deflate raise ``httpx.DecodingError``.
    """
    if response.is_stream_consumed:  # read and decoded already (in-memory test transports)
        return response.content[:cap], len(response.content) > cap
    inflate = _inflater(response.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    size = 0
    async for data in response.aiter_raw():
        chunk = data if inflate is None else inflate.decompress(data, cap - size + 1)
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


class _Inflate:
    """Bounded inflation of one gzip or deflate body (deflate with or without a zlib header)."""

    def __init__(self, gzip: bool) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def decompress(self, data: bytes, limit: int) -> bytes:
        if self._z is None:
            if not data:
                return b""
            wrapped = len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._z.decompress(data, limit)


def _inflater(header: str) -> _Inflate | None:
    codings = [
        c for c in (c.strip().lower() for c in header.split(",")) if c not in ("", "identity")
    ]
    if not codings:
        return None
    if codings in (["gzip"], ["x-gzip"], ["deflate"]):
        return _Inflate(gzip=codings[0] != "deflate")
    raise httpx.DecodingError(f"unsupported Content-Encoding {header!r}")


def _text(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError):  # unknown, non-text (zlib) or strict-only (idna) codecs
        return raw.decode("utf-8", errors="replace")


def _reason(response: httpx.Response) -> str:
    raw = response.extensions.get("reason_phrase")
    if isinstance(raw, bytes):
        return raw.decode("latin-1")
    return response.reason_phrase
