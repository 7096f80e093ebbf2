"""Read one action out of the model's text. Pure: no I/O, no logging.

Two modes (``ParseMode``):

``strict``  exactly the official MedAgentBench harness's rules. The text is stripped, the
            markers ```` ```tool_code ```` and ```` ``` ```` are removed, and then:
            starts with ``GET``     → GET of everything after ``GET`` (stripped);
            starts with ``POST``    → POST; URL = rest of the first line, payload = JSON of the
                                      remaining lines (unparseable payload = invalid POST, which
                                      the model is told about; the task goes on);
            starts with ``FINISH(`` → the result is the text between ``FINISH(`` and the last
                                      character (whatever that character is);
            anything else          → invalid action (the task ends).
``salvage`` (:func:`salvage`, protocol ``sara-leaderboard``) is not a mode but a rewrite before
            ``strict``: the text the harness behind the published leaderboard keeps of a verbose
            answer. Fences stripped as in ``strict``; an answer starting with ``GET ``, ``POST ``
            or ``FINISH(`` stays whole; else the first ``FINISH([…])`` anywhere (shortest match),
            else the first line starting ``GET http(s)://…`` (up to the first whitespace), else
            a line ``POST http(s)://…`` directly followed by a line starting with ``{`` — the URL
            line plus the text up to the brace that closes the first one (counting braces, even
            inside strings); else the stripped text unchanged. The harness records this text,
            not the raw answer, as the agent's message.
``lenient`` salvages one action from verbose text: a preamble, trailing prose, several actions
            (the first wins), markdown around the URL. When nothing can be salvaged the action is
            invalid; the loop then lets the model retry once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["strict", "lenient"]


@dataclass(frozen=True, slots=True)
class Get:
    url: str
    kind: Literal["get"] = "get"


@dataclass(frozen=True, slots=True)
class Post:
    url: str
    body: str  # the payload text exactly as the model wrote it
    payload: Any  # parsed JSON, or None when ``valid`` is False
    valid: bool
    kind: Literal["post"] = "post"


@dataclass(frozen=True, slots=True)
class Finish:
    result: str  # the text inside FINISH( … ), e.g. '[42]'
    kind: Literal["finish"] = "finish"


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str  # fixed wording, never a copy of the model's text
    kind: Literal["invalid"] = "invalid"


Action = Get | Post | Finish | Invalid

_FENCE = re.compile(r"```[A-Za-z_\-]*")
_URL_ACTION = re.compile(r"(?<![A-Za-z])(GET|POST)[ \t]+(\S+)")
_FINISH = re.compile(r"FINISH\(")
_TRAILING = ".,;:!?)]}>`'\"*"
_SALVAGE_FINISH = re.compile(r"FINISH\(\[.*?\]\)", re.DOTALL)
_SALVAGE_GET = re.compile(r"^(GET\s+https?://\S+)", re.MULTILINE)
_SALVAGE_POST = re.compile(r"^(POST\s+https?://\S+)\n(\{.*)", re.MULTILINE | re.DOTALL)
_LEADING = "<`'\"*(["


def parse(text: str, mode: Mode = "strict") -> Action:
    """Return the one action in ``text`` under ``mode``'s rules."""
    if mode == "strict":
        return _strict(text)
    return _lenient(text)


def _load(body: str) -> tuple[Any, bool]:
    try:
        return json.loads(body), True
    except (ValueError, RecursionError):
        return None, False


def _strict(text: str) -> Action:
    r = text.strip().replace("```tool_code", "").replace("```", "").strip()
    if r.startswith("GET"):
        return Get(url=r[3:].strip())
    if r.startswith("POST"):
        lines = r.split("\n")
        body = "\n".join(lines[1:])
        payload, ok = _load(body)
        return Post(url=lines[0][4:].strip(), body=body, payload=payload, valid=ok)
    if r.startswith("FINISH("):
        return Finish(result=r[len("FINISH(") : -1])
    if not r:
        return Invalid("empty response")
    return Invalid("the response is not one of GET, POST or FINISH")


def salvage(text: str) -> str:
    """The action text the published leaderboard's harness keeps of an answer (see above)."""
    r = text.strip().replace("```tool_code", "").replace("```", "").strip()
    if r.startswith(("GET ", "POST ", "FINISH(")):
        return r
    found = _SALVAGE_FINISH.search(r)
    if found:
        return found.group(0)
    found = _SALVAGE_GET.search(r)
    if found:
        return found.group(1)
    found = _SALVAGE_POST.search(r)
    if found:
        rest = found.group(2)
        depth = 0
        for i, char in enumerate(rest):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return found.group(1) + "\n" + rest[: i + 1]
    return r


def _clean_url(token: str) -> str:
    return token.lstrip(_LEADING).rstrip(_TRAILING)


def _lenient(text: str) -> Action:
    r = _FENCE.sub("", text).strip()
    first = _strict(r)
    # A well-formed answer reads the same in both modes.
    if isinstance(first, Get) and first.url and not any(c.isspace() for c in first.url):
        return first
    if isinstance(first, Post) and first.valid and " " not in first.url:
        return Post(url=first.url, body=first.body.strip(), payload=first.payload, valid=True)
    if isinstance(first, Finish) and r.endswith(")") and "\n" not in r:
        return first

    url_match = _URL_ACTION.search(r)
    finish_match = _FINISH.search(r)
    if url_match is None and finish_match is None:
        return Invalid("no GET, POST or FINISH action found" if r else "empty response")
    if finish_match is not None and (url_match is None or finish_match.start() < url_match.start()):
        return _salvage_finish(r, finish_match.end())
    assert url_match is not None
    verb, url = url_match.group(1), _clean_url(url_match.group(2))
    if not url:
        return Invalid("action without a URL")
    if verb == "GET":
        return Get(url=url)
    return _salvage_post(r, url, url_match.end())


def _salvage_post(r: str, url: str, after: int) -> Action:
    brace = r.find("{", after)
    if brace < 0:
        return Post(url=url, body="", payload=None, valid=False)
    try:
        payload, end = json.JSONDecoder().raw_decode(r, brace)
    except (ValueError, RecursionError):
        return Post(url=url, body=r[brace:], payload=None, valid=False)
    return Post(url=url, body=r[brace:end], payload=payload, valid=True)


def _salvage_finish(r: str, start: int) -> Action:
    i = start
    while i < len(r) and r[i] in " \t\r\n":
        i += 1
    try:
        _, end = json.JSONDecoder().raw_decode(r, i)
    except (ValueError, RecursionError):
        end = -1
    if end >= 0:
        j = end
        while j < len(r) and r[j] in " \t\r\n":
            j += 1
        if j < len(r) and r[j] == ")":
            return Finish(result=r[start:j])
    line_end = r.find("\n", start)
    segment = r[start:] if line_end < 0 else r[start:line_end]
    close = segment.rfind(")")
    if close < 0:
        return Invalid("FINISH( without a closing parenthesis")
    return Finish(result=segment[:close])
