// The workflow templates (static/workflows.json, also read by the server for the start form):
// build the task a template sends, and tell which workflow a stored instruction came from
// (history and replay know a run only by its words).

/** Check the values a workflow needs; returns {field: message} for what is wrong. */
export function check(workflow, fields, values) {
  const problems = {};
  const optional = new Set(workflow.optional ?? []);
  for (const name of workflow.fields) {
    const spec = fields[name] ?? {};
    const value = String(values[name] ?? "").trim();
    if (!value) {
      if (!optional.has(name)) problems[name] = `${spec.label ?? name} is required`;
      continue;
    }
    if (spec.pattern && !new RegExp(`^(?:${spec.pattern})$`, "u").test(value)) {
      problems[name] = `${spec.label ?? name} is not in the expected form`;
    } else if (spec.type === "date" && !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      problems[name] = `${spec.label ?? name} must be a date (YYYY-MM-DD)`;
    } else if (spec.type === "number" && !/^\d{1,3}$/.test(value)) {
      problems[name] = `${spec.label ?? name} must be a whole number`;
    } else if (spec.minlength && value.length < Number(spec.minlength)) {
      problems[name] = `${spec.label ?? name} needs at least ${spec.minlength} characters`;
    } else if (name === "note" && /["“”]/.test(value)) {
      problems[name] = "The referral note cannot contain double quotes";
    }
  }
  return problems;
}

function substitute(template, values) {
  return template.replace(/\{([a-z_]+)\}/g, (whole, key) => (key in values ? values[key] : whole));
}

/**
 * The task body for POST /v1/tasks: {instruction, context, patient?}. `now` is the console
 * clock (an ISO time; "live" = this moment). Values are trimmed; the caller checks them first.
 */
export function buildTask(workflow, values, now) {
  const clean = {};
  for (const name of workflow.fields) clean[name] = String(values[name] ?? "").trim();
  clean.now = !now || now === "live" ? new Date().toISOString().replace(/\.\d{3}Z$/, "+00:00") : now;
  clean.patient_sentence = "";
  if (workflow.patient_sentence && clean[workflow.patient]) {
    clean.patient_sentence = substitute(workflow.patient_sentence, clean);
  }
  const task = {
    instruction: substitute(workflow.instruction, clean),
    context: substitute(workflow.context, clean).trim(),
  };
  if (workflow.context.endsWith("\n")) task.context += "\n"; // as the benchmark writes them
  const patient = workflow.patient ? clean[workflow.patient] : "";
  if (patient) task.patient = patient;
  return task;
}

/**
 * Which workflow a stored instruction came from, by its wording (the same cues the reference
 * policy reads), else "free_text".
 */
export function classify(instruction, context = "") {
  const q = String(instruction || "").toLowerCase();
  const both = `${q} ${String(context || "").toLowerCase()}`;
  if (q.includes("mrn") && /name .+ and (dob|date of birth|birth ?date)/.test(q)) return "patient_lookup";
  if (/\bage\b/.test(q)) return "age";
  if (q.includes("blood pressure") && /\d{2,3}\s*\/\s*\d{2,3}\s*mm\s*hg/.test(q)) return "record_bp";
  if (q.includes("referral") && (q.includes("orthop") || both.includes("snomed"))) return "ortho_referral";
  if (both.includes("a1c")) return "a1c";
  if (q.includes("potassium")) return "potassium_replacement";
  if (q.includes("magnesium")) {
    return q.includes("order") || q.includes("replacement") ? "mg_replacement" : "mg_last";
  }
  if (q.includes("cbg") || q.includes("glucose")) {
    return q.includes("average") || q.includes("mean") ? "glucose_average" : "glucose_last";
  }
  return "free_text";
}

export function byId(catalogue, id) {
  return catalogue.workflows.find((w) => w.id === id) ?? null;
}
