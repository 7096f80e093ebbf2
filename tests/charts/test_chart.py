"""The Helm chart: lint, render, validate every object, pinned copies of shared sources.

Every ``ci/*-values.yaml`` scenario (default; GPU agent; CPU-only reference agent; external FHIR
with a bearer-token Secret; monitoring off) is linted with ``--strict``, rendered with the
Prometheus Operator's APIs present and piped into ``kubernetes-validate --strict``; the
ClinicalAgents it declares are checked against the CRD's schema and the operator's own rules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kopf
import kubernetes_validate
import pytest
import yaml

from sara.operator import model

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "sara"
HELM = shutil.which("helm") or str(REPO / ".venv" / "bin" / "helm")
VALIDATE = shutil.which("kubernetes-validate") or str(
    REPO / ".venv" / "bin" / "kubernetes-validate"
)
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING_APIS = [
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
]

pytestmark = pytest.mark.skipif(
    not Path(HELM).exists(), reason="helm binary missing: run scripts/install-k8s-tools.sh"
)


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def helm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELM, *args], env=env, capture_output=True, text=True, timeout=60)


def render_text(env: dict[str, str], *sets: str, extra: tuple[str, ...] = ()) -> str:
    args = ["template", "sara", str(CHART), "-n", "sara-system", "--include-crds", *extra]
    for s in sets:
        args += ["--set", s]
    done = helm(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(env: dict[str, str], *sets: str, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render_text(env, *sets, extra=extra)) if d]


def test_lint_strict(helm_env: dict[str, str]) -> None:
    done = helm(helm_env, "lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr


VARIANTS = {
    "defaults": [],
    "namespaced-monitored": [
        "operator.watchNamespaces={cardiology,emergency}",
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=kps",
        "resources.requests.cpu=100m",
        "imagePullSecrets={regcred}",
    ],
    "no-dashboards-no-rbac": [
        "dashboards.enabled=false",
        "rbac.create=false",
        "serviceAccount.create=false",
        "serviceAccount.name=ops",
    ],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_validates_strictly(helm_env: dict[str, str], variant: str) -> None:
    for doc in render(helm_env, *VARIANTS[variant]):
        if doc["kind"] == "ServiceMonitor":
            assert set(doc["spec"]) == {"selector", "namespaceSelector", "endpoints"}
            continue
        kubernetes_validate.validate(doc, "1.31", strict=True)


def as_jsonschema(node: Any) -> Any:
    """OpenAPI v3.0 (what CRDs use) as JSON Schema draft 4: ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [as_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def crd_validator() -> jsonschema.Draft4Validator:
    crd = yaml.safe_load((CHART / "crds" / "clinicalagents.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["served"]]
    return jsonschema.Draft4Validator(as_jsonschema(version["schema"]["openAPIV3Schema"]))


def test_there_are_the_ci_scenarios_the_issue_asks_for() -> None:
    assert [p.name.removesuffix("-values.yaml") for p in SCENARIOS] == [
        "cpu-reference",
        "default",
        "external-fhir",
        "gpu-agent",
        "monitoring-off",
    ]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_ci_scenario_lints_renders_and_validates(helm_env: dict[str, str], scenario: Path) -> None:
    """`helm lint --strict`, then `helm template | kubernetes-validate --strict`; the custom
    resources it cannot know: ClinicalAgents against the CRD schema and the operator's rules,
    the PrometheusRule and ServiceMonitors by shape (promtool checks the rules:
    tests/monitoring/)."""
    lint = helm(helm_env, "lint", "--strict", str(CHART), "-f", str(scenario))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = render_text(helm_env, extra=("-f", str(scenario), *MONITORING_APIS))
    piped = subprocess.run(
        [VALIDATE, "--strict", "-k", "1.31", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "ERROR" not in piped.stdout, piped.stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    custom = {"ClinicalAgent", "PrometheusRule", "ServiceMonitor"}
    passed = piped.stdout.count(" passed for resource ")
    assert passed == len([d for d in docs if d["kind"] not in custom])
    validator = crd_validator()
    values = yaml.safe_load(scenario.read_text()) or {}
    declared = values.get("clinicalAgents", [])
    agents = [d for d in docs if d["kind"] == "ClinicalAgent"]
    assert [a["metadata"]["name"] for a in agents] == [c["name"] for c in declared]
    for agent in agents:
        validator.validate(agent)
        model.parse(agent["metadata"]["name"], agent["spec"])  # cross-field rules
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            assert set(doc["spec"]) == {"selector", "namespaceSelector", "endpoints"}
        if doc["kind"] == "PrometheusRule":
            assert [g["name"] for g in doc["spec"]["groups"]] == [
                "sara.model", "sara.agent", "sara.fhir", "sara.operator"
            ]  # fmt: skip
    kinds = {d["kind"] for d in docs}
    if scenario.name == "monitoring-off-values.yaml":
        assert not kinds & {"PrometheusRule", "ServiceMonitor"}
        assert not [d for d in docs if d["kind"] == "ConfigMap"]
    else:
        assert {"PrometheusRule", "ServiceMonitor"} <= kinds


def test_clinicalagents_in_values_are_rendered_as_declared(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, extra=("-f", str(CHART / "ci" / "cpu-reference-values.yaml")))
    [agent] = [d for d in docs if d["kind"] == "ClinicalAgent"]
    values = yaml.safe_load((CHART / "ci" / "cpu-reference-values.yaml").read_text())
    assert agent["spec"] == values["clinicalAgents"][0]["spec"]
    assert agent["metadata"]["namespace"] == "sara-demo"
    assert agent["metadata"]["labels"]["environment"] == "evaluation"
    docs = render(helm_env, extra=("-f", str(CHART / "ci" / "monitoring-off-values.yaml")))
    [agent] = [d for d in docs if d["kind"] == "ClinicalAgent"]
    assert agent["metadata"]["namespace"] == "sara-system"  # the release's by default


def test_schema_rejects_a_clinicalagent_without_a_spec_or_with_a_bad_name(
    helm_env: dict[str, str],
) -> None:
    for bad in ("clinicalAgents[0].name=Ward_4B", "clinicalAgents[0].spec=null"):
        done = helm(
            helm_env, "template", "sara", str(CHART),
            "--set", "clinicalAgents[0].name=ok", "--set-json", "clinicalAgents[0].spec={}",
            "--set", bad,
        )  # fmt: skip
        assert done.returncode != 0, bad


def test_helm_test_hook_checks_the_operators_health_endpoint(helm_env: dict[str, str]) -> None:
    docs = render(helm_env)
    [pod] = [d for d in docs if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    [c] = pod["spec"]["containers"]
    assert c["image"] == "ghcr.io/sara-clinical/sara:0.1.0"  # no extra image to mirror
    script = c["args"][0]
    assert "http://sara-metrics.sara-system.svc" in script
    assert ":8080/healthz" in script and ":9090/metrics" in script
    compile(script, "helm-test", "exec")  # the Python the Pod runs parses
    [svc] = [d for d in docs if d["kind"] == "Service"]
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert not [d for d in render(helm_env, "helmTest.enabled=false") if d["kind"] == "Pod"]


def test_defaults_operator_deployment(helm_env: dict[str, str]) -> None:
    docs = render(helm_env)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "Pod",  # the `helm test` hook
        ]
    )
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    selector = dep["spec"]["selector"]["matchLabels"]
    assert not any("version" in k or k == "helm.sh/chart" for k in selector)
    [c] = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["operator", "run"]
    assert "resources" not in c  # no default resources
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SARA_OPERATOR_SARA_IMAGE"] == "ghcr.io/sara-clinical/sara:0.1.0"
    assert env["SARA_OPERATOR_VLLM_IMAGE"].startswith("vllm/vllm-openai:v")


def test_watch_namespaces_binds_roles_only_there(helm_env: dict[str, str]) -> None:
    docs = render(helm_env, "operator.watchNamespaces={a,b}")
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "operator",
        "run",
        "--namespace",
        "a",
        "--namespace",
        "b",
    ]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["a", "b"]
    cluster_bindings = [d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert cluster_bindings == ["sara-cluster"]


def test_crd_in_chart_is_the_manifest(helm_env: dict[str, str]) -> None:
    [crd] = [d for d in render(helm_env) if d["kind"] == "CustomResourceDefinition"]
    assert crd == yaml.safe_load((REPO / "manifests" / "crd.yaml").read_text())


def _rules(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    out = set()
    for d in docs:
        if d["kind"] != "ClusterRole":
            continue
        for rule in d["rules"]:
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    for verb in rule["verbs"]:
                        out.add((group, res, verb))
    return out


def test_rbac_matches_manifests_and_is_least_privilege(helm_env: dict[str, str]) -> None:
    chart = _rules(render(helm_env))
    manifest = _rules(list(yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text())))
    assert chart == manifest
    assert not any("*" in part for rule in chart for part in rule)
    secret_verbs = {v for g, r, v in chart if r == "secrets"}
    assert secret_verbs == {"create", "delete"}  # never read a Secret
    resources = {r for _, r, _ in chart}
    assert resources == {
        "clinicalagents",
        "clinicalagents/status",
        "clinicalagents/finalizers",
        "customresourcedefinitions",
        "namespaces",
        "events",
        "services",
        "configmaps",
        "deployments",
        "statefulsets",
        "jobs",
        "networkpolicies",
        "servicemonitors",
        "persistentvolumeclaims",
        "secrets",
    }


def test_rbac_allows_owner_references_that_block_owner_deletion(helm_env: dict[str, str]) -> None:
    # kopf.adopt sets blockOwnerDeletion; with the OwnerReferencesPermissionEnforcement admission
    # plugin every child create is refused unless the operator may update the owner's finalizers.
    child: dict[str, Any] = {"metadata": {"name": "c", "namespace": "ns"}}
    owner = {"apiVersion": "clinical.sara.dev/v1alpha1", "kind": "ClinicalAgent"}
    kopf.adopt(child, owner={**owner, "metadata": {"name": "w", "namespace": "ns", "uid": "u"}})
    assert child["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    for rules in (
        _rules(render(helm_env)),
        _rules(list(yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text()))),
    ):
        assert ("clinical.sara.dev", "clinicalagents/finalizers", "update") in rules


def test_dashboards_are_grafana_json_with_sidecar_labels(helm_env: dict[str, str]) -> None:
    maps = [d for d in render(helm_env) if d["kind"] == "ConfigMap"]
    assert len(maps) == 4
    uids = set()
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(key, text)] = cm["data"].items()
        board = json.loads(text)
        assert json.loads((CHART / "dashboards" / key.removeprefix("sara-")).read_text()) == board
        uids.add(board["uid"])
        assert board["panels"] and all(p["targets"] for p in board["panels"] if p["type"] != "row")
    assert uids == {"sara-agent", "sara-fhir", "sara-model", "sara-operator"}


def test_schema_rejects_unknown_and_invalid_values(helm_env: dict[str, str]) -> None:
    for bad in (
        "operator.bogus=1",
        "image.pullPolicy=Sometimes",
        "operator.metricsPort=0",
        "serviceMonitor.enabled=sometimes",
        "prometheusRule.alerts.SaraBogus.enabled=true",
        "prometheusRule.alerts.SaraFhirErrors.severity=page",
        "prometheusRule.alerts.SaraFhirErrors.for=soon",
        "prometheusRule.runbookUrl=docs/runbooks.md",
    ):
        done = helm(helm_env, "template", "sara", str(CHART), "--set", bad)
        assert done.returncode != 0, bad


def test_every_value_is_documented() -> None:
    """Each leaf value, or a block it sits in, has a `# --` comment right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^(\s*)([A-Za-z][\w.-]*):\s*(\S.*)?$")
    stack: list[tuple[int, bool]] = []  # (indent, documented) of enclosing blocks
    undocumented = []
    for i, line in enumerate(lines):
        m = key.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = lines[i - 1].strip().startswith("# --") or any(d for _, d in stack)
        is_block = m.group(3) is None
        if is_block:
            stack.append((indent, documented))
        elif not documented:
            undocumented.append(m.group(2))
    assert undocumented == []


def test_manifest_operator_matches_chart_defaults(helm_env: dict[str, str]) -> None:
    [chart_dep] = [d for d in render(helm_env) if d["kind"] == "Deployment"]
    [man_dep] = [
        d
        for d in yaml.safe_load_all((REPO / "manifests" / "operator.yaml").read_text())
        if d["kind"] == "Deployment"
    ]
    c1 = chart_dep["spec"]["template"]["spec"]["containers"][0]
    c2 = man_dep["spec"]["template"]["spec"]["containers"][0]
    assert c1["args"] == c2["args"] and c1["image"] == c2["image"]
    assert c1["livenessProbe"] == c2["livenessProbe"]
    assert c1["securityContext"] == c2["securityContext"]
    assert chart_dep["spec"]["strategy"] == man_dep["spec"]["strategy"] == {"type": "Recreate"}
