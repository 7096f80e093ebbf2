"""One line a clinician can read for a write the model asks to make (pure).

    MedicationRequest: Magnesium sulfate IV replacement — 2 g IV over 2 h
    ServiceRequest: Serum potassium level (LOINC 2823-3), stat, at 2023-11-14T08:00:00+00:00
    Observation: BP 118/77 mmHg, 2023-11-13T10:15:00+00:00

Shapes the benchmark uses that are not strict FHIR (``route`` as a plain string) read as well
as the strict ones; anything unexpected falls back to fewer words, never to an error.
"""

from __future__ import annotations

from typing import Any

MAX_SUMMARY = 300
DURATION_UNITS = {"h", "hr", "hour", "hours", "min", "minute", "minutes", "d", "day", "days"}


def summary(payload: Any) -> str:
    if not isinstance(payload, dict):
        return "(not a JSON object)"
    rtype = _text(payload.get("resourceType")) or "resource"
    if rtype == "MedicationRequest":
        detail = _medication(payload)
    elif rtype == "ServiceRequest":
        detail = _service(payload)
    elif rtype == "Observation":
        detail = _observation(payload)
    else:
        detail = _concept(payload.get("code"))
    line = f"{rtype}: {detail}" if detail else rtype
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _concept(value: Any) -> str:
    """A CodeableConcept's words: its text, else the first coding's display, else its code."""
    if isinstance(value, str):
        return value.strip()
    if not isinstance(value, dict):
        return ""
    if _text(value.get("text")):
        return _text(value["text"])
    coding = _first(value.get("coding"))
    if isinstance(coding, dict):
        return _text(coding.get("display")) or _code(coding)
    return ""


def _code(coding: dict[str, Any]) -> str:
    code = _text(coding.get("code"))
    system = _text(coding.get("system"))
    short = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED"}.get(system, "")
    if system.endswith("/ndc"):
        short = "NDC"
    return f"{short} {code}".strip() if code else ""


def _quantity(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("value"), int | float):
        return ""
    number = value["value"]
    unit = _text(value.get("unit")) or _text(value.get("code"))
    return f"{number:g} {unit}".strip() if isinstance(number, float) else f"{number} {unit}".strip()


def _medication(payload: dict[str, Any]) -> str:
    name = _concept(payload.get("medicationCodeableConcept"))
    coding = _first((payload.get("medicationCodeableConcept") or {}).get("coding"))
    if isinstance(coding, dict) and _code(coding) and _code(coding) not in name:
        name = f"{name} ({_code(coding)})" if name else _code(coding)
    dosage = _first(payload.get("dosageInstruction"))
    parts: list[str] = []
    if isinstance(dosage, dict):
        rate = _first(dosage.get("doseAndRate"))
        if isinstance(rate, dict):
            parts.append(_quantity(rate.get("doseQuantity")))
        parts.append(_concept(dosage.get("route")))
        if isinstance(rate, dict) and isinstance(rate.get("rateQuantity"), dict):
            quantity = _quantity(rate["rateQuantity"])
            unit = _text(rate["rateQuantity"].get("unit")).lower()
            parts.append(f"over {quantity}" if unit in DURATION_UNITS else f"at {quantity}")
        parts.append(_text(dosage.get("text")))
    dose = " ".join(p for p in parts if p)
    return " — ".join(p for p in (name, dose) if p)


def _service(payload: dict[str, Any]) -> str:
    code = payload.get("code")
    name = _concept(code)
    coding = _first(code.get("coding")) if isinstance(code, dict) else None
    if isinstance(coding, dict) and _code(coding) and _code(coding) not in name:
        name = f"{name} ({_code(coding)})" if name else _code(coding)
    parts = [name, _text(payload.get("priority"))]
    when = _text(payload.get("occurrenceDateTime"))
    if when:
        parts.append(f"at {when}")
    note = payload.get("note")
    note = _first(note) if isinstance(note, list) else note
    if isinstance(note, dict) and _text(note.get("text")):
        parts.append(f"note: {_text(note['text'])}")
    return ", ".join(p for p in parts if p)


def _observation(payload: dict[str, Any]) -> str:
    name = _concept(payload.get("code"))
    value = _text(payload.get("valueString")) or _quantity(payload.get("valueQuantity"))
    if value and name == "BP" and "mm" not in value:
        value += " mmHg"
    when = _text(payload.get("effectiveDateTime"))
    head = " ".join(p for p in (name, value) if p)
    return ", ".join(p for p in (head, when) if p)
