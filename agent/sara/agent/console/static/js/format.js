// Pure formatting of FHIR values for clinicians: quantities, concepts, times, ages, and the
// orders a run proposes (medication, dose, route, rate; a service and its reason). Shapes the
// benchmark uses that are not strict FHIR (route as a plain string, rateQuantity holding an
// infusion time, note as one object) read as well as the strict ones.

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DURATION_UNITS = new Set(["h", "hr", "hour", "hours", "min", "minute", "minutes", "d", "day", "days"]);
const SYSTEMS = { "http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED" };

const text = (value) => (typeof value === "string" ? value.trim() : "");
const first = (value) => (Array.isArray(value) && value.length ? value[0] : null);

/** A number as charted: no float noise (0.1 + 0.2), no trailing zeros. */
export function number(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "";
  return String(Number(value.toPrecision(12)));
}

/** "2 g", "10 mEq"; "" when there is no numeric value. */
export function quantity(q) {
  if (!q || typeof q.value !== "number") return "";
  return `${number(q.value)} ${text(q.unit) || text(q.code)}`.trim();
}

/** A code with its system's short name: "NDC 0338-1715-40", "LOINC 4548-4". */
export function coding(c) {
  if (!c || !text(c.code)) return "";
  const system = text(c.system);
  const short = system.endsWith("/ndc") ? "NDC" : (SYSTEMS[system] ?? "");
  return `${short} ${text(c.code)}`.trim();
}

/** A CodeableConcept's words: its text, else the first coding's display, else its code. */
export function concept(value) {
  if (typeof value === "string") return value.trim();
  if (!value || typeof value !== "object") return "";
  if (text(value.text)) return text(value.text);
  const c = first(value.coding);
  return c ? text(c.display) || coding(c) : "";
}

/** "13 Nov 2023, 10:15 UTC" (or just the date for a date-only value); "" if unreadable. */
export function dateTime(iso) {
  if (!iso) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return date(iso);
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${at.getUTCDate()} ${MONTHS[at.getUTCMonth()]} ${at.getUTCFullYear()}`;
  return `${day}, ${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())} UTC`;
}

/** "29 Dec 1932" for a FHIR date. */
export function date(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
  if (!m) return iso ? String(iso) : "";
  return `${Number(m[3])} ${MONTHS[Number(m[2]) - 1]} ${m[1]}`;
}

/** Whole years between a birth date and now (as a clinician counts them). */
export function age(birthDate, now) {
  const born = /^(\d{4})-(\d{2})-(\d{2})/.exec(birthDate || "");
  const at = new Date(now || Date.now());
  if (!born || Number.isNaN(at.getTime())) return null;
  const [y, m, d] = [Number(born[1]), Number(born[2]), Number(born[3])];
  const before = at.getUTCMonth() + 1 < m || (at.getUTCMonth() + 1 === m && at.getUTCDate() < d);
  return at.getUTCFullYear() - y - (before ? 1 : 0);
}

function rate(doseAndRate) {
  if (!doseAndRate) return "";
  const rq = doseAndRate.rateQuantity;
  if (rq && typeof rq.value === "number") {
    const unit = text(rq.unit).toLowerCase();
    return DURATION_UNITS.has(unit) ? `over ${quantity(rq)}` : `at ${quantity(rq)}`;
  }
  const ratio = doseAndRate.rateRatio;
  if (ratio?.numerator && ratio?.denominator) {
    return `${quantity(ratio.numerator)} per ${quantity(ratio.denominator)}`;
  }
  return "";
}

function patientRef(payload) {
  const ref = text(payload?.subject?.reference);
  return ref.startsWith("Patient/") ? ref.slice("Patient/".length) : ref;
}

function noteText(note) {
  const n = Array.isArray(note) ? first(note) : note;
  return n && typeof n === "object" ? text(n.text) : "";
}

/** A MedicationRequest for the order card. */
export function medicationOrder(payload) {
  const med = payload?.medicationCodeableConcept;
  const dosage = first(payload?.dosageInstruction) ?? {};
  const dr = first(dosage.doseAndRate);
  return {
    medication: concept(med) || "Medication",
    code: coding(first(med?.coding)),
    dose: quantity(dr?.doseQuantity) || text(dosage.text),
    route: concept(dosage.route),
    rate: rate(dr),
    when: text(payload?.authoredOn),
    reason: concept(first(payload?.reasonCode)) || noteText(payload?.note),
    patient: patientRef(payload),
  };
}

/** A ServiceRequest (a referral, a lab test) for the order card. */
export function serviceOrder(payload) {
  const when = text(payload?.occurrenceDateTime);
  const priority = text(payload?.priority);
  return {
    service: concept(payload?.code) || "Service",
    code: coding(first(payload?.code?.coding)),
    reason: noteText(payload?.note) || concept(first(payload?.reasonCode)),
    when: [priority, when ? dateTime(when) : ""].filter(Boolean).join(", "),
    patient: patientRef(payload),
  };
}

/** An Observation the run writes (a blood pressure), for the order card. */
export function observationWrite(payload) {
  const name = concept(payload?.code);
  let value = text(payload?.valueString) || quantity(payload?.valueQuantity);
  if (value && name.toUpperCase() === "BP" && !value.includes("mm")) value += " mmHg";
  return {
    observation: [name === "BP" ? "Blood pressure" : name, value].filter(Boolean).join(" "),
    when: dateTime(text(payload?.effectiveDateTime)),
    patient: patientRef(payload),
  };
}

/** The order card's facts and title for any write. */
export function order(resourceType, payload) {
  if (resourceType === "MedicationRequest") {
    const facts = medicationOrder(payload);
    return { title: "Medication order", ...facts, when: facts.when ? dateTime(facts.when) : "" };
  }
  if (resourceType === "ServiceRequest") {
    const facts = serviceOrder(payload);
    const referral = /referral/i.test(facts.service) || facts.code.startsWith("SNOMED");
    return { title: referral ? "Referral" : "Service request", ...facts };
  }
  if (resourceType === "Observation") return { title: "Chart entry", ...observationWrite(payload) };
  return { title: resourceType || "Write", patient: patientRef(payload) };
}
