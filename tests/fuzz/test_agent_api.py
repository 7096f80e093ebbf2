"""Schema-driven fuzzing of the agent API (schemathesis) against a real server on 127.0.0.1.

Every operation of the OpenAPI document gets generated requests, valid and invalid: no 5xx,
every status and content type documented, every body matching its schema, and auth enforced
wherever the document says a key is needed. ``SARA_FUZZ=long`` runs many more examples.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import fuzzapps
import httpx
import schemathesis
from hypothesis import settings
from schemathesis.specs.openapi.checks import ignored_auth

CHECKS = [*fuzzapps.CONTRACT_CHECKS, ignored_auth]


def _document() -> dict[str, Any]:
    with TemporaryDirectory() as tmp:  # building the app opens nothing; the path is unused
        document: dict[str, Any] = fuzzapps.agent(Path(tmp) / "runs.db").openapi()
    return document


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(max_examples=fuzzapps.API_EXAMPLES, deadline=None)
def test_agent_api_keeps_its_contract(case: schemathesis.Case, agent_url: str) -> None:
    case.call_and_validate(base_url=agent_url, headers=fuzzapps.AUTH, checks=CHECKS, timeout=30)


def test_every_route_that_needs_a_key_answers_401_without_one(agent_url: str) -> None:
    secured = [
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    assert len(secured) >= 8
    for method, path in secured:
        url = agent_url + path.format(task_id="t1", action_id="a1", seq=1)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = httpx.request(method.upper(), url, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": "missing or invalid API key"}
