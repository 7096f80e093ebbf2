// The start page: the server rendered every workflow and field; this shows the fields the
// chosen workflow needs, previews the task, and starts it (POST /v1/tasks, respond-async).

import { session } from "../api.js";
import { dateTime } from "../format.js";
import { apiError } from "../words.js";
import { buildTask, byId, check } from "../workflows.js";
import { boot, consoleNow } from "./common.js";

const MODES = {
  approve: "Orders wait for a clinician's signature before anything is written.",
  execute: "Orders are written to the chart as the agent makes them.",
  "dry-run": "Dry run: orders are checked, never written.",
  acknowledge: "Acknowledge mode (the benchmark's): orders are not written.",
  deny: "This agent may not write orders.",
};

async function main({ api, me }) {
  const catalogue = await (await fetch(`${document.body.dataset.static}/workflows.json`)).json();
  const form = document.getElementById("start-form");
  const error = document.getElementById("start-error");
  const button = document.getElementById("start-button");
  document.getElementById("write-mode").textContent = MODES[me.write_mode] ?? "";
  const clock = document.getElementById("console-now");
  clock.textContent = consoleNow() === "live" ? "the current time" : dateTime(consoleNow());
  if (!me.roles.includes("run")) {
    button.disabled = true;
    error.textContent = "Not authorised: this key may not start runs (it lacks the 'run' role).";
  }

  const chosen = () => byId(catalogue, form.elements.workflow.value);
  const values = () => {
    const out = {};
    for (const name of Object.keys(catalogue.fields)) out[name] = form.elements[name]?.value ?? "";
    return out;
  };

  function layout() {
    const wf = chosen();
    if (!wf) return;
    const optional = new Set(wf.optional ?? []);
    for (const box of document.querySelectorAll("[data-field-name]")) {
      const name = box.dataset.fieldName;
      const used = wf.fields.includes(name);
      box.hidden = !used;
      const input = form.elements[name];
      input.disabled = !used;
      input.required = used && !optional.has(name);
      box.querySelector(".optional-mark").hidden = !(used && optional.has(name));
    }
    preview();
  }

  function preview() {
    const task = buildTask(chosen(), values(), consoleNow());
    document.getElementById("preview-instruction").textContent = task.instruction;
    document.getElementById("preview-context").textContent = task.context || "(none)";
  }

  const handed = session.takePatient();
  if (handed) {
    form.elements.mrn.value = handed;
    if (chosen()?.id === "patient_lookup") form.elements.workflow.value = "mg_replacement";
  }
  form.addEventListener("change", (event) => (event.target.name === "workflow" ? layout() : preview()));
  form.addEventListener("input", preview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const wf = chosen();
    const problems = check(wf, catalogue.fields, values());
    for (const name of Object.keys(catalogue.fields)) {
      const input = form.elements[name];
      if (problems[name]) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    const names = Object.keys(problems);
    if (names.length) {
      error.textContent = Object.values(problems).join(". ") + ".";
      form.elements[names[0]].focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Starting…";
    try {
      const started = await api.start(buildTask(wf, values(), consoleNow()));
      window.location.assign(`/runs/${encodeURIComponent(started.id)}`);
    } catch (failure) {
      error.textContent = apiError(failure);
      button.disabled = false;
      button.textContent = "Start run";
    }
  });
  layout();
}

boot(main);
