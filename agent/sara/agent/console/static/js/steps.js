// One pure function turns a FHIR request into the words a clinician reads in the timeline. The
// live view and the history replay both call it (through timeline.js), so a run reads the same
// however it is opened.

export const THINKING = "Deciding the next step";
export const FINISHING = "Completing task";
export const UNREADABLE = "The model's answer could not be read";

/** Lab and flowsheet codes the workflows use, in words. */
export const CODE_WORDS = {
  MG: "magnesium",
  K: "potassium",
  GLU: "glucose",
  A1C: "HbA1c",
  BP: "blood pressure",
  NA: "sodium",
  CA: "calcium",
  CREAT: "creatinine",
  HGB: "haemoglobin",
  "2823-3": "potassium",
  "4548-4": "HbA1c",
};

const READS = {
  Condition: "Reviewing the problem list",
  Procedure: "Reviewing procedures",
  MedicationRequest: "Reviewing medication orders",
  MedicationStatement: "Reviewing medications",
  MedicationAdministration: "Reviewing medications given",
  ServiceRequest: "Reviewing service orders",
  Encounter: "Reviewing encounters",
  AllergyIntolerance: "Reviewing allergies",
  DiagnosticReport: "Reviewing diagnostic reports",
  Immunization: "Reviewing immunizations",
};

/** The words for a code ("MG" → "magnesium"); unknown codes as written. */
export function codeWords(code) {
  if (!code) return "";
  return code
    .split(",")
    .map((c) => {
      const bare = c.includes("|") ? c.slice(c.lastIndexOf("|") + 1) : c;
      return CODE_WORDS[bare.toUpperCase()] ?? CODE_WORDS[bare] ?? bare;
    })
    .join(", ");
}

/** Path segments and query of a URL relative to the FHIR base (or absolute, if foreign). */
export function parseRequestUrl(url) {
  let parsed;
  try {
    parsed = new URL(url || "", "http://fhir.invalid/");
  } catch {
    return { type: "", id: "", params: new URLSearchParams() };
  }
  const segments = parsed.pathname.split("/").filter(Boolean);
  const known = (s) => /^[A-Z][A-Za-z]+$/.test(s);
  let type = "";
  let id = "";
  const last = segments.at(-1) ?? "";
  const before = segments.at(-2) ?? "";
  if (known(before) && segments.length >= 2 && !known(last)) {
    type = before;
    id = last;
  } else if (known(last)) {
    type = last;
  }
  return { type, id, params: parsed.searchParams };
}

/** "last 24 h", "last 3 days", "since 2023-01-02" for a date=ge… search, given the run's now. */
export function windowWords(dateParams, now) {
  const lower = dateParams.find((d) => d.startsWith("ge") || d.startsWith("gt"));
  if (!lower) return "";
  const value = lower.slice(2).replace(" ", "+"); // an unencoded "+" reads as a space
  const since = new Date(value);
  if (Number.isNaN(since.getTime())) return "";
  const at = now ? new Date(now) : null;
  if (at && !Number.isNaN(at.getTime())) {
    const hours = Math.round((at.getTime() - since.getTime()) / 3_600_000);
    if (hours > 0 && hours <= 72) return `last ${hours} h`;
    if (hours > 72 && hours % 24 === 0 && hours <= 24 * 90) return `last ${hours / 24} days`;
  }
  return `since ${value.slice(0, 10)}`;
}

function labWords(params, now) {
  const code = codeWords(params.get("code") || "");
  const category = (params.get("category") || "").toLowerCase();
  const parts = [];
  if (code) parts.push(code);
  const window = windowWords(params.getAll("date"), now);
  if (window) parts.push(window);
  else if ((params.get("_sort") || "").replace(/\s/g, "") === "-date") parts.push("most recent");
  const head = category.includes("vital") || code === "blood pressure"
    ? "Retrieving vital signs"
    : "Retrieving lab results";
  return parts.length ? `${head}: ${parts.join(", ")}` : head;
}

function codingSystems(payload) {
  const codings = payload?.code?.coding;
  return Array.isArray(codings) ? codings.map((c) => String(c?.system || "")) : [];
}

function writeWords(type, payload) {
  if (type === "MedicationRequest") return "Ordering medication";
  if (type === "ServiceRequest") {
    const systems = codingSystems(payload);
    const display = JSON.stringify(payload?.code ?? "").toLowerCase();
    if (display.includes("referral") || systems.some((s) => s.includes("snomed"))) {
      return "Ordering a referral";
    }
    if (systems.some((s) => s.includes("loinc"))) return "Ordering a lab test";
    return "Ordering a service";
  }
  if (type === "Observation") {
    const code = String(payload?.code?.text || payload?.code?.coding?.[0]?.code || "");
    if (code.toUpperCase() === "BP") return "Recording blood pressure";
    return "Recording an observation";
  }
  return "Writing to the chart";
}

/**
 * The step name of one FHIR request.
 * request: {method, url (relative to the FHIR base), resourceType, payload}; now: the run's
 * clock (ISO) for search windows.
 */
export function stepName(request, now) {
  const method = String(request?.method || "GET").toUpperCase();
  const { type: urlType, id, params } = parseRequestUrl(request?.url);
  const type = urlType || (request?.resourceType !== "other" ? request?.resourceType : "") || "";
  if (method === "POST") return writeWords(type, request?.payload);
  if (params.has("_getpages")) return "Reading more results";
  if (type === "Patient") {
    if (id) return "Opening the patient's record";
    if (params.has("identifier") || params.has("_id")) return "Looking up the patient";
    return "Searching patient records";
  }
  if (type === "Observation") return labWords(params, now);
  return READS[type] ?? "Reading the chart";
}

/** The clock a run states in its context ("It's 2023-11-13T10:15:00+00:00 now"), if any. */
export function contextNow(context) {
  const found = /It'?s (\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?) now/i.exec(context || "");
  return found ? found[1] : null;
}
