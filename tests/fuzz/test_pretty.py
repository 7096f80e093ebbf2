"""Properties of HAPI-style JSON rendering: any JSON value renders as JSON that reads back equal."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sara.fhir import pretty

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)  # the server reads bodies so
    | st.integers(min_value=-(10**30), max_value=10**30)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.text(), JSON, max_size=6)


def _exact(value: Any) -> Any:
    """``value`` with each float as the decimal its ``repr`` writes (what the JSON says)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


@given(OBJECTS, st.integers(0, 8))
def test_any_object_renders_as_json_that_reads_back_equal(
    value: dict[str, Any], depth: int
) -> None:
    text = pretty.render(value, depth)
    assert json.loads(text, parse_float=Decimal) == _exact(value)
    assert pretty.reindent(text, depth) == pretty.render(value)
    assert json.loads(pretty.compact(text), parse_float=Decimal) == _exact(value)


@given(OBJECTS)
def test_the_memo_renders_the_same_text(value: dict[str, Any]) -> None:
    memo = pretty.Memo()
    first = pretty.render_resource(value, pretty.ENTRY_DEPTH, memo)
    assert first == pretty.render(value, pretty.ENTRY_DEPTH)
    assert pretty.render_resource(value, pretty.ENTRY_DEPTH, memo) == first


@given(st.text())
def test_any_string_is_a_json_string_literal(text: str) -> None:
    literal = pretty.string(text)
    assert json.loads(literal) == text
    assert "\n" not in literal  # reindent relies on it


def _as_written(text: str | bytes) -> Any:
    """Parsed JSON with every number kept as its text."""
    return json.loads(text, parse_float=lambda n: ("number", n), parse_int=lambda n: ("number", n))


@given(OBJECTS)
@example({"value": Decimal("1.50")})
@example({"value": Decimal("1.0000000000000000001"), "n": 123456789012345678901234567890})
@example({"value": [Decimal("1E-400"), Decimal("1E+400"), Decimal("0.0000001"), Decimal("-0")]})
def test_compact_keeps_every_number_as_written(value: dict[str, Any]) -> None:
    text = pretty.render(value, pretty.ENTRY_DEPTH)
    compact = pretty.compact(text)
    assert _as_written(compact) == _as_written(text)
    assert b"\n" not in compact and b": " not in compact.replace(b'\\"', b"").split(b'"', 1)[0]
