// The history page: runs from the run store, those waiting for a signature first, then the
// rest newest first in pages; status and patient filter on the server, the search box over
// what is loaded (patient, workflow, person, words of the request).

import { clear, fill } from "../dom.js";
import { dateTime } from "../format.js";
import { byId, classify } from "../workflows.js";
import { apiError, runStatus } from "../words.js";
import { boot } from "./common.js";

const PAGE = 50;
const $ = (id) => document.getElementById(id);

/** The words a run is found by. */
function searchText(item, title) {
  return [item.patient, title, item.principal, item.instruction, runStatus(item).label, item.id]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
}

async function main({ api }) {
  const catalogue = await (await fetch(`${document.body.dataset.static}/workflows.json`)).json();
  const form = $("history-search");
  const body = $("runs");
  const more = $("more");
  const state = $("history-state");
  let items = [];
  let cursor = null;

  const title = (item) => byId(catalogue, classify(item.instruction))?.title ?? "Run";

  function draw() {
    const words = $("q").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    clear(body);
    let shown = 0;
    for (const item of items) {
      const text = searchText(item, title(item));
      if (!words.every((w) => text.includes(w))) continue;
      const status = runStatus(item);
      const row = fill("history_row", {
        status_label: status.label,
        patient: item.patient ?? "—",
        workflow: title(item),
        principal: item.principal,
        started: dateTime(item.created_at),
        pending: item.pending_actions ? `${item.pending_actions} to sign` : "—",
      });
      row.dataset.status = item.status;
      row.querySelector(".badge").dataset.tone = status.tone;
      const link = row.querySelector("a");
      link.href = `/runs/${encodeURIComponent(item.id)}`;
      row.querySelector("time").dateTime = item.created_at ?? "";
      body.append(row);
      shown += 1;
    }
    $("runs-empty").hidden = shown > 0;
    more.hidden = !cursor;
  }

  async function load(reset) {
    const status = $("status").value;
    const patient = $("patient").value.trim();
    state.textContent = "Loading…";
    try {
      if (reset) {
        items = [];
        cursor = null;
        if (!status) {
          // Runs waiting for a signature first, whatever their age.
          const waiting = await api.tasks({ status: "awaiting_approval", patient, limit: 200 });
          items.push(...waiting.items);
        }
      }
      const page = await api.tasks({ status, patient, limit: PAGE, cursor: reset ? null : cursor });
      const seen = new Set(items.map((i) => i.id));
      items.push(...page.items.filter((i) => !seen.has(i.id)));
      cursor = page.next_cursor;
      state.textContent = `${items.length} run${items.length === 1 ? "" : "s"} loaded.`;
    } catch (failure) {
      state.textContent = apiError(failure);
    }
    draw();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const patient = $("patient");
    if (!patient.checkValidity()) {
      state.textContent = "The MRN has letters, digits, dots and dashes only.";
      patient.focus();
      return;
    }
    load(true);
  });
  $("q").addEventListener("input", draw);
  $("status").addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  await load(true);
}

boot(main);
