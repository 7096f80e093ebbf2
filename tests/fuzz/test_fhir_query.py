"""Properties of the FHIR search parsing: any query is a search or a FHIR error, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from sara.fhir import dates, params, query
from sara.fhir.errors import FhirError

RTYPES = st.sampled_from([*params.REGISTRY, "Encounter", "Bundle", ""]) | st.text(max_size=8)
NAMES = st.sampled_from(
    sorted({name for p in params.REGISTRY.values() for name in p} | params.CONTROL | {"_id"})
)
KEYS = st.one_of(
    NAMES,
    st.builds(
        lambda n, m: f"{n}:{m}",
        NAMES,
        st.sampled_from(["exact", "contains", "Patient", "missing", "", "x"]),
    ),
    st.text(max_size=10),
)
DATEISH = st.from_regex(
    r"(eq|ne|gt|lt|ge|le|sa|eb|ap|xx)?-?\d{1,5}(-\d{1,2}(-\d{1,2}(T\d{1,2}:\d{1,2}(:\d{1,2}"
    r"(\.\d{1,10})?)?(Z|[+ -]\d{1,2}:\d{1,2})?)?)?)?",
    fullmatch=True,
)
VALUES = st.one_of(
    st.text(max_size=20),
    DATEISH,
    st.sampled_from(["", ",", "a|", "|b", "-date", "count", "²", "1" * 12]),
)
PAIRS = st.lists(st.tuples(KEYS, VALUES), max_size=6)


@given(RTYPES, PAIRS)
@example("Observation", [("date", "ge0001-01-01T00:00+14:00")])
@example("Observation", [("_count", "١")])
@example("Observation", [("date", "9999-12-31T23:59:59.999-14:00")])
def test_any_query_is_a_search_or_a_fhir_error(rtype: str, pairs: list[tuple[str, str]]) -> None:
    try:
        search = query.parse(rtype, pairs)
    except FhirError as exc:
        assert 400 <= exc.status < 500 and exc.diagnostics
        return
    assert search.rtype == rtype and search.page_size >= 0
    assert len(search.clauses) <= query.MAX_CLAUSES


@given(st.text() | DATEISH)
def test_any_date_value_is_a_condition_or_hapi_1882(raw: str) -> None:
    try:
        condition = dates.parse_condition(raw)
    except FhirError as exc:
        assert exc.status == 400 and exc.diagnostics.startswith("HAPI-1882")
        return
    assert condition.prefix in dates.PREFIXES
    assert condition.range.low <= condition.range.high


@given(st.text() | DATEISH)
def test_any_text_is_a_date_range_or_none(text: str) -> None:
    for parsed in (dates.parse_range(text), dates.parse_indexed(text)):
        assert parsed is None or parsed.low <= parsed.high


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_a_rendered_instant_parses_back_to_its_millisecond(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=UTC)
    text = moment.isoformat(timespec="milliseconds")
    millis = dates.to_millis(moment)
    assert dates.parse_range(text) == dates.DateRange(millis, millis)
    assert dates.parse_indexed(text) == dates.DateRange(millis, millis)
    day = dates.parse_range(text[:10])
    assert day is not None and day.low <= millis <= day.high
    assert day.high - day.low + 1 == timedelta(days=1) // timedelta(milliseconds=1)


@given(st.text() | st.none() | st.integers())
def test_any_reference_splits_or_is_none(ref: object) -> None:
    split = params.split_reference(ref)
    assert split is None or (isinstance(ref, str) and split[0][:1].isupper())
