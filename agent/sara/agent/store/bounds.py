"""JSON encoding for the run store: compact, surrogate-safe, and bounded in size.

A stored event is at most ``limit`` bytes: when its JSON is larger, the longest strings are cut
(with a note saying how much) until it fits, and ``"truncated": true`` is set on it. Nothing is
dropped silently and the event keeps its shape, so a replay renders like the live stream.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(data: Any) -> str:
    try:
        return orjson.dumps(data).decode()
    except (orjson.JSONEncodeError, TypeError):
        # lone surrogates or integers beyond 64 bits: the standard library escapes both
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str)


def bounded(data: dict[str, Any], limit: int) -> str:
    """``data`` as JSON of at most ``limit`` bytes (UTF-8)."""
    text = dumps(data)
    if len(text) * 4 <= limit or len(text.encode("utf-8", "surrogatepass")) <= limit:
        return text  # (a UTF-8 character is at most 4 bytes: most events need no encoding)
    cap = limit // 2
    while cap >= 32:
        trimmed = _trim(data, cap)
        if isinstance(trimmed, dict):
            trimmed["truncated"] = True
        text = dumps(trimmed)
        if len(text.encode("utf-8", "surrogatepass")) <= limit:
            return text
        cap //= 2
    return dumps({"type": data.get("type"), "truncated": True, "note": "too large to store"})


def _trim(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + f" … [{len(value) - cap} characters cut by the run store]"
    if isinstance(value, dict):
        return {k: _trim(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_trim(v, cap) for v in value]
    return value
