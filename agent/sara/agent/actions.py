"""Carry out one GET or POST action and word the answer the model sees.

The wording follows the MedAgentBench harness (the reference policy and the benchmark's grader
rely on it); ``protocol`` picks the details:

``medagentbench``  ``&_format=json`` is appended to the model's URL as written (also when it has
                   no ``?``: ``Patient&_format=json`` goes to the server, which answers an error)
                   and the URL is percent-encoded as ``requests`` does (a newline or space in
                   the query becomes ``%0A``/``%20`` and is sent); errors read like ``requests``'
                   text: ``raise_for_status``, a URL without scheme, a JSON body that does not
                   parse; nothing else is added.
``sara``           ``_format=json`` is added as a proper query parameter; HTTP errors also carry
                   the OperationOutcome diagnostics, so the model can correct its call.
``sara-leaderboard`` the harness behind the published leaderboard: requests and wording exactly as
                   ``medagentbench`` (its prompt, salvage parser and status rules live elsewhere).
``compact``        requests and errors as ``medagentbench``; a JSON answer is shown in the compact
                   form of :mod:`sara.agent.compact` (minified, bookkeeping dropped, tables).

Every call — sent, refused or only acknowledged — returns a :class:`Call` record that the loop
turns into events, an audit record and metrics.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import orjson

from sara.agent import audit, compact, orders, parser
from sara.agent.errors import FhirError
from sara.agent.fhir_client import FhirClient, FhirReply
from sara.agent.settings import WriteMode
from sara.agent.store import records
from sara.agent.urlguard import Decision, UrlGuard

Protocol = Literal["medagentbench", "sara", "sara-leaderboard", "compact"]
PROTOCOLS: tuple[Protocol, ...] = ("medagentbench", "sara", "sara-leaderboard", "compact")
#: Protocols that send the model's URL as the MedAgentBench harness does (``requests`` semantics).
RAW_URL_PROTOCOLS = frozenset({"medagentbench", "sara-leaderboard", "compact"})
PLEASE_FINISH = (
    "Please call FINISH if you have got answers for all the questions and finished all the "
    "requested tasks"
)
POST_ACCEPTED = f"POST request accepted and executed successfully. {PLEASE_FINISH}"
POST_INVALID = "Invalid POST request"
MAX_VALIDATION_ERRORS = 20


@dataclass(frozen=True, slots=True)
class Call:
    """What happened to one FHIR action (no bodies: safe for events, audit and metrics)."""

    method: str
    resource_type: str | None  # an allowlisted type, or None
    patient: str | None
    sent: bool
    outcome: str  # see sara.agent.audit
    status: int | None = None
    blocked: str | None = None  # guard reason code
    size: int = 0
    truncated: bool = False
    entry_count: int | None = None
    elapsed: float = 0.0
    summary: dict[str, Any] | None = None  # resource type, count or id (see :func:`summarize`)


@dataclass(frozen=True, slots=True)
class Outcome:
    message: str  # the next user message
    call: Call


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A POST that passed every check and now waits for a clinician's signature."""

    url: str  # absolute, as the guard allowed it
    relative: str  # path and query relative to the FHIR base
    resource_type: str
    patient: str | None
    payload: Any
    body: str  # canonical JSON: what is shown, hashed and (once signed) sent
    payload_sha256: str
    summary: str


def http_error_text(reply: FhirReply) -> str:
    """``requests``' ``raise_for_status`` wording, e.g. ``400 Client Error:  for url: …``."""
    kind = "Client" if reply.status < 500 else "Server"
    return f"{reply.status} {kind} Error: {reply.reason} for url: {reply.url}"


def diagnostics(text: str) -> str | None:
    """The diagnostics of an OperationOutcome body, if that is what it is."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("resourceType") != "OperationOutcome":
        return None
    notes = [i.get("diagnostics") for i in data.get("issue") or [] if isinstance(i, dict)]
    found = [n for n in notes if isinstance(n, str)]
    return "; ".join(found) or None


def entry_count(text: str) -> int | None:
    found = summarize(text)
    return found.get("count") if found and found["resource_type"] == "Bundle" else None


def summarize(text: str) -> dict[str, Any] | None:
    """A short description of a FHIR answer: a Bundle's entry count, total and entry types,
    a single resource's type and id, an OperationOutcome's first diagnostics; None otherwise."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return None
    rtype = data["resourceType"][:64]
    if rtype == "Bundle":
        found_entries = data.get("entry")
        entries: list[Any] = found_entries if isinstance(found_entries, list) else []
        types = sorted(
            {
                e["resource"]["resourceType"][:64]
                for e in entries
                if isinstance(e, dict)
                and isinstance(e.get("resource"), dict)
                and isinstance(e["resource"].get("resourceType"), str)
            }
        )
        out: dict[str, Any] = {"resource_type": rtype, "count": len(entries), "types": types[:8]}
        if isinstance(data.get("total"), int):
            out["total"] = data["total"]
        return out
    if rtype == "OperationOutcome":
        found = diagnostics(text)
        return {"resource_type": rtype, "diagnostics": (found or "")[:300]}
    rid = data.get("id")
    return {"resource_type": rtype, "id": rid[:64] if isinstance(rid, str) else None}


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_KEEP = "!#$%&'()*+,/:;=?@[]~"  # characters ``requests`` leaves as they are
_PATH_CHARS = _UNRESERVED | frozenset("!$&'()*+,;=:@/")  # what urllib3 leaves in a path
_QUERY_CHARS = _PATH_CHARS | {"?"}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _encode_invalid(component: str, allowed: frozenset[str]) -> str:
    """urllib3's clean-up of one URL component: escapes upper-cased; a ``%`` kept only when
    every ``%`` starts an escape; other characters outside ``allowed`` become ``%XX``."""
    component, escapes = _ESCAPE.subn(lambda m: m.group(0).upper(), component)
    keep_percent = escapes == component.count("%")
    if allowed.issuperset(component.replace("%", "") if keep_percent else component):
        return component  # nothing to escape (the common case): a set test, no loop
    out: list[str] = []
    for char in component:
        if (char == "%" and keep_percent) or (char != "%" and char in allowed):
            out.append(char)
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def requote(url: str) -> str:
    """Percent-encode ``url`` as ``requests`` (with urllib3) does before sending it.

    Path and query are cleaned up as urllib3 does (:func:`_encode_invalid`); then valid escapes
    stay (those of unreserved characters are decoded) and everything outside :data:`_KEEP` and
    the unreserved set (spaces, newlines, ``|``, non-ASCII) becomes ``%XX``; a ``%`` before two
    letters or digits that are no hex escape (``%zz``) makes ``requests`` encode every ``%``.
    """
    head, mark, query = url.partition("?")
    scheme, sep, rest = head.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        head = f"{scheme}{sep}{host}{slash}{_encode_invalid(path, _PATH_CHARS)}"
    if not sep:
        head = _encode_invalid(head, _PATH_CHARS | {":"})  # lone surrogates too: no crash
    if mark:
        query, hash_, fragment = query.partition("#")
        query = _encode_invalid(query, _QUERY_CHARS)
        if hash_:
            query += hash_ + _encode_invalid(fragment, _QUERY_CHARS)
    url = head + mark + query
    pieces = url.split("%")
    kept = [pieces[0]]
    for piece in pieces[1:]:
        code = piece[:2]
        if len(code) < 2 or not code.isalnum():
            kept.append("%" + piece)  # a lone "%" stays
            continue
        if any(c not in string.hexdigits for c in code):
            return quote(url, safe=_KEEP.replace("%", ""))
        char = chr(int(code, 16))
        kept.append(char + piece[2:] if char in _UNRESERVED else "%" + piece)
    return quote("".join(kept), safe=_KEEP)


def requests_url_error(url: str) -> str | None:
    """What ``requests.get(url)`` raises before sending for a URL without an http(s) scheme."""
    if ":" not in url:
        return f"Invalid URL {url!r}: No scheme supplied. Perhaps you meant https://{url}?"
    if not url.lower().startswith("http"):
        return f"No connection adapters were found for {url!r}"
    return None


def with_format(url: str, protocol: Protocol) -> str:
    if protocol in RAW_URL_PROTOCOLS:
        return url + "&_format=json"
    if "_format=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "_format=json"


class Actions:
    """Executes actions against one FHIR base under one write mode."""

    def __init__(
        self,
        *,
        fhir: FhirClient,
        guard: UrlGuard,
        write_mode: WriteMode,
        protocol: Protocol,
    ) -> None:
        self.fhir = fhir
        self.guard = guard
        self.write_mode = write_mode
        self.protocol = protocol

    def plan(self, action: parser.Get | parser.Post) -> tuple[str, str | None, bool, str | None]:
        """Before acting: method, resource type, whether a request will be sent, block reason."""
        if isinstance(action, parser.Get):
            if self._unsendable(action.url) is not None:
                return "GET", None, False, None
            decision, _ = self._check_get(action.url)
            return (
                "GET",
                decision.resource_type,
                decision.allowed,
                decision.reason if not decision.allowed else None,
            )
        decision = self.guard.check("POST", action.url)
        writes = self.write_mode in (WriteMode.EXECUTE, WriteMode.DRY_RUN) and action.valid
        blocked = decision.reason if writes and not decision.allowed else None
        sends = self.write_mode == WriteMode.EXECUTE and action.valid and decision.allowed
        return "POST", decision.resource_type, sends, blocked

    def relative(self, url: str) -> str:
        """A URL relative to the FHIR base when it is under it; else as written (shortened)."""
        base = self.guard.base.url
        if url.startswith(base):
            return url[len(base) :]
        return url if len(url) <= 2000 else url[:1999] + "…"

    def request_line(self, action: parser.Get | parser.Post) -> str:
        """What the request events show: for a GET the URL as it will be sent."""
        if isinstance(action, parser.Post):
            return self.relative(action.url)
        if self._unsendable(action.url) is None:
            decision, target = self._check_get(action.url)
            if decision.allowed and target is not None:
                return self.relative(target)
        return self.relative(action.url)

    def _blocked_text(self, method: str, explanation: str) -> str:
        return (
            f"Error in sending the {method} request: blocked by Sara's URL guard "
            f"({explanation}). Only requests to {self.guard.base.url}<ResourceType> are allowed."
        )

    def _unsendable(self, url: str) -> str | None:
        """The harness's error for a GET ``requests`` refuses to send (no http(s) scheme)."""
        if self.protocol not in RAW_URL_PROTOCOLS:
            return None
        return requests_url_error(with_format(url, self.protocol))

    def _check_get(self, url: str) -> tuple[Decision, str | None]:
        """The guard's decision on a GET and, when allowed, the URL to send."""
        full = with_format(url, self.protocol)
        if self.protocol not in RAW_URL_PROTOCOLS:
            decision = self.guard.check("GET", full)
            return decision, decision.url
        full = requote(full)
        decision = self.guard.check("GET", full)
        if not decision.allowed and "?" not in full:
            # The harness sends ``…/Patient&_format=json`` as written and shows the server's
            # error: check it as ``…/Patient?_format=json``, send it with the ``&``.
            other = self.guard.check("GET", full.replace("&", "?", 1))
            if other.allowed and other.url is not None:
                return other, other.url.replace("?", "&", 1)
        return decision, decision.url

    async def get(self, url: str) -> Outcome:
        full = with_format(url, self.protocol)
        patient = _patient(full)
        unsendable = self._unsendable(url)
        if unsendable is not None:
            text = f"Error in sending the GET request: {unsendable}"
            return Outcome(text, Call("GET", None, patient, False, "invalid"))
        decision, target = self._check_get(url)

        def call(outcome: str, **more: Any) -> Call:
            return Call(
                "GET", decision.resource_type, patient, outcome != "blocked", outcome, **more
            )

        if not decision.allowed or target is None:
            text = self._blocked_text("GET", decision.explanation)
            return Outcome(text, call("blocked", blocked=decision.reason))
        try:
            reply = await self.fhir.get(target)
        except FhirError as exc:
            return Outcome(f"Error in sending the GET request: {exc}", call("transport_error"))
        sizes = {"status": reply.status, "size": reply.size, "elapsed": reply.elapsed}
        if not 200 <= reply.status < 300:  # redirects are not followed: an error too
            text = f"Error in sending the GET request: {self._error(reply)}"
            return Outcome(text, call("http_error", **sizes))
        data = reply.text
        shown = compact.render(data) if self.protocol == "compact" and not reply.truncated else None
        if shown is not None:
            data = shown
        elif reply.content_type == "application/json" and not reply.truncated:
            # The harness hands the agent ``response.json()`` for plain JSON, i.e. a Python repr;
            # a body that does not parse makes ``requests`` raise, and the agent sees the error.
            try:
                data = str(json.loads(data))
            except ValueError as exc:
                if self.protocol in RAW_URL_PROTOCOLS:
                    text = f"Error in sending the GET request: {exc}"
                    return Outcome(text, call("http_error", **sizes))
        if reply.truncated:
            data += (
                f"\n[Sara: the response was cut at {reply.size} bytes (the agent's limit). "
                "Narrow the search, e.g. with _count, date or code, to see all of it.]"
            )
        found = None if reply.truncated else summarize(reply.text)
        if found is None and not reply.truncated and self.protocol == "sara":
            data += (  # a malformed answer (a proxy's page, a cut bundle): say so, not guess
                "\n[Sara: this answer is not a FHIR resource (not valid JSON, or no "
                "resourceType); it is shown as received. Retry once or finish.]"
            )
        entries = found.get("count") if found and found["resource_type"] == "Bundle" else None
        return Outcome(
            f"Here is the response from the GET request:\n{data}. {PLEASE_FINISH}",
            call("ok", truncated=reply.truncated, entry_count=entries, summary=found, **sizes),
        )

    def _error(self, reply: FhirReply) -> str:
        if 300 <= reply.status < 400:
            return f"{reply.status} redirect not followed for url: {reply.url}"
        text = http_error_text(reply)
        if self.protocol == "sara":
            found = diagnostics(reply.text)
            if found:
                text += f"\n{found}"
        return text

    async def post(self, action: parser.Post) -> Outcome:
        decision = self.guard.check("POST", action.url)
        rtype = decision.resource_type
        patient = _patient(action.url, action.payload)

        def call(outcome: str, **more: Any) -> Call:
            return Call("POST", rtype, patient, False, outcome, **more)

        mode = self.write_mode
        if not action.valid:
            return Outcome(POST_INVALID, call("invalid"))
        if mode == WriteMode.APPROVE:
            raise RuntimeError("approve mode: use prepare() and execute_signed()")
        if mode == WriteMode.ACKNOWLEDGE:
            return Outcome(POST_ACCEPTED, call("acknowledged"))
        if mode == WriteMode.DENY:
            text = (
                "POST request denied: this agent is not allowed to write to the FHIR server. "
                f"{PLEASE_FINISH}"
            )
            return Outcome(text, call("denied"))
        if not decision.allowed or decision.url is None or rtype is None:
            text = self._blocked_text("POST", decision.explanation)
            return Outcome(text, call("blocked", blocked=decision.reason))
        payload = action.payload
        if not isinstance(payload, dict) or payload.get("resourceType") != rtype:
            text = (
                f'{POST_INVALID}: the payload must be a JSON object with "resourceType": "{rtype}"'
            )
            return Outcome(text, call("invalid"))
        try:
            body = orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:  # lone surrogates, integers beyond 64 bits
            text = f"{POST_INVALID}: the payload cannot be sent as JSON ({exc})"
            return Outcome(text, call("invalid"))
        if mode == WriteMode.DRY_RUN:
            problems = validate(payload)
            if problems:
                listed = "\n".join(f"- {p}" for p in problems)
                text = (
                    f"POST request rejected (dry run, nothing was stored): the {rtype} is not "
                    f"valid FHIR R4:\n{listed}"
                )
                return Outcome(text, call("dry_run_invalid"))
            text = (
                f"POST request validated (dry run, nothing was stored): the {rtype} is valid "
                f"FHIR R4. {PLEASE_FINISH}"
            )
            return Outcome(text, call("dry_run"))
        return await self._execute(decision.url, rtype, patient, body)

    def prepare(self, action: parser.Post, task_patient: str | None) -> PendingWrite | Outcome:
        """Approve mode: check a POST before a clinician sees it. A POST that fails a check is
        an Outcome the model is told about (nobody is asked to sign it); otherwise the write
        waits as a :class:`PendingWrite`."""
        decision = self.guard.check("POST", action.url)
        rtype = decision.resource_type
        patient = _patient(action.url, action.payload)

        def refuse(text: str, outcome: str = "invalid", **more: Any) -> Outcome:
            return Outcome(text, Call("POST", rtype, patient, False, outcome, **more))

        if not action.valid:
            return refuse(POST_INVALID)
        if not decision.allowed or decision.url is None or rtype is None:
            text = self._blocked_text("POST", decision.explanation)
            return refuse(text, "blocked", blocked=decision.reason)
        payload = action.payload
        if not isinstance(payload, dict) or payload.get("resourceType") != rtype:
            return refuse(
                f'{POST_INVALID}: the payload must be a JSON object with "resourceType": "{rtype}"'
            )
        try:
            body = records.canonical(payload)
        except orjson.JSONEncodeError as exc:
            return refuse(f"{POST_INVALID}: the payload cannot be sent as JSON ({exc})")
        if patient is None:
            return refuse(
                f"{POST_INVALID}: the {rtype} must name its patient "
                '("subject": {"reference": "Patient/<id>"}) before a clinician can sign it'
            )
        if task_patient is not None and patient != task_patient:
            return refuse(
                f"{POST_INVALID}: the {rtype} is for {patient}, but this task concerns "
                f"{task_patient}; an order for another patient cannot be signed here"
            )
        return PendingWrite(
            url=decision.url,
            relative=self.relative(decision.url),
            resource_type=rtype,
            patient=patient,
            payload=payload,
            body=body,
            payload_sha256=records.sha256(body),
            summary=orders.summary(payload),
        )

    def restore(self, relative: str, body: str, digest: str) -> PendingWrite | Outcome:
        """A stored pending write, checked again (the guard, the hash) before it is sent: the
        replica resuming it may not be the one that showed it."""
        url = self.guard.base.url + relative
        decision = self.guard.check("POST", url)
        rtype = decision.resource_type
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None

        def refuse(text: str, outcome: str, **more: Any) -> Outcome:
            patient = _patient(url, payload)
            return Outcome(text, Call("POST", rtype, patient, False, outcome, **more))

        if not decision.allowed or decision.url is None or rtype is None:
            return refuse(
                self._blocked_text("POST", decision.explanation), "blocked", blocked=decision.reason
            )
        if records.sha256(body) != digest or not isinstance(payload, dict):
            return refuse(f"{POST_INVALID}: the stored payload does not match its hash", "invalid")
        return PendingWrite(
            url=decision.url,
            relative=relative,
            resource_type=rtype,
            patient=_patient(url, payload),
            payload=payload,
            body=body,
            payload_sha256=digest,
            summary=orders.summary(payload),
        )

    async def execute_signed(self, write: PendingWrite) -> Outcome:
        """Send a signed write: exactly the canonical body that was shown and hashed."""
        return await self._execute(
            write.url, write.resource_type, write.patient, write.body.encode()
        )

    async def _execute(self, url: str, rtype: str, patient: str | None, body: bytes) -> Outcome:
        def call(outcome: str, **more: Any) -> Call:
            return Call("POST", rtype, patient, True, outcome, **more)

        try:
            reply = await self.fhir.post(url, body)
        except FhirError as exc:
            return Outcome(f"Error in sending the POST request: {exc}", call("transport_error"))
        sizes = {"status": reply.status, "size": reply.size, "elapsed": reply.elapsed}
        if not 200 <= reply.status < 300:
            text = f"Error in sending the POST request: {self._error(reply)}"
            return Outcome(text, call("http_error", **sizes))
        created = created_id(reply)
        where = f": created {rtype}/{created}" if created else ""
        text = f"POST request accepted and executed successfully{where}. {PLEASE_FINISH}"
        summary = {"resource_type": rtype, "id": created}
        return Outcome(text, call("ok", summary=summary, **sizes))


def _patient(url: str, payload: Any = None) -> str | None:
    """The audit's patient reference; ``None`` for a URL that does not even split (``http://[``):
    such a URL is the model's mistake, to be told about, not a task error."""
    try:
        return audit.patient_reference(url, payload)
    except ValueError:
        return None


def created_id(reply: FhirReply) -> str | None:
    """The new resource's id, from ``Location`` (``…/Type/id/_history/1``) or the body."""
    if reply.location:
        parts = [p for p in reply.location.split("?")[0].split("/") if p]
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if parts:
            return parts[-1]
    try:
        data = orjson.loads(reply.text)
    except orjson.JSONDecodeError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def validate(payload: dict[str, Any]) -> list[str]:
    """Strict FHIR R4 validation with ``fhir.resources.R4B``; empty when valid."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        model = get_fhir_model_class(str(payload["resourceType"]))
    except (KeyError, ValueError, AttributeError) as exc:
        return [f"unknown resourceType: {exc}"]
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        out = []
        for err in exc.errors()[:MAX_VALIDATION_ERRORS]:
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            out.append(f"{loc}: {err['msg']}")
        return out
    return []
