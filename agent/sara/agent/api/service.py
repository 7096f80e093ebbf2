"""The per-app service object the routes work with (built by ``create_app``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import HTTPException

from sara.agent.api.auth import KeyRing
from sara.agent.api.limits import Gate, RateLimit
from sara.agent.api.runner import Runner
from sara.agent.loop import Loop
from sara.agent.metrics import AgentMetrics
from sara.agent.settings import AgentSettings, ParseMode, WriteMode

AUTH_DISABLED_WARNING = (
    "authentication is disabled (--no-auth): anyone who can reach this port can run tasks"
)


@dataclass
class AgentService:
    """What the routes work with (one per app); ``runner`` exists once the store is open."""

    settings: AgentSettings
    loop: Loop
    metrics: AgentMetrics
    keys: KeyRing
    gate: Gate  # running tasks: in all, and per key
    streams: Gate = field(default_factory=lambda: Gate(0))  # open SSE streams per key
    task_rate: RateLimit = field(default_factory=lambda: RateLimit(0, 1))
    decision_rate: RateLimit = field(default_factory=lambda: RateLimit(0, 1))
    _runner: Runner | None = None

    @property
    def no_auth(self) -> bool:
        return self.settings.no_auth

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            raise HTTPException(503, "the agent is starting (run store not open yet)")
        return self._runner

    def loop_for(self, options: dict[str, Any]) -> Loop:
        """The loop for one task's stored options, sharing the same clients and sinks."""
        base = self.loop.config
        config = replace(
            base,
            max_rounds=int(options.get("max_rounds") or base.max_rounds),
            write_mode=WriteMode(options.get("write_mode") or base.write_mode),
            parse_mode=ParseMode(options.get("parse_mode") or base.parse_mode),
        )
        if config == base:
            return self.loop
        return Loop(
            config,
            model=self.loop.model,
            fhir=self.loop.fhir,
            audit=self.loop.audit,
            metrics=self.metrics,
        )
