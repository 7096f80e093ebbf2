"""Reading the conversation so far: the model's actions and what the agent answered.

The agent (like the MedAgentBench harness) feeds every action's outcome back as a user message:

* ``Here is the response from the GET request:\\n{server's JSON text}. Please call FINISH …``
* ``POST request accepted and executed successfully. …`` / ``Invalid POST request``
  (Sara's agent in dry-run mode: ``POST request validated …``)
* ``Error in sending the GET request: {error}`` / ``Error in sending the POST request: {error}``

Under the agent's ``compact`` protocol a search Bundle of two or more entries comes as a table
(``common`` fields written once, then ``columns`` and ``rows``, dotted names for nested fields);
:func:`parse_reply` rebuilds the Bundle's entries from it (:func:`expand_table`), so the policy
reads both forms alike.

:func:`exchanges` pairs each assistant action with the reply that followed it;
:func:`observations` and :func:`patients` pull the few fields the policy decides on out of
search Bundles. Pure: strings in, frozen values out; anything unreadable becomes a reply of
kind ``OTHER`` (the policy then finishes with an explanation) rather than an exception.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

GET_REPLY = "Here is the response from the GET request:"
GET_ERROR = "Error in sending the GET request"
POST_ERROR = "Error in sending the POST request"
#: "accepted" in the benchmark's harness; Sara's agent in dry-run mode says "validated".
POST_ACCEPTED = ("POST request accepted", "POST request validated")
POST_INVALID = "Invalid POST request"


class ReplyKind(Enum):
    DATA = "data"
    GET_ERROR = "get-error"
    POST_ACCEPTED = "post-accepted"
    POST_INVALID = "post-invalid"
    POST_ERROR = "post-error"
    OTHER = "other"


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Action:
    """One assistant turn read as an action: verb ``GET``/``POST``/``FINISH`` or ``OTHER``."""

    verb: str
    url: str = ""
    resource_type: str = ""


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    data: Any = None


@dataclass(frozen=True)
class Exchange:
    action: Action
    reply: Reply | None


@dataclass(frozen=True)
class Obs:
    """An Observation as graders read it: id, effective time (text and parsed), value."""

    id: str
    when: datetime
    when_text: str
    value: float | int

    @property
    def id_key(self) -> tuple[int, int, str]:
        """Load order: numeric ids ascending (HAPI's order without ``_sort``), others after."""
        return (0, int(self.id), "") if self.id.isdigit() else (1, 0, self.id)


@dataclass(frozen=True)
class PatientHit:
    mrn: str
    given: tuple[str, ...]
    family: str
    birthdate: str


def parse_action(text: str) -> Action:
    """Read an assistant message the way the harness does (strip code fences, first word)."""
    body = text.strip().replace("```tool_code", "").replace("```", "").strip()
    if body.startswith("GET"):
        return Action("GET", url=body[3:].strip())
    if body.startswith("POST"):
        url = body.split("\n", 1)[0][4:].strip()
        return Action("POST", url=url, resource_type=url.rstrip("/").rsplit("/", 1)[-1])
    if body.startswith("FINISH("):
        return Action("FINISH")
    return Action("OTHER")


def parse_reply(text: str) -> Reply:
    stripped = text.lstrip()
    if stripped.startswith(GET_REPLY):
        data = expand_table(_json_prefix(stripped[len(GET_REPLY) :]))
        return Reply(ReplyKind.DATA, data) if isinstance(data, dict) else Reply(ReplyKind.OTHER)
    if stripped.startswith(GET_ERROR):
        return Reply(ReplyKind.GET_ERROR, stripped)
    if stripped.startswith(POST_ACCEPTED):
        return Reply(ReplyKind.POST_ACCEPTED)
    if stripped.startswith(POST_INVALID):
        return Reply(ReplyKind.POST_INVALID)
    if stripped.startswith(POST_ERROR):
        return Reply(ReplyKind.POST_ERROR, stripped)
    return Reply(ReplyKind.OTHER)


def exchanges(after_task: Sequence[Message]) -> list[Exchange]:
    """Pair each assistant message after the task prompt with the user message that answered it."""
    result: list[Exchange] = []
    pending: Action | None = None
    for message in after_task:
        if message.role == "assistant":
            if pending is not None:
                result.append(Exchange(pending, None))
            pending = parse_action(message.content)
        elif message.role == "user" and pending is not None:
            result.append(Exchange(pending, parse_reply(message.content)))
            pending = None
    if pending is not None:
        result.append(Exchange(pending, None))
    return result


def _json_prefix(text: str) -> Any:
    """The JSON value at the start of ``text`` (the harness appends prose after it).

    Falls back to a Python literal: a harness that received ``application/json`` shows the
    model ``str(dict)`` instead of the server's text.
    """
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except RecursionError:
        return None
    except ValueError:
        end = text.rfind("}")
        if end <= start:
            return None
        try:
            value = ast.literal_eval(text[start : end + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return value


def expand_table(data: Any) -> Any:
    """A compact table (``common``/``columns``/``rows``) as the Bundle it stands for; anything
    else unchanged. A ``null`` cell is a field the entry does not have."""
    if not isinstance(data, dict) or not {"columns", "rows"} <= data.keys():
        return data
    common, columns, rows = data.get("common") or {}, data["columns"], data["rows"]
    if not isinstance(common, dict) or not isinstance(columns, list) or not isinstance(rows, list):
        return data
    entries = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(columns):
            return data
        flat = dict(common)
        flat.update((str(k), v) for k, v in zip(columns, row, strict=True) if v is not None)
        resource: dict[str, Any] = {}
        for key, value in flat.items():
            *parents, leaf = key.split(".")
            node = resource
            for part in parents:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    return data
                node = child
            node[leaf] = value
        entries.append({"resource": resource})
    bundle = {k: v for k, v in data.items() if k not in ("common", "columns", "rows")}
    bundle["entry"] = entries
    return bundle


def next_link(bundle: dict[str, Any]) -> str | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def is_bundle(data: Any) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"


def resources(bundles: Iterable[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for bundle in bundles:
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            continue
        for entry in entries:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType") == resource_type:
                found.append(res)
    return found


def observations(bundles: Iterable[dict[str, Any]]) -> list[Obs]:
    """Observations with an ``effectiveDateTime`` and a numeric ``valueQuantity.value``.

    Others are skipped: the benchmark's grader cannot read them either.
    """
    found: list[Obs] = []
    for res in resources(bundles, "Observation"):
        when_text = res.get("effectiveDateTime")
        quantity = res.get("valueQuantity")
        value = quantity.get("value") if isinstance(quantity, dict) else None
        if not isinstance(when_text, str) or isinstance(value, bool):
            continue
        if not isinstance(value, int | float):
            continue
        try:
            when = datetime.fromisoformat(when_text)
        except ValueError:
            continue
        if when.tzinfo is None:
            continue
        found.append(Obs(id=str(res.get("id", "")), when=when, when_text=when_text, value=value))
    return found


def patients(bundles: Iterable[dict[str, Any]]) -> list[PatientHit]:
    hits: list[PatientHit] = []
    for res in resources(bundles, "Patient"):
        names = res.get("name")
        name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
        given = name.get("given")
        hits.append(
            PatientHit(
                mrn=_mrn(res),
                given=tuple(g for g in given if isinstance(g, str))
                if isinstance(given, list)
                else (),
                family=_text(name.get("family")),
                birthdate=_text(res.get("birthDate")),
            )
        )
    return hits


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mrn(patient: dict[str, Any]) -> str:
    """The medical record number: the ``MR`` identifier, else the first identifier, else the id."""
    identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict)]
    for ident in identifiers:
        codings = (ident.get("type") or {}).get("coding") or []
        if any(isinstance(c, dict) and c.get("code") == "MR" for c in codings):
            value = ident.get("value")
            if isinstance(value, str) and value:
                return value
    for ident in identifiers:
        value = ident.get("value")
        if isinstance(value, str) and value:
            return value
    return str(patient.get("id", ""))
