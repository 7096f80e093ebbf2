"""Confidence intervals and paired tests for pass@1 scores. Pure, standard library only.

- :func:`wilson` — the Wilson score interval of a proportion (95 % by default): unlike the
  normal approximation it stays inside [0, 1] and is sound at 0/30 and 30/30.
- :func:`mcnemar` — the exact McNemar test of two runs on the same tasks: only the discordant
  tasks count (``b`` solved by A only, ``c`` by B only); under "no difference" each is a fair
  coin, so the two-sided p-value is ``min(1, 2·P[Binomial(b+c, ½) ≤ min(b, c)])``. "A beats B"
  only when A wins more discordant tasks and p < ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) as fractions; (0, 1) when there is no task."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Paired:
    a: str
    b: str
    n: int  # tasks both runs have
    a_correct: int
    b_correct: int
    a_only: int  # b in McNemar's notation: A right, B wrong
    b_only: int
    p_value: float

    def verdict(self, alpha: float = 0.05) -> str:
        if self.n == 0:
            return "no common tasks"
        if self.p_value < alpha and self.a_only != self.b_only:
            winner, loser = (self.a, self.b) if self.a_only > self.b_only else (self.b, self.a)
            return f"{winner} beats {loser}"
        return "no significant difference"


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def mcnemar(a: str, a_tasks: dict[str, bool], b: str, b_tasks: dict[str, bool]) -> Paired:
    """The paired comparison of two runs over the tasks both have."""
    common = sorted(set(a_tasks) & set(b_tasks))
    a_only = sum(1 for t in common if a_tasks[t] and not b_tasks[t])
    b_only = sum(1 for t in common if b_tasks[t] and not a_tasks[t])
    return Paired(
        a=a,
        b=b,
        n=len(common),
        a_correct=sum(1 for t in common if a_tasks[t]),
        b_correct=sum(1 for t in common if b_tasks[t]),
        a_only=a_only,
        b_only=b_only,
        p_value=mcnemar_p(a_only, b_only),
    )
