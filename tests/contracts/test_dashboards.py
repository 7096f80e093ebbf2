"""The Grafana dashboards: well-formed, and every metric they query is one Sara exports.

Sara's own metrics are checked against the collectors of ``AgentMetrics`` and the operator's
``Metrics`` (names and the labels panels group by); vLLM's against the /metrics fixture of the
pinned vLLM version (tests/monitoring/fixtures/, built from that version's
``vllm/v1/metrics/loggers.py``). tests/monitoring/test_prometheus.py evaluates every query against
a real Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from sara.agent.metrics import AgentMetrics
from sara.operator.metrics import Metrics
from sara.operator.model import Images

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "charts" / "sara" / "dashboards"
VLLM_FIXTURE = REPO / "tests" / "monitoring" / "fixtures" / "vllm-0.10.1.1.metrics"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Labels a Prometheus Operator scrape adds to every series.
SCRAPE_LABELS = {"namespace", "job", "pod", "service", "instance", "endpoint", "container"}
#: Metrics a panel is designed for that the agent does not export yet (family names): none.
PROPOSED: set[str] = set()
BOARDS = ("agent", "fhir", "model", "operator")


def board(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return data


def panels(name: str) -> list[dict[str, Any]]:
    return [p for p in board(name)["panels"] if p["type"] != "row"]


def exprs(name: str) -> list[str]:
    return [t["expr"] for p in panels(name) for t in p["targets"]]


def exported(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Family name -> label names, as Prometheus will see them."""
    out: dict[str, set[str]] = {}
    # label names of metrics without samples yet are only on the collectors themselves
    for collector in registry._collector_to_names:
        for family in collector.describe():
            out[family.name] = set(getattr(collector, "_labelnames", ()))
    return out


def queried(expr: str, prefix: str = "sara_") -> list[tuple[str, set[str]]]:
    """(metric name as written, labels used in by()) of every metric with ``prefix``."""
    by = set()
    for group in re.findall(r"by \(([^)]*)\)", expr):
        by |= {g.strip() for g in group.split(",")} - {"le"}
    names = re.findall(rf"(?<![\w:])({re.escape(prefix)}[a-zA-Z0-9_:]+)", expr)
    return [(n, by) for n in names]


def family(name: str) -> str:
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def test_dashboards_are_shipped_and_valid_json() -> None:
    assert sorted(p.stem for p in DASHBOARDS.glob("*.json")) == sorted(BOARDS)
    uids = [board(b)["uid"] for b in BOARDS]
    assert len(set(uids)) == len(uids) and all(u.startswith("sara-") for u in uids)


@pytest.mark.parametrize("name", BOARDS)
def test_panels_have_unique_ids_a_datasource_variable_units_and_descriptions(name: str) -> None:
    data = board(name)
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    for panel in panels(name):
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip() and target["refId"], title
        assert panel["fieldConfig"]["defaults"]["unit"], title
        assert len(panel["description"]) > 20, title
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), title


@pytest.mark.parametrize("name", BOARDS)
def test_template_variables_datasource_namespace_and_clinicalagent(name: str) -> None:
    variables = {v["name"]: v for v in board(name)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    assert variables["namespace"]["includeAll"] and variables["namespace"]["multi"]
    text = "\n".join(exprs(name))
    # every series selector starts with the namespace (and, below, the ClinicalAgent) matcher
    assert not re.search(r'[\w:]\{(?!namespace=~"\$namespace")', text), name
    selectors = text.count('{namespace=~"$namespace"')
    if name == "operator":  # operator metrics carry no per-ClinicalAgent label
        assert "clinicalagent" not in variables
        return
    cla = variables["clinicalagent"]
    suffix = "model" if name == "model" else "agent"
    assert cla["label"] == "ClinicalAgent" and cla["regex"] == f"/^(.+)-{suffix}$/"
    assert text.count(f'{{namespace=~"$namespace", job=~"${{clinicalagent}}-{suffix}"') == selectors


@pytest.mark.parametrize(
    ("name", "registry_of"),
    [
        ("agent", lambda r: AgentMetrics(r)),
        ("fhir", lambda r: AgentMetrics(r)),
        ("operator", lambda r: Metrics(r)),
    ],
)
def test_sara_metrics_and_labels_exist(name: str, registry_of: Any) -> None:
    registry = CollectorRegistry()
    registry_of(registry)
    families = exported(registry)
    for expr in exprs(name):
        for metric, labels in queried(expr):
            base = family(metric)
            if base in PROPOSED and base not in families:
                continue  # see test_proposed_metrics_are_named_and_labelled_as_proposed
            assert base in families, f"{name}: {base} is not exported"
            known = families[base] | SCRAPE_LABELS
            assert labels <= known, f"{name}: {base} grouped by unknown {labels - known}"


def test_write_and_duration_metrics_have_the_labels_the_panels_group_by() -> None:
    used = {
        family(m): labels for b in ("agent", "fhir") for e in exprs(b) for m, labels in queried(e)
    }
    assert used["sara_fhir_writes"] <= {"outcome", "resource_type"} | SCRAPE_LABELS
    assert used["sara_task_duration_seconds"] <= {"status", "le"} | SCRAPE_LABELS


def _vllm_fixture() -> dict[str, set[str]]:
    """Sample name -> label names, from the pinned vLLM's /metrics fixture."""
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(VLLM_FIXTURE.read_text()):
        for sample in fam.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def test_vllm_queries_use_names_and_labels_of_the_pinned_vllm() -> None:
    samples = _vllm_fixture()
    names = set()
    for expr in exprs("model"):
        for metric, labels in queried(expr, prefix="vllm:"):
            names.add(metric)
            assert metric in samples, f"{metric} is not a metric of vLLM v0.10.1.1"
            known = samples[metric] | SCRAPE_LABELS
            assert labels <= known, f"{metric} grouped by unknown {labels - known}"
    required = {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:time_per_output_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_hits_total",
        "vllm:prefix_cache_queries_total",
        "vllm:num_preemptions_total",
    }
    assert required <= names


def test_the_vllm_fixture_is_the_version_the_operator_and_chart_pin() -> None:
    version = VLLM_FIXTURE.name.removeprefix("vllm-").removesuffix(".metrics")
    assert Images().vllm == f"vllm/vllm-openai:v{version}"
    values = yaml.safe_load((REPO / "charts" / "sara" / "values.yaml").read_text())
    assert values["images"]["vllm"] == Images().vllm
    assert f"v{version}" in board("model")["description"]


def test_dashboards_cover_the_issue_list() -> None:
    def names(b: str, prefix: str = "sara_") -> set[str]:
        return {family(m) for e in exprs(b) for m, _ in queried(e, prefix)}

    assert {
        "sara_tasks",
        "sara_task_rounds",
        "sara_task_duration_seconds",
        "sara_tasks_in_flight",
        "sara_sse_streams_open",
        "sara_model_rounds",
        "sara_model_round_duration_seconds",
        "sara_model_prompt_tokens",
        "sara_model_completion_tokens",
        "sara_api_rejected",
        "sara_approvals_pending",
        "sara_approval_decisions",
        "sara_approval_decision_seconds",
    } <= names("agent")
    assert {
        "sara_fhir_requests",
        "sara_fhir_request_duration_seconds",
        "sara_fhir_blocked",
        "sara_fhir_writes",
    } <= names("fhir")
    assert {
        "sara_operator_reconcile_seconds",
        "sara_operator_reconcile_errors",
        "sara_operator_children_applied",
    } <= names("operator")
    text = "\n".join(exprs("agent"))
    assert "agent_invalid_action" in text and "task_limit_reached" in text
