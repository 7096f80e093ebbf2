"""Properties of the action parser: every text is one action, never an exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sara.agent import parser

ACTIONS = (parser.Get, parser.Post, parser.Finish, parser.Invalid)
REASONS = {
    "empty response",
    "the response is not one of GET, POST or FINISH",
    "no GET, POST or FINISH action found",
    "action without a URL",
    "FINISH( without a closing parenthesis",
}
MODES = st.sampled_from(["strict", "lenient"])
#: Model-ish text: the words and punctuation actions are made of, among any characters.
PIECES = st.sampled_from(
    [
        "GET",
        "POST",
        "FINISH(",
        ")",
        "```",
        "```tool_code",
        "\n",
        " ",
        "{",
        "}",
        "[",
        "]",
        '"',
        "http://h/fhir/Patient",
        "`",
        "*",
        "\\",
        "\r\n",
        "\t",
    ]
)
TEXT = st.one_of(st.text(), st.lists(st.one_of(PIECES, st.text(max_size=5))).map("".join))
#: Strict mode drops ``` anywhere, payload strings included, as the official harness does.
NO_TICKS = st.text(st.characters(exclude_characters="`"))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | NO_TICKS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NO_TICKS, inner, max_size=4),
    max_leaves=12,
)


@given(TEXT, MODES)
@example("FINISH(", "strict")
@example("POST\n" + "[" * 5000, "strict")
@example("FINISH([" * 5000, "lenient")
@example("POST http://h/x {" + "[" * 5000, "lenient")
def test_any_text_is_exactly_one_action(text: str, mode: Any) -> None:
    action = parser.parse(text, mode)
    assert isinstance(action, ACTIONS)
    assert action.kind in ("get", "post", "finish", "invalid")
    if isinstance(action, parser.Invalid):
        assert action.reason in REASONS  # fixed wording, never a copy of the model's text


@given(NO_TICKS.filter(lambda u: u == u.strip() and u), MODES)
def test_a_rendered_get_parses_back(url: str, mode: Any) -> None:
    action = parser.parse(f"GET {url}", mode)
    if mode == "strict" or not any(c.isspace() for c in url):
        assert action == parser.Get(url)


@given(NO_TICKS, MODES)
def test_a_rendered_finish_parses_back(result: str, mode: Any) -> None:
    action = parser.parse(f"FINISH({result})", mode)
    if mode == "strict" or "\n" not in result:
        assert action == parser.Finish(result)


@given(NO_TICKS.filter(lambda u: u == u.strip() and u and "\n" not in u), JSON)
def test_a_rendered_post_parses_back(url: str, payload: Any) -> None:
    body = json.dumps(payload)
    action = parser.parse(f"POST {url}\n{body}", "strict")
    assert action == parser.Post(url, body, action.payload, valid=True)
    assert action.payload == payload


@given(TEXT)
def test_salvage_returns_text_the_strict_parser_classifies(text: str) -> None:
    assert isinstance(parser.parse(parser.salvage(text), "strict"), ACTIONS)
