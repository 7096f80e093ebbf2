import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { geometry } = await import(js("sparkline.js"));

test("points span the box, oldest left, higher values higher up", () => {
  const geo = geometry([1, 3, 2], { width: 100, height: 50, pad: 5 });
  assert.deepEqual(geo.points.map((p) => [p.x, p.y]), [[5, 45], [50, 5], [95, 25]]);
  assert.equal(geo.path, "M5 45 L50 5 L95 25");
  assert.equal(geo.band, null);
});

test("the reference band widens the scale and is drawn inside it", () => {
  const geo = geometry([2.1, 2.2], { width: 100, height: 50, pad: 0, range: { low: 2.0, high: 2.4 } });
  assert.equal(geo.min, 2.0);
  assert.equal(geo.max, 2.4);
  assert.deepEqual(geo.band, { y: 0, height: 50 });
});

test("one value, equal values, nothing", () => {
  assert.deepEqual(geometry([4], { width: 100, height: 50, pad: 5 }).points.map((p) => p.x), [50]);
  const flat = geometry([2, 2], { width: 100, height: 50, pad: 5 });
  assert.ok(flat.points.every((p) => p.y === 25));
  assert.deepEqual(geometry([null, "x"]), { path: "", points: [], min: null, max: null, band: null });
});
