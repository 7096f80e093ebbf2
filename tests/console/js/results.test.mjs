import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { parseAnswer, resultCard } = await import(js("results.js"));
const signed = [{ resourceType: "MedicationRequest", status: "approved" }];

test("answers as lists", () => {
  assert.deepEqual(parseAnswer("[1.6]"), [1.6]);
  assert.deepEqual(parseAnswer('["S1"]'), ["S1"]);
  assert.deepEqual(parseAnswer("42"), [42]);
  assert.equal(parseAnswer("not json"), null);
  assert.equal(parseAnswer(null), null);
});

test("a low magnesium: value, unit, range, attention, and the order's fate", () => {
  const card = resultCard("mg_replacement", "[1.6]", { orders: signed });
  assert.equal(card.title, "Magnesium");
  assert.equal(card.value, "1.6");
  assert.equal(card.unit, "mg/dL");
  assert.equal(card.range, "2.0–2.4 mg/dL");
  assert.equal(card.marker, "attention");
  assert.equal(card.markerLabel, "Low — needs attention");
  assert.equal(card.note, "IV magnesium ordered — signed and written to the chart.");
  const pending = resultCard("mg_replacement", "[1.6]", { orders: [{ resourceType: "MedicationRequest", status: "pending" }] });
  assert.equal(pending.note, "IV magnesium ordered — waiting for a signature.");
  const declined = resultCard("mg_replacement", "[1.6]", { orders: [{ resourceType: "MedicationRequest", status: "denied" }] });
  assert.equal(declined.note, "IV magnesium ordered — declined; nothing was written.");
  assert.equal(resultCard("mg_replacement", "[2.2]").note, "No replacement ordered.");
  assert.equal(resultCard("mg_replacement", "[2.2]").marker, "normal");
});

test("no measurement", () => {
  const card = resultCard("mg_last", "[-1]");
  assert.equal(card.value, "No measurement");
  assert.equal(card.detail, "No magnesium result in the last 24 h");
  assert.equal(card.marker, "none");
});

test("a value and its date (HbA1c), and a reorder", () => {
  const card = resultCard("a1c", '[6.8, "2021-11-02T08:00:00+00:00"]', { orders: [{ resourceType: "ServiceRequest", status: "pending" }] });
  assert.equal(card.value, "6.8");
  assert.equal(card.unit, "%");
  assert.equal(card.detail, "Recorded 2 Nov 2021, 08:00 UTC");
  assert.equal(card.marker, "attention");
  assert.equal(card.note, "A new HbA1c test was ordered — waiting for a signature.");
  assert.equal(resultCard("a1c", "[-1]").value, "No measurement");
});

test("the last glucose takes its date from the lab read", () => {
  const labs = [{ value: 123, when: "2023-11-13T06:00:00+00:00", flag: "H" }];
  const card = resultCard("glucose_last", "[123]", { labs });
  assert.equal(card.detail, "Most recent CBG, taken 13 Nov 2023, 06:00 UTC");
  assert.equal(card.marker, "attention"); // the lab's flag wins over the CBG band
  assert.equal(resultCard("glucose_average", "[120.5]").detail, "Mean CBG over the last 24 h");
});

test("lookup: an MRN to carry on with, or not found", () => {
  const found = resultCard("patient_lookup", '["S6534835"]');
  assert.equal(found.value, "S6534835");
  assert.equal(found.usePatient, "S6534835");
  const missing = resultCard("patient_lookup", '["Patient not found"]');
  assert.equal(missing.value, "Patient not found");
  assert.equal(missing.usePatient, null);
});

test("age, blood pressure, referral", () => {
  assert.deepEqual([resultCard("age", "[68]").value, resultCard("age", "[68]").unit], ["68", "years"]);
  const bp = resultCard("record_bp", "[]", { orders: [{ resourceType: "Observation", status: "approved", payload: { valueString: "118/77 mmHg" } }] });
  assert.equal(bp.value, "118/77 mmHg");
  assert.equal(bp.note, "Recorded — signed and written to the chart.");
  const referral = resultCard("ortho_referral", "[]", { orders: [{ resourceType: "ServiceRequest", status: "acknowledged" }] });
  assert.equal(referral.note, "Referral — not written to the chart (acknowledged).");
  assert.equal(resultCard("ortho_referral", "[]").value, "No referral");
});

test("words where a number was expected, and free text, are shown as they are", () => {
  const words = resultCard("mg_replacement", '["The reference policy could not read the last reply"]');
  assert.equal(words.value, "The reference policy could not read the last reply");
  assert.equal(words.marker, "none");
  assert.equal(resultCard("free_text", "The patient has 3 active problems").value, "The patient has 3 active problems");
  assert.equal(resultCard("free_text", null).value, "No answer");
});
