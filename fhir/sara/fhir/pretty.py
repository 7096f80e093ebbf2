"""HAPI FHIR's pretty JSON layout, rendered fast from plain dicts.

HAPI (Jackson with its own pretty printer) writes objects one key per line, two spaces per
object level, but keeps arrays on the opening line: ``"link": [ {`` … ``}, {`` … ``} ]`` and
``"given": [ "Chad" ]``. Object members are indented one level below the line that opened the
array, so an array adds no level of its own.

Resources are rendered once, at the level a searchset Bundle entry puts them
(:data:`ENTRY_DEPTH`), and stored as text; :func:`reindent` shifts that text to the top level
for a direct read. JSON strings never contain a raw newline, so shifting is a plain replace.
"""

from __future__ import annotations

import json.encoder
import re
from decimal import Decimal
from typing import Any

import orjson

#: Object level of ``entry[].resource`` in a Bundle: its keys sit at 6 spaces, its ``}`` at 4.
ENTRY_DEPTH = 2

_encode_str: Any = json.encoder.encode_basestring  # C implementation, ensure_ascii=False
_PADS = ["\n" + "  " * level for level in range(64)]


def render(value: dict[str, Any], depth: int = 0) -> str:
    """Render an object whose closing brace sits at ``depth`` levels of indent."""
    out: list[str] = []
    _object(value, depth, out)
    return "".join(out)


class Memo:
    """Text of top-level values shared between resources, keyed by identity.

    The synthetic EHR generator reuses nested parts (codes, categories, subject references)
    across resources; a bulk load renders each of them once. The memo keeps the objects alive
    so their ids cannot be reused while it exists. Use one memo per batch of resources that
    are not mutated while it lives.
    """

    def __init__(self) -> None:
        self.texts: dict[tuple[int, int], str] = {}
        self.keep: list[Any] = []


def render_resource(value: dict[str, Any], depth: int, memo: Memo | None = None) -> str:
    """Like :func:`render`, reusing the memo's text for shared top-level values."""
    if memo is None or not value:
        return render(value, depth)
    texts = memo.texts
    out: list[str] = []
    pad = _PADS[depth + 1]
    sep = "{" + pad
    inner = depth + 1
    for key, val in value.items():
        out.append(sep)
        out.append(_encode_str(key))
        out.append(": ")
        kind = type(val)
        if kind is dict or kind is list:
            mkey = (id(val), inner)
            text = texts.get(mkey)
            if text is None:
                part: list[str] = []
                _value(val, inner, part)
                text = texts[mkey] = "".join(part)
                memo.keep.append(val)
            out.append(text)
        else:
            _value(val, inner, out)
        sep = "," + pad
    out.append(_PADS[depth])
    out.append("}")
    return "".join(out)


def reindent(text: str, from_depth: int, to_depth: int = 0) -> str:
    """Shift text rendered at ``from_depth`` to ``to_depth`` (shallower)."""
    shift = "  " * (from_depth - to_depth)
    return text.replace("\n" + shift, "\n")


def compact(text: str) -> bytes:
    """The same JSON without whitespace (``_pretty=false``), every number as written.

    orjson's round trip is fast but reads numbers as doubles: ``1.50`` came back ``1.5`` (a
    FHIR decimal's precision is part of its value), 20-digit integers and ``1e-400`` lost
    digits. Text that may hold such a number (or that orjson refuses, like ``1e400``) is
    compacted as written instead.
    """
    if _INEXACT.search(text) is None:
        try:
            return orjson.dumps(orjson.loads(text))
        except orjson.JSONDecodeError:
            pass
    return _SPACE_OUTSIDE_STRINGS.sub(lambda m: m.group(1) or "", text).encode()


_SPACE_OUTSIDE_STRINGS = re.compile(r'("(?:[^"\\]|\\.)*")|\s+')
#: A number (rendered after ``": "``, ``"[ "`` or ``", "``) a double may not give back as
#: written: 16 digits or more, an exponent, trailing fraction zeros (``1.50``, ``1.00``), a small
#: fraction orjson writes with an exponent (``0.0000001``), ``-0``. Text inside strings may match
#: too: it takes the exact path for nothing.
_INEXACT = re.compile(
    r"(?<=[:\[,] )-?(?:[\d.]{17}|[\d.]*[eE]|\d*\.\d*[1-9]0+(?!\d)|\d*\.00+(?!\d)|0\.0000)"
    r"|(?<=[:\[,] )-0(?![\d.])"
)


def string(value: str) -> str:
    """A JSON string literal as HAPI writes it (UTF-8, only required escapes)."""
    result: str = _encode_str(value)
    return result


def _object(obj: dict[str, Any], depth: int, out: list[str]) -> None:
    if not obj:
        out.append("{ }")
        return
    pad = _PADS[depth + 1]
    sep = "{" + pad
    for key, val in obj.items():
        out.append(sep)
        out.append(_encode_str(key))
        out.append(": ")
        _value(val, depth + 1, out)
        sep = "," + pad
    out.append(_PADS[depth])
    out.append("}")


def _value(val: Any, depth: int, out: list[str]) -> None:
    kind = type(val)
    if kind is str:
        out.append(_encode_str(val))
    elif kind is dict:
        _object(val, depth, out)
    elif kind is list:
        if not val:
            out.append("[ ]")
            return
        out.append("[ ")
        first = True
        for item in val:
            if not first:
                out.append(", ")
            first = False
            _value(item, depth, out)
        out.append(" ]")
    elif kind is bool:
        out.append("true" if val else "false")
    elif kind is int:
        out.append(str(val))
    elif kind is float:
        out.append(repr(val))
    elif kind is Decimal:
        out.append(str(val))
    elif val is None:
        out.append("null")
    else:
        raise TypeError(f"cannot render {kind.__name__} as JSON")
