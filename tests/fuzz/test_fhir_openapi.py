"""Schema-driven fuzzing of the FHIR server (schemathesis) against its own OpenAPI document.

The server (a real one on 127.0.0.1, :func:`conftest.fhir_url`) serves the document at
``/fhir/api-docs``; every operation in it gets generated requests, valid and invalid: no 5xx,
every status and content type documented, every body matching its schema.
``SARA_FUZZ=long`` runs many more examples.
"""

from __future__ import annotations

import fuzzapps
import httpx
import schemathesis
from hypothesis import settings

from sara.fhir import openapi, params

CHECKS = fuzzapps.CONTRACT_CHECKS
schema = schemathesis.openapi.from_dict(openapi.document("/fhir"))


@schema.parametrize()
@settings(max_examples=fuzzapps.FHIR_EXAMPLES, deadline=None)
def test_fhir_server_keeps_its_contract(case: schemathesis.Case, fhir_url: str) -> None:
    case.call_and_validate(base_url=fhir_url, checks=CHECKS, timeout=30)


def test_the_server_serves_the_document_it_is_fuzzed_against(fhir_url: str) -> None:
    response = httpx.get(f"{fhir_url}/fhir/api-docs", timeout=10)
    assert response.status_code == 200
    served = response.json()
    assert served == openapi.document("/fhir")
    for rtype in params.REGISTRY:
        search = served["paths"][f"/fhir/{rtype}"]["get"]
        names = {p["name"] for p in search["parameters"]}
        assert set(params.params_for(rtype)) <= names, rtype
        assert {"_count", "_sort"} <= names


def test_a_trailing_slash_is_the_same_search_not_a_redirect(fhir_url: str) -> None:
    plain = httpx.get(f"{fhir_url}/fhir/Patient", params={"_id": "S1"}, timeout=10)
    slash = httpx.get(f"{fhir_url}/fhir/Patient/", params={"_id": "S1"}, timeout=10)
    assert slash.status_code == plain.status_code == 200
    assert slash.json()["total"] == plain.json()["total"] == 1
