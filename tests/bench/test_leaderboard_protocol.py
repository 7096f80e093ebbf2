"""Protocol ``sara-leaderboard`` against the published harness's own code.

The harness (``../shared/medagentbench/sara_harness/benchmark_models.py``) is not imported — it
needs ``openai`` and ``requests`` at module level —: its ``extract_action`` and
``run_single_task`` functions and its prompt are taken out of the source with ``ast`` and run
here with stub model and FHIR calls, beside Sara's loop under protocol ``sara-leaderboard`` fed
the same answers. Both must leave the same history (the grader reads it), status and result.
"""

from __future__ import annotations

import ast
import json
import re
import types
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from sara.agent import loop, parser, prompts, runtime
from sara.agent.events import Finished
from sara.agent.settings import AgentSettings, ParseMode, WriteMode
from sara.bench import protocols
from sara.bench.endpoint import EndpointTransport

API = "http://fhir.test/fhir/"
BODY = json.dumps(
    {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [{"resource": {}}]},
    indent=2,
)
OBS = '{"resourceType": "Observation", "status": "final", "code": {"text": "BP"}}'
NESTED = (
    '{"resourceType": "MedicationRequest", "dosageInstruction": [{"route": "IV", '
    '"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "g"}}]}]}'
)
# Verbose, fenced, several actions, JSON after the URL line, braces inside strings, nothing.
CORPUS: list[str] = [
    f"GET {API}Patient?identifier=S1",
    f"  GET {API}Patient?identifier=S1  \n",
    f"I'll look up the patient first.\nGET {API}Patient?identifier=S1\nThis returns the chart.",
    f"```\nGET {API}Observation?patient=S1&code=MG\n```",
    "```tool_code\nFINISH([1.8])\n```",
    f"```json\nGET {API}Observation?patient=S1&code=MG\n```",
    f"GET {API}Patient?identifier=S1\nGET {API}Observation?patient=S1&code=K",
    f"Let me check.\nGET {API}Patient?identifier=S1\nThen FINISH([42]) once I know.",
    "Based on the data the answer is FINISH([42]).",
    'The value and date: FINISH([6.5, "2022-10-15T08:30:00+00:00"]) as requested.',
    "FINISH([1]) because the value is low",
    "FINISH([[1, 2], 3])",
    f"POST {API}Observation\n{OBS}",
    f"POST {API}Observation\n{OBS}\nI have recorded the blood pressure.",
    f"Here is the order:\nPOST {API}MedicationRequest\n{NESTED}\nDone, magnesium ordered.",
    f"Order:\nPOST {API}ServiceRequest\n" + '{"note": {"text": "a } b"}, "x": 1}\nok',
    f"Order:\nPOST {API}ServiceRequest\n\n{OBS}",
    f"Order:\nPOST {API}Observation\n  {OBS}",
    f"```\nPOST {API}Observation\n{OBS}\n```",
    "POST without a url",
    "I cannot answer this question.",
    "",
    "GETTING_DATA",  # no scheme: requests refuses before sending
    f"GET\t{API}Patient?identifier=S1",
    f"Thinking...\nGET\t{API}Patient?identifier=S1",
]


@pytest.fixture(scope="module")
def harness(mab_dir: Path) -> dict[str, Any]:
    """``extract_action``, ``run_single_task`` and ``MEDAGENTBENCH_PROMPT`` of the harness."""
    source = (mab_dir / "sara_harness" / "benchmark_models.py").read_text("utf-8")
    tree = ast.parse(source)
    wanted = {"extract_action", "run_single_task", "MEDAGENTBENCH_PROMPT"}
    nodes = [
        n
        for n in tree.body
        if (isinstance(n, ast.FunctionDef) and n.name in wanted)
        or (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in wanted)
    ]
    assert len(nodes) == 3
    namespace: dict[str, Any] = {
        "re": re,
        "json": json,
        "openai": types.SimpleNamespace(OpenAI=object),
        **{name: Any for name in ("List", "Dict", "Any", "Optional", "Tuple")},
    }
    module = ast.Module(body=nodes, type_ignores=[])
    exec(compile(module, "benchmark_models.py", "exec"), namespace)
    return namespace


def test_the_prompt_profile_is_the_harness_prompt(harness: dict[str, Any]) -> None:
    assert prompts.template("sara-leaderboard") == harness["MEDAGENTBENCH_PROMPT"]


@pytest.mark.parametrize("text", CORPUS)
def test_salvage_is_the_harness_extract_action(harness: dict[str, Any], text: str) -> None:
    stripped = text.strip().replace("```tool_code", "").replace("```", "").strip()
    assert parser.salvage(text) == harness["extract_action"](stripped)


def _harness_run(
    harness: dict[str, Any], answers: list[Any], functions: list[Any], rounds: int
) -> dict[str, Any]:
    script = iter(answers)

    def call_model(*args: Any, **kwargs: Any) -> tuple[str | None, bool]:
        answer = next(script)
        if answer == "<context limit>":
            return None, True
        if answer == "<failure>":
            return None, False
        return answer, False

    harness["call_model"] = call_model

    def send_get_request(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:  # requests' own checks before sending (no scheme, no adapter), as the harness
            requests.Request("GET", url).prepare()
        except Exception as exc:  # the harness catches everything
            return {"error": str(exc)}
        return {"status_code": 200, "data": BODY}

    harness["call_model"] = call_model
    harness["send_get_request"] = send_get_request
    task = {"context": "It's 2023-11-13T10:15:00+00:00 now.", "instruction": "What is it?"}
    return dict(
        harness["run_single_task"](
            client=None,
            index=0,
            task_data=task,
            functions=functions,
            fhir_api_base=API,
            model="m",
            max_rounds=rounds,
            max_tokens=2048,
            temperature=0.0,
        )
    )


async def _sara_run(answers: list[Any], functions: list[Any], rounds: int) -> Any:
    script = iter(answers)
    failing: list[int] = []

    def model(request: httpx.Request) -> httpx.Response:
        answer = "<failure>" if failing else next(script)
        if answer == "<context limit>":
            error = {"error": {"message": "Please reduce the length of the messages."}}
            return httpx.Response(400, json=error)
        if answer == "<failure>":
            failing.append(1)
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        body = {"choices": [{"message": {"content": answer}, "finish_reason": "stop"}]}
        return httpx.Response(200, json=body)

    def fhir(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=BODY, headers={"Content-Type": "application/fhir+json"})

    async def no_wait(_: float) -> None:
        return None

    protocol = protocols.get("sara-leaderboard")
    config = loop.LoopConfig(
        api_base=API,
        max_rounds=rounds,
        prompt=protocol.prompt,
        functions=functions,
        parse_mode=ParseMode.STRICT,
        write_mode=WriteMode.ACKNOWLEDGE,
        protocol=protocol.loop_protocol,
    )
    endpoint = EndpointTransport(httpx.MockTransport(model), retry=protocol.retry, sleep=no_wait)
    agent = runtime.build_loop(
        config,
        model_url="http://model.test/v1",
        model="m",
        model_transport=endpoint,
        fhir_transport=httpx.MockTransport(fhir),
        settings=AgentSettings.model_construct(model_max_retries=0),
        context_limit=protocol.context_limit,
    )
    spec = loop.TaskSpec("What is it?", "It's 2023-11-13T10:15:00+00:00 now.")
    async with agent:
        events = [e async for e in agent.run(spec)]
    final = events[-1]
    assert isinstance(final, Finished)
    if failing:  # every try of the harness's policy was made, then the task failed
        assert len(failing) == protocol.retry.attempts == 5
        assert endpoint.stats.waits == [2.0, 4.0, 8.0, 16.0]
        assert final.result.error and "503" in final.result.error
    return final.result


CONVERSATIONS = [
    *([text, "FINISH([])"] for text in CORPUS),
    [CORPUS[2], CORPUS[14], CORPUS[8]],
    [CORPUS[0]] * 3,  # the round limit
    [CORPUS[0], "<context limit>"],
    [CORPUS[0], "<failure>"],
]


@pytest.mark.parametrize("answers", CONVERSATIONS)
async def test_the_loop_leaves_what_the_harness_leaves(
    harness: dict[str, Any], mab_dir: Path, answers: list[str]
) -> None:
    functions = json.loads((mab_dir / "funcs_v1.json").read_text())
    theirs = _harness_run(harness, answers, functions, rounds=3)
    ours = await _sara_run(answers, functions, rounds=3)
    assert ours.history == theirs["history"]
    assert ours.status == theirs["status"]
    if theirs["status"] == "completed":
        assert ours.result == theirs["result"]
    else:
        assert ours.result is None


def test_the_harness_context_limit_rule() -> None:
    rule = protocols.harness_context_limit
    assert rule(400, '{"error": {"message": "maximum context length is 8192 tokens"}}')
    assert rule(400, '{"error": {"message": "max_tokens is too large"}}')  # "token": yes
    assert rule(400, "Input length exceeds the limit")
    assert not rule(400, '{"error": {"message": "invalid model"}}')
    assert not rule(413, "context length exceeded")  # the harness reads 400s only
    policy = protocols.HARNESS_RETRY
    waits = [policy.wait(n, rate_limited=True, retry_after=None) for n in range(1, 5)]
    assert waits == [5.0, 10.0, 20.0, 40.0]
    assert policy.wait(6, rate_limited=True, retry_after=None) == 120.0
    assert [policy.wait(n, rate_limited=False, retry_after=None) for n in (1, 6)] == [2.0, 60.0]
