// The run page: replay the run's stored events, then follow it live (fetch + SSE, resumed with
// Last-Event-ID after a drop); draw the timeline, the orders (sign / decline), the chart's
// artifacts and the result. A reload starts again from the first event: nothing is lost.

import { session } from "../api.js";
import * as cards from "../cards.js";
import { clear, notice } from "../dom.js";
import { dateTime } from "../format.js";
import { artifactKind, clinicalRows, labRows, patientSummary, resources } from "../fhir.js";
import { resultCard } from "../results.js";
import { follow, StreamError } from "../sse.js";
import { contextNow, parseRequestUrl } from "../steps.js";
import { apply, createRun, mergeActions } from "../timeline.js";
import { byId, classify } from "../workflows.js";
import { apiError, runStatus } from "../words.js";
import { boot, consoleNow } from "./common.js";

const TERMINAL = new Set(["finished", "interrupted", "cancelled"]);
const $ = (id) => document.getElementById(id);

/** Call again while the agent cannot be reached (status 0), like the event stream does. */
async function retrying(call, attempts = 6) {
  for (let i = 1; ; i += 1) {
    try {
      return await call();
    } catch (failure) {
      if (failure.status !== 0 || i >= attempts) throw failure;
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** i));
    }
  }
}

async function main({ api, me }) {
  const id = $("run").dataset.taskId;
  let task;
  try {
    task = await api.task(id);
  } catch (failure) {
    $("run-notices").append(notice("This run cannot be opened", apiError(failure), "bad"));
    $("run-status").textContent = "Unavailable";
    return;
  }
  const catalogue = await (await fetch(`${document.body.dataset.static}/workflows.json`)).json();
  const workflowId = classify(task.instruction, task.context);
  const workflow = byId(catalogue, workflowId);
  const run = createRun(contextNow(task.context));
  const canSign = me.roles.includes("approve");
  const steps = new Map();
  const orderCards = new Map();
  const labs = []; // rows of every lab read, for the result card
  const shownPatients = new Set();
  const shownQueries = new Set();

  function head() {
    $("run-title").textContent = workflow?.title ?? "Run";
    document.title = `${workflow?.title ?? "Run"} · Sara console`;
    const status = runStatus(task);
    const badge = $("run-status");
    badge.textContent = status.label;
    badge.dataset.tone = status.tone;
    $("run-patient").textContent = task.patient ?? "—";
    $("run-principal").textContent = task.principal ?? "—";
    $("run-started").textContent = dateTime(task.created_at);
    const mode = task.settings?.write_mode ?? task.write_mode;
    $("run-write-mode").textContent = {
      approve: "Need a signature",
      execute: "Written as made",
      "dry-run": "Dry run: never written",
      acknowledge: "Not written (acknowledge mode)",
      deny: "Not allowed",
    }[mode] ?? mode ?? "—";
    $("run-instruction").textContent = task.instruction ?? "";
    $("run-context").textContent = task.context || "(none)";
  }

  function drawStep(key) {
    const s = run.steps.find((x) => x.key === key);
    if (!s) return;
    const li = cards.timelineStep(s, steps.get(key));
    if (!steps.has(key)) {
      steps.set(key, li);
      $("timeline").append(li);
    }
  }

  async function decide(actionId, body, card) {
    cards.busy(card, true);
    card.querySelector("[data-field=error]").textContent = "";
    const o = run.orders.get(actionId);
    try {
      const decided = await api.decide(id, actionId, { ...body, payload_sha256: o.payloadSha256 });
      mergeActions(run, [decided]);
    } catch (failure) {
      card.querySelector("[data-field=error]").textContent = apiError(failure);
      await refresh();
    }
    cards.busy(card, false);
    drawOrders();
    card.querySelector(".order-outcome").focus?.();
  }

  const handlers = {
    sign: (actionId, card) => decide(actionId, { decision: "approve" }, card),
    decline: (actionId, reason, card) => decide(actionId, { decision: "deny", reason }, card),
  };

  function drawOrders() {
    const orders = [...run.orders.values()].sort((a, b) => (a.round ?? 0) - (b.round ?? 0));
    $("orders-section").hidden = orders.length === 0;
    const waiting = task.status === "awaiting_approval" || task.status === "running";
    for (const o of orders) {
      const card = cards.orderCard(o, orderCards.get(o.id), { sign: canSign && waiting }, handlers);
      if (!orderCards.has(o.id)) {
        orderCards.set(o.id, card);
        card.querySelector(".order-outcome").tabIndex = -1;
        $("orders-slot").append(card);
      }
    }
  }

  function drawResult() {
    const slot = $("result-slot");
    if (!TERMINAL.has(task.status)) {
      if (task.status === "awaiting_approval") {
        clear(slot);
        slot.append(notice("Waiting for a signature", "The run goes on once the order below is signed or declined.", "attention"));
      }
      return;
    }
    clear(slot);
    const status = runStatus(task);
    if (task.status !== "finished" || task.outcome !== "completed") {
      slot.append(notice(status.label, status.text || "The run ended without an answer.", status.tone === "bad" ? "bad" : "neutral"));
      return;
    }
    const fields = resultCard(workflowId, task.answer, { orders: [...run.orders.values()], labs });
    slot.append(
      cards.resultCard(fields, (mrn) => {
        session.handPatient(mrn);
        window.location.assign("/");
      }),
    );
  }

  function chartSection(readAt) {
    $("chart-section").hidden = false;
    if (readAt) $("as-of").textContent = `at ${dateTime(readAt)}`;
  }

  function showPatient(patient, source, readAt) {
    const summary = patientSummary(patient, run.now ?? consoleNow());
    if (shownPatients.has(summary.mrn) || shownPatients.size >= 3) return;
    shownPatients.add(summary.mrn);
    chartSection(readAt);
    $("patient-slot").append(cards.patientCard(summary, source));
  }

  async function loadPatient() {
    if (!task.patient || shownPatients.size) return;
    try {
      const answer = await retrying(() => api.patient(id));
      const found = resources(answer.resource).find((r) => r.resourceType === "Patient");
      if (found) showPatient(found, answer.resource, answer.read_at);
    } catch (failure) {
      if (failure.status !== 404) $("run-notices").append(notice("The patient could not be shown", apiError(failure)));
    }
  }

  async function loadArtifact(read) {
    const { type, params } = parseRequestUrl(read.url);
    if (params.has("_getpages")) return; // later pages of a search already shown
    const query = `${type}|${params.get("code") ?? ""}`;
    if (shownQueries.has(query)) return;
    shownQueries.add(query);
    let answer;
    try {
      answer = await retrying(() => api.reread(id, read.seq));
    } catch (failure) {
      chartSection(null);
      $("records-slot").append(notice("Part of the chart could not be shown", apiError(failure)));
      return;
    }
    const list = resources(answer.resource);
    const kind = artifactKind(list);
    if (kind === "patient") {
      for (const p of list.filter((r) => r.resourceType === "Patient")) showPatient(p, answer.resource, answer.read_at);
    } else if (kind === "labs") {
      const rows = labRows(list);
      labs.push(...rows);
      chartSection(answer.read_at);
      const code = (params.get("code") || rows[0]?.code || "").split(",")[0].split("|").at(-1);
      let history = rows;
      if (params.get("code")) {
        try {
          history = labRows(resources((await retrying(() => api.trend(id, read.seq))).resource));
        } catch {
          history = rows; // the table still shows what the search finds
        }
      }
      $("labs-slot").append(cards.labCard(code.toUpperCase(), rows, answer.resource, history));
      drawResult();
    } else if (kind === "records") {
      chartSection(answer.read_at);
      const title = type === "Procedure" ? "Procedures" : "Conditions";
      $("records-slot").append(cards.recordCard(title, clinicalRows(list), answer.resource));
    }
  }

  async function refresh() {
    try {
      task = await api.task(id);
    } catch {
      return task;
    }
    mergeActions(run, task.actions);
    head();
    drawOrders();
    drawResult();
    return task;
  }

  function onEvent(raw) {
    let data;
    try {
      data = JSON.parse(raw.data);
    } catch {
      return;
    }
    const seq = Number(raw.id) || 0;
    for (const key of apply(run, { seq, type: raw.type, data })) drawStep(key);
    if (raw.type === "fhir_response" && data.method === "GET" && data.outcome === "ok") {
      const read = run.reads.find((r) => r.round === data.round && r.seq < seq && !r.loaded);
      if (read) {
        read.loaded = true;
        loadArtifact(read);
      }
    }
    if (raw.type === "approval_requested" || raw.type === "approval_decided") {
      task = { ...task, status: raw.type === "approval_requested" ? "awaiting_approval" : "running" };
      head();
      drawOrders();
      drawResult();
      refresh(); // the stored actions: who decided, when, what was written
    }
    if (raw.type === "fhir_response" && data.method === "POST") refresh();
    if (raw.type === "error") $("run-notices").append(notice("The run failed", run.error.words, "bad"));
    if (["finished", "cancelled", "interrupted"].includes(raw.type)) refresh();
  }

  const live = $("live-state");
  const states = {
    live: "Following the run live.",
    reconnecting: "Connection lost — reconnecting; nothing will be missed.",
    ended: "",
  };

  head();
  mergeActions(run, task.actions);
  drawOrders();
  drawResult();
  loadPatient();
  try {
    await follow(api.eventsUrl(id), {
      headers: api.authHeaders(),
      onEvent,
      onState: (state) => {
        live.textContent = TERMINAL.has(task.status) && state === "live" ? "" : states[state];
        live.dataset.state = state;
      },
      shouldContinue: async () => !TERMINAL.has((await refresh()).status),
    });
  } catch (failure) {
    if (failure instanceof StreamError) {
      $("run-notices").append(notice("The run's steps cannot be shown", apiError({ status: failure.status }), "bad"));
    }
  }
  await refresh();
  loadPatient();
}

boot(main);
