// The agent's HTTP API as the console calls it: a bearer key from session storage (never in a
// URL), JSON in and out, failures as ApiError {status, code, detail} for words.js to word.

const KEY = "sara.apiKey";
const PATIENT = "sara.nextPatient";

export class ApiError extends Error {
  constructor(status, detail, code = null) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.code = code;
  }
}

export const session = {
  key: (storage = globalThis.sessionStorage) => storage?.getItem(KEY) || "",
  setKey: (key, storage = globalThis.sessionStorage) => storage?.setItem(KEY, key),
  clear: (storage = globalThis.sessionStorage) => storage?.removeItem(KEY),
  /** An MRN handed from one page to the next (the lookup's "use this patient"). */
  takePatient(storage = globalThis.sessionStorage) {
    const value = storage?.getItem(PATIENT) || "";
    storage?.removeItem(PATIENT);
    return value;
  },
  handPatient: (mrn, storage = globalThis.sessionStorage) => storage?.setItem(PATIENT, mrn),
};

async function failure(response) {
  let detail = "";
  let code = null;
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? "");
    code = body.code ?? null;
  } catch {
    detail = "";
  }
  return new ApiError(response.status, detail, code);
}

export function createApi({ key, fetchImpl = (...args) => globalThis.fetch(...args) } = {}) {
  const headers = (extra = {}) => ({ Accept: "application/json", Authorization: `Bearer ${key()}`, ...extra });

  async function call(method, path, body, extra = {}) {
    let response;
    try {
      response = await fetchImpl(path, {
        method,
        headers: headers(body === undefined ? extra : { "Content-Type": "application/json", ...extra }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network");
    }
    if (!response.ok) throw await failure(response);
    return response.status === 204 ? null : response.json();
  }

  return {
    authHeaders: () => ({ Authorization: `Bearer ${key()}` }),
    me: () => call("GET", "/v1/me"),
    task: (id) => call("GET", `/v1/tasks/${encodeURIComponent(id)}`),
    tasks: (query = {}) => {
      const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v != null));
      const qs = params.toString();
      return call("GET", `/v1/tasks${qs ? `?${qs}` : ""}`);
    },
    start: (body) => call("POST", "/v1/tasks", body, { Prefer: "respond-async" }),
    decide: (id, actionId, body) =>
      call("POST", `/v1/tasks/${encodeURIComponent(id)}/actions/${encodeURIComponent(actionId)}`, body),
    reread: (id, seq) => call("GET", `/v1/tasks/${encodeURIComponent(id)}/events/${Number(seq)}/response`),
    trend: (id, seq) => call("GET", `/v1/tasks/${encodeURIComponent(id)}/events/${Number(seq)}/trend`),
    patient: (id) => call("GET", `/v1/tasks/${encodeURIComponent(id)}/patient`),
    eventsUrl: (id) => `/v1/tasks/${encodeURIComponent(id)}/events`,
  };
}
