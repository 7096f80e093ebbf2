"""The clinician console in a real browser against real processes (Debian's Chromium through
Playwright; an embedded FHIR server with a synthetic EHR, the reference model server, and
``sara agent serve --write-mode approve``, all on 127.0.0.1, shared by the module).

Proven here: the ten workflow templates are recognised by the reference policy end to end; a
low-magnesium run started from the start page streams its timeline live, its order card shows
dose and route, Sign writes the order (read back from the FHIR server) and the card names the
signer; Decline writes nothing; a reload mid-run resumes the live timeline; the history lists
the runs after the agent restarts, and a run waiting there can still be signed; a dropped
connection (the agent killed and restarted while an order waits) loses nothing; a ``run``-only
key cannot sign; an order in ``acknowledge`` mode says nothing was written; axe-core finds no
serious or critical violation on the start, run and history pages; nothing the pages load comes
from another origin and the Content-Security-Policy is never violated.

Screenshots of the start page, a live run, a pending sign-off and the history (1280×800 and
768 px) are taken every run; ``SARA_SCREENSHOTS=docs/screenshots`` keeps them there
(docs/console.md). Needs Chromium (``make test`` installs Debian's), the ``playwright`` package
and axe-core (``make console-tools``); without them the browser tests skip on a laptop and fail
under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sara.common.clock import BENCH_NOW

pytestmark = pytest.mark.timeout(150)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SARA_CHROMIUM") or shutil.which("chromium")
AXE = Path(os.environ.get("SARA_AXE") or REPO / ".tools/npm/node_modules/axe-core/axe.min.js")
NODE = os.environ.get("SARA_NODE") or shutil.which("node")
SIGNER, SIGNER_KEY = "dr-okafor", "console-e2e-signer-key-0123456789"  # as in conftest.py
KIOSK_KEY = "console-e2e-kiosk-key-0123456789"
WAIT_MS = 20_000  # any one wait for the page
SIGNED = re.compile(
    rf"Signed by {SIGNER} at \d+ \w{{3}} \d{{4}}, \d\d:\d\d UTC, written to the chart as "
    r"MedicationRequest/(\S+)\."
)


Stack = Any  # tests/console/conftest.py: the module's FHIR server, model server and agent
Patient = Any  # conftest.py: a patient with a low magnesium


def need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the console's browser test needs {what}; make test installs it on CI")
    pytest.skip(f"the console's browser test needs {what}")


def dose(value: float) -> tuple[str, str]:
    """The benchmark's IV magnesium tiers: dose and infusion time for a low value."""
    if value < 1.0:
        return "4 g", "over 4 h"
    if value < 1.5:
        return "2 g", "over 2 h"
    return "1 g", "over 1 h"


# --- the ten templates against the reference policy (no browser needed) -----------------------


def test_every_template_is_recognised_by_the_reference_policy(
    stack: Stack, low_mg: list[Patient]
) -> None:
    need("node", NODE is not None)
    p = low_mg[0]
    values = {
        "mrn": p.mrn,
        "given": p.given,
        "family": p.family,
        "dob": p.birth_date,
        "systolic": "118",
        "diastolic": "77",
        "note": "Situation: acute left knee injury, Background: ACL tear on MRI.",
        "request": "What is the most recent CBG of the patient " + p.mrn + "?",
    }
    built = subprocess.run(
        [NODE, str(Path(__file__).parent / "js" / "build_tasks.mjs"),
         json.dumps({"values": values, "now": BENCH_NOW.isoformat()})],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    workflows = json.loads(built.stdout)
    assert [w["task"] for w in workflows] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None]
    started = {}
    for w in workflows:
        assert w["problems"] == {}, w
        started[w["id"]] = stack.start(w["body"])
    answers = {}
    for wid, task_id in started.items():
        view = stack.until(task_id, "finished", "awaiting_approval", timeout=60)
        if view["status"] == "awaiting_approval":
            answers[wid] = "awaiting_approval"
            assert stack.api("POST", f"/v1/tasks/{task_id}:cancel").status_code == 200
        else:
            assert view["outcome"] == "completed", (wid, view)
            assert "reference policy" not in (view["answer"] or ""), (wid, view["answer"])
            answers[wid] = view["answer"]
    assert answers["patient_lookup"] == json.dumps([p.mrn])
    assert answers["record_bp"] == answers["mg_replacement"] == "awaiting_approval"
    assert answers["ortho_referral"] == "awaiting_approval"
    assert answers["mg_last"] == json.dumps([p.magnesium])
    assert answers["free_text"] == answers["glucose_last"]  # same question, in free text


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright package", False)
    need("Debian's chromium (apt-get install chromium)", CHROMIUM is not None)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """One browser tab on the console, watching for CSP violations and off-site requests."""

    page: Any
    root: str
    problems: list[str]
    shots: Path
    allowed: list[str]  # console messages expected in this test (a connection cut on purpose)
    origins: list[str]  # where the page may send requests: the agents under test

    def open(self, path: str) -> None:
        self.page.goto(self.root + path)

    def sign_in(self, key: str = SIGNER_KEY) -> None:
        self.page.locator("#api-key").fill(key)
        self.page.locator("#sign-in-form button[type=submit]").click()
        self.page.locator("#main").wait_for(state="visible")

    def shot(self, name: str) -> None:
        self.page.mouse.move(0, 0)  # no hover effect in the picture
        self.page.screenshot(path=str(self.shots / f"{name}.png"))

    def axe(self) -> None:
        """axe-core in the page (evaluated through DevTools: the CSP refuses script tags)."""
        self.page.evaluate(AXE.read_text("utf-8") + "\n;undefined")
        found = self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
                 .map(v => ({id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))"""
        )
        serious = [v for v in found if v["impact"] in ("serious", "critical")]
        assert serious == [], json.dumps(serious, indent=1)


@pytest.fixture
def tab(browser: Any, stack: Stack, tmp_path: Path) -> Iterator[Tab]:
    need(f"axe-core ({AXE}; make console-tools)", AXE.is_file())
    shots = Path(os.environ.get("SARA_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems: list[str] = []
    origins = [stack.agent.root]

    def only_the_agent(route: Any) -> None:
        if any(route.request.url.startswith(origin + "/") for origin in origins):
            route.continue_()
        else:
            problems.append(f"off-site request: {route.request.url}")
            route.abort()

    allowed: list[str] = []

    def console(message: Any) -> None:
        if any(text in message.text for text in allowed):
            return
        if "Content Security Policy" in message.text or message.type == "error":
            problems.append(f"console {message.type}: {message.text}")

    page.route("**/*", only_the_agent)
    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield Tab(page, stack.agent.root, problems, shots, allowed, origins)
    context.close()
    assert problems == []


def order_card(tab: Tab) -> Any:
    return tab.page.locator(".order-card").first


def test_start_a_run_watch_it_live_and_sign_the_order(
    tab: Tab, stack: Stack, low_mg: list[Patient]
) -> None:
    p = low_mg[0]
    page = tab.page
    tab.open("/")
    page.locator("#sign-in").wait_for(state="visible")
    tab.sign_in()
    assert page.locator("#session [data-field=name]").inner_text() == SIGNER
    page.locator("#wf-mg_replacement").check()
    tab.shot("start-1280")
    tab.axe()
    page.set_viewport_size({"width": 768, "height": 1024})
    tab.shot("start-768")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.locator("#f-mrn").fill(p.mrn)
    page.locator("#f-mrn").press("Enter")  # the keyboard starts it
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+$"))
    task_id = page.url.rsplit("/", 1)[-1]
    # live: the first step shows while the run is still going
    first = page.locator("#timeline li.step").first
    first.wait_for()
    assert stack.task(task_id)["status"] == "running"
    page.get_by_text("Retrieving lab results: magnesium, last 24 h").wait_for()
    assert page.locator("#live-state").inner_text() == "Following the run live."
    tab.shot("run-live-1280")

    card = order_card(tab)
    card.locator("[data-action=sign]").wait_for()
    amount, rate = dose(p.magnesium)
    assert card.locator("[data-field=dose]").inner_text() == amount
    assert card.locator("[data-field=route]").inner_text() == "IV"
    assert card.locator("[data-field=rate]").inner_text() == rate
    assert card.locator("[data-field=patient]").inner_text() == p.mrn
    assert page.locator("#timeline li.step[data-state=pending]").count() == 1
    page.locator(".lab-card svg.sparkline circle").first.wait_for()  # the trend of the code
    tab.shot("sign-off-1280")
    tab.axe()
    before = stack.fhir_get(f"MedicationRequest?patient={p.mrn}&_count=5000").get("total", 0)

    # Sign with the keyboard: Shift+Tab from "Decline…" to "Sign order", a visible focus, Enter.
    card.locator("[data-action=decline]").focus()
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate(
        """() => { const el = document.activeElement, style = getComputedStyle(el);
                   return [el.dataset.action, style.outlineStyle, style.outlineWidth]; }"""
    )
    assert focused == ["sign", "solid", "3px"], focused
    page.keyboard.press("Enter")
    outcome = card.locator("[data-field=outcome]")
    page.wait_for_function(
        "el => /written to the chart as/.test(el.textContent)", arg=outcome.element_handle()
    )
    signed = SIGNED.fullmatch(outcome.inner_text())
    assert signed, outcome.inner_text()
    written = stack.fhir_get(f"MedicationRequest/{signed.group(1)}")  # read back from FHIR
    assert written["subject"] == {"reference": f"Patient/{p.mrn}"}
    assert written["dosageInstruction"][0]["route"] == "IV"
    value = written["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
    assert f"{value} g" == amount
    after = stack.fhir_get(f"MedicationRequest?patient={p.mrn}&_count=5000")["total"]
    assert after == before + 1

    page.locator(".result-card").wait_for()
    assert page.locator(".result-card [data-field=value]").inner_text() == f"{p.magnesium:g}"
    assert page.locator(".result-card [data-field=marker_label]").inner_text() == (
        "Low — needs attention"
    )
    names = page.locator("#timeline .step-name").all_inner_texts()
    assert names == [
        "Retrieving lab results: magnesium, last 24 h",
        "Ordering medication",
        "Completing task",
    ]
    assert page.locator("#run-status").inner_text() == "Completed"
    tab.axe()


def test_decline_writes_nothing_and_says_who_and_why(
    tab: Tab, stack: Stack, low_mg: list[Patient]
) -> None:
    p = low_mg[1 % len(low_mg)]
    before = stack.fhir_get(f"MedicationRequest?patient={p.mrn}&_count=5000").get("total", 0)
    task_id = stack.start(_mg_task(p.mrn))
    tab.open(f"/runs/{task_id}")
    tab.sign_in()
    card = order_card(tab)
    card.locator("[data-action=decline]").click()
    assert card.locator("[data-action=decline]").get_attribute("aria-expanded") == "true"
    card.get_by_label("Reason for declining").fill("Already on oral magnesium")
    card.get_by_role("button", name="Decline order").click()
    outcome = card.locator("[data-field=outcome]")
    tab.page.wait_for_function(
        "el => /^Declined by .+ at .+ UTC/.test(el.textContent)", arg=outcome.element_handle()
    )
    assert re.fullmatch(
        rf"Declined by {SIGNER} at .+ UTC: Already on oral magnesium\. Nothing was written\.",
        outcome.inner_text(),
    )
    stack.until(task_id, "finished")
    tab.page.locator(".result-card").wait_for()
    assert tab.page.locator("#timeline li.step[data-state=declined]").count() == 1
    after = stack.fhir_get(f"MedicationRequest?patient={p.mrn}&_count=5000").get("total", 0)
    assert after == before


def test_a_reload_or_a_dropped_connection_mid_run_loses_nothing(
    tab: Tab, stack: Stack, low_mg: list[Patient]
) -> None:
    p = low_mg[2 % len(low_mg)]
    page = tab.page
    page.set_viewport_size({"width": 768, "height": 1024})
    task_id = stack.start(_mg_task(p.mrn))
    tab.open(f"/runs/{task_id}")
    tab.sign_in()
    page.locator("#timeline li.step").first.wait_for()
    at_reload = stack.task(task_id)
    assert at_reload["status"] == "running", "the run ended before the reload"
    page.reload()  # the key stays in session storage: no new sign-in
    page.get_by_text("Retrieving lab results: magnesium, last 24 h").wait_for()
    tab.shot("run-live-768")

    card = order_card(tab)
    card.locator("[data-action=sign]").wait_for()  # it arrived live, after the reload
    assert stack.seq_of(task_id, "approval_requested") > at_reload["last_event_id"]

    # The connection drops (the agent crashes and comes back while the order waits): the page
    # says so, reconnects with Last-Event-ID and carries on.
    tab.allowed += ["ERR_CONNECTION_REFUSED", "ERR_INCOMPLETE_CHUNKED_ENCODING"]
    stack.agent.kill()
    page.wait_for_function(
        "() => document.getElementById('live-state').dataset.state === 'reconnecting'"
    )
    assert "reconnecting" in page.locator("#live-state").inner_text()
    stack.agent.start()
    page.wait_for_function("() => document.getElementById('live-state').dataset.state === 'live'")
    card.scroll_into_view_if_needed()
    tab.shot("sign-off-768")
    tab.axe()
    card.locator("[data-action=sign]").click()
    page.locator(".result-card").wait_for()
    assert page.locator("#timeline .step-name").all_inner_texts() == [
        "Retrieving lab results: magnesium, last 24 h",
        "Ordering medication",
        "Completing task",
    ]  # every step once: nothing missed, nothing repeated
    assert page.locator(".order-card").count() == 1


def test_history_lists_every_run_after_the_agent_restarts(
    tab: Tab, stack: Stack, low_mg: list[Patient]
) -> None:
    waiting = stack.start(_mg_task(low_mg[0].mrn))
    stack.until(waiting, "awaiting_approval")
    stack.agent.stop()
    stack.agent.start()  # same port, same run store

    page = tab.page
    tab.open("/history")
    tab.sign_in()
    rows = page.locator("#runs tr")
    rows.first.wait_for()
    assert rows.first.get_attribute("data-status") == "awaiting_approval"  # waiting first
    assert rows.first.locator("td").nth(1).inner_text() == low_mg[0].mrn
    statuses = [rows.nth(i).get_attribute("data-status") for i in range(rows.count())]
    assert statuses.count("finished") >= 3  # the signed, declined and reloaded runs
    assert "Magnesium check and IV replacement" in rows.first.inner_text()
    assert f"by {SIGNER}" in rows.first.inner_text()
    tab.shot("history-1280")
    tab.axe()
    page.set_viewport_size({"width": 768, "height": 1024})
    tab.shot("history-768")

    page.locator("#q").fill(low_mg[0].mrn)  # search what is loaded
    assert all(low_mg[0].mrn in rows.nth(i).inner_text() for i in range(rows.count()))
    page.locator("#status").select_option("awaiting_approval")  # a server-side filter
    page.wait_for_function("() => document.querySelectorAll('#runs tr').length === 1")

    rows.first.locator("a").click()  # replay, then sign where it waits
    page.wait_for_url(f"**/runs/{waiting}")
    page.locator(".patient-card").wait_for()  # the artifacts come back with the replay
    page.locator(".lab-card").wait_for()
    assert page.locator("#timeline li.step[data-state=pending]").count() == 1
    order_card(tab).locator("[data-action=sign]").click()
    page.locator(".result-card").wait_for()
    assert stack.task(waiting)["status"] == "finished"


def test_a_key_without_the_approve_role_cannot_sign(
    tab: Tab, stack: Stack, low_mg: list[Patient]
) -> None:
    task_id = stack.start(_mg_task(low_mg[0].mrn))
    stack.until(task_id, "awaiting_approval")
    r = stack.api("GET", f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {KIOSK_KEY}"})
    assert r.status_code == 404  # the kiosk sees only its own runs
    own = httpx.post(
        stack.agent.root + "/v1/tasks",
        json=_mg_task(low_mg[0].mrn),
        headers={"Authorization": f"Bearer {KIOSK_KEY}", "Prefer": "respond-async"},
        trust_env=False,
    ).json()["id"]
    tab.open(f"/runs/{own}")
    tab.sign_in(KIOSK_KEY)
    card = order_card(tab)
    outcome = card.locator("[data-field=outcome]")
    tab.page.wait_for_function(
        "el => el.textContent.includes('approve role')", arg=outcome.element_handle()
    )
    assert not card.locator("[data-action=sign]").is_visible()
    for task in (task_id, own):
        stack.api("POST", f"/v1/tasks/{task}:cancel")


def test_orders_in_acknowledge_mode_say_nothing_was_written(
    tab: Tab, stack: Stack, low_mg: list[Patient], start_agent: Any
) -> None:
    p = low_mg[0]
    before = stack.fhir_get(f"MedicationRequest?patient={p.mrn}&_count=5000").get("total", 0)
    agent = start_agent("acknowledge")
    r = httpx.post(
        agent.root + "/v1/tasks",
        json=_mg_task(p.mrn),
        headers={"Authorization": f"Bearer {SIGNER_KEY}", "Prefer": "respond-async"},
        trust_env=False,
    )
    tab.root = agent.root
    tab.origins.append(agent.root)
    tab.open(f"/runs/{r.json()['id']}")
    tab.sign_in()
    tab.page.locator(".result-card").wait_for()
    card = order_card(tab)
    assert card.locator("[data-field=status_label]").inner_text() == "Not written"
    assert card.locator("[data-field=outcome]").inner_text() == (
        "Not written: this agent runs in acknowledge mode (the benchmark's), so nothing was "
        "written to the chart."
    )
    assert card.locator("[data-field=dose]").inner_text() == dose(p.magnesium)[0]
    assert not card.locator("[data-action=sign]").is_visible()
    assert tab.page.locator("#run-write-mode").inner_text() == "Not written (acknowledge mode)"
    after = stack.fhir_get(f"MedicationRequest?patient={p.mrn}&_count=5000").get("total", 0)
    assert after == before


def _mg_task(mrn: str) -> dict[str, Any]:
    return {
        "instruction": (
            f"Check patient {mrn}'s last serum magnesium level within last 24 hours. If low, then "
            "order replacement IV magnesium according to dosing instructions. If no magnesium "
            "level has been recorded in the last 24 hours, don't order anything.\n"
        ),
        "context": (
            f'It\'s {BENCH_NOW.isoformat()} now. The code for magnesium is "MG". The NDC for '
            "replacement IV magnesium is 0338-1715-40. Dosing instructions: (1) Mild deficiency "
            "(eg, serum magnesium 1.5 to 1.9 mg/dL):\nIV: 1 g over 1 hour.\n(2) Moderate "
            "deficiency (eg, serum magnesium 1 to <1.5 mg/dL):\nIV: 2 g over 2 hours.\n(3) Severe "
            "deficiency (eg, serum magnesium <1 mg/dL):\nIV: 4 g over 4 hours.\n"
        ),
        "patient": mrn,
    }
