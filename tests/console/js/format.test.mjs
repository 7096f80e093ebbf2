import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const f = await import(js("format.js"));

// The reference policy's IV magnesium order: route a plain string, rateQuantity an infusion time.
const MG = {
  resourceType: "MedicationRequest",
  medicationCodeableConcept: { coding: [{ system: "http://hl7.org/fhir/sid/ndc", code: "0338-1715-40" }], text: "Magnesium sulfate IV replacement" },
  authoredOn: "2023-11-13T10:15:00+00:00",
  dosageInstruction: [{ route: "IV", doseAndRate: [{ doseQuantity: { value: 2, unit: "g" }, rateQuantity: { value: 2, unit: "h" } }] }],
  status: "active",
  intent: "order",
  subject: { reference: "Patient/S6315806" },
};

test("a medication order: medication, code, dose, route, rate, patient", () => {
  assert.deepEqual(f.medicationOrder(MG), {
    medication: "Magnesium sulfate IV replacement",
    code: "NDC 0338-1715-40",
    dose: "2 g",
    route: "IV",
    rate: "over 2 h",
    when: "2023-11-13T10:15:00+00:00",
    reason: "",
    patient: "S6315806",
  });
});

test("strict FHIR shapes read as well: coded route, rate in mL/h, a ratio, a reason", () => {
  const order = {
    medicationCodeableConcept: { coding: [{ display: "Potassium chloride" }] },
    dosageInstruction: [{
      route: { coding: [{ system: "http://snomed.info/sct", code: "26643006", display: "Oral" }] },
      doseAndRate: [{ doseQuantity: { value: 20.0, code: "meq" }, rateQuantity: { value: 50, unit: "mL/h" } }],
    }],
    reasonCode: [{ text: "Hypokalaemia" }],
  };
  const facts = f.medicationOrder(order);
  assert.equal(facts.medication, "Potassium chloride");
  assert.equal(facts.dose, "20 meq");
  assert.equal(facts.route, "Oral");
  assert.equal(facts.rate, "at 50 mL/h");
  assert.equal(facts.reason, "Hypokalaemia");
  const ratio = { dosageInstruction: [{ doseAndRate: [{ rateRatio: { numerator: { value: 1, unit: "g" }, denominator: { value: 1, unit: "h" } } }] }] };
  assert.equal(f.medicationOrder(ratio).rate, "1 g per 1 h");
});

test("an empty or odd order gives fewer facts, never an exception", () => {
  for (const odd of [null, {}, { dosageInstruction: "x" }, { dosageInstruction: [{ doseAndRate: [null] }] }]) {
    const facts = f.medicationOrder(odd);
    assert.equal(facts.medication, "Medication");
    assert.equal(facts.dose, "");
  }
});

test("a referral and a lab order", () => {
  const referral = {
    resourceType: "ServiceRequest",
    code: { coding: [{ system: "http://snomed.info/sct", code: "306181000000106", display: "Referral to orthopedic service" }] },
    priority: "stat",
    note: { text: "Situation: acute left knee injury" },
    subject: { reference: "Patient/S2016972" },
  };
  const facts = f.order("ServiceRequest", referral);
  assert.equal(facts.title, "Referral");
  assert.equal(facts.service, "Referral to orthopedic service");
  assert.equal(facts.code, "SNOMED 306181000000106");
  assert.equal(facts.reason, "Situation: acute left knee injury");
  assert.equal(facts.when, "stat");
  const lab = {
    code: { coding: [{ system: "http://loinc.org", code: "2823-3", display: "Serum potassium level" }] },
    priority: "stat",
    occurrenceDateTime: "2023-11-14T08:00:00+00:00",
  };
  const labFacts = f.order("ServiceRequest", lab);
  assert.equal(labFacts.title, "Service request");
  assert.equal(labFacts.when, "stat, 14 Nov 2023, 08:00 UTC");
  assert.equal(labFacts.code, "LOINC 2823-3");
});

test("a blood pressure to chart", () => {
  const bp = { code: { text: "BP" }, valueString: "118/77 mmHg", effectiveDateTime: "2023-11-13T10:15:00+00:00", subject: { reference: "Patient/S2380121" } };
  assert.deepEqual(f.order("Observation", bp), {
    title: "Chart entry",
    observation: "Blood pressure 118/77 mmHg",
    when: "13 Nov 2023, 10:15 UTC",
    patient: "S2380121",
  });
  assert.equal(f.observationWrite({ code: { text: "BP" }, valueString: "120/80" }).observation, "Blood pressure 120/80 mmHg");
});

test("numbers, times, dates and ages", () => {
  assert.equal(f.number(0.1 + 0.2), "0.3");
  assert.equal(f.number(2.0), "2");
  assert.equal(f.quantity({ value: 1.5, unit: "mg/dL" }), "1.5 mg/dL");
  assert.equal(f.dateTime("2023-11-13T05:29:00+00:00"), "13 Nov 2023, 05:29 UTC");
  assert.equal(f.dateTime("2023-11-13T05:29:00-05:00"), "13 Nov 2023, 10:29 UTC");
  assert.equal(f.dateTime("1932-12-29"), "29 Dec 1932");
  assert.equal(f.dateTime("soon"), "soon");
  assert.equal(f.date("1955-04-17"), "17 Apr 1955");
  assert.equal(f.age("1955-04-17", "2023-11-13T10:15:00+00:00"), 68);
  assert.equal(f.age("1955-11-14", "2023-11-13T10:15:00+00:00"), 67);
  assert.equal(f.age("1955-11-13", "2023-11-13T10:15:00+00:00"), 68);
  assert.equal(f.age("", "2023-11-13"), null);
  assert.equal(f.concept({ coding: [{ system: "http://loinc.org", code: "4548-4" }] }), "LOINC 4548-4");
});
