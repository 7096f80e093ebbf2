"""Named benchmark protocols: which prompt, which loop protocol, which status rules.

A score is comparable only with scores made under the same protocol. ``sara bench --protocol``:

================  ================================================================================
medagentbench     the official MedAgentBench harness: its prompt verbatim, strict parsing (anything
                  but one action ends the task), raw ``&_format=json`` GETs, POSTs acknowledged;
                  model calls retried as Sara's model client does (429/5xx/transport, 4 tries,
                  0.5 s doubling, ``Retry-After`` honoured), context limit = an HTTP 400/413/422
                  whose body speaks of the context length (or an empty answer cut at its length)
sara-leaderboard  the harness that made the 15 published scores (``sara_harness``): its own prompt
                  (stricter format rules, task-specific answer hints), ``parser.salvage`` of
                  verbose answers (the salvaged text is what the history keeps and the grader
                  reads), 5 tries per model call — a 429 waits 5·2^(n-1) s (≤ 120), another
                  failure 2·2^(n-1) s (≤ 60) —, context limit = an HTTP 400 whose body mentions
                  "context", "token" or "length"; everything else as ``medagentbench``
compact           the official rules and the same facts in fewer tokens: the function list in
                  one line per function (:func:`sara.agent.compact.functions`) and FHIR answers
                  minified, without bookkeeping, search results as tables; otherwise as
                  ``medagentbench``
sara              Sara's own wording (``_format`` as a parameter, error diagnostics shown)
================  ================================================================================

docs/bench.md lists every difference between ``medagentbench`` and ``sara-leaderboard``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sara.agent.actions import Protocol
from sara.common.errors import UserError


@dataclass(frozen=True)
class RetryPolicy:
    """How one model call is retried against its endpoint.

    ``attempts`` tries in all; before try n+1 the call waits ``Retry-After`` when the endpoint
    sent one (capped at ``retry_after_cap``), else ``rate_base·2^(n-1)`` (≤ ``rate_cap``) after
    a 429 and ``error_base·2^(n-1)`` (≤ ``error_cap``) after a 5xx, a timeout or a transport
    error."""

    attempts: int = 4
    rate_base: float = 0.5
    rate_cap: float = 8.0
    error_base: float = 0.5
    error_cap: float = 8.0
    retry_after_cap: float = 120.0

    def wait(self, attempt: int, *, rate_limited: bool, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_cap)
        base, cap = (
            (self.rate_base, self.rate_cap) if rate_limited else (self.error_base, self.error_cap)
        )
        return float(min(base * 2 ** (attempt - 1), cap))

    def budget(self, timeout: float) -> float:
        """The longest a call may take: every try timing out and every wait at its cap."""
        longest = max(self.rate_cap, self.error_cap, self.retry_after_cap)
        return self.attempts * timeout + (self.attempts - 1) * longest


def harness_context_limit(status: int, body: str) -> bool:
    """The published harness's rule: a 400 whose error text mentions context, token or length."""
    lowered = body.lower()
    return status == 400 and any(word in lowered for word in ("context", "token", "length"))


@dataclass(frozen=True)
class BenchProtocol:
    name: str
    loop_protocol: Protocol
    prompt: str  # default prompt profile (--prompt overrides)
    retry: RetryPolicy
    context_limit: Callable[[int, str], bool] | None = None  # None: the model client's rule


DEFAULT_RETRY = RetryPolicy()
HARNESS_RETRY = RetryPolicy(
    attempts=5, rate_base=5.0, rate_cap=120.0, error_base=2.0, error_cap=60.0
)

PROTOCOLS: dict[str, BenchProtocol] = {
    "medagentbench": BenchProtocol(
        "medagentbench", "medagentbench", "medagentbench", DEFAULT_RETRY
    ),
    "sara-leaderboard": BenchProtocol(
        "sara-leaderboard",
        "sara-leaderboard",
        "sara-leaderboard",
        HARNESS_RETRY,
        harness_context_limit,
    ),
    "compact": BenchProtocol("compact", "compact", "compact", DEFAULT_RETRY),
    "sara": BenchProtocol("sara", "sara", "medagentbench", DEFAULT_RETRY),
}


def get(name: str) -> BenchProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UserError(f"--protocol is one of {' | '.join(PROTOCOLS)}") from None
