"""The FHIR server over real HTTP on 127.0.0.1, fed generated requests beyond its OpenAPI
document (types, ids and parameters it does not list; test_fhir_openapi.py fuzzes the document).

Any search, read or write: never a 5xx, always ``application/fhir+json``, always a Bundle, the
resource, or an OperationOutcome.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import fuzzapps
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sara.fhir import params

RTYPES = st.sampled_from([*params.REGISTRY, "Encounter", "metadata", "_history"]) | st.text(
    max_size=6
)
NAMES = st.sampled_from(
    sorted({name for p in params.REGISTRY.values() for name in p} | params.CONTROL | {"_id"})
)
PAIRS = st.lists(
    st.tuples(
        NAMES | st.text(max_size=8),
        st.text(max_size=16)
        | st.sampled_from(
            ["S1", "Patient/S1", "2345-7", "ge2023", "http://loinc.org|2345-7", "-date", "false"]
        ),
    ),
    max_size=4,
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"resourceType": st.sampled_from(["Observation", "Patient", "Bundle", "X"])},
        optional={
            "id": st.text(max_size=6),
            "status": JSON,
            "subject": JSON | st.just({"reference": "Patient/S1"}),
            "code": JSON,
            "effectiveDateTime": JSON | st.sampled_from(["2023", "2023-13-01", "2023-11-12T10:15"]),
            "effectivePeriod": JSON | st.just({"start": 5}),
            "entry": JSON,
            "birthDate": JSON,
        },
    ),
)
#: Each example is a request: fewer than the pure properties get.
EXAMPLES = settings(max_examples=1000 if fuzzapps.LONG else 60)

pytestmark = pytest.mark.timeout(120)


def _answered(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    assert not response.is_redirect, response.headers.get("location")  # a FHIR body, always
    assert response.headers["content-type"] == "application/fhir+json;charset=UTF-8"
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("resourceType"), str)
    if response.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome"
    return body


@EXAMPLES
@given(RTYPES, PAIRS)
def test_any_search_is_answered_without_a_server_error(
    fhir_url: str, rtype: str, pairs: list[tuple[str, str]]
) -> None:
    url = f"{fhir_url}/fhir/{quote(rtype, safe='')}?{urlencode(pairs)}"
    _answered(httpx.get(url, timeout=30))


@EXAMPLES
@given(RTYPES, st.text(max_size=8), st.sampled_from(["GET", "PUT", "POST"]), BODIES)
def test_any_read_or_write_is_answered_without_a_server_error(
    fhir_url: str, rtype: str, rid: str, method: str, body: Any
) -> None:
    path = f"/fhir/{quote(rtype, safe='')}"
    if method != "POST":
        path += f"/{quote(rid, safe='') or 'x'}"
    _answered(
        httpx.request(method, fhir_url + path, json=None if method == "GET" else body, timeout=30)
    )
