import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const fhir = await import(js("fhir.js"));

const PATIENT = {
  resourceType: "Patient",
  id: "S6534835",
  identifier: [
    { system: "urn:other", value: "X-1" },
    { type: { coding: [{ code: "MR" }] }, value: "S6534835" },
  ],
  name: [{ use: "official", family: "Stafford", given: ["Peter"] }],
  gender: "male",
  birthDate: "1932-12-29",
};

const obs = (id, when, value, flag) => ({
  resourceType: "Observation",
  id: String(id),
  code: { coding: [{ system: "http://loinc.org", code: "MG" }], text: "MG" },
  effectiveDateTime: when,
  valueQuantity: { value, unit: "mg/dL" },
  ...(flag ? { interpretation: [{ coding: [{ code: flag }] }] } : {}),
});

test("resources of a Bundle or a single resource", () => {
  const bundle = { resourceType: "Bundle", entry: [{ resource: PATIENT }, { resource: null }, {}] };
  assert.deepEqual(fhir.resources(bundle), [PATIENT]);
  assert.deepEqual(fhir.resources(PATIENT), [PATIENT]);
  assert.deepEqual(fhir.resources({ resourceType: "Bundle" }), []);
  assert.deepEqual(fhir.resources(null), []);
});

test("the patient card: name, MRN (typed MR), age at the run's clock, sex", () => {
  assert.deepEqual(fhir.patientSummary(PATIENT, "2023-11-13T10:15:00+00:00"), {
    name: "Peter Stafford",
    mrn: "S6534835",
    age: "90 years",
    sex: "Male",
    born: "29 Dec 1932",
  });
  const bare = fhir.patientSummary({ resourceType: "Patient", id: "p1" }, "2023-11-13");
  assert.deepEqual(bare, { name: "Unnamed patient", mrn: "p1", age: "—", sex: "—", born: "—" });
});

test("lab rows newest first, with flags", () => {
  const rows = fhir.labRows([obs(1, "2023-11-12T05:00:00+00:00", 2.1), obs(2, "2023-11-13T05:29:00+00:00", 1.6, "L"), PATIENT]);
  assert.deepEqual(rows.map((r) => [r.id, r.text, r.flag, r.code, r.unit]), [
    ["2", "1.6", "L", "MG", "mg/dL"],
    ["1", "2.1", "", "MG", "mg/dL"],
  ]);
});

test("conditions and procedures as list items", () => {
  const rows = fhir.clinicalRows([
    { resourceType: "Condition", code: { text: "Type 2 diabetes" }, clinicalStatus: { coding: [{ code: "active" }] }, onsetDateTime: "2015-03-01T00:00:00Z" },
    { resourceType: "Procedure", code: { coding: [{ display: "Knee MRI" }] }, performedDateTime: "2023-11-01T09:00:00+00:00" },
  ]);
  assert.deepEqual(rows, [
    { name: "Type 2 diabetes", detail: "active, since 1 Mar 2015" },
    { name: "Knee MRI", detail: "1 Nov 2023, 09:00 UTC" },
  ]);
});

test("which card an answer makes", () => {
  assert.equal(fhir.artifactKind([PATIENT]), "patient");
  assert.equal(fhir.artifactKind([obs(1, "2023-01-01", 2)]), "labs");
  assert.equal(fhir.artifactKind([{ resourceType: "Condition" }]), "records");
  assert.equal(fhir.artifactKind([]), null);
});
