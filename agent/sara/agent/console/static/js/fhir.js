// Pure readers of FHIR answers for the console's artifacts: the patient card, the lab table
// and its trend, conditions and procedures. Anything unexpected yields fewer facts, never an
// exception.

import { age, concept, date, dateTime, number } from "./format.js";

/** The resources in an answer: a Bundle's entries, or the one resource. */
export function resources(body) {
  if (!body || typeof body !== "object") return [];
  if (body.resourceType === "Bundle") {
    return (Array.isArray(body.entry) ? body.entry : [])
      .map((e) => e?.resource)
      .filter((r) => r && typeof r === "object" && typeof r.resourceType === "string");
  }
  return typeof body.resourceType === "string" ? [body] : [];
}

/** The MRN: an identifier typed MR, else the first identifier's value, else the id. */
export function mrn(patient) {
  const ids = Array.isArray(patient?.identifier) ? patient.identifier : [];
  const typed = ids.find((i) =>
    (i?.type?.coding ?? []).some((c) => String(c?.code).toUpperCase() === "MR"),
  );
  return String((typed ?? ids[0])?.value ?? patient?.id ?? "");
}

export function patientName(patient) {
  const names = Array.isArray(patient?.name) ? patient.name : [];
  const n = names.find((x) => x?.use === "official") ?? names[0];
  if (!n) return "Unnamed patient";
  if (typeof n.text === "string" && n.text.trim()) return n.text.trim();
  const given = Array.isArray(n.given) ? n.given.join(" ") : "";
  return [n.prefix?.join?.(" "), given, n.family].filter(Boolean).join(" ") || "Unnamed patient";
}

const SEX = { male: "Male", female: "Female", other: "Other", unknown: "Unknown" };

/** The patient card's facts. */
export function patientSummary(patient, now) {
  const years = age(patient?.birthDate, now);
  return {
    name: patientName(patient),
    mrn: mrn(patient),
    age: years === null ? "—" : `${years} years`,
    sex: SEX[patient?.gender] ?? "—",
    born: patient?.birthDate ? date(patient.birthDate) : "—",
  };
}

function interpretation(obs) {
  const c = (Array.isArray(obs?.interpretation) ? obs.interpretation : [])[0]?.coding?.[0];
  return c ? String(c.code || "") : "";
}

/** Lab observations as rows, newest first: {id, code, name, when, value, unit, text, flag}. */
export function labRows(list) {
  const rows = [];
  for (const obs of list) {
    if (obs?.resourceType !== "Observation") continue;
    const coding = obs.code?.coding?.[0] ?? {};
    const q = obs.valueQuantity;
    const value = typeof q?.value === "number" ? q.value : null;
    rows.push({
      id: String(obs.id ?? ""),
      code: String(coding.code ?? obs.code?.text ?? ""),
      name: concept(obs.code),
      when: String(obs.effectiveDateTime ?? obs.issued ?? ""),
      value,
      unit: String(q?.unit ?? q?.code ?? ""),
      text: value === null ? String(obs.valueString ?? "") : number(value),
      flag: interpretation(obs),
    });
  }
  return rows.sort((a, b) => (a.when < b.when ? 1 : a.when > b.when ? -1 : 0));
}

/** Conditions or procedures as list items: {name, detail}. */
export function clinicalRows(list) {
  const rows = [];
  for (const r of list) {
    if (r?.resourceType === "Condition") {
      const status = concept(r.clinicalStatus);
      const onset = r.onsetDateTime ? `since ${date(r.onsetDateTime.slice(0, 10))}` : "";
      rows.push({ name: concept(r.code) || "Condition", detail: [status, onset].filter(Boolean).join(", ") });
    } else if (r?.resourceType === "Procedure") {
      const when = r.performedDateTime ?? r.performedPeriod?.start ?? "";
      rows.push({ name: concept(r.code) || "Procedure", detail: when ? dateTime(when) : "" });
    }
  }
  return rows;
}

/** Which card an answer makes: "patient", "labs", "records" or null. */
export function artifactKind(list) {
  const types = new Set(list.map((r) => r.resourceType));
  if (types.has("Patient")) return "patient";
  if (types.has("Observation")) return "labs";
  if (types.has("Condition") || types.has("Procedure")) return "records";
  return null;
}
