import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { STATIC, js } from "./paths.mjs";

const { buildTask, check, classify, byId } = await import(js("workflows.js"));
const catalogue = JSON.parse(readFileSync(path.join(STATIC, "workflows.json"), "utf8"));
const OFFICIAL = path.resolve(STATIC, "../../../../../../shared/medagentbench/test_data_v2.json");
const NOW = "2023-11-13T10:15:00+00:00";

test("ten MedAgentBench workflows and free text, each field defined", () => {
  const tasks = catalogue.workflows.map((w) => w.task);
  assert.deepEqual(tasks, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, null]);
  for (const w of catalogue.workflows) {
    for (const name of w.fields) assert.ok(catalogue.fields[name], `${w.id}: field ${name}`);
  }
});

/** The values a clinician would type for an official task. */
function valuesOf(kind, c) {
  const v = { mrn: c.eval_MRN };
  if (kind === 1) {
    const m = /name (.+) and DOB of (\d{4}-\d{2}-\d{2})/.exec(c.instruction);
    const words = m[1].split(" ");
    Object.assign(v, { given: words[0], family: words.slice(1).join(" "), dob: m[2] });
  }
  if (kind === 3) {
    const m = /"(\d+)\/(\d+) mmHg"/.exec(c.instruction);
    Object.assign(v, { systolic: m[1], diastolic: m[2] });
  }
  if (kind === 8) v.note = /"([^"]+)"/.exec(c.instruction)[1];
  return v;
}

test("each template words its task exactly as the benchmark does", { skip: !existsSync(OFFICIAL) && "no ../shared/medagentbench" }, () => {
  const cases = JSON.parse(readFileSync(OFFICIAL, "utf8"));
  for (const w of catalogue.workflows.filter((x) => x.task)) {
    const official = cases.filter((c) => c.id.startsWith(`task${w.task}_`));
    assert.ok(official.length >= 10, w.id);
    for (const c of official.slice(0, 5)) {
      const values = valuesOf(w.task, c);
      assert.deepEqual(check(w, catalogue.fields, values), {}, `${c.id} values`);
      const task = buildTask(w, values, NOW);
      assert.equal(task.instruction, c.instruction, c.id);
      assert.equal(task.context, c.context, c.id);
      assert.equal(task.patient, w.patient ? c.eval_MRN : undefined, c.id);
      assert.equal(classify(task.instruction, task.context), w.id, `${c.id} classifies back`);
    }
  }
});

test("the console clock goes into the context; 'live' states this moment", () => {
  const w = byId(catalogue, "age");
  assert.equal(buildTask(w, { mrn: "S1" }, "2024-01-02T03:04:05+00:00").context.slice(0, 34), "It's 2024-01-02T03:04:05+00:00 now");
  const live = buildTask(w, { mrn: "S1" }, "live").context;
  assert.match(live, /^It's \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00 now, and/);
});

test("free text: the request as typed, the MRN stated when given", () => {
  const w = byId(catalogue, "free_text");
  const withMrn = buildTask(w, { mrn: "S1", request: "List the patient's active problems.", extra: "" }, NOW);
  assert.deepEqual(withMrn, {
    instruction: "List the patient's active problems.",
    context: `It's ${NOW} now. The patient's MRN is S1.`,
    patient: "S1",
  });
  const bare = buildTask(w, { request: "Which patients are named Smith?", extra: "Use the Patient resource." }, NOW);
  assert.deepEqual(bare, { instruction: "Which patients are named Smith?", context: `It's ${NOW} now. Use the Patient resource.` });
  assert.deepEqual(check(w, catalogue.fields, { request: "x" }), { request: "Request needs at least 3 characters" });
});

test("checks: required, patterns, dates, numbers, no quotes in a referral note", () => {
  const fields = catalogue.fields;
  assert.deepEqual(check(byId(catalogue, "age"), fields, { mrn: "" }), { mrn: "Patient MRN is required" });
  assert.deepEqual(check(byId(catalogue, "age"), fields, { mrn: "S1 OR 1=1" }), { mrn: "Patient MRN is not in the expected form" });
  const lookup = check(byId(catalogue, "patient_lookup"), fields, { given: "Peter", family: "O'Neil-Smith", dob: "29/12/1932" });
  assert.deepEqual(lookup, { dob: "Date of birth must be a date (YYYY-MM-DD)" });
  const bp = check(byId(catalogue, "record_bp"), fields, { mrn: "S1", systolic: "118.5", diastolic: "77" });
  assert.deepEqual(bp, { systolic: "Systolic (mmHg) must be a whole number" });
  const note = check(byId(catalogue, "ortho_referral"), fields, { mrn: "S1", note: 'Situation: a "quoted" knee injury' });
  assert.deepEqual(note, { note: "The referral note cannot contain double quotes" });
});

test("stored instructions classify back to their workflow", () => {
  assert.equal(classify("What is the most recent CBG of the patient S1?"), "glucose_last");
  assert.equal(classify("What is the average CBG of the patient S1 over the last 24 hours?"), "glucose_average");
  assert.equal(classify("Summarise the chart"), "free_text");
  assert.equal(classify(undefined), "free_text");
});
