"""Status logic: conditions from observed children, transitions, phase (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sara.operator import model, status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NAMES = model.Names("w", "ns")
VLLM = model.parse("w", {"model": {"uri": "hf://o/m"}})
EXTERNAL = model.parse(
    "w",
    {
        "model": {"engine": "external", "external": {"baseUrl": "https://m/v1"}},
        "fhir": {"mode": "external", "external": {"baseUrl": "https://f/"}},
    },
)
W = status.Workload


def conds(result: status.Result) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in result.status["conditions"]}


def test_nothing_created_yet_is_pending() -> None:
    r = status.compute(VLLM, NAMES, status.Observed(), {}, generation=1, now=T0)
    c = conds(r)
    assert list(c) == ["Accepted", "ModelReady", "FHIRReady", "AgentReady", "Ready"]
    assert c["Accepted"]["status"] == "True"
    assert c["ModelReady"] == {
        "type": "ModelReady",
        "status": "False",
        "reason": "NotCreated",
        "message": "Model workload not created yet",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 1,
    }
    assert r.status["phase"] == "Pending"
    assert r.status["endpoints"]["agent"] == "http://w-agent.ns.svc:8000"
    assert r.status["observedGeneration"] == 1


def test_ready_needs_model_fhir_seed_and_agent() -> None:
    obs = status.Observed(model=W(1, 1), fhir=W(1, 1), agent=W(1, 1), seed=None)
    r = status.compute(VLLM, NAMES, obs, {}, generation=2, now=T0)
    assert conds(r)["FHIRReady"]["reason"] == "SeedPending"
    assert r.status["phase"] == "Progressing"
    assert status.seed_due(VLLM, obs, {})
    obs = status.Observed(model=W(1, 1), fhir=W(1, 1), agent=W(1, 1), seed=status.JobState())
    assert (
        conds(status.compute(VLLM, NAMES, obs, {}, generation=2, now=T0))["FHIRReady"]["reason"]
        == "Seeding"
    )
    assert not status.seed_due(VLLM, obs, {})
    obs = status.Observed(
        model=W(1, 1), fhir=W(1, 1), agent=W(1, 1), seed=status.JobState(succeeded=True)
    )
    r = status.compute(VLLM, NAMES, obs, {}, generation=2, now=T0)
    assert conds(r)["Ready"]["status"] == "True"
    assert r.status["phase"] == "Ready"
    assert r.status["seedCompleted"] is True
    assert r.status["replicas"] == "1/1"


def test_seeding_is_remembered_after_the_job_is_gone() -> None:
    obs = status.Observed(model=W(1, 1), fhir=W(1, 1), agent=W(1, 1), seed=None)
    previous = {"seedCompleted": True}
    assert not status.seed_due(VLLM, obs, previous)
    r = status.compute(VLLM, NAMES, obs, previous, generation=3, now=T0)
    assert conds(r)["Ready"]["status"] == "True"


def test_seed_not_due_before_fhir_ready() -> None:
    obs = status.Observed(model=W(1, 1), fhir=W(1, 0), agent=W(1, 1))
    assert not status.seed_due(VLLM, obs, {})


def test_failed_seed_is_degraded_with_a_warning() -> None:
    obs = status.Observed(
        model=W(1, 1), fhir=W(1, 1), agent=W(1, 1), seed=status.JobState(failed=True)
    )
    r = status.compute(VLLM, NAMES, obs, {}, generation=1, now=T0)
    assert conds(r)["FHIRReady"]["reason"] == "SeedFailed"
    assert r.status["phase"] == "Degraded"
    [warning] = [t for t in r.transitions if t.warning]
    assert warning.type == "FHIRReady"


def test_last_transition_time_moves_only_on_status_change() -> None:
    obs = status.Observed(model=W(1, 0), fhir=W(1, 0), agent=W(1, 0))
    first = status.compute(VLLM, NAMES, obs, {}, generation=1, now=T0)
    later = T0 + timedelta(minutes=5)
    obs2 = status.Observed(model=W(1, 0), fhir=W(1, 1), agent=W(1, 0))
    second = status.compute(VLLM, NAMES, obs2, first.status, generation=1, now=later)
    c1, c2 = conds(first), conds(second)
    assert c2["ModelReady"]["lastTransitionTime"] == c1["ModelReady"]["lastTransitionTime"]
    assert c2["FHIRReady"]["status"] == "False"  # server ready but seed pending
    assert c2["FHIRReady"]["reason"] == "SeedPending"
    assert c2["FHIRReady"]["lastTransitionTime"] == c1["FHIRReady"]["lastTransitionTime"]
    obs3 = status.Observed(model=W(1, 1), fhir=W(1, 1), agent=W(1, 0), seed=status.JobState(True))
    third = status.compute(VLLM, NAMES, obs3, second.status, generation=1, now=later)
    c3 = conds(third)
    assert c3["ModelReady"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert {t.type for t in third.transitions} == {"ModelReady", "FHIRReady"}
    # unchanged state: no transitions, no time change
    again = status.compute(
        VLLM, NAMES, obs3, third.status, generation=1, now=later + later.resolution
    )
    assert again.transitions == [] and again.status["conditions"] == third.status["conditions"]


def test_external_parts_are_ready_without_probing() -> None:
    obs = status.Observed(agent=W(2, 2))
    r = status.compute(EXTERNAL, NAMES, obs, {}, generation=1, now=T0)
    c = conds(r)
    assert c["ModelReady"]["reason"] == "External" and c["FHIRReady"]["reason"] == "External"
    assert c["Ready"]["status"] == "True"
    assert r.status["endpoints"] == {
        "agent": "http://w-agent.ns.svc:8000",
        "model": "https://m/v1",
        "fhir": "https://f/",
    }
    assert r.status["gpu"] == 0


def test_scaled_to_zero_is_not_ready() -> None:
    obs = status.Observed(model=W(0, 0), fhir=W(1, 1), agent=W(1, 1), seed=status.JobState(True))
    assert (
        conds(status.compute(VLLM, NAMES, obs, {}, generation=1, now=T0))["ModelReady"]["reason"]
        == "ScaledToZero"
    )


def test_rejected_spec() -> None:
    r = status.compute_rejected("InvalidSpec", "model.uri missing", {}, generation=4, now=T0)
    c = conds(r)
    assert c["Accepted"]["status"] == "False" and c["Accepted"]["message"] == "model.uri missing"
    assert c["ModelReady"]["status"] == "Unknown"
    assert r.status["phase"] == "Invalid"
    assert [t.type for t in r.transitions] == ["Accepted", "Ready"]
    assert all(t.warning for t in r.transitions)


def test_agent_replicas_on_a_sqlite_store_are_rejected_with_the_fix() -> None:
    with pytest.raises(model.InvalidSpecError) as err:
        model.parse("w", {"model": {"engine": "reference"}, "agent": {"replicas": 3}})
    r = status.compute_rejected("InvalidSpec", str(err.value), {}, generation=2, now=T0)
    accepted = conds(r)["Accepted"]
    assert accepted["status"] == "False" and accepted["reason"] == "InvalidSpec"
    assert "agent.replicas > 1 needs agent.store.type: postgresql" in accepted["message"]
    assert "ReadWriteOnce" in accepted["message"]
    assert accepted["observedGeneration"] == 2
    assert r.status["phase"] == "Invalid"
    assert not status.accepted(r.status)


def test_workload_reading() -> None:
    assert status.workload({"availableReplicas": 2}, {"replicas": 3}, stateful=False) == W(3, 2)
    assert status.workload({"readyReplicas": 1}, {}, stateful=True) == W(1, 1)
    assert status.workload(None, None, stateful=False) == W(1, 0)


def test_accepted_reads_the_stored_conditions() -> None:
    assert not status.accepted({})
    r = status.compute(VLLM, NAMES, status.Observed(), {}, generation=1, now=T0)
    assert status.accepted(r.status)
    rejected = status.compute_rejected("InvalidSpec", "x", {}, generation=1, now=T0)
    assert not status.accepted(rejected.status)


def test_only_replicas_of_the_latest_spec_count_as_ready() -> None:
    W = status.Workload
    # just patched: the controller has not seen generation 2, the old pod is still available
    just_patched = {"availableReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1}
    assert status.workload(just_patched, {"replicas": 1}, stateful=False, generation=2) == W(1, 0)
    # rolling update under way: two old pods available, one new one
    rolling = {"availableReplicas": 2, "updatedReplicas": 1, "observedGeneration": 3}
    assert status.workload(rolling, {"replicas": 2}, stateful=False, generation=3) == W(2, 1)
    done = {"readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": 4}
    assert status.workload(done, {"replicas": 1}, stateful=True, generation=4) == W(1, 1)
