"""The chart's alert rules: promtool checks and unit tests, runbooks, values that tune them."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from promsupport import CHART, REPO, alerts, helm_template, rule_spec

UNIT_TESTS = Path(__file__).parent / "rules.test.yaml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/sara-clinical/sara/blob/main/docs/runbooks.md"


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rendered_rules(
    promtool: str, rules: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "sara.rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    done = _promtool(promtool, "check", "rules", "sara.rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts(rules))} rules found" in done.stdout


def test_promtool_unit_tests_fire_and_keep_quiet_every_alert(
    promtool: str, rules: dict[str, Any], tmp_path: Path
) -> None:
    summaries = copy.deepcopy(rules)
    for group in summaries["groups"]:  # promtool compares annotations exactly: keep the summary
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (tmp_path / "sara.rules.yaml").write_text(yaml.safe_dump(summaries, sort_keys=False))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    done = _promtool(promtool, "test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    cases = [
        c for t in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for c in t["alert_rule_test"]
    ]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert fired == quiet == set(alerts(rules))


def test_every_alert_says_how_bad_what_and_where_to_read_more(rules: dict[str, Any]) -> None:
    for name, rule in alerts(rules).items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, name
        assert notes["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}"
        assert len(notes["description"]) > 60, name
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_each_alert_has_a_runbook_section_and_each_section_an_alert(
    rules: dict[str, Any],
) -> None:
    text = RUNBOOKS.read_text()
    sections = re.findall(r"^### (Sara\w+)\s*$", text, flags=re.M)
    assert sorted(sections) == sorted(alerts(rules))
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for name, rule in alerts(rules).items():
        assert rule["annotations"]["runbook_url"].rsplit("#", 1)[1] in anchors, name
    # each section says what it means, how to confirm and what to do
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        name = block.split("\n", 1)[0].strip()
        for part in ("**Means**", "**Confirm**", "**Do**"):
            assert part in block, f"{name}: no {part}"


def test_values_list_exactly_the_rendered_alerts(rules: dict[str, Any]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["prometheusRule"]["alerts"]) == set(alerts(rules))


def test_thresholds_for_severity_and_labels_come_from_values(helm_home: Path) -> None:
    spec = rule_spec(
        helm_home,
        "--set-json", "prometheusRule.alerts.SaraFhirErrors.threshold=0.25",
        "--set", "prometheusRule.alerts.SaraFhirErrors.for=3m",
        "--set", "prometheusRule.alerts.SaraFhirErrors.severity=info",
        "--set", "prometheusRule.alertLabels.team=clinical-platform",
        "--set", "prometheusRule.modelJob=sara-.+-model",
        "--set", "prometheusRule.runbookUrl=https://wiki.hospital.example/sara",
    )  # fmt: skip
    rule = alerts(spec)["SaraFhirErrors"]
    assert rule["expr"].rstrip().endswith("> 0.25")
    assert rule["for"] == "3m"
    assert rule["labels"] == {"severity": "info", "team": "clinical-platform"}
    assert rule["annotations"]["runbook_url"] == "https://wiki.hospital.example/sara#sarafhirerrors"
    assert 'up{job=~"sara-.+-model"}' in alerts(spec)["SaraModelServerDown"]["expr"]


def test_an_alert_can_be_turned_off(helm_home: Path) -> None:
    spec = rule_spec(helm_home, "--set", "prometheusRule.alerts.SaraFhirCallsBlocked.enabled=false")
    assert "SaraFhirCallsBlocked" not in alerts(spec)
    assert "SaraFhirErrors" in alerts(spec)


def test_operator_down_needs_the_operators_service_monitor(helm_home: Path) -> None:
    spec = rule_spec(helm_home, "--set", "serviceMonitor.enabled=false")
    assert "SaraOperatorDown" not in alerts(spec)
    rule = alerts(rule_spec(helm_home))["SaraOperatorDown"]
    assert rule["expr"] == 'absent(up{job="sara-metrics", namespace="sara-system"} == 1)'


def test_rule_and_monitor_follow_the_clusters_apis_unless_forced(helm_home: Path) -> None:
    def kinds(*args: str) -> set[str]:
        return {d["kind"] for d in helm_template(helm_home, *args)}

    assert not {"PrometheusRule", "ServiceMonitor"} & kinds()  # "auto", no Prometheus Operator
    assert {"PrometheusRule", "ServiceMonitor"} <= kinds(
        "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
        "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
    )  # fmt: skip
    forced = kinds("--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true")
    assert {"PrometheusRule", "ServiceMonitor"} <= forced
    off = kinds(
        "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
        "--set", "prometheusRule.enabled=false",
    )  # fmt: skip
    assert "PrometheusRule" not in off
