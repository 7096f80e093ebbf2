"""Bench-shaped trajectory records for the training tests (imported by this unique name).

The records are what ``sara bench`` writes into ``trajectories.jsonl`` for a task-1 lookup the
reference policy (the teacher) answered: a GET of the Patient search, the server's Bundle, then
``FINISH([mrn])``. Prompts are short stand-ins for the bench prompt, so a CPU run stays seconds.
"""

from __future__ import annotations

import json
from typing import Any

API = "http://fhir.test/fhir/"

PEOPLE = [
    ("Ada", "Stone", "1950-11-13", "S0000001"),
    ("Bo", "Reed", "1960-11-14", "S0000002"),
    ("Cy", "Hale", "1975-01-02", "S0000003"),
    ("Dee", "Marsh", "1981-07-19", "S0000004"),
    ("Eli", "Frost", "1969-03-08", "S0000005"),
    ("Fay", "Nolan", "1992-12-30", "S0000006"),
    ("Gus", "Pryor", "1958-05-21", "S0000007"),
    ("Hal", "Quinn", "1947-09-02", "S0000008"),
]
HELD_OUT = ("Ivy", "Sutton", "1973-04-27", "S0000009")


def prompt(given: str, family: str, birth: str) -> str:
    return (
        f"Answer with GET url or FINISH([answers]). api_base: {API}\n"
        f"Question: What's the MRN of the patient with name {given} {family} and DOB of {birth}?"
    )


def record(index: int, person: tuple[str, str, str, str], **task: Any) -> dict[str, Any]:
    """A graded trajectory as ``sara bench`` records it (correct, synthetic task 1)."""
    given, family, birth, mrn = person
    instruction = (
        f"What's the MRN of the patient with name {given} {family} and DOB of {birth}? If the "
        'patient does not exist, the answer should be "Patient not found"'
    )
    search = f"GET {API}Patient?name={given}%20{family}&birthdate={birth}"
    bundle = {"total": 1, "entry": [{"resource": {"id": mrn}}]}
    return {
        "index": index,
        "task_id": f"task1_{index + 1}",
        "status": "completed",
        "correct": True,
        "task": {
            "id": f"task1_{index + 1}",
            "instruction": instruction,
            "context": "",
            "eval_MRN": mrn,
            "sol": [mrn],
            "synthetic": True,
            **task,
        },
        "history": [
            {"role": "user", "content": prompt(given, family, birth)},
            {"role": "agent", "content": search},
            {"role": "user", "content": f"Here is the response: {json.dumps(bundle)}"},
            {"role": "agent", "content": f'FINISH(["{mrn}"])'},
        ],
    }  # fmt: skip
