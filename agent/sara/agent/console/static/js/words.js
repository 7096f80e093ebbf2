// What the console says, in words a clinician understands: run statuses, errors, the state of
// an order. Pure: API shapes in, {label, tone, text} out. Tones: good, attention, bad, neutral.

import { dateTime } from "./format.js";

const OUTCOMES = {
  completed: { label: "Completed", tone: "good", text: "" },
  "agent invalid action": {
    label: "Stopped",
    tone: "bad",
    text: "The model gave an answer the agent could not read, so the run stopped.",
  },
  "task limit reached": {
    label: "Round limit reached",
    tone: "bad",
    text: "The agent used all its rounds without finishing. Nothing further was done.",
  },
  "agent context limit": {
    label: "Stopped",
    tone: "bad",
    text: "The conversation grew too long for the model, so the run stopped.",
  },
};

const ERROR_CODES = {
  model_error: "The model is unavailable: the model server did not answer. Try again later.",
  deadline: "The run took longer than it is allowed to and was stopped.",
  internal_error: "Something went wrong inside the agent. The run was stopped.",
};

/** The status badge of a run (a task view or summary from the API). */
export function runStatus(task) {
  const status = task?.status;
  if (status === "running") return { label: "Running", tone: "neutral", text: "" };
  if (status === "awaiting_approval") {
    return { label: "Waiting for sign-off", tone: "attention", text: "An order waits for a signature." };
  }
  if (status === "interrupted") {
    return {
      label: "Interrupted",
      tone: "bad",
      text: "The agent stopped while this run was going (a restart). It was not run again.",
    };
  }
  if (status === "cancelled") {
    return { label: "Cancelled", tone: "neutral", text: task?.reason ? `Cancelled: ${task.reason}.` : "Cancelled." };
  }
  if (status === "finished") {
    if (task.outcome === "task error") return { label: "Failed", tone: "bad", text: failure(task) };
    return OUTCOMES[task.outcome] ?? { label: "Finished", tone: "neutral", text: "" };
  }
  return { label: status ? String(status) : "Unknown", tone: "neutral", text: "" };
}

function failure(task) {
  const error = String(task?.error || task?.result?.error || "").toLowerCase();
  if (error.includes("model")) return ERROR_CODES.model_error;
  if (error.includes("longer than") || error.includes("deadline")) return ERROR_CODES.deadline;
  return ERROR_CODES.internal_error;
}

/** The words for an `error` event's code. */
export function errorEvent(code) {
  return ERROR_CODES[code] ?? ERROR_CODES.internal_error;
}

/** The words for a failed API call: {status, code?, detail?}, or a network failure (status 0). */
export function apiError(error) {
  const status = error?.status ?? 0;
  const code = error?.code;
  if (code === "fhir_unreachable") return "The FHIR server is unreachable, so the chart could not be read.";
  if (code === "fhir_error") return "The FHIR server answered with an error, so the chart could not be read.";
  if (code === "too_large") return "That part of the chart is too large to show here.";
  if (status === 0) return "The agent cannot be reached. Check the connection; the console keeps trying.";
  if (status === 401) return "Not signed in, or the API key is not valid. Sign in again.";
  if (status === 403) return `Not authorised: ${error?.detail || "this key may not do that"}.`;
  if (status === 404) return "Not found, or not visible to this key.";
  if (status === 409) return `That was not possible: ${error?.detail || "it has changed meanwhile"}.`;
  if (status === 413 || status === 422) return `The request was not accepted: ${error?.detail || "check the values"}.`;
  if (status === 429) return "The agent is busy with many runs. Try again in a moment.";
  if (status === 503) return "The agent is starting. Try again in a moment.";
  return `The agent answered with an error (${status}).`;
}

const MODE_NOTES = {
  acknowledged: "Not written: this agent runs in acknowledge mode (the benchmark's), so nothing was written to the chart.",
  dry_run: "Checked, not written: this agent runs in dry-run mode, so nothing was written to the chart.",
  dry_run_invalid: "Not valid FHIR (dry run): nothing was written to the chart.",
  denied: "Not written: this agent may not write to the chart.",
  invalid: "The agent refused this order as malformed: nothing was written.",
  blocked: "Blocked by the agent's safety checks: nothing was written.",
  http_error: "The FHIR server refused the order: nothing was written.",
  transport_error: "The FHIR server could not be reached: the order was not written.",
};

/**
 * The state of one order (an approval from the API or the stream, or a write the agent made
 * in another mode): {label, tone, text, signable}.
 */
export function orderState(order) {
  const by = order.decidedBy || order.decided_by;
  const at = order.decidedAt || order.decided_at;
  const when = at ? ` at ${dateTime(at)}` : "";
  const ref = order.writtenRef || order.written_ref;
  switch (order.status) {
    case "pending":
      return { label: "Needs signature", tone: "attention", text: "", signable: true };
    case "approved": {
      const written = ref
        ? `, written to the chart as ${ref}`
        : order.writeOutcome && order.writeOutcome !== "ok"
          ? `; ${MODE_NOTES[order.writeOutcome] ?? "it could not be written"}`
          : ", being written to the chart";
      return { label: "Signed", tone: "good", text: `Signed by ${by ?? "a clinician"}${when}${written}.` };
    }
    case "denied": {
      const reason = order.reason ? `: ${order.reason}` : "";
      return { label: "Declined", tone: "bad", text: `Declined by ${by ?? "a clinician"}${when}${reason}. Nothing was written.` };
    }
    case "expired":
      return { label: "Expired", tone: "bad", text: "Expired: nobody signed it in time. Nothing was written." };
    case "cancelled":
      return { label: "Withdrawn", tone: "neutral", text: "The run was cancelled before anyone signed. Nothing was written." };
    case "written":
      return { label: "Written", tone: "good", text: `Written to the chart${ref ? ` as ${ref}` : ""}.` };
    default:
      return {
        label: "Not written",
        tone: "neutral",
        text: MODE_NOTES[order.status] ?? "Nothing was written to the chart.",
      };
  }
}

/** The words under a timeline step for a FHIR answer's outcome (empty when all is well). */
export function responseNote(method, outcome) {
  if (outcome === "ok") return "";
  if (method === "GET" && outcome === "http_error") return "The FHIR server answered with an error; the agent was told.";
  if (method === "GET" && outcome === "transport_error") return "The FHIR server could not be reached; the agent was told.";
  if (method === "GET" && outcome === "blocked") return "Blocked by the agent's safety checks (not a request to this FHIR server).";
  return MODE_NOTES[outcome] ?? "";
}

/** The label of a timeline step's state. */
export const STEP_STATES = {
  pending: "Waiting for signature",
  "in-progress": "In progress",
  done: "Done",
  declined: "Declined",
  error: "Problem",
  stopped: "Stopped",
};
