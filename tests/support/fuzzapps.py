"""The apps the fuzz tests serve (tests/fuzz): the agent with fakes behind it, the FHIR server."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sara.agent import fakes
from sara.agent.api.app import create_app as create_agent
from sara.agent.audit import MemoryAuditSink
from sara.agent.settings import AgentSettings
from sara.fhir.app import create_app as create_fhir
from sara.fhir.settings import ServerSettings

#: What every schemathesis test checks of each answer: no 5xx; its status, content type and body
#: as the OpenAPI document says.
CONTRACT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LONG = os.environ.get("SARA_FUZZ") == "long"
#: Examples per API operation for schemathesis (the properties take theirs from the profile).
API_EXAMPLES = 500 if LONG else 25
#: Examples per FHIR server operation (the document has five operations per resource type).
FHIR_EXAMPLES = 300 if LONG else 10
#: Sequences of chained requests in the stateful test (up to six steps each).
STATEFUL_EXAMPLES = 500 if LONG else 100


ORDER = {
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/S1234567"},
    "medicationCodeableConcept": {"text": "magnesium sulfate 2 g IV"},
}


def order_or_lookup(messages: list[dict[str, str]]) -> str:
    """Half the tasks (by the prompt's CRC) order a MedicationRequest first, which write mode
    approve holds for sign-off (so decisions reach a real pending action); the rest, and every
    later round, :func:`fakes.lookup_policy`."""
    if len(messages) == 1 and zlib.crc32(messages[0]["content"].encode()) % 2 == 0:
        return "POST http://fhir.test/fhir/MedicationRequest\n" + json.dumps(ORDER)
    return fakes.lookup_policy(messages)


def agent(store: Path) -> FastAPI:
    """The agent API with its run store in ``store``, one API key, a fake model and FHIR; write
    mode approve, so that half the tasks wait for a decision (:func:`order_or_lookup`)."""
    return create_agent(
        AgentSettings(
            fhir_url="http://fhir.test/fhir/",
            model_url="http://m.test/v1",
            api_keys=KEY,
            write_mode="approve",
            store=f"sqlite:///{store}",
            # generated requests come from one key: its rate (a burst of 20 tasks) would turn
            # most task creations into 429s; the limits have their own tests (test_limits.py)
            task_rate_per_minute=0,
            decision_rate_per_minute=0,
        ),
        model_transport=httpx.MockTransport(fakes.model_handler(order_or_lookup)),
        fhir_transport=httpx.MockTransport(fakes.fhir_handler()),
        audit=MemoryAuditSink(),
    )


def fhir(db: Path) -> Any:
    """The embedded FHIR server on ``db``."""
    return create_fhir(ServerSettings(db=db, request_log=False))


#: What the fuzzed FHIR server holds: a patient and one of its lab results.
FHIR_SEED: tuple[dict[str, Any], ...] = (
    {"resourceType": "Patient", "id": "S1", "birthDate": "1970-01-02", "gender": "male"},
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": "Patient/S1"},
        "effectiveDateTime": "2023-11-12T10:15:00+00:00",
    },
)
