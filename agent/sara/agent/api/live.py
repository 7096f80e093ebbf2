"""The events of a task segment running on this replica, held for its live followers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sara.agent.events import TaskResult


@dataclass
class Frame:
    """One event for a follower: already-encoded JSON (stored) or a dict (live)."""

    seq: int
    kind: str
    text: str


class Live:
    """The events of a segment running on this replica, for its followers."""

    def __init__(self, task_id: str, first_seq: int) -> None:
        self.task_id = task_id
        self.first_seq = first_seq
        self.frames: list[Frame] = []
        self.done = False
        self.changed = asyncio.Event()
        self.stop: tuple[str, str] | None = None  # (status, reason) when cancelled on purpose
        self.job: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()
        self.written: asyncio.Future[None] | None = None  # a signed write has its answer
        self.result: TaskResult | None = None  # the whole result (the store's is bounded)

    def publish(self, frame: Frame) -> None:
        self.frames.append(frame)
        self._wake()

    def finish(self) -> None:
        self.done = True
        self.ended.set()
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def since(self, last: int) -> list[Frame]:
        return self.frames[max(0, last + 1 - self.first_seq) :]
