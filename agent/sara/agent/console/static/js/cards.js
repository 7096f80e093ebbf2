// Drawing the run page's cards from the page's <template>s: a timeline step, an order, the
// result, the patient, a lab table with its trend, a list of conditions or procedures. The
// facts come from the pure modules; this file only puts them into the DOM (textContent).

import { fill, part, setFields } from "./dom.js";
import { dateTime, order as orderFacts } from "./format.js";
import { assess, RANGES, rangeText } from "./ranges.js";
import { codeWords } from "./steps.js";
import { draw, geometry } from "./sparkline.js";
import { responseText, timing } from "./timeline.js";
import { STEP_STATES, orderState } from "./words.js";

const MAX_LAB_ROWS = 10;
const MAX_TREND = 30;
const MAX_RECORDS = 12;

/** Fill a <details class="source"> only when opened: raw JSON stays out of the way. */
function lazySource(node, value) {
  const details = node.querySelector("details.source");
  if (!details) return;
  details.addEventListener("toggle", () => {
    const pre = details.querySelector("[data-field=source]");
    if (details.open && !pre.textContent) {
      pre.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    }
  });
}

/** A step's time in one number: the model's answer plus the FHIR call ("0.6 s"). */
function duration(s) {
  const ms = (s.model?.elapsedMs ?? 0) + (s.response?.elapsedMs ?? 0);
  if (!ms) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function timelineStep(s, existing) {
  const li = existing ?? fill("timeline_step");
  if (!existing) {
    const toggle = li.querySelector(".step-toggle");
    const detail = li.querySelector(".step-detail");
    detail.id = `step-detail-${s.key}`;
    toggle.setAttribute("aria-controls", detail.id);
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      detail.hidden = !open;
    });
  }
  li.dataset.state = s.state;
  li.dataset.key = s.key;
  const request = s.request ? `${s.request.method} ${s.request.url}` : "";
  setFields(li, {
    name: s.name,
    state_label: STEP_STATES[s.state] ?? s.state,
    time: duration(s),
    note: s.note,
    request,
    payload: s.request?.payload ? JSON.stringify(s.request.payload, null, 2) : "",
    response: responseText(s.response),
    model: s.model?.text ?? "",
    timing: timing(s),
  });
  li.querySelector(".step-note").hidden = !s.note;
  return li;
}

/**
 * An order card (new or redrawn). `can` = {sign: bool, waiting: bool}; `on` = {sign(order),
 * decline(order, reason)} handlers, wired once.
 */
export function orderCard(o, existing, can, on) {
  const card = existing ?? fill("order_card");
  const facts = orderFacts(o.resourceType, o.payload);
  const state = orderState(o);
  card.dataset.orderId = o.id;
  card.dataset.status = o.status;
  let outcome = state.text;
  if (state.signable && !can.sign) outcome = "Waiting for a clinician with the approve role to sign.";
  setFields(card, {
    title: facts.title,
    status_label: state.label,
    medication: facts.medication ?? "",
    service: facts.service ?? "",
    observation: facts.observation ?? "",
    dose: facts.dose ?? "",
    route: facts.route ?? "",
    rate: facts.rate ?? "",
    reason: facts.reason ?? "",
    when: facts.when ?? "",
    code: facts.code ?? "",
    patient: facts.patient ?? "",
    outcome,
    expiry: state.signable && o.expiresAt ? `Expires unsigned at ${dateTime(o.expiresAt)}.` : "",
  });
  card.querySelector(".badge").dataset.tone = state.tone;
  const actions = part(card, "actions");
  actions.hidden = !(state.signable && can.sign);
  if (!state.signable) part(card, "decline").hidden = true;
  if (!existing) {
    lazySource(card, o.payload);
    const declineForm = part(card, "decline");
    const declineButton = card.querySelector("[data-action=decline]");
    card.querySelector("[data-action=sign]").addEventListener("click", () => on.sign(o.id, card));
    declineButton.addEventListener("click", () => {
      declineForm.hidden = false;
      declineButton.setAttribute("aria-expanded", "true");
      declineForm.querySelector("textarea").focus();
    });
    card.querySelector("[data-action=cancel-decline]").addEventListener("click", () => {
      declineForm.hidden = true;
      declineButton.setAttribute("aria-expanded", "false");
      declineButton.focus();
    });
    declineForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = declineForm.querySelector("textarea").value.trim();
      if (!reason) {
        setFields(card, { error: "Say why you decline: the agent and the record keep the reason." });
        declineForm.querySelector("textarea").focus();
        return;
      }
      on.decline(o.id, reason, card);
    });
  }
  return card;
}

export function busy(card, on) {
  for (const b of card.querySelectorAll("button")) b.disabled = on;
}

/** The result card from results.resultCard(...) fields. */
export function resultCard(fields, onUsePatient) {
  const card = fill("result_card", {
    title: fields.title,
    value: fields.value,
    unit: fields.unit,
    detail: fields.detail,
    range: fields.range,
    note: fields.note,
    marker_label: fields.markerLabel,
  });
  card.dataset.marker = fields.marker;
  if (String(fields.value).length > 24) card.classList.add("text-answer");
  const badge = part(card, "marker");
  badge.dataset.tone = fields.marker === "attention" ? "attention" : fields.marker === "normal" ? "good" : "neutral";
  if (fields.usePatient) {
    part(card, "use_patient").hidden = false;
    card.querySelector("[data-action=use-patient]").addEventListener("click", () => onUsePatient(fields.usePatient));
  }
  lazySource(card, fields.source || "(no answer)");
  return card;
}

export function patientCard(summary, source) {
  const card = fill("patient_card", summary);
  lazySource(card, source);
  return card;
}

/**
 * A lab table for one code: `rows` (newest first, fhir.labRows) are what the task's search
 * finds now; `history` (the code's newest results, any date) draws the trend.
 */
export function labCard(code, rows, source, history = rows) {
  const name = RANGES[code]?.name ?? (codeWords(code) || code);
  const shown = rows.slice(0, MAX_LAB_ROWS);
  const card = fill("lab_table", {
    title: `${name.charAt(0).toUpperCase()}${name.slice(1)} (${code})`,
    range: rangeText(code) ? `Reference ${rangeText(code)}` : "",
    caption: `${name} results, newest first`,
    more: rows.length > shown.length ? `Showing the newest ${shown.length} of ${rows.length} results.` : "",
  });
  const body = card.querySelector("tbody");
  for (const row of shown) {
    const assessed = assess(row.value, code, row.flag);
    const tr = fill("lab_row", {
      when: dateTime(row.when),
      value: row.text,
      unit: row.unit,
      flag: assessed.direction === "low" ? "Low" : assessed.direction === "high" ? "High" : assessed.marker === "attention" ? "Abnormal" : "",
    });
    tr.dataset.marker = assessed.marker;
    body.append(tr);
  }
  const numeric = history.filter((r) => typeof r.value === "number").slice(0, MAX_TREND).reverse();
  const trend = part(card, "trend");
  if (numeric.length >= 2) {
    const r = RANGES[code];
    const geo = geometry(numeric.map((x) => x.value), { range: r ? { low: r.low, high: r.high } : null });
    const svg = trend.querySelector("svg");
    draw(svg, geo);
    const label = `Trend of ${numeric.length} ${name} results from ${dateTime(numeric[0].when)} to ${dateTime(numeric.at(-1).when)}; latest ${numeric.at(-1).text} ${numeric.at(-1).unit}`;
    setFields(card, { trend_label: label, trend_caption: `Trend of the last ${numeric.length} results, oldest to newest, from ${dateTime(numeric[0].when)}; the band is the reference range.` });
  } else {
    trend.hidden = true;
  }
  lazySource(card, source);
  return card;
}

export function recordCard(title, rows, source) {
  const card = fill("record_list", {
    title,
    more: rows.length > MAX_RECORDS ? `Showing ${MAX_RECORDS} of ${rows.length}.` : "",
  });
  const list = card.querySelector("ul");
  for (const row of rows.slice(0, MAX_RECORDS)) list.append(fill("record_item", row));
  if (rows.length === 0) list.append(fill("record_item", { name: "None recorded", detail: "" }));
  lazySource(card, source);
  return card;
}
