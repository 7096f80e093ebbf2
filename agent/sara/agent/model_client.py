"""The model edge: an OpenAI-compatible ``/v1/chat/completions`` client over httpx.

History roles map as the benchmark's harness maps them: ``user`` → ``user``, ``agent`` →
``assistant``. Requests use the configured temperature (0) and ``max_tokens`` (2048). 429, 5xx,
timeouts, connection errors (refused, reset, a body cut short) and answers that are not a
completion (garbage, an HTML error page) are retried ``max_retries`` times with exponential
backoff and full jitter (a random delay between 0 and ``backoff · 2^(try-1)``, capped at
``MAX_BACKOFF_SECONDS``; ``Retry-After`` honoured as given, capped), then raise one
:class:`~sara.agent.errors.ModelError` whose message says why in words, e.g. "model server
failed (HTTP 503) after 4 tries". Each attempt is bounded in time as a whole (a server
trickling bytes cannot hold it open) and its answer in size (``MAX_RESPONSE_BYTES`` after
decompression, :func:`~sara.agent.fhir_client.read_capped`). A context-window overflow —
HTTP 400/413/422 whose body speaks of the context length, or ``finish_reason: "length"`` with
no content — raises :class:`~sara.agent.errors.ContextLimitError`; other failures raise
:class:`~sara.agent.errors.ModelError`. ``context_limit`` replaces that rule for an error answer
(the bench reproduces another harness's classification with it).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from sara.agent.errors import ContextLimitError, ModelError
from sara.agent.fhir_client import KEEPALIVE_SECONDS, read_capped

_ROLES = {"user": "user", "agent": "assistant", "system": "system"}
_CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "maximum model length",
    "max_model_len",
)
MAX_BACKOFF_SECONDS = 8.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a completion of max_tokens is far smaller


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    elapsed: float  # seconds, all attempts included
    attempts: int


def is_context_limit(status: int, body: str) -> bool:
    """Whether an error answer means the prompt does not fit the model's context."""
    lowered = body.lower()
    return status in (400, 413, 422) and any(m in lowered for m in _CONTEXT_MARKERS)


class ModelClient:
    """Async chat-completions client; share one per process."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        transport: httpx.AsyncBaseTransport | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        context_limit: Callable[[int, str], bool] | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.backoff = backoff
        # how to wait between tries, and a factor in [0, 1) for each backoff: tests replace
        # them (also on a running app's shared client) to record or pin the delays
        self.sleep = sleep
        self.jitter = jitter
        self.timeout = timeout
        self._context_limit = context_limit or is_context_limit
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers=headers,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=256,
                max_keepalive_connections=64,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )

    async def complete(self, history: list[dict[str, str]]) -> Completion:
        """One chat completion for the conversation so far."""
        body = {
            "model": self.model,
            "messages": [{"role": _ROLES[m["role"]], "content": m["content"]} for m in history],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        url = f"{self.base_url}/chat/completions"
        start = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            delay: float | None = None
            try:
                response, raw = await self._post(url, body)
            except (TimeoutError, httpx.TimeoutException):
                failure = ModelError(
                    f"model server timed out (no answer within {self.timeout:g} s) "
                    f"after {_tries(attempt)}",
                    reason="timeout",
                )
            except httpx.ConnectError as exc:
                failure = ModelError(
                    f"model server unreachable ({type(exc).__name__}) after {_tries(attempt)}",
                    reason="connection",
                )
            except httpx.TransportError as exc:  # reset, or a body cut short
                failure = ModelError(
                    f"model server connection failed mid-answer ({type(exc).__name__}) "
                    f"after {_tries(attempt)}",
                    reason="connection",
                )
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return _completion(raw, time.perf_counter() - start, attempt)
                    except _BadBody as exc:
                        failure = ModelError(
                            f"model server answered with an unexpected body ({exc}) "
                            f"after {_tries(attempt)}",
                            reason="bad_body",
                        )
                else:
                    text = raw.decode("utf-8", errors="replace")
                    if self._context_limit(status, text):
                        raise ContextLimitError(f"model context limit (HTTP {status})")
                    if status != 429 and status < 500:
                        raise ModelError(
                            f"model server refused the request (HTTP {status})", reason="refused"
                        )
                    failure = ModelError(
                        f"model server failed (HTTP {status}) after {_tries(attempt)}",
                        reason="http",
                    )
                    delay = _retry_after(response)
            if attempt > self.max_retries:
                raise failure
            if delay is None:  # full jitter: retries of many tasks do not arrive in step
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS) * self.jitter()
            await self.sleep(min(delay, MAX_BACKOFF_SECONDS))

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
        """One attempt: the response and at most MAX_RESPONSE_BYTES of its body, in time."""
        async with asyncio.timeout(self.timeout):
            request = self._client.build_request(
                "POST", url, content=request_body(body), headers=_JSON_HEADERS
            )
            response = await self._client.send(request, stream=True)
            try:
                raw, truncated = await read_capped(response, MAX_RESPONSE_BYTES)
            except (httpx.DecodingError, zlib.error) as exc:
                raise ModelError(
                    "model server answered with an undecodable body", reason="bad_body"
                ) from exc
            finally:
                await response.aclose()
        if truncated:
            raise ModelError(
                f"model server answer exceeds {MAX_RESPONSE_BYTES} bytes", reason="too_large"
            )
        return response, raw

    async def reachable(self) -> bool:
        """True when ``GET {base}/models`` answers 200."""
        try:  # the status is all that matters: the body (of any size) is never read
            async with self._client.stream("GET", f"{self.base_url}/models") as response:
                return response.status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self._client.aclose()


_JSON_HEADERS = {"Content-Type": "application/json"}


def request_body(body: dict[str, Any]) -> bytes:
    """The request as JSON bytes: orjson (the whole history is encoded every round; several
    times faster than ``json``), or ``json``'s escapes for what UTF-8 cannot carry (a lone
    surrogate in a model's earlier answer)."""
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError: str is not valid UTF-8
        return json.dumps(body).encode()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _BadBody(Exception):
    """A 200 answer that is not a chat completion (retried; its message says what it was)."""


def _tries(attempt: int) -> str:
    return "1 try" if attempt == 1 else f"{attempt} tries"


def _completion(raw: bytes, elapsed: float, attempts: int) -> Completion:
    try:
        data: Any = json.loads(raw)
    except RecursionError as exc:
        raise _BadBody("JSON nested too deeply") from exc
    except ValueError as exc:
        raise _BadBody("HTML, not JSON" if raw.lstrip()[:1] == b"<" else "not JSON") from exc
    try:
        choice = data["choices"][0]
        text = choice.get("message", {}).get("content") or ""
        finish = choice.get("finish_reason")
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt_tokens = _tokens(usage.get("prompt_tokens"))
        completion_tokens = _tokens(usage.get("completion_tokens"))
    except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        raise _BadBody("JSON, but not a chat completion") from exc
    if not isinstance(text, str):
        raise ModelError("model server answered with non-text content", reason="bad_body")
    if not text.isascii():  # a lone surrogate ("\ud800" in the JSON) has no UTF-8: sending it
        text = text.encode("utf-8", "replace").decode()  # back, SSE and JSON answers all failed
    if finish == "length" and not text.strip():
        raise ContextLimitError("model stopped at its length limit without output")
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish if isinstance(finish, str) else None,
        elapsed=elapsed,
        attempts=attempts,
    )


def _tokens(value: Any) -> int:
    """A token count as the server reported it; anything but a plain count (absent, null,
    negative, a string, NaN) counts as 0 rather than failing the task or the metrics."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0
