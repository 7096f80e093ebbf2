// Prints the task every workflow template sends for the values given (argv[2], JSON), built by
// the console's own workflows.js: the browser test posts them to a real agent to prove the
// reference policy recognises each template.
import { readFileSync } from "node:fs";
import path from "node:path";
import { STATIC, js } from "./paths.mjs";

const { buildTask, check } = await import(js("workflows.js"));
const catalogue = JSON.parse(readFileSync(path.join(STATIC, "workflows.json"), "utf8"));
const { values, now } = JSON.parse(process.argv[2]);
const out = catalogue.workflows.map((w) => ({
  id: w.id,
  task: w.task,
  problems: check(w, catalogue.fields, values),
  body: buildTask(w, values, now),
}));
process.stdout.write(JSON.stringify(out));
