// The result card of a finished run, tailored to its workflow: a value with unit, reference
// range and a normal/attention marker; a value and its date; "no measurement"; an MRN to carry
// on with; what became of the order. Pure: the answer text, the workflow and the run's orders
// and lab rows in, the card's fields out.

import { date, dateTime, number } from "./format.js";
import { assess, markerLabel, RANGES } from "./ranges.js";

const LABS = {
  mg_last: { code: "MG", title: "Last magnesium", detail: "Most recent within the last 24 h", none: "No magnesium result in the last 24 h" },
  mg_replacement: { code: "MG", title: "Magnesium", detail: "Most recent within the last 24 h", none: "No magnesium result in the last 24 h" },
  glucose_average: { code: "GLU", title: "Average glucose", detail: "Mean CBG over the last 24 h", none: "No glucose result in the last 24 h" },
  glucose_last: { code: "GLU", title: "Last glucose", detail: "Most recent CBG", none: "No glucose result in the chart" },
  potassium_replacement: { code: "K", title: "Potassium", detail: "Most recent level", none: "No potassium result in the chart" },
  a1c: { code: "A1C", title: "Last HbA1c", detail: "", none: "No HbA1c result in the chart" },
};

/** The answer's values: FINISH([...]) text as a list, or null when it is not a JSON list. */
export function parseAnswer(text) {
  if (typeof text !== "string" || !text.trim()) return null;
  try {
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return null;
  }
}

function orderNote(orders, type, { ordered, none }) {
  const found = orders.filter((o) => !type || o.resourceType === type);
  if (found.length === 0) return none;
  const o = found[found.length - 1];
  if (o.status === "pending") return `${ordered} — waiting for a signature.`;
  if (o.status === "approved" || o.status === "written") return `${ordered} — signed and written to the chart.`;
  if (o.status === "denied") return `${ordered} — declined; nothing was written.`;
  if (o.status === "expired") return `${ordered} — expired unsigned; nothing was written.`;
  return `${ordered} — not written to the chart (${o.status}).`;
}

function noMeasurement(value) {
  return value === -1 || value === "-1" || value === null || value === undefined;
}

/** Fields for the result_card template; `orders` are the run's orders (timeline.js). */
export function resultCard(workflowId, answerText, { orders = [], labs = [] } = {}) {
  const values = parseAnswer(answerText);
  const card = { title: "Answer", value: "", unit: "", detail: "", range: "", marker: "none", markerLabel: "", note: "", usePatient: null, source: answerText ?? "" };
  if (values === null) {
    return { ...card, value: answerText ? String(answerText) : "No answer" };
  }
  const first = values[0];
  if (workflowId === "patient_lookup") {
    const mrns = values.filter((v) => typeof v === "string" && v && v !== "Patient not found");
    if (mrns.length === 0) return { ...card, title: "Patient search", value: "Patient not found", detail: "No patient has that name and date of birth." };
    return { ...card, title: "Patient found", value: mrns.join(", "), detail: mrns.length > 1 ? "More than one patient matches." : "MRN", usePatient: mrns.length === 1 ? mrns[0] : null };
  }
  if (workflowId === "age") {
    if (typeof first !== "number") return { ...card, title: "Age", value: String(first ?? "Unknown") };
    return { ...card, title: "Age", value: String(first), unit: "years" };
  }
  if (workflowId === "record_bp") {
    const bp = orders.find((o) => o.resourceType === "Observation");
    const value = bp?.payload?.valueString ?? "";
    return { ...card, title: "Blood pressure", value: value || "—", unit: value && !value.includes("mm") ? "mmHg" : "", note: orderNote(orders, "Observation", { ordered: "Recorded", none: "The agent did not record it." }) };
  }
  if (workflowId === "ortho_referral") {
    return { ...card, title: "Orthopedic referral", value: orders.length ? "Referral ordered" : "No referral", note: orderNote(orders, "ServiceRequest", { ordered: "Referral", none: "The agent did not order a referral." }) };
  }
  const lab = LABS[workflowId];
  if (!lab) return { ...card, value: values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ") };
  const range = RANGES[lab.code];
  if (typeof first === "string" && first !== "-1") {
    return { ...card, value: values.join(", "), detail: "The answer is not a measurement." };
  }
  if (noMeasurement(first) || typeof first !== "number") {
    const out = { ...card, title: lab.title, value: "No measurement", detail: lab.none };
    if (workflowId === "a1c") out.note = orderNote(orders, "ServiceRequest", { ordered: "A new HbA1c test was ordered", none: "" });
    return out;
  }
  const matching = labs.find((row) => row.value === first);
  const assessed = assess(first, lab.code, matching?.flag);
  let detail = lab.detail;
  if (workflowId === "a1c") {
    const when = typeof values[1] === "string" ? values[1] : matching?.when;
    detail = when ? `Recorded ${/^\d{4}-\d{2}-\d{2}$/.test(when) ? date(when) : dateTime(when)}` : "";
  } else if (workflowId === "glucose_last" && matching?.when) {
    detail = `Most recent CBG, taken ${dateTime(matching.when)}`;
  }
  const out = {
    ...card,
    title: lab.title,
    value: number(first),
    unit: range?.unit ?? "",
    detail,
    range: assessed.range,
    marker: assessed.marker,
    markerLabel: markerLabel(assessed),
  };
  if (workflowId === "mg_replacement") {
    out.note = orderNote(orders, "MedicationRequest", { ordered: "IV magnesium ordered", none: "No replacement ordered." });
  } else if (workflowId === "potassium_replacement") {
    out.note = orderNote(orders, "MedicationRequest", { ordered: "Oral potassium ordered", none: "No replacement ordered." });
  } else if (workflowId === "a1c") {
    out.note = orderNote(orders, "ServiceRequest", { ordered: "A new HbA1c test was ordered", none: "No new test needed." });
  }
  return out;
}
