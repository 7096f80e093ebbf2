// A small SVG trend line of one lab's values (no chart library): the geometry is pure and
// tested; draw() only creates SVG elements from it.

const SVG = "http://www.w3.org/2000/svg";

/**
 * Geometry for values in time order (oldest first): {path, points: [{x, y, value}], min, max,
 * band: {y, height} | null} in a width × height box with `pad` inside. `range` ({low, high})
 * is drawn as a band and widens the scale so it always shows.
 */
export function geometry(values, { width = 300, height = 60, pad = 6, range = null } = {}) {
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (finite.length === 0) return { path: "", points: [], min: null, max: null, band: null };
  let min = Math.min(...finite);
  let max = Math.max(...finite);
  if (range) {
    min = Math.min(min, range.low);
    max = Math.max(max, range.high);
  }
  if (max === min) {
    max += 1;
    min -= 1;
  }
  const x = (i) => (finite.length === 1 ? width / 2 : pad + (i * (width - 2 * pad)) / (finite.length - 1));
  const y = (v) => pad + ((max - v) * (height - 2 * pad)) / (max - min);
  const round = (n) => Math.round(n * 10) / 10;
  const points = finite.map((value, i) => ({ x: round(x(i)), y: round(y(value)), value }));
  const path = points.map((p, i) => `${i ? "L" : "M"}${p.x} ${p.y}`).join(" ");
  const band = range ? { y: round(y(range.high)), height: round(y(range.low) - y(range.high)) } : null;
  return { path, points, min, max, band };
}

/** Draw `geometry(...)` into an <svg> (replacing what was there, keeping its <title>). */
export function draw(svg, geo) {
  for (const child of [...svg.children]) if (child.tagName.toLowerCase() !== "title") child.remove();
  const make = (name, attrs) => {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    svg.append(el);
    return el;
  };
  if (geo.band) make("rect", { class: "band", x: 0, y: geo.band.y, width: "100%", height: geo.band.height });
  if (geo.points.length > 1) make("path", { class: "line", d: geo.path });
  geo.points.forEach((p, i) => {
    const last = i === geo.points.length - 1;
    make("circle", { class: last ? "dot last" : "dot", cx: p.x, cy: p.y, r: last ? 3.5 : 2.2 });
  });
}
