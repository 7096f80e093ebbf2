"""A real Prometheus scrapes a real agent, operator and a vLLM stand-in while tasks run; then every
PromQL expression of every dashboard panel and every alert rule is evaluated through its HTTP API.

On 127.0.0.1, each on a free port, for about half a minute:

* ``sara fhir serve --synthetic 5`` (the embedded FHIR server; it exports no metrics of its own:
  the FHIR dashboard is the agent's view of its FHIR calls, which also covers external servers);
* a scripted OpenAI-compatible model (in a thread): per task it answers a read, a read of a
  missing resource, a URL the guard blocks, a loop, a non-action, an error, a context overflow,
  or a write — so every outcome the dashboards show happens for real inside the agent;
* ``sara agent serve`` (write mode execute, so tasks may ask for any mode: acknowledge, dry-run,
  deny, execute, approve) on a SQLite run store, driven through its API in three waves: tasks,
  an SSE stream, a request without a key, sign-offs approved, denied and cancelled;
* ``sara operator run`` against the Kubernetes emulator of tests/operator (a valid and an
  invalid ClinicalAgent);
* vLLM's metrics as the pinned v0.10.1.1 defines them (``vllm_metrics.py``; a GPU would be needed
  for the real server), advancing one engine step per scrape;
* Debian's ``prometheus`` scraping all of them every second, with the chart's rendered
  PrometheusRule loaded as its rule file.

Checked: every rule loads and evaluates (health ok), and the series every rule reads exist with
the labels it groups by; every dashboard query parses and returns at least one finite value
(agent, FHIR, vLLM and operator alike), except the queries of metrics proposed but not yet
exported by the agent (``PROPOSED``), which must return nothing until the agent exports them;
every template variable lists the test's namespace and ClinicalAgent; the blocked call and the
refused ClinicalAgent fire their alerts for real. The table of every query and what it returned is
written to ``$SARA_MONITORING_DOC`` (docs/monitoring.md, between markers) when that is set.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from inthread import serve_in_thread
from prometheus_client import CollectorRegistry
from promsupport import (
    REPO,
    alerts,
    boards,
    grouping_labels,
    metric_names,
    need_tool,
    targets,
)
from vllm_metrics import VllmStandIn

from sara.agent import fakes
from sara.agent.metrics import AgentMetrics

pytestmark = [
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
    pytest.mark.timeout(240),
]

SARA = str(Path(sys.executable).with_name("sara"))
NAMESPACE = "sara-test"
CLA = "ward-test"
AGENT_JOB, MODEL_JOB, OPERATOR_JOB = f"{CLA}-agent", f"{CLA}-model", "sara-metrics"
KEY = "monitoring-test-key-0123456789"
SCRAPE = 1.0  # seconds between scrapes and rule evaluations
VARIABLES = {"namespace": NAMESPACE, "clinicalagent": CLA, "__rate_interval": "2m"}
#: Metrics a dashboard panel needs that the agent does not export yet (proposed in
#: docs/monitoring.md); their queries must return nothing until AgentMetrics has them.
PROPOSED: dict[str, str] = {}  # none left: the agent exports every metric a panel reads
#: Series no process here exports: kube-state-metrics (SaraModelServerNotReady).
ELSEWHERE = re.compile(r"^kube_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the scripted model ------------------------------------------------------------------------

_BASE = re.compile(r"Note that you should use (\S+) as the api_base\.")
_PROBE = re.compile(r"probe:(\w+)(?: patient:(\S+))?")


def scripted(request: httpx.Request) -> httpx.Response:
    """An OpenAI chat endpoint whose answers depend on the ``probe:KIND`` in the task."""
    if request.method == "GET" and request.url.path.endswith("/models"):
        return httpx.Response(200, json={"object": "list", "data": [{"id": "scripted"}]})
    messages = json.loads(request.content)["messages"]
    first = messages[0]["content"]
    base = _BASE.search(first)
    probe = _PROBE.search(first.rsplit("Question:", 1)[-1])
    assert base and probe, "not a Sara prompt"
    kind, patient, url = probe.group(1), probe.group(2), base.group(1)
    rounds = sum(1 for m in messages if m["role"] == "assistant")
    if kind == "error":
        return httpx.Response(400, json={"error": {"message": "unsupported request"}})
    if kind == "context":
        text = "This model's maximum context length is 4096 tokens."
        return httpx.Response(400, json={"error": {"message": text}})
    plan: dict[str, list[str]] = {
        "read": [f"GET {url}Patient?_count=2"],
        "observation": [f"GET {url}Observation?patient={patient}&code=MG"],
        "missing": [f"GET {url}Patient/no-such-patient"],
        "blocked": ["GET http://169.254.169.254/latest/meta-data/"],
        "invalid": ["I would look at the chart first."],
        "write": [f"GET {url}Patient/{patient}", f"POST {url}Observation\n{_payload(patient)}"],
    }
    if kind == "loop":
        text = f"GET {url}Patient?_count=1"
    elif rounds < len(plan[kind]):
        text = plan[kind][rounds]
    else:
        text = "FINISH([1])"
    return httpx.Response(200, json=fakes.completion(text, prompt_tokens=900, completion_tokens=12))


def _payload(patient: str | None) -> str:
    return json.dumps(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"text": "monitoring probe"},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-01-01T08:00:00+00:00",
            "valueQuantity": {"value": 1.0, "unit": "mg/dL"},
        }
    )


def vllm_app(stand_in: VllmStandIn) -> Callable[..., Any]:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/metrics":
            return httpx.Response(404)
        return httpx.Response(
            200, content=stand_in.scrape(), headers={"content-type": "text/plain; version=0.0.4"}
        )

    return fakes.asgi(handle)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    prometheus: str = ""
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = self.tmp / f"{name}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("SARA_AGENT_")}
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                args,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**inherited, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **(env or {})},
            )
        self.procs.append((name, proc, log))

    def wait_http(self, name: str, url: str, timeout: float = 60) -> None:
        proc, log = next((p, lg) for n, p, lg in self.procs if n == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name}: {url} not ready in {timeout}s\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def query(self, expr: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10, trust_env=False
        )
        body: dict[str, Any] = answer.json()
        return body


class Emulator:
    """The Kubernetes emulator of tests/operator, served from its own thread and event loop."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        sys.path.insert(0, str(REPO / "tests" / "operator"))
        from kube_emulator import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.tmp, namespaces=("lab",)) as emulator:
            self.url = str(emulator.url)
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Emulator:
        self._thread.start()
        assert self._ready.wait(30), "the Kubernetes emulator did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)


def _prometheus_config(tmp: Path, rules: dict[str, Any], ports: dict[str, int]) -> Path:
    (tmp / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE:g}s",
            "scrape_timeout": f"{SCRAPE:g}s",
            "evaluation_interval": f"{SCRAPE:g}s",
        },
        "rule_files": [str(tmp / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ports[job]}"], "labels": {"namespace": NAMESPACE}}
                ],
            }
            for job in (AGENT_JOB, MODEL_JOB, OPERATOR_JOB)
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- load --------------------------------------------------------------------------------------


def _task(kind: str, patient: str, **options: Any) -> dict[str, Any]:
    return {"instruction": f"Monitoring check probe:{kind} patient:{patient}", "options": options}


def _wait_status(
    http: httpx.Client, task_id: str, status: str, within: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        view: dict[str, Any] = http.get(f"/v1/tasks/{task_id}").json()
        if view["status"] == status:
            return view
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never reached {status}: {view}")


def _wave(root: str, patient: str) -> None:
    """One round of everything the dashboards show, through the agent's API."""
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=root, headers=auth, timeout=60, trust_env=False) as http:
        for kind in ("read", "observation", "missing", "blocked", "invalid", "error", "context"):
            assert http.post("/v1/tasks", json=_task(kind, patient)).status_code == 200, kind
        assert http.post("/v1/tasks", json=_task("loop", patient, max_rounds=3)).status_code == 200
        for mode in ("acknowledge", "dry-run", "deny", "execute"):
            done = http.post("/v1/tasks", json=_task("write", patient, write_mode=mode))
            assert done.status_code == 200, (mode, done.text)
        with http.stream(
            "POST",
            "/v1/tasks",
            json=_task("read", patient),
            headers={"Accept": "text/event-stream"},
        ) as stream:
            assert b"event: finished" in b"".join(stream.iter_bytes())
        # write mode approve: one signed, one declined, one cancelled while it waits
        started = []
        for _ in range(3):
            answer = http.post(
                "/v1/tasks",
                json=_task("write", patient, write_mode="approve"),
                headers={"Prefer": "respond-async"},
            )
            assert answer.status_code == 202, answer.text
            started.append(answer.json()["id"])
        for task_id, decision in zip(started, ("approve", "deny", "cancel"), strict=True):
            view = _wait_status(http, task_id, "awaiting_approval")
            [action] = [a for a in view["actions"] if a["status"] == "pending"]
            if decision == "cancel":
                assert http.post(f"/v1/tasks/{task_id}:cancel").status_code in (200, 202)
                continue
            body = {"decision": decision, "payload_sha256": action["payload_sha256"]}
            decided = http.post(f"/v1/tasks/{task_id}/actions/{action['id']}", json=body)
            assert decided.status_code == 200, decided.text
    anonymous = httpx.post(f"{root}/v1/tasks", json=_task("read", patient), trust_env=False)
    assert anonymous.status_code == 401


# --- the stack ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, rules: dict[str, Any]) -> Iterator[Stack]:
    need_tool("prometheus")
    tmp = tmp_path_factory.mktemp("monitoring")
    s = Stack(tmp)
    stand_in = VllmStandIn()
    with (
        serve_in_thread(fakes.asgi(scripted)) as model_port,
        serve_in_thread(vllm_app(stand_in)) as vllm_port,
        Emulator(tmp) as emulator,
    ):
        try:
            _start_stack(s, tmp, rules, emulator.url, model_port, vllm_port)
            yield s
        finally:
            s.stop()  # before the emulator: the operator holds watches on it


def _start_stack(
    s: Stack, tmp: Path, rules: dict[str, Any], emulator: str, model_port: int, vllm_port: int
) -> None:
    prometheus = need_tool("prometheus")
    fhir, agent, live, operator, prom = (free_port() for _ in range(5))
    s.start(
        "fhir",
        [
            SARA,
            "fhir",
            "serve",
            "--synthetic",
            "5",
            "--db",
            str(tmp / "fhir.db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(fhir),
            "--log-level",
            "WARNING",
        ],
    )
    s.start(
        "operator",
        [
            SARA,
            "operator",
            "run",
            "--namespace",
            "lab",
            "--liveness-port",
            str(live),
            "--metrics-port",
            str(operator),
            "--status-interval",
            "1",
        ],
        env={"KUBECONFIG": str(tmp / "kubeconfig")},
    )
    s.wait_http("fhir", f"http://127.0.0.1:{fhir}/fhir/metadata")
    s.start(
        "agent",
        [
            SARA,
            "agent",
            "serve",
            "--fhir-url",
            f"http://127.0.0.1:{fhir}/fhir/",
            "--model-url",
            f"http://127.0.0.1:{model_port}/v1",
            "--model",
            "scripted",
            "--store",
            f"sqlite:///{tmp / 'runs.db'}",
            "--write-mode",
            "execute",
            "--max-rounds",
            "4",
            "--audit-sink",
            str(tmp / "audit.jsonl"),
            "--host",
            "127.0.0.1",
            "--port",
            str(agent),
            "--log-level",
            "WARNING",
        ],
        # one key drives every scenario: the per-key rate (a burst of 20) would refuse some
        env={"SARA_AGENT_API_KEYS": KEY, "SARA_AGENT_TASK_RATE_PER_MINUTE": "0"},
    )
    ports = {AGENT_JOB: agent, MODEL_JOB: vllm_port, OPERATOR_JOB: operator}
    config = _prometheus_config(tmp, rules, ports)
    s.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom}",
            "--log.level=warn",
            "--storage.tsdb.retention.time=1h",
        ],
    )
    s.prometheus = f"http://127.0.0.1:{prom}"
    s.wait_http("agent", f"http://127.0.0.1:{agent}/readyz")
    s.wait_http("operator", f"http://127.0.0.1:{live}/healthz")
    s.wait_http("prometheus", f"{s.prometheus}/-/ready")
    _clinical_agents(emulator)
    _until_targets_up(s)
    patient = _a_patient(fhir)
    for wave in range(3):  # counters move between scrapes: rates and quantiles exist
        _wave(f"http://127.0.0.1:{agent}", patient)
        time.sleep(SCRAPE * 1.5 if wave < 2 else 0)
    time.sleep(SCRAPE * 3)  # the last wave scraped, rules evaluated on it


def _a_patient(fhir: int) -> str:
    bundle = httpx.get(f"http://127.0.0.1:{fhir}/fhir/Patient?_count=1", trust_env=False).json()
    return str(bundle["entry"][0]["resource"]["id"])


def _clinical_agents(emulator: str) -> None:
    """A valid ClinicalAgent (reconciled, then refreshed every second) and an invalid one."""
    path = f"{emulator}/apis/clinical.sara.dev/v1alpha1/namespaces/lab/clinicalagents"
    for name, model in (("ward-ok", {"engine": "reference"}), ("ward-bad", {"engine": "vllm"})):
        body = {
            "apiVersion": "clinical.sara.dev/v1alpha1",
            "kind": "ClinicalAgent",
            "metadata": {"name": name, "namespace": "lab"},
            "spec": {"model": model},
        }
        assert httpx.post(path, json=body, trust_env=False).status_code < 300


def _until_targets_up(s: Stack, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = httpx.get(f"{s.prometheus}/api/v1/targets", trust_env=False).json()
        health = {t["labels"]["job"]: t["health"] for t in found["data"]["activeTargets"]}
        if health == dict.fromkeys((AGENT_JOB, MODEL_JOB, OPERATOR_JOB), "up"):
            return
        time.sleep(0.2)
    raise AssertionError(f"targets not up: {health}")


# --- checks ------------------------------------------------------------------------------------


def substitute(expr: str) -> str:
    """Grafana's variables as one ClinicalAgent selected would expand them."""
    for name, value in VARIABLES.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in expr, expr
    return expr


def _agent_families() -> set[str]:
    registry = CollectorRegistry()
    AgentMetrics(registry)
    return {name for c in registry._collector_to_names for name in registry._collector_to_names[c]}


def _finite(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in result if math.isfinite(float(r["value"][1]))]


def test_every_dashboard_query_evaluates_and_returns_data(stack: Stack) -> None:
    exported = _agent_families()
    proposed = {n for n, family in PROPOSED.items() if family not in exported}
    problems = []
    for board_name, board in boards().items():
        for panel, target in targets(board):
            expr = substitute(target["expr"])
            answer = stack.query(expr)
            row = {
                "board": board["title"],
                "panel": panel["title"],
                "expr": target["expr"],
                "legend": target.get("legendFormat", ""),
                "series": 0,
                "example": "",
            }
            stack.table.append(row)
            if answer.get("status") != "success":
                problems.append(f"{board_name}/{panel['title']}: {answer.get('error')}: {expr}")
                continue
            result = answer["data"]["result"]
            finite = _finite(result)
            row["series"] = len(result)
            if finite:
                sample = next((r for r in finite if float(r["value"][1])), finite[0])
                labels = {k: v for k, v in sample["metric"].items() if k != "namespace"}
                row["example"] = (
                    f"{json.dumps(labels, sort_keys=True)} {float(sample['value'][1]):.4g}"
                )
            if metric_names(expr) & proposed:
                row["example"] = "(proposed metric, not exported yet)"
                if result:
                    problems.append(f"{board_name}/{panel['title']}: proposed metric has data")
            elif not finite:
                problems.append(f"{board_name}/{panel['title']}: no data: {expr}")
    _write_table(stack.table)
    assert not problems, "\n".join(problems)


def test_template_variables_list_the_test_clinicalagent(stack: Stack) -> None:
    for board_name, board in boards().items():
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
            assert m, var
            selector, label = substitute(m.group(1)), m.group(2)
            values = httpx.get(
                f"{stack.prometheus}/api/v1/label/{label}/values",
                params={"match[]": selector},
                trust_env=False,
            ).json()["data"]
            if var.get("regex"):
                pattern = re.compile(var["regex"].strip("/"))
                values = [m.group(1) for v in values if (m := pattern.search(v))]
            expected = NAMESPACE if var["name"] == "namespace" else CLA
            assert expected in values, (board_name, var["name"], values)


def test_prometheus_loads_and_evaluates_every_rule(stack: Stack, rules: dict[str, Any]) -> None:
    groups = httpx.get(f"{stack.prometheus}/api/v1/rules", trust_env=False).json()["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == set(alerts(rules))
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))


def test_every_rule_reads_series_that_exist_with_the_labels_it_groups_by(
    stack: Stack, rules: dict[str, Any]
) -> None:
    problems = []
    for name, rule in alerts(rules).items():
        answer = stack.query(rule["expr"])
        if answer.get("status") != "success":
            problems.append(f"{name}: {answer.get('error')}")
            continue
        by = grouping_labels(rule["expr"])
        for metric in metric_names(rule["expr"]):
            if ELSEWHERE.match(metric):
                continue
            series = httpx.get(
                f"{stack.prometheus}/api/v1/series", params={"match[]": metric}, trust_env=False
            ).json()["data"]
            if not series:
                problems.append(f"{name}: no series {metric}")
                continue
            labels = set().union(*(s.keys() for s in series))
            if by - labels:
                problems.append(f"{name}: {metric} lacks {sorted(by - labels)}")
    assert not problems, "\n".join(problems)


def test_a_blocked_call_and_a_refused_spec_fire_their_alerts(stack: Stack) -> None:
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(f"{stack.prometheus}/api/v1/alerts", trust_env=False).json()
        firing = {
            (a["labels"]["alertname"], a["labels"].get("job"), a["labels"].get("reason"))
            for a in found["data"]["alerts"]
            if a["state"] == "firing"
        }
        expected = {
            ("SaraFhirCallsBlocked", AGENT_JOB, "host"),
            ("SaraClinicalAgentInvalid", OPERATOR_JOB, None),
        }
        if expected <= firing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert expected <= firing, firing


# --- the table for docs/monitoring.md ----------------------------------------------------------

BEGIN, END = "<!-- queries:begin -->", "<!-- queries:end -->"


def _write_table(rows: list[dict[str, Any]]) -> None:
    lines = [
        "| dashboard | panel | query (legend) | series | a series it returned (labels, value) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        expr = r["expr"].replace("|", "\\|")
        legend = f" ({r['legend']})" if r["legend"] else ""
        example = r["example"].replace("|", "\\|")
        lines.append(
            f"| {r['board']} | {r['panel']} | `{expr}`{legend} | {r['series']} | {example} |"
        )
    text = "\n".join(lines) + "\n"
    target = os.environ.get("SARA_MONITORING_DOC")
    if not target:
        return
    path = Path(target)
    doc = path.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    note = f"<!-- written by tests/monitoring/test_prometheus.py, {stamp} -->"
    path.write_text(f"{head}{BEGIN}\n{note}\n{text}{END}{tail}")
