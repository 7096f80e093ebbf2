import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { stepName, windowWords, codeWords, contextNow, parseRequestUrl } = await import(js("steps.js"));
const NOW = "2023-11-13T10:15:00+00:00";

test("lab searches name the code and the window", () => {
  const url = "Observation?patient=S6315806&code=MG&date=ge2023-11-12T10:15:00%2B00:00&_count=5000&_format=json";
  assert.equal(stepName({ method: "GET", url }, NOW), "Retrieving lab results: magnesium, last 24 h");
  assert.equal(
    stepName({ method: "GET", url: "Observation?patient=S1&code=GLU&_sort=-date&_count=10" }, NOW),
    "Retrieving lab results: glucose, most recent",
  );
  assert.equal(stepName({ method: "GET", url: "Observation?patient=S1&code=A1C" }, NOW), "Retrieving lab results: HbA1c");
  assert.equal(stepName({ method: "GET", url: "Observation?patient=S1" }, NOW), "Retrieving lab results");
  assert.equal(
    stepName({ method: "GET", url: "Observation?patient=S1&category=vital-signs" }, NOW),
    "Retrieving vital signs",
  );
});

test("an unencoded + in a date reads as the offset, not a space", () => {
  const url = "Observation?patient=S1&code=K&date=ge2023-11-12T10:15:00+00:00";
  assert.equal(stepName({ method: "GET", url }, NOW), "Retrieving lab results: potassium, last 24 h");
});

test("windows in hours, days, or since a date", () => {
  assert.equal(windowWords(["ge2023-11-12T10:15:00+00:00"], NOW), "last 24 h");
  assert.equal(windowWords(["ge2023-11-06T10:15:00+00:00"], NOW), "last 7 days");
  assert.equal(windowWords(["ge2022-01-01"], NOW), "since 2022-01-01");
  assert.equal(windowWords(["ge2023-11-12T10:15:00+00:00"], null), "since 2023-11-12");
  assert.equal(windowWords(["le2023-11-12"], NOW), "");
  assert.equal(windowWords(["genot-a-date"], NOW), "");
});

test("patient reads: search by name, lookup by identifier, open a record", () => {
  const base = { method: "GET" };
  assert.equal(stepName({ ...base, url: "Patient?given=Peter&family=Stafford&birthdate=1932-12-29" }), "Searching patient records");
  assert.equal(stepName({ ...base, url: "Patient?identifier=S2874099&_format=json" }), "Looking up the patient");
  assert.equal(stepName({ ...base, url: "Patient/S2874099" }), "Opening the patient's record");
});

test("other reads", () => {
  assert.equal(stepName({ method: "GET", url: "Condition?patient=S1" }), "Reviewing the problem list");
  assert.equal(stepName({ method: "GET", url: "Procedure?patient=S1" }), "Reviewing procedures");
  assert.equal(stepName({ method: "GET", url: "MedicationRequest?patient=S1" }), "Reviewing medication orders");
  assert.equal(stepName({ method: "GET", url: "?_getpages=abc&_getpagesoffset=10" }), "Reading more results");
  assert.equal(stepName({ method: "GET", url: "Binary/1", resourceType: "other" }), "Reading the chart");
  assert.equal(stepName({ method: "GET", url: "http://evil.test/x", resourceType: "other" }), "Reading the chart");
  assert.equal(stepName({ method: "GET", url: "" }), "Reading the chart");
});

test("writes: medication, referral, lab test, blood pressure", () => {
  assert.equal(stepName({ method: "POST", url: "MedicationRequest", payload: {} }), "Ordering medication");
  const referral = { code: { coding: [{ system: "http://snomed.info/sct", code: "306181000000106" }] } };
  assert.equal(stepName({ method: "POST", url: "ServiceRequest", payload: referral }), "Ordering a referral");
  const lab = { code: { coding: [{ system: "http://loinc.org", code: "4548-4" }] } };
  assert.equal(stepName({ method: "POST", url: "ServiceRequest", payload: lab }), "Ordering a lab test");
  assert.equal(stepName({ method: "POST", url: "ServiceRequest", payload: {} }), "Ordering a service");
  assert.equal(stepName({ method: "POST", url: "Observation", payload: { code: { text: "BP" } } }), "Recording blood pressure");
  assert.equal(stepName({ method: "POST", url: "Observation", payload: null }), "Recording an observation");
  assert.equal(stepName({ method: "POST", url: "Appointment" }), "Writing to the chart");
  // the resource type from the event when the URL names none
  assert.equal(stepName({ method: "POST", url: "", resourceType: "MedicationRequest" }), "Ordering medication");
});

test("codes in words, systems stripped, unknown codes as written", () => {
  assert.equal(codeWords("MG"), "magnesium");
  assert.equal(codeWords("http://loinc.org|2823-3"), "potassium");
  assert.equal(codeWords("MG,K"), "magnesium, potassium");
  assert.equal(codeWords("XYZ"), "XYZ");
});

test("the run's clock from its context", () => {
  assert.equal(contextNow("It's 2023-11-13T10:15:00+00:00 now. The code is MG."), "2023-11-13T10:15:00+00:00");
  assert.equal(contextNow(""), null);
});

test("request URLs split into type, id and query", () => {
  const { type, id, params } = parseRequestUrl("Patient/S1?_format=json");
  assert.deepEqual([type, id, params.get("_format")], ["Patient", "S1", "json"]);
  assert.equal(parseRequestUrl("Observation?code=MG").type, "Observation");
});
