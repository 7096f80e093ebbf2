// A run as the console shows it, built from the task's events one at a time: the same reducer
// serves the live stream and the replay of a stored run (both arrive as the same events). Pure:
// no DOM; apply() returns which steps changed so the view redraws only those.

import { FINISHING, THINKING, UNREADABLE, stepName } from "./steps.js";
import { errorEvent, responseNote } from "./words.js";

export function createRun(now = null) {
  return {
    now,
    steps: [], // {key, round, name, state, note, request, model, response, approval}
    orders: new Map(), // action id or "write-<seq>" → order (see orderFrom*)
    reads: [], // GETs the task sent: {seq, round, url, resourceType}
    error: null, // {code, message, words}
    stopped: null, // {status, reason}
    result: null, // TaskResult
    lastSeq: 0,
  };
}

function step(run, round) {
  const key = `r${round}`;
  let found = run.steps.find((s) => s.key === key);
  if (!found) {
    found = { key, round, name: THINKING, state: "in-progress", note: "", request: null, model: null, response: null, approval: null };
    run.steps.push(found);
  }
  return found;
}

function settle(run, state) {
  const keys = [];
  for (const s of run.steps) {
    if (s.state === "in-progress" || (state === "stopped" && s.state === "pending")) {
      s.state = state;
      keys.push(s.key);
    }
  }
  return keys;
}

/** Apply one event {seq, type, data}; returns the keys of the steps that changed. */
export function apply(run, event) {
  const { type, data = {} } = event;
  const seq = Number(event.seq) || 0;
  if (seq) {
    if (seq <= run.lastSeq) return []; // already seen (a resumed stream never repeats; be safe)
    run.lastSeq = seq;
  }
  switch (type) {
    case "round_started": {
      const s = step(run, data.round);
      s.startedSeq = seq;
      return [s.key];
    }
    case "model_output": {
      const s = step(run, data.round);
      s.model = {
        text: data.text ?? "",
        action: data.action,
        elapsedMs: data.elapsed_ms ?? 0,
        tokens: (data.prompt_tokens ?? 0) + (data.completion_tokens ?? 0),
      };
      if (data.action === "finish") {
        s.name = FINISHING;
        s.state = "done";
      } else if (data.action === "invalid") {
        s.name = UNREADABLE;
        s.state = "error";
      }
      return [s.key];
    }
    case "fhir_request": {
      const s = step(run, data.round);
      const request = { method: data.method, url: data.url ?? "", resourceType: data.resource_type, payload: data.payload ?? null };
      s.request = request;
      s.name = stepName(request, run.now);
      if (s.state !== "done") s.state = "in-progress";
      if (data.blocked) {
        s.state = "error";
        s.note = responseNote(data.method, "blocked");
      }
      if (data.method === "GET" && data.sent) {
        run.reads.push({ seq, round: data.round, url: request.url, resourceType: data.resource_type });
      }
      s.requestSeq = seq;
      return [s.key];
    }
    case "fhir_response": {
      const s = step(run, data.round);
      s.response = {
        status: data.status ?? null,
        outcome: data.outcome,
        elapsedMs: data.elapsed_ms ?? 0,
        summary: data.summary ?? null,
        entryCount: data.entry_count ?? null,
        truncated: Boolean(data.truncated),
      };
      const ok = ["ok", "acknowledged", "dry_run"].includes(data.outcome);
      s.state = ok ? "done" : "error";
      s.note = responseNote(data.method, data.outcome) || s.note;
      if (data.method === "POST" && !s.approval && s.request) {
        run.orders.set(`write-${seq}`, {
          id: `write-${seq}`,
          round: data.round,
          resourceType: s.request.resourceType,
          payload: s.request.payload,
          status: data.outcome === "ok" ? "written" : data.outcome,
          writtenRef: data.outcome === "ok" && data.summary?.id ? `${data.summary.resource_type}/${data.summary.id}` : null,
        });
      }
      return [s.key];
    }
    case "approval_requested": {
      const s = step(run, data.round);
      const request = { method: "POST", url: data.url ?? "", resourceType: data.resource_type, payload: data.payload };
      s.request = request;
      s.name = stepName(request, run.now);
      s.state = "pending";
      s.approval = data.action_id;
      const known = run.orders.get(data.action_id);
      run.orders.set(data.action_id, {
        ...known,
        id: data.action_id,
        round: data.round,
        resourceType: data.resource_type,
        payload: data.payload,
        payloadSha256: data.payload_sha256,
        summary: data.summary,
        expiresAt: data.expires_at,
        status: known?.status ?? "pending",
      });
      return [s.key];
    }
    case "approval_decided": {
      const s = step(run, data.round);
      const order = run.orders.get(data.action_id) ?? { id: data.action_id, round: data.round };
      run.orders.set(data.action_id, {
        ...order,
        status: data.decision,
        decidedBy: data.decided_by ?? order.decidedBy,
        reason: data.reason ?? order.reason,
      });
      if (data.decision === "approved") {
        s.state = "in-progress";
        s.note = `Signed by ${data.decided_by ?? "a clinician"}.`;
      } else {
        s.state = "declined";
        s.note = data.decision === "expired" ? "Expired: nobody signed it in time. Nothing was written." : `Declined by ${data.decided_by ?? "a clinician"}${data.reason ? `: ${data.reason}` : ""}. Nothing was written.`;
      }
      return [s.key];
    }
    case "error": {
      run.error = { code: data.code, message: data.message, words: errorEvent(data.code) };
      return settle(run, "error");
    }
    case "cancelled":
    case "interrupted": {
      run.stopped = { status: data.status ?? type, reason: data.reason ?? null };
      return settle(run, "stopped");
    }
    case "finished": {
      run.result = data.result ?? null;
      return settle(run, "done");
    }
    default:
      return [];
  }
}

/** Merge the task view's actions (decided_at, written_ref) into the run's orders. */
export function mergeActions(run, actions) {
  for (const a of actions ?? []) {
    const known = run.orders.get(a.id) ?? {};
    run.orders.set(a.id, {
      ...known,
      id: a.id,
      round: a.round,
      resourceType: a.resource_type,
      payload: a.payload,
      payloadSha256: a.payload_sha256,
      summary: a.summary,
      expiresAt: a.expires_at,
      status: a.status,
      decidedBy: a.decided_by,
      decidedAt: a.decided_at,
      reason: a.reason,
      writtenRef: a.written_ref,
      writeOutcome: a.write_outcome,
    });
  }
}

/** True once the run can change no more (its stream has ended for good). */
export function ended(run) {
  return Boolean(run.result || run.stopped);
}

/** "1.2 s model · 35 ms FHIR · 812 tokens" for a step's detail. */
export function timing(s) {
  const parts = [];
  if (s.model) parts.push(`model ${(s.model.elapsedMs / 1000).toFixed(2)} s`);
  if (s.response) parts.push(`FHIR ${Math.round(s.response.elapsedMs)} ms`);
  if (s.model?.tokens) parts.push(`${s.model.tokens} tokens`);
  return parts.join(" · ");
}

/** What a FHIR answer's summary says, in words ("200 · Bundle of 3 (of 3)"). */
export function responseText(r) {
  if (!r) return "";
  const head = r.status ? String(r.status) : "no HTTP answer";
  const s = r.summary;
  let body = "";
  if (s?.resource_type === "Bundle") body = `Bundle of ${s.count ?? 0}${typeof s.total === "number" ? ` (of ${s.total})` : ""}`;
  else if (s?.resource_type === "OperationOutcome") body = `OperationOutcome: ${s.diagnostics ?? ""}`;
  else if (s?.resource_type) body = `${s.resource_type}${s.id ? `/${s.id}` : ""}`;
  return [head, r.outcome, body, r.truncated ? "cut at the agent's limit" : ""].filter(Boolean).join(" · ");
}
