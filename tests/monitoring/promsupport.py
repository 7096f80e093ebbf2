"""Helpers of the monitoring tests, imported by name (``conftest.py`` puts this folder on
``sys.path``): finding Prometheus and promtool, rendering the chart, reading dashboards."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "sara"
DASHBOARDS = CHART / "dashboards"
HELM = shutil.which("helm") or str(REPO / ".venv" / "bin" / "helm")
#: What `helm template` must be told so the "auto" monitoring objects render without a cluster.
MONITORING_APIS = (
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
)
VLLM_FIXTURE = Path(__file__).parent / "fixtures" / "vllm-0.10.1.1.metrics"


def find_tool(name: str) -> str | None:
    """``prometheus`` or ``promtool``: in $SARA_PROMETHEUS_BIN, else on PATH."""
    folder = os.environ.get("SARA_PROMETHEUS_BIN")
    if folder:
        path = Path(folder) / name
        return str(path) if path.is_file() else None
    return shutil.which(name)


def need_tool(name: str) -> str:
    """The tool's path; skip without it (fail under CI=true: CI must run these tests)."""
    found = find_tool(name)
    if found is None:
        missing = f"{name} (apt-get install prometheus, or SARA_PROMETHEUS_BIN)"
        if os.environ.get("CI"):
            pytest.fail(f"test needs {missing}; make test installs it on CI")
        pytest.skip(f"test needs {missing}")
    return found


def helm_template(home: Path, *args: str) -> list[dict[str, Any]]:
    """``helm template sara charts/sara -n sara-system ARGS`` as parsed documents."""
    if not Path(HELM).exists():
        pytest.skip("helm binary missing: run scripts/install-k8s-tools.sh")
    env = {
        **os.environ,
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run(
        [HELM, "template", "sara", str(CHART), "-n", "sara-system", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def rule_spec(home: Path, *args: str) -> dict[str, Any]:
    """The PrometheusRule's ``spec`` (a Prometheus rule file) rendered with ``args``."""
    docs = helm_template(home, *MONITORING_APIS, *args)
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    return dict(rule["spec"])


def alerts(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alert name -> rule."""
    return {r["alert"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}


def boards() -> dict[str, dict[str, Any]]:
    """Dashboard file stem -> its JSON."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def targets(board: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) of every query of a dashboard."""
    return [(p, t) for p in board["panels"] for t in p.get("targets", [])]


_NAME = re.compile(r"(?<![\w:.\"$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[|\)|\s|$)")
_NOT_METRICS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and",
    "or", "unless", "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "absent",
    "histogram_quantile", "vector", "le", "inf", "nan", "topk", "bottomk", "quantile",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (label names inside by()/{} are dropped)."""
    text = re.sub(
        r"\$\{?\w+\}?", "v", expr
    )  # Grafana variables: ${clinicalagent}, $__rate_interval
    text = re.sub(r"\{[^}]*\}", "{}", text)  # matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges
    text = re.sub(r'"[^"]*"', '""', text)
    return {n for n in _NAME.findall(text) if n.lower() not in _NOT_METRICS}


def grouping_labels(expr: str) -> set[str]:
    """Labels named in ``by (...)`` clauses, ``le`` excepted."""
    out: set[str] = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        out |= {g.strip() for g in group.split(",") if g.strip()}
    return out - {"le"}
