"""Stateful fuzzing of the agent API: schemathesis chains operations through real ids.

The OpenAPI document's links (``sara.agent.api.contract``) lead from a created task to its
view, its cancel and its patient card, and from a task waiting for sign-off to a decision on
its pending write, with that write's hash. The fuzzed agent (:func:`fuzzapps.agent`) runs in
write mode approve with a fake model that orders first for half the tasks, so sequences reach
real pending actions: every response of every step is checked as in the stateless test, and
the run must have reached the states only a chain can reach (a decision that signs).
Derandomized, so CI sees the same sequences each time; ``SARA_FUZZ=long`` runs more.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import fuzzapps
import schemathesis
from hypothesis import HealthCheck, settings

CHECKS = fuzzapps.CONTRACT_CHECKS
with TemporaryDirectory() as _tmp:  # building the app opens nothing; the path is unused
    DOCUMENT = fuzzapps.agent(Path(_tmp) / "runs.db").openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_links_lead_from_a_task_to_its_view_cancel_and_decision() -> None:
    create = DOCUMENT["paths"]["/v1/tasks"]["post"]["responses"]
    assert set(create["200"]["links"]) == {"GetTask", "CancelTask", "TaskPatient"}
    assert create["202"]["links"]["DecideFirstAction"]["requestBody"]["payload_sha256"] == (
        "$response.body#/actions/0/payload_sha256"
    )
    task = DOCUMENT["paths"]["/v1/tasks/{task_id}"]["get"]["responses"]["200"]
    assert task["links"]["DecideFirstAction"]["parameters"]["action_id"] == (
        "$response.body#/actions/0/id"
    )


def test_chained_requests_keep_the_contract(agent_url: str) -> None:
    seen: Counter[tuple[str, str, int]] = Counter()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": agent_url, "headers": fuzzapps.AUTH, "timeout": 30}

        def after_call(self, response: Any, case: Any) -> None:
            seen[(case.method, case.operation.path, response.status_code)] += 1

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=fuzzapps.STATEFUL_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            derandomize=not fuzzapps.LONG,
            suppress_health_check=list(HealthCheck),
        )
    )
    reached = {(method, path, status) for method, path, status in seen}
    assert ("POST", "/v1/tasks", 202) in reached, seen  # a task waiting for sign-off
    assert ("GET", "/v1/tasks/{task_id}", 200) in reached, seen  # followed by its real id
    assert ("POST", "/v1/tasks/{task_id}/actions/{action_id}", 200) in reached, seen  # signed
