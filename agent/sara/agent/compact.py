"""The compact protocol's renderings: the same facts as the official prompt, in fewer tokens.

Pure: JSON in, text out. Two renderings, both deterministic:

:func:`bundle` — a FHIR answer as minified JSON without server bookkeeping: ``meta`` (version,
    lastUpdated, source) and the ``text`` narrative of every resource, and of a Bundle its ``id``,
    ``meta``, ``self`` link, ``fullUrl``\\s and ``search`` modes (``next`` links stay). A Bundle of
    two or more resources is a table: each resource is flattened (``valueQuantity.value``; lists
    stay whole values), the fields every entry shares with the same value are written once
    (``common``), the others as ``columns`` and one row per entry (``null`` = the entry has no
    such field; FHIR JSON never holds ``null``, so nothing is lost)::

        {"resourceType":"Bundle","type":"searchset","total":2,
         "common":{"resourceType":"Observation","code.text":"GLU",...},
         "columns":["id","effectiveDateTime","valueQuantity.value"],
         "rows":[["165818","2023-11-13T07:21:00+00:00",104.0],[...]]}

    :func:`expand` turns it back into the Bundle (less the bookkeeping): a test pins the pair,
    and the reference model server reads the table the same way.

:func:`functions` — the function list as one line per function: its name, the title of its
    description (``Observation.Search (Labs)``; the Epic product prose after it is dropped), and
    its parameters as a nested outline, ``*`` marking required ones, each with the first sentence
    of its description plus every later sentence that quotes a value (``Use "active"``).
"""

from __future__ import annotations

import json
import re
from typing import Any

_BOOKKEEPING = frozenset({"meta", "text"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TITLE = re.compile(r"\S+\.\w+(?: \([^)]*\))?")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def bundle(data: Any) -> Any:
    """The compact form of one parsed FHIR answer (a Bundle, a resource, anything else as is)."""
    if not isinstance(data, dict):
        return data
    if data.get("resourceType") != "Bundle":
        return _resource(data)
    out: dict[str, Any] = {"resourceType": "Bundle"}
    for key, value in data.items():
        if key in ("resourceType", "id", "meta", "entry", "link"):
            continue
        out[key] = value
    links = data.get("link")
    if isinstance(links, list):
        kept = [item for item in links if isinstance(item, dict) and item.get("relation") != "self"]
        if kept:
            out["link"] = kept
    entries = data.get("entry")
    resources = [
        _resource(e["resource"])
        for e in entries or []
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]
    if len(resources) >= 2:
        out.update(_table([_flatten(r) for r in resources]))
    elif resources:
        out["entry"] = [{"resource": resources[0]}]
    return out


def render(text: str) -> str | None:
    """Compact JSON text for a FHIR answer's body; ``None`` when the body is not JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return dumps(bundle(data))


def expand(data: Any) -> Any:
    """The Bundle a compact table stands for (entries rebuilt from ``common`` + each row)."""
    if not isinstance(data, dict) or not {"columns", "rows"} <= data.keys():
        return data
    common = data.get("common") or {}
    columns = data["columns"]
    out = {k: v for k, v in data.items() if k not in ("common", "columns", "rows")}
    entries = []
    for row in data["rows"]:
        flat = dict(common)
        flat.update((k, v) for k, v in zip(columns, row, strict=True) if v is not None)
        entries.append({"resource": _unflatten(flat)})
    out["entry"] = entries
    return out


def _resource(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in _BOOKKEEPING}


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.update(_flatten(item, f"{prefix}{key}."))
        else:
            out[prefix + key] = item
    return out


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    first = rows[0]
    common = {k: first[k] for k in keys if all(k in r and r[k] == first[k] for r in rows)}
    columns = [k for k in keys if k not in common]
    return {
        "common": common,
        "columns": columns,
        "rows": [[r.get(k) for k in columns] for r in rows],
    }


# -- the function list ---------------------------------------------------------------------------


def functions(items: list[dict[str, Any]]) -> str:
    """The function list, one line per function (see the module docstring)."""
    lines = []
    for item in items:
        params = item.get("parameters")
        outline = _outline(params, _required(params)) if isinstance(params, dict) else ""
        title = _title(str(item.get("description", "")))
        lines.append(" ".join(p for p in (str(item["name"]), title, outline) if p))
    return "\n".join(lines)


def _required(schema: dict[str, Any]) -> set[str]:
    found = schema.get("required")
    return {str(r) for r in found} if isinstance(found, list) else set()


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _title(description: str) -> str:
    text = _collapse(description)
    found = _TITLE.match(text)
    return found.group(0) if found else _SENTENCE_END.split(text, maxsplit=1)[0]


def _hint(description: str) -> str:
    sentences = _SENTENCE_END.split(_collapse(description))
    return " ".join([sentences[0], *(s for s in sentences[1:] if '"' in s)])


def _outline(schema: Any, required: set[str]) -> str:
    if not isinstance(schema, dict):
        return ""
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties")
        parts = []
        for key, sub in (properties if isinstance(properties, dict) else {}).items():
            part = key + ("*" if key in required else "")
            inner = _outline(sub, _required(sub) if isinstance(sub, dict) else set())
            if inner:
                part += ":" + inner
            described = sub.get("description") if isinstance(sub, dict) else None
            if isinstance(described, str) and described.strip():
                part += f" ({_hint(described)})"
            parts.append(part)
        return "{" + ", ".join(parts) + "}" if parts else ""
    if schema.get("type") == "array":
        inner = _outline(schema.get("items"), set())
        return f"[{inner}]" if inner else "[]"
    return ""
