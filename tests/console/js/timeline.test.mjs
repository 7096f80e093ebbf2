import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { apply, createRun, ended, mergeActions, responseText, timing } = await import(js("timeline.js"));

const NOW = "2023-11-13T10:15:00+00:00";
const ORDER = { resourceType: "MedicationRequest", dosageInstruction: [{ route: "IV" }], subject: { reference: "Patient/S1" } };
const READ = "Observation?patient=S1&code=MG&date=ge2023-11-12T10:15:00%2B00:00&_count=5000&_format=json";

/** The events of a low-magnesium task in approve mode, as the agent streams and stores them. */
const EVENTS = [
  ["round_started", { round: 1 }],
  ["model_output", { round: 1, text: `GET http://f/fhir/${READ}`, action: "get", prompt_tokens: 700, completion_tokens: 30, elapsed_ms: 512.4 }],
  ["fhir_request", { round: 1, method: "GET", resource_type: "Observation", sent: true, blocked: null, url: READ, payload: null }],
  ["fhir_response", { round: 1, method: "GET", resource_type: "Bundle", status: 200, outcome: "ok", entry_count: 1, size: 900, truncated: false, elapsed_ms: 23.1, summary: { resource_type: "Bundle", count: 1, total: 1, types: ["Observation"] } }],
  ["round_started", { round: 2 }],
  ["model_output", { round: 2, text: "POST …", action: "post", prompt_tokens: 900, completion_tokens: 90, elapsed_ms: 498 }],
  ["approval_requested", { round: 2, action_id: "a1", method: "POST", url: "MedicationRequest", resource_type: "MedicationRequest", summary: "MedicationRequest: …", payload: ORDER, payload_sha256: "ab".repeat(32), expires_at: "2026-12-06T21:25:00+00:00" }],
  ["approval_decided", { round: 2, action_id: "a1", decision: "approved", decided_by: "dr-okafor", reason: null }],
  ["fhir_request", { round: 2, method: "POST", resource_type: "MedicationRequest", sent: true, blocked: null, url: "MedicationRequest", payload: ORDER }],
  ["fhir_response", { round: 2, method: "POST", resource_type: "MedicationRequest", status: 201, outcome: "ok", size: 0, elapsed_ms: 12, summary: { resource_type: "MedicationRequest", id: "60732" } }],
  ["round_started", { round: 3 }],
  ["model_output", { round: 3, text: "FINISH([1.6])", action: "finish", prompt_tokens: 1000, completion_tokens: 5, elapsed_ms: 400 }],
  ["finished", { result: { status: "completed", result: "[1.6]" } }],
];

function replay(events, run = createRun(NOW)) {
  const changed = [];
  events.forEach(([type, data], i) => changed.push(apply(run, { seq: i + 1, type, data })));
  return { run, changed };
}

test("the steps a clinician reads, in order", () => {
  const { run } = replay(EVENTS);
  assert.deepEqual(run.steps.map((s) => [s.name, s.state]), [
    ["Retrieving lab results: magnesium, last 24 h", "done"],
    ["Ordering medication", "done"],
    ["Completing task", "done"],
  ]);
  assert.equal(run.steps[1].note, "Signed by dr-okafor.");
  assert.deepEqual(run.reads, [{ seq: 3, round: 1, url: READ, resourceType: "Observation" }]);
  assert.equal(ended(run), true);
  assert.equal(run.result.result, "[1.6]");
});

test("live, step by step: thinking, in progress, waiting for a signature", () => {
  const run = createRun(NOW);
  const states = EVENTS.slice(0, 7).map(([type, data], i) => {
    apply(run, { seq: i + 1, type, data });
    return run.steps.map((s) => s.state).join(",");
  });
  assert.deepEqual(states, [
    "in-progress",
    "in-progress",
    "in-progress",
    "done",
    "done,in-progress",
    "done,in-progress",
    "done,pending",
  ]);
  assert.equal(run.orders.get("a1").status, "pending");
  assert.equal(run.orders.get("a1").payloadSha256, "ab".repeat(32));
  assert.equal(ended(run), false);
});

test("a replay and a live stream resumed half way build the same run", () => {
  const whole = replay(EVENTS).run;
  const resumed = createRun(NOW);
  EVENTS.forEach(([type, data], i) => apply(resumed, { seq: i + 1, type, data }));
  EVENTS.slice(4).forEach(([type, data], i) => apply(resumed, { seq: i + 5, type, data })); // repeated ids are ignored
  assert.deepEqual(resumed.steps, whole.steps);
  assert.equal(resumed.lastSeq, EVENTS.length);
});

test("a declined order: the step says who and why; nothing is listed as written", () => {
  const events = [
    ...EVENTS.slice(0, 7),
    ["approval_decided", { round: 2, action_id: "a1", decision: "denied", decided_by: "dr-okafor", reason: "on oral Mg" }],
    ["round_started", { round: 3 }],
  ];
  const { run } = replay(events);
  assert.equal(run.steps[1].state, "declined");
  assert.equal(run.steps[1].note, "Declined by dr-okafor: on oral Mg. Nothing was written.");
  assert.equal(run.orders.get("a1").status, "denied");
  assert.equal(run.orders.size, 1);
});

test("orders in acknowledge or dry-run mode are listed as not written", () => {
  const events = [
    ["round_started", { round: 1 }],
    ["fhir_request", { round: 1, method: "POST", resource_type: "MedicationRequest", sent: false, url: "MedicationRequest", payload: ORDER }],
    ["fhir_response", { round: 1, method: "POST", resource_type: "MedicationRequest", status: null, outcome: "acknowledged" }],
  ];
  const { run } = replay(events);
  const [order] = run.orders.values();
  assert.equal(order.status, "acknowledged");
  assert.equal(order.resourceType, "MedicationRequest");
  assert.match(run.steps[0].note, /acknowledge mode .* nothing was written/);
});

test("errors, blocks and stops", () => {
  const blocked = replay([["fhir_request", { round: 1, method: "GET", resource_type: "other", sent: false, blocked: "host", url: "http://evil.test/x" }]]).run;
  assert.equal(blocked.steps[0].state, "error");
  assert.equal(blocked.reads.length, 0);
  const failed = replay([["round_started", { round: 1 }], ["error", { code: "model_error", message: "model server unavailable" }]]).run;
  assert.match(failed.error.words, /model is unavailable/);
  assert.equal(failed.steps[0].state, "error");
  const stopped = replay([["round_started", { round: 1 }], ["interrupted", { status: "interrupted", reason: "agent restarted" }]]).run;
  assert.deepEqual(stopped.stopped, { status: "interrupted", reason: "agent restarted" });
  assert.equal(stopped.steps[0].state, "stopped");
  assert.equal(replay([["model_output", { round: 1, text: "hmm", action: "invalid" }]]).run.steps[0].name, "The model's answer could not be read");
});

test("the task view's actions complete an order (who signed, what was written)", () => {
  const { run } = replay(EVENTS.slice(0, 7));
  mergeActions(run, [{ id: "a1", round: 2, resource_type: "MedicationRequest", payload: ORDER, payload_sha256: "x", status: "approved", decided_by: "dr-okafor", decided_at: "2026-12-06T21:10:00+00:00", written_ref: "MedicationRequest/60732", write_outcome: "ok" }]);
  const order = run.orders.get("a1");
  assert.equal(order.writtenRef, "MedicationRequest/60732");
  assert.equal(order.decidedAt, "2026-12-06T21:10:00+00:00");
});

test("timings and answers in words", () => {
  const { run } = replay(EVENTS);
  assert.equal(timing(run.steps[0]), "model 0.51 s · FHIR 23 ms · 730 tokens");
  assert.equal(responseText(run.steps[0].response), "200 · ok · Bundle of 1 (of 1)");
  assert.equal(responseText(run.steps[1].response), "201 · ok · MedicationRequest/60732");
  assert.equal(responseText(null), "");
});
