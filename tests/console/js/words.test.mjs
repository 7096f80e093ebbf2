import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const w = await import(js("words.js"));

test("run statuses in a clinician's words", () => {
  assert.equal(w.runStatus({ status: "running" }).label, "Running");
  assert.equal(w.runStatus({ status: "awaiting_approval" }).label, "Waiting for sign-off");
  assert.equal(w.runStatus({ status: "finished", outcome: "completed" }).label, "Completed");
  assert.equal(w.runStatus({ status: "finished", outcome: "task limit reached" }).label, "Round limit reached");
  const model = w.runStatus({ status: "finished", outcome: "task error", error: "model server unavailable: 503" });
  assert.match(model.text, /model is unavailable/);
  assert.match(w.runStatus({ status: "finished", outcome: "task error", error: "the task took longer than its limit of 600 s" }).text, /longer than it is allowed/);
  assert.match(w.runStatus({ status: "interrupted" }).text, /restart/);
  assert.equal(w.runStatus({ status: "cancelled", reason: "client disconnected" }).text, "Cancelled: client disconnected.");
});

test("API failures in words", () => {
  assert.match(w.apiError({ status: 0 }), /cannot be reached/);
  assert.match(w.apiError({ status: 401 }), /not valid/);
  assert.match(w.apiError({ status: 403, detail: "this API key lacks the 'approve' role" }), /^Not authorised: this API key lacks/);
  assert.match(w.apiError({ status: 409, detail: "already approved by dr-x" }), /already approved by dr-x/);
  assert.match(w.apiError({ status: 502, code: "fhir_unreachable" }), /FHIR server is unreachable/);
  assert.match(w.apiError({ status: 429 }), /busy/);
});

test("an order's state: signed by whom, when, written as what; declined; expired; not written", () => {
  const signed = w.orderState({ status: "approved", decidedBy: "dr-okafor", decidedAt: "2026-12-06T21:10:00+00:00", writtenRef: "MedicationRequest/60732" });
  assert.equal(signed.text, "Signed by dr-okafor at 6 Dec 2026, 21:10 UTC, written to the chart as MedicationRequest/60732.");
  assert.equal(signed.signable, undefined);
  const failed = w.orderState({ status: "approved", decidedBy: "dr-okafor", writeOutcome: "http_error" });
  assert.match(failed.text, /FHIR server refused the order/);
  assert.equal(w.orderState({ status: "denied", decided_by: "dr-okafor", reason: "on oral Mg" }).text, "Declined by dr-okafor: on oral Mg. Nothing was written.");
  assert.match(w.orderState({ status: "expired" }).text, /nobody signed it in time/);
  assert.equal(w.orderState({ status: "pending" }).signable, true);
  assert.match(w.orderState({ status: "acknowledged" }).text, /acknowledge mode .* nothing was written/);
  assert.match(w.orderState({ status: "dry_run" }).text, /dry-run mode, so nothing was written/);
  assert.equal(w.orderState({ status: "written", writtenRef: "ServiceRequest/9" }).text, "Written to the chart as ServiceRequest/9.");
});

test("error events", () => {
  assert.match(w.errorEvent("deadline"), /longer than/);
  assert.match(w.errorEvent("whatever"), /inside the agent/);
});
