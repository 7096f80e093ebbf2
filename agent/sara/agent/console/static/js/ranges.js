// Reference ranges the console marks values against (normal / attention), one table per site.
//
// Adult ranges as the synthetic EHR charts them, except magnesium: its workflow's dosing
// instructions treat 1.9 mg/dL and below as deficiency (and the agent orders replacement), so
// the console draws the line there too — a value must not read "normal" beside an order to
// replace it. Glucose is a bedside CBG: the inpatient target band, not the fasting range.

export const RANGES = {
  MG: { name: "Magnesium", low: 2.0, high: 2.4, unit: "mg/dL" },
  K: { name: "Potassium", low: 3.5, high: 5.1, unit: "mmol/L" },
  GLU: { name: "Glucose (CBG)", low: 70, high: 180, unit: "mg/dL" },
  A1C: { name: "HbA1c", low: 4.0, high: 5.6, unit: "%" },
  NA: { name: "Sodium", low: 135, high: 145, unit: "mmol/L" },
  CA: { name: "Calcium", low: 8.5, high: 10.5, unit: "mg/dL" },
};

/** The range of a code as words ("2.0–2.4 mg/dL"), or "". */
export function rangeText(code) {
  const r = RANGES[String(code || "").toUpperCase()];
  if (!r) return "";
  const decimals = Number.isInteger(r.low) && Number.isInteger(r.high) ? 0 : 1;
  const low = r.low.toFixed(decimals);
  const high = r.high.toFixed(decimals);
  return `${low}–${high} ${r.unit}`;
}

/**
 * How a value reads against its range: {marker: "normal" | "attention" | "unknown",
 * direction: "low" | "high" | null, range}. A FHIR interpretation code (L, H, LL, HH, A, N),
 * when the lab sent one, wins over the table.
 */
export function assess(value, code, interpretation) {
  const range = rangeText(code);
  const flag = String(interpretation || "").toUpperCase();
  if (["L", "LL", "LU"].includes(flag)) return { marker: "attention", direction: "low", range };
  if (["H", "HH", "HU"].includes(flag)) return { marker: "attention", direction: "high", range };
  if (flag === "A" || flag === "AA") return { marker: "attention", direction: null, range };
  const r = RANGES[String(code || "").toUpperCase()];
  if (typeof value !== "number" || !Number.isFinite(value) || !r) {
    return { marker: flag === "N" ? "normal" : "unknown", direction: null, range };
  }
  if (value < r.low) return { marker: "attention", direction: "low", range };
  if (value > r.high) return { marker: "attention", direction: "high", range };
  return { marker: "normal", direction: null, range };
}

/** The label a marker shows: "Normal", "Low — needs attention", … */
export function markerLabel(assessed) {
  if (assessed.marker === "normal") return "Normal";
  if (assessed.marker === "attention") {
    if (assessed.direction === "low") return "Low — needs attention";
    if (assessed.direction === "high") return "High — needs attention";
    return "Needs attention";
  }
  return "";
}
