"""Decide whether a URL the model wrote may be requested. Pure: no I/O, no logging.

The agent contacts exactly one FHIR base: same scheme, host and port, and a path under the
base's path. A URL passes only when, after normalisation, it names an allowed resource type
(``Type`` or ``Type/id``; for POST only ``Type``) below that base, or is the base itself with a
``_getpages`` query (HAPI's paging links). Anything doubtful is refused rather than repaired:
percent-encoded path characters, ``.``/``..`` segments, backslashes, userinfo (``user@host``),
control characters, a different host spelling. The URL that is sent is rebuilt from the
configured base plus the checked path and the model's query, so what was checked is what goes
on the wire. Redirects are never followed (the FHIR client's job).

Reason codes are a closed set (they become a metric label): see :data:`REASONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_READ_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Observation",
        "Condition",
        "MedicationRequest",
        "Procedure",
        "ServiceRequest",
        "Encounter",
        "AllergyIntolerance",
        "DiagnosticReport",
        "Immunization",
        "MedicationStatement",
        "MedicationAdministration",
    }
)
DEFAULT_WRITE_TYPES: frozenset[str] = frozenset(
    {"Observation", "MedicationRequest", "ServiceRequest"}
)

REASONS: tuple[str, ...] = (
    "method",
    "invalid",
    "backslash",
    "scheme",
    "userinfo",
    "host",
    "port",
    "encoding",
    "traversal",
    "path",
    "resource_type",
)
_EXPLAIN = {
    "method": "only GET and POST are allowed",
    "invalid": "the URL is empty, too long, or contains control characters, spaces or "
    "unencodable characters",
    "backslash": "backslashes are not allowed in URLs",
    "scheme": "the scheme differs from the FHIR base",
    "userinfo": "credentials (user@host) are not allowed in URLs",
    "host": "the host differs from the FHIR base",
    "port": "the port differs from the FHIR base",
    "encoding": "percent-encoded characters are not allowed in the path",
    "traversal": "'.' and '..' path segments are not allowed",
    "path": "the path is not a resource type (or Type/id) under the FHIR base",
    "resource_type": "this resource type is not allowed",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MAX_URL_LENGTH = 8192


#: Control characters, and lone surrogates (a model's JSON ``"\\ud800"``): no UTF-8 for them.
_UNSENDABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # "ok" or one of REASONS
    url: str | None = None  # the URL to send (only when allowed)
    resource_type: str | None = None  # set when the path names an allowlisted type

    @property
    def explanation(self) -> str:
        return _EXPLAIN.get(self.reason, "allowed")


@dataclass(frozen=True, slots=True)
class Base:
    scheme: str
    host: str
    port: int
    netloc: str
    path: str  # always ends with "/"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"


def parse_base(url: str) -> Base:
    """Parse the configured FHIR base; raises ValueError when it is not an absolute http(s) URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        raise ValueError(f"FHIR base must be an absolute http(s) URL without credentials: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"FHIR base must not have a query or fragment: {url!r}")
    path = re.sub(r"/{2,}", "/", parts.path or "/")
    if not path.endswith("/"):
        path += "/"
    port = parts.port or _DEFAULT_PORTS[scheme]
    return Base(
        scheme=scheme, host=parts.hostname.lower(), port=port, netloc=parts.netloc, path=path
    )


class UrlGuard:
    """Checks model-written URLs against one FHIR base and resource type allowlists."""

    def __init__(
        self,
        base: str,
        read_types: frozenset[str] = DEFAULT_READ_TYPES,
        write_types: frozenset[str] = DEFAULT_WRITE_TYPES,
    ) -> None:
        self.base = parse_base(base)
        self.read_types = read_types
        self.write_types = write_types

    def check(self, method: str, url: str) -> Decision:
        """Allow ``method url`` or say why not."""
        if method not in ("GET", "POST"):
            return Decision(False, "method")
        if not url or len(url) > MAX_URL_LENGTH or _UNSENDABLE.search(url):
            return Decision(False, "invalid")
        if "\\" in url:
            return Decision(False, "backslash")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return Decision(False, "port" if "]" not in url else "invalid")
        if parts.scheme.lower() != self.base.scheme:
            return Decision(False, "scheme")
        if "@" in parts.netloc:
            return Decision(False, "userinfo")
        host = (parts.hostname or "").lower()
        if host != self.base.host:
            return Decision(False, "host")
        if (port or _DEFAULT_PORTS[self.base.scheme]) != self.base.port:
            return Decision(False, "port")
        path = parts.path
        if " " in path or "\t" in path:
            return Decision(False, "invalid")
        if "%" in path:
            return Decision(False, "encoding")
        path = re.sub(r"/{2,}", "/", path)
        segments = path.split("/")
        if any(s in (".", "..") for s in segments):
            return Decision(False, "traversal")
        base_path = self.base.path
        if path in (base_path, base_path[:-1]):
            rel = ""
        elif path.startswith(base_path):
            rel = path[len(base_path) :].rstrip("/")
        else:
            return Decision(False, "path")
        query = parts.query.replace(" ", "%20")
        if rel == "":
            if method == "GET" and "_getpages=" in query:
                return Decision(True, "ok", url=self._build("", query), resource_type="Bundle")
            return Decision(False, "path")
        rel_parts = rel.split("/")
        rtype = rel_parts[0]
        if not _TYPE.fullmatch(rtype):
            return Decision(False, "path")
        allowed = self.read_types if method == "GET" else self.write_types
        if rtype not in allowed:
            return Decision(False, "resource_type")
        if len(rel_parts) > 2 or (method == "POST" and len(rel_parts) != 1):
            return Decision(False, "path", resource_type=rtype)
        if len(rel_parts) == 2 and not _ID.fullmatch(rel_parts[1]):
            return Decision(False, "path", resource_type=rtype)
        return Decision(True, "ok", url=self._build(rel, query), resource_type=rtype)

    def _build(self, rel: str, query: str) -> str:
        return self.base.url + rel + (f"?{query}" if query else "")
