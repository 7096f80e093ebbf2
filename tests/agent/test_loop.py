"""The loop end to end with injected transports: every final status and every write mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sara.agent import events, fakes, runtime
from sara.agent.actions import PLEASE_FINISH, POST_ACCEPTED
from sara.agent.loop import RETRY_MESSAGE, Loop, LoopConfig, TaskSpec
from sara.agent.settings import AgentSettings

BASE = "http://fhir.test:8080/fhir/"
MRN = "S6315806"
TASK = TaskSpec(
    f"What is the magnesium of patient {MRN}?", context="It's 2023-11-13T10:15:00+00:00."
)
BP = {
    "resourceType": "Observation",
    "status": "final",
    "category": [
        {"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "vital-signs"}]}
    ],
    "code": {"text": "BP"},
    "effectiveDateTime": "2023-11-13T10:15:00+00:00",
    "valueString": "118/77 mmHg",
    "subject": {"reference": f"Patient/{MRN}"},
}
MED = {  # as the benchmark's grader expects: not strictly valid FHIR (route string, note object)
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "subject": {"reference": f"Patient/{MRN}"},
    "dosageInstruction": [{"route": "IV"}],
    "note": {"text": "replace"},
}


async def run(loop: Loop, task: TaskSpec = TASK) -> list[events.Event]:
    async with loop:
        return [e async for e in loop.run(task)]


def final(evs: list[events.Event]) -> events.TaskResult:
    last = evs[-1]
    assert isinstance(last, events.Finished)
    assert sum(isinstance(e, events.Finished) for e in evs) == 1
    return last.result


async def test_completed_get_then_finish(harness: Callable[..., Any]) -> None:
    h = harness()
    evs = await run(h.loop())
    res = final(evs)
    assert res.status == "completed"
    assert res.result == "[3]"
    assert res.rounds == 2
    assert [m["role"] for m in res.history] == ["user", "agent", "user", "agent"]
    assert res.history[1]["content"] == f"GET {BASE}Observation?patient={MRN}&code=MG"
    reply = res.history[2]["content"]
    assert reply.startswith("Here is the response from the GET request:\n{\n")
    assert reply.endswith(f"}}. {PLEASE_FINISH}")
    assert res.usage == {"prompt_tokens": 200, "completion_tokens": 20}
    # the benchmark appends &_format=json to the URL exactly as written
    (req,) = h.fhir.requests
    assert str(req.url) == f"{BASE}Observation?patient={MRN}&code=MG&_format=json"
    kinds = [e.kind for e in evs]
    assert kinds == [
        "round_started",
        "model_output",
        "fhir_request",
        "fhir_response",
        "round_started",
        "model_output",
        "finished",
    ]
    resp = next(e for e in evs if isinstance(e, events.FhirResponse))
    assert (resp.status, resp.resource_type, resp.entry_count, resp.outcome) == (
        200,
        "Observation",
        3,
        "ok",
    )
    (record,) = h.audit.records
    assert (record.method, record.resource_type, record.patient, record.status, record.outcome) == (
        "GET",
        "Observation",
        f"Patient/{MRN}",
        200,
        "ok",
    )
    assert record.task_id == res.task_id and record.round == 1
    assert h.audit.flushes == 1
    # the model saw benchmark roles mapped to chat roles, temperature 0, max_tokens 2048
    body = h.sent_bodies()[1]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 2048


async def test_invalid_action_strict(harness: Callable[..., Any], scripted: Any) -> None:
    h = harness(model=scripted("Let me look that up.\nGET http://fhir.test:8080/fhir/Patient"))
    res = final(await run(h.loop()))
    assert res.status == "agent invalid action"
    assert res.result is None and res.rounds == 1
    assert res.history[-1] == {
        "role": "agent",
        "content": "Let me look that up.\nGET http://fhir.test:8080/fhir/Patient",
    }
    assert h.fhir.requests == []


async def test_lenient_salvages_and_retries_once(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(model=scripted("Let me think.", "Sure! FINISH([42]) is my answer."))
    res = final(await run(h.loop(parse_mode="lenient")))
    assert res.status == "completed" and res.result == "[42]" and res.rounds == 2
    assert res.history[2] == {"role": "user", "content": RETRY_MESSAGE}

    h = harness(model=scripted("Let me think.", "Still thinking."))
    res = final(await run(h.loop(parse_mode="lenient")))
    assert res.status == "agent invalid action" and res.rounds == 2


async def test_task_limit_reached(harness: Callable[..., Any], scripted: Any) -> None:
    h = harness(model=scripted(f"GET {BASE}Patient?identifier={MRN}"))
    res = final(await run(h.loop(max_rounds=3)))
    assert res.status == "task limit reached" and res.rounds == 3
    assert len(h.fhir.requests) == 3
    assert res.history[-1]["role"] == "user"
    h = harness(model=scripted(f"GET {BASE}Patient?identifier={MRN}"))
    assert final(await run(h.loop())).rounds == 8


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(
            400, json={"error": {"message": "This model's maximum context length is 8192 tokens"}}
        ),
        httpx.Response(
            200, json={"choices": [{"message": {"content": ""}, "finish_reason": "length"}]}
        ),
    ],
)
async def test_agent_context_limit(
    harness: Callable[..., Any], scripted: Any, reply: httpx.Response
) -> None:
    h = harness(model=scripted(f"GET {BASE}Patient?identifier={MRN}", reply))
    res = final(await run(h.loop()))
    assert res.status == "agent context limit" and res.rounds == 2
    assert res.history[-1]["role"] == "user"


async def test_model_failure_is_task_error_after_retries(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(model=scripted(httpx.Response(503, text="overloaded")))
    evs = await run(h.loop(max_retries=2))
    res = final(evs)
    assert res.status == "task error"
    assert len(h.model.requests) == 3
    assert isinstance(evs[-2], events.Error) and evs[-2].code == "model_error"


async def test_model_retries_429_then_succeeds(harness: Callable[..., Any], scripted: Any) -> None:
    h = harness(model=scripted(httpx.Response(429, headers={"retry-after": "1"}), "FINISH([1])"))
    res = final(await run(h.loop()))
    assert res.status == "completed" and res.result == "[1]"
    assert len(h.model.requests) == 2


async def test_unexpected_exception_is_task_error(
    harness: Callable[..., Any], scripted: Any
) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug")

    h = harness(model=scripted(f"GET {BASE}Patient?identifier={MRN}"), fhir=boom)
    evs = await run(h.loop())
    # a transport exception that is not an httpx error is a bug, not a FHIR failure
    assert final(evs).status == "task error"
    assert any(isinstance(e, events.Error) and e.code == "internal_error" for e in evs)


async def test_get_http_error_reads_like_requests(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(model=scripted(f"GET {BASE}Foo?x=1", "FINISH([])"))
    res = final(await run(h.loop(read_types=frozenset({"Foo"}))))
    assert res.history[2]["content"] == (
        f"Error in sending the GET request: 404 Client Error:  for url: {BASE}Foo?x=1&_format=json"
    )


async def test_sara_protocol_adds_format_properly_and_diagnostics(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(model=scripted(f"GET {BASE}Foo", "FINISH([])"))
    res = final(await run(h.loop(protocol="sara", read_types=frozenset({"Foo"}))))
    assert str(h.fhir.requests[0].url) == f"{BASE}Foo?_format=json"
    assert res.history[2]["content"].endswith("\nHAPI-0302")


async def test_plain_json_is_shown_as_python_repr(
    harness: Callable[..., Any], scripted: Any
) -> None:
    def plain(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"resourceType": "Bundle", "total": 0})

    h = harness(model=scripted(f"GET {BASE}Patient?name=x", "FINISH([])"), fhir=plain)
    res = final(await run(h.loop()))
    assert res.history[2]["content"].startswith(
        "Here is the response from the GET request:\n{'resourceType': 'Bundle', 'total': 0}. Please"
    )


async def test_oversized_response_is_cut_with_a_note(
    harness: Callable[..., Any], scripted: Any
) -> None:
    def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": fakes.FHIR_JSON}, content=b"x" * 200_000
        )

    h = harness(model=scripted(f"GET {BASE}Patient?name=x", "FINISH([])"), fhir=big)
    evs = await run(h.loop())
    msg = final(evs).history[2]["content"]
    assert "x" * 1000 in msg and "[Sara: the response was cut at 65536 bytes" in msg
    assert len(msg) < 66_000
    resp = next(e for e in evs if isinstance(e, events.FhirResponse))
    assert resp.truncated and resp.size == 65536


async def test_blocked_url_is_never_requested(harness: Callable[..., Any], scripted: Any) -> None:
    h = harness(model=scripted("GET http://169.254.169.254/latest/meta-data?x=1", "FINISH([])"))
    evs = await run(h.loop())
    res = final(evs)
    assert h.fhir.requests == []
    assert res.status == "completed"
    assert res.history[2]["content"].startswith(
        "Error in sending the GET request: blocked by Sara's URL guard ("
    )
    req = next(e for e in evs if isinstance(e, events.FhirRequest))
    assert req.blocked == "host" and not req.sent
    assert h.audit.records[0].outcome == "blocked"
    assert (
        h.metrics.registry.get_sample_value(
            "sara_fhir_blocked_total", {"method": "GET", "reason": "host"}
        )
        == 1
    )


def post(payload: Any, rtype: str = "Observation") -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"POST {BASE}{rtype}\n{text}"


async def test_write_acknowledge_is_benchmark_faithful(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(model=scripted(post(MED, "MedicationRequest"), post("{not json"), "FINISH([])"))
    res = final(await run(h.loop()))
    assert res.history[2]["content"] == POST_ACCEPTED
    assert res.history[4]["content"] == "Invalid POST request"
    assert h.fhir.requests == []  # never sent, never validated
    assert [r.outcome for r in h.audit.records] == ["acknowledged", "invalid"]
    assert h.audit.records[0].patient == f"Patient/{MRN}"


async def test_write_execute_sends_and_returns_id(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(model=scripted(post(BP), "FINISH([])"))
    res = final(await run(h.loop(write_mode="execute")))
    (req,) = h.fhir.requests
    assert req.method == "POST" and str(req.url) == f"{BASE}Observation"
    assert json.loads(req.content) == BP
    assert res.history[2]["content"].startswith(
        "POST request accepted and executed successfully: created Observation/9001. Please"
    )
    intent, record = h.audit.records  # the intent is on record before the POST is sent
    assert (intent.outcome, intent.status, record.outcome, record.status) == (
        "intent", None, "ok", 201,
    )  # fmt: skip


async def test_write_execute_blocks_foreign_and_mismatched(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(
        model=scripted(
            f"POST http://evil.test/fhir/Observation\n{json.dumps(BP)}",
            post(BP, "MedicationRequest"),
            post(BP, "Patient"),
            "FINISH([])",
        )
    )
    res = final(await run(h.loop(write_mode="execute")))
    assert h.fhir.requests == []
    assert "blocked by Sara's URL guard" in res.history[2]["content"]
    assert res.history[4]["content"].startswith(
        'Invalid POST request: the payload must be a JSON object with "resourceType": '
        '"MedicationRequest"'
    )
    assert "this resource type is not allowed" in res.history[6]["content"]


async def test_write_execute_unencodable_payload_is_told_not_a_task_error(
    harness: Callable[..., Any], scripted: Any
) -> None:
    # JSON the model may legally write but that cannot be re-encoded for sending: an escaped lone
    # surrogate and an integer beyond 64 bits. The model is told; nothing is sent; the task goes on.
    surrogate = '{"resourceType": "Observation", "status": "final", "valueString": "\\ud800"}'
    huge = '{"resourceType": "Observation", "status": "final", "valueInteger": ' + "9" * 30 + "}"
    h = harness(model=scripted(post(surrogate), post(huge), post(BP), "FINISH([])"))
    res = final(await run(h.loop(write_mode="execute")))
    assert res.status == "completed"
    for answer in (res.history[2]["content"], res.history[4]["content"]):
        assert answer.startswith("Invalid POST request: the payload cannot be sent as JSON")
    assert len(h.fhir.requests) == 1  # only the good one
    outcomes = [r.outcome for r in h.audit.records]  # each sent POST is preceded by its intent
    assert outcomes == ["intent", "invalid", "intent", "invalid", "intent", "ok"]


async def test_write_dry_run_validates_strictly(harness: Callable[..., Any], scripted: Any) -> None:
    h = harness(model=scripted(post(BP), post(MED, "MedicationRequest"), "FINISH([])"))
    res = final(await run(h.loop(write_mode="dry-run")))
    assert h.fhir.requests == []
    assert res.history[2]["content"].startswith(
        "POST request validated (dry run, nothing was stored)"
    )
    bad = res.history[4]["content"]
    assert bad.startswith(
        "POST request rejected (dry run, nothing was stored): the MedicationRequest is not valid"
    )
    assert "- note:" in bad and "dosageInstruction.0.route" in bad
    assert [r.outcome for r in h.audit.records] == ["dry_run", "dry_run_invalid"]


async def test_write_deny(harness: Callable[..., Any], scripted: Any) -> None:
    h = harness(model=scripted(post(BP), "FINISH([])"))
    res = final(await run(h.loop(write_mode="deny")))
    assert h.fhir.requests == []
    assert res.history[2]["content"].startswith("POST request denied")
    assert h.audit.records[0].outcome == "denied"


async def test_official_prompt_and_functions(
    harness: Callable[..., Any], scripted: Any, mab_dir: Any
) -> None:
    from sara.agent import prompts

    funcs = prompts.load_functions(mab_dir / "funcs_v1.json")
    h = harness(model=scripted("FINISH([])"))
    loop = h.loop(functions=funcs)
    first = loop.first_message(TaskSpec("Q?", context="C."))
    assert first.startswith(
        "You are an expert in using FHIR functions to assist medical professionals."
    )
    assert (
        f"Note that you should use {BASE} as the api_base.\n{json.dumps(funcs)}\n\n"
        "Context: C.\nQuestion: Q?" in first
    )
    assert (
        '"name": "GET {api_base}/Condition"' in first
    )  # placeholders inside functions stay literal
    await loop.aclose()


async def test_sara_profile_contract(harness: Callable[..., Any]) -> None:
    h = harness()
    loop = h.loop(prompt="sara")
    first = loop.first_message(TaskSpec("Q?", context="C."))
    assert f"Note that you should use {BASE} as the api_base." in first
    assert first.endswith("Context: C.\nQuestion: Q?")
    assert '"name": "GET {api_base}Observation"' in first
    await loop.aclose()


async def test_one_loop_runs_tasks_concurrently(harness: Callable[..., Any]) -> None:
    import asyncio

    h = harness()
    loop = h.loop()

    async def one(i: int) -> events.TaskResult:
        return final([e async for e in loop.run(TaskSpec(f"magnesium of S{1000000 + i}"))])

    results = await asyncio.gather(*(one(i) for i in range(50)))
    assert {r.status for r in results} == {"completed"}
    assert len({r.task_id for r in results}) == 50
    await loop.aclose()


async def test_abandoned_task_counts_as_cancelled(harness: Callable[..., Any]) -> None:
    h = harness()
    loop = h.loop()
    gen = loop.run(TASK)
    async for event in gen:
        if isinstance(event, events.FhirResponse):
            break
    await gen.aclose()  # type: ignore[attr-defined]
    sample = h.metrics.registry.get_sample_value
    assert sample("sara_tasks_total", {"status": "cancelled"}) == 1
    assert sample("sara_tasks_in_flight") == 0
    assert h.audit.flushes == 1
    await loop.aclose()


async def test_real_hapi_answer_reaches_the_model_byte_for_byte(
    harness: Callable[..., Any], scripted: Any, mab_dir: Any
) -> None:
    raw = (mab_dir / "hapi_samples" / "obs_K_S6329521.hapi.json").read_bytes()

    def hapi(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "application/fhir+json;charset=UTF-8"},
            content=raw,
            extensions={"reason_phrase": b""},
        )

    base = "http://localhost:8080/fhir/"
    h = harness(
        model=scripted(f"GET {base}Observation?patient=S6329521&code=K", "FINISH([])"), fhir=hapi
    )
    res = final(await run(h.loop(api_base=base)))
    assert res.history[2]["content"] == (
        f"Here is the response from the GET request:\n{raw.decode()}. {PLEASE_FINISH}"
    )
    assert str(h.fhir.requests[0].url) == f"{base}Observation?patient=S6329521&code=K&_format=json"


# --- protocol medagentbench: GETs go out (or fail) exactly as `requests.get` in the harness ---


async def test_get_without_question_mark_is_sent_as_the_harness_sends_it(
    harness: Callable[..., Any], scripted: Any
) -> None:
    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, headers={"content-type": fakes.FHIR_JSON}, content=b"{}")

    h = harness(
        model=scripted(f"GET {BASE}Patient", f"GET {BASE}Patient/S1", "FINISH([])"), fhir=not_found
    )
    res = final(await run(h.loop()))
    assert [str(r.url) for r in h.fhir.requests] == [
        f"{BASE}Patient&_format=json",
        f"{BASE}Patient/S1&_format=json",
    ]
    assert res.history[2]["content"] == (
        f"Error in sending the GET request: 404 Client Error: Not Found for url: "
        f"{BASE}Patient&_format=json"
    )


async def test_get_url_is_percent_encoded_like_requests(
    harness: Callable[..., Any], scripted: Any
) -> None:
    # The strict harness takes everything after GET, newlines and prose included, and requests
    # percent-encodes it: the server gets the search (here: a code that matches nothing).
    h = harness(
        model=scripted(
            f"GET {BASE}Observation?patient={MRN}&code=MG\n\nThis reads the magnesium.",
            f"GET {BASE}Patient?name=Jos\u00e9 x|y&family=%zz",
            "FINISH([])",
        )
    )
    res = final(await run(h.loop()))
    assert [str(r.url) for r in h.fhir.requests] == [
        f"{BASE}Observation?patient={MRN}&code=MG%0A%0AThis%20reads%20the%20magnesium."
        "&_format=json",
        f"{BASE}Patient?name=Jos%C3%A9%20x%7Cy&family=%25zz&_format=json",
    ]
    assert res.history[2]["content"].startswith("Here is the response from the GET request:\n")


async def test_get_without_scheme_reads_like_requests(
    harness: Callable[..., Any], scripted: Any
) -> None:
    h = harness(
        model=scripted("GET Patient?name=x", "GET fhir.test:8080/fhir/Patient?x=1", "FINISH([])")
    )
    evs = await run(h.loop())
    res = final(evs)
    assert h.fhir.requests == []
    assert res.history[2]["content"] == (
        "Error in sending the GET request: Invalid URL 'Patient?name=x&_format=json': "
        "No scheme supplied. Perhaps you meant https://Patient?name=x&_format=json?"
    )
    assert res.history[4]["content"] == (
        "Error in sending the GET request: No connection adapters were found for "
        "'fhir.test:8080/fhir/Patient?x=1&_format=json'"
    )
    req = next(e for e in evs if isinstance(e, events.FhirRequest))
    assert not req.sent and req.blocked is None


async def test_plain_json_that_does_not_parse_is_an_error_like_requests(
    harness: Callable[..., Any], scripted: Any
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=b"not json"
        )

    h = harness(model=scripted(f"GET {BASE}Patient?name=x", "FINISH([])"), fhir=broken)
    res = final(await run(h.loop()))
    assert res.history[2]["content"] == (
        "Error in sending the GET request: Expecting value: line 1 column 1 (char 0)"
    )


async def test_url_that_does_not_split_is_told_not_a_task_error(
    harness: Callable[..., Any], scripted: Any
) -> None:
    # urlsplit raises on "http://[…"; the harness's requests call fails and the model is told.
    bad_post = "POST http://[::1/fhir/Observation\n{}"
    h = harness(model=scripted("GET http://[::1/fhir/Patient?x=1", bad_post, "FINISH([])"))
    res = final(await run(h.loop()))
    assert res.status == "completed" and res.result == "[]"
    assert res.history[2]["content"].startswith("Error in sending the GET request: ")
    assert res.history[4]["content"] == POST_ACCEPTED
    assert h.fhir.requests == []


async def test_task_deadline_cuts_a_slow_model_call(harness: Callable[..., Any]) -> None:
    async def stalled_model(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=fakes.completion("FINISH([])"))

    h = harness(model=stalled_model)
    started = time.perf_counter()
    evs = await run(h.loop(task_timeout_seconds=0.2))
    assert time.perf_counter() - started < 5
    res = final(evs)
    assert res.status == "task error" and res.rounds == 1
    (err,) = [e for e in evs if isinstance(e, events.Error)]
    assert err.code == "deadline" and "0.2 s" in err.message
    assert h.fhir.requests == []


async def test_task_deadline_never_cuts_a_fhir_call_in_flight(
    harness: Callable[..., Any], scripted: Any
) -> None:
    async def slow_fhir(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.4)  # outlives the deadline; still answered and audited
        return fakes.fhir_handler()(request)

    h = harness(model=scripted(post(BP), "FINISH([])"), fhir=slow_fhir)
    evs = await run(h.loop(write_mode="execute", task_timeout_seconds=0.2))
    res = final(evs)
    assert res.status == "task error" and res.rounds == 1  # round 2's model call never started
    assert len(h.fhir.requests) == 1 and len(h.model.requests) == 1
    intent, record = h.audit.records
    assert intent.outcome == "intent"
    assert record.outcome == "ok" and record.status == 201  # the write's outcome is known
    assert [e.code for e in evs if isinstance(e, events.Error)] == ["deadline"]


def test_benchmark_loop_has_no_deadline_but_the_api_does() -> None:
    assert LoopConfig(api_base=BASE).task_timeout_seconds is None  # as the harness: no limit
    settings = AgentSettings(no_auth=True)
    assert runtime.config_from_settings(settings).task_timeout_seconds == 600
    zero = AgentSettings(no_auth=True, task_timeout_seconds=0)
    assert runtime.config_from_settings(zero).task_timeout_seconds is None
    with pytest.raises(ValueError, match="task_timeout_seconds"):
        LoopConfig(api_base=BASE, task_timeout_seconds=-1)
