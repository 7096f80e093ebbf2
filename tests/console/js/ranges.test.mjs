import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { assess, markerLabel, rangeText } = await import(js("ranges.js"));

test("ranges in words", () => {
  assert.equal(rangeText("MG"), "2.0–2.4 mg/dL");
  assert.equal(rangeText("k"), "3.5–5.1 mmol/L");
  assert.equal(rangeText("GLU"), "70–180 mg/dL");
  assert.equal(rangeText("XYZ"), "");
});

test("a magnesium the workflow would replace is never 'normal'", () => {
  assert.deepEqual(assess(1.9, "MG"), { marker: "attention", direction: "low", range: "2.0–2.4 mg/dL" });
  assert.equal(assess(2.0, "MG").marker, "normal");
  assert.equal(assess(2.5, "MG").direction, "high");
});

test("the lab's own interpretation wins", () => {
  assert.equal(assess(4.0, "K", "L").direction, "low");
  assert.equal(assess(4.0, "K", "HH").direction, "high");
  assert.equal(assess(4.0, "K", "A").marker, "attention");
  assert.equal(assess(null, "XYZ", "N").marker, "normal");
});

test("unknown codes and non-numbers are unknown", () => {
  assert.equal(assess(3, "XYZ").marker, "unknown");
  assert.equal(assess("high", "MG").marker, "unknown");
  assert.equal(markerLabel(assess(3, "XYZ")), "");
  assert.equal(markerLabel(assess(1.2, "MG")), "Low — needs attention");
  assert.equal(markerLabel(assess(2.2, "MG")), "Normal");
});
