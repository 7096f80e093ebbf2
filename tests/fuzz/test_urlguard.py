"""Properties of the URL guard: every URL gets a decision; what it allows stays on the base."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from sara.agent import urlguard

BASE = "http://fhir.test:8080/fhir/"
GUARD = urlguard.UrlGuard(BASE)
METHODS = st.sampled_from(["GET", "POST", "PUT", "get", "DELETE", ""]) | st.text(max_size=6)
TYPES = [*sorted(urlguard.DEFAULT_READ_TYPES), "Bundle", "patient", "Patient2", "AuditEvent"]
PREFIXES = st.sampled_from(
    [
        BASE,
        BASE[:-1],
        "http://fhir.test:8080",
        "https://fhir.test:8080/fhir/",
        "http://FHIR.test:8080/fhir/",
        "http://fhir.test/fhir/",
        "http://fhir.test:8080@evil/fhir/",
        "http://evil@fhir.test:8080/fhir/",
        "http://fhir.test.evil:8080/fhir/",
        "//fhir.test/fhir/",
        "http://[::1]:8080/fhir/",
        "http://fhir.test:8080/fhir//",
        "http://fhir.test:99999/fhir/",
        "http://fhir.test:8080/other/",
        "HTTP://fhir.test:8080/fhir/",
        "http://fhir.test:08080/fhir/",
    ]
)
SEGMENTS = (
    st.sampled_from(TYPES)
    | st.sampled_from(
        ["", ".", "..", "%2e%2e", "a-b.c", "S0992656", "_history", "?", "#", "\\", "@", ":", " "]
    )
    | st.text(max_size=8)
)
QUERY = st.sampled_from(["", "?", "?patient=S1&code=A1C", "?_getpages=x", "?a b", "#f"]) | st.text(
    max_size=12
).map(lambda q: "?" + q)
URLS = st.one_of(
    st.text(),
    st.builds(
        lambda p, segs, q: p + "/".join(segs) + q,
        PREFIXES,
        st.lists(SEGMENTS, max_size=3),
        QUERY,
    ),
)


@given(METHODS, URLS)
@example("GET", "http://fhir.test:8080/fhir/Patient?name=a\ud800")
@example("GET", "http://[fhir.test:8080/fhir/Patient")
@example("GET", "http://fhir.test:8080/fhir?_getpages=x")
def test_every_url_gets_a_decision_and_an_allowed_one_stays_on_the_base(
    method: str, url: str
) -> None:
    decision = GUARD.check(method, url)
    assert decision.reason == "ok" if decision.allowed else decision.reason in urlguard.REASONS
    assert decision.explanation
    if not decision.allowed:
        assert decision.url is None
        return
    assert decision.url is not None and decision.url.startswith(BASE)
    sent = urlsplit(decision.url)
    assert (sent.scheme, sent.hostname, sent.port, sent.username) == (
        "http",
        "fhir.test",
        8080,
        None,
    )
    assert not sent.fragment
    again = GUARD.check(method, decision.url)  # what is sent is what was checked
    assert again == decision


@given(st.text())
def test_a_base_is_parsed_or_refused_with_value_error(text: str) -> None:
    try:
        base = urlguard.parse_base(text)
    except ValueError:
        return
    assert base.path.endswith("/") and base.scheme in ("http", "https")
    assert urlguard.parse_base(base.url) == base
