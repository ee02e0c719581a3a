"""Replays run in the background of an API process, with progress (``POST /agents/{id}/replay``).

Jobs live in the process that started them (a replay reads the shared database and writes
nothing to it, so any process can run one); the last :data:`KEEP` finished ones are kept
for ``GET /replays/{id}``. At most :data:`RUNNING` run at once: a replay is CPU work in the
API's event loop, and an operator needs one or two, not a queue.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from puppet_engine.errors import PuppetError
from puppet_engine.replay.report import ReplayReport
from puppet_engine.replay.runner import Progress

log = structlog.get_logger("puppet_engine.replay.jobs")

KEEP = 50
RUNNING = 2


@dataclass
class ReplayJob:
    id: str
    agent_id: str
    plan: dict[str, Any]
    state: Literal["running", "done", "failed"] = "running"
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "agent_id": self.agent_id, "state": self.state, "progress": round(self.progress, 3),
                "plan": self.plan, "created_at": self.created_at, "finished_at": self.finished_at,
                "report": self.report, "error": self.error}


class ReplayJobs:
    """The jobs of one process."""

    def __init__(self) -> None:
        self.jobs: OrderedDict[str, ReplayJob] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state == "running")

    def start(self, agent_id: str, plan: dict[str, Any], work: Callable[[Progress], Awaitable[ReplayReport]]) -> ReplayJob:
        """Run ``work`` (given a progress callback) as a new job; ``RuntimeError`` when too many run."""
        if self.running >= RUNNING:
            raise RuntimeError(f"{RUNNING} replays are running already; wait for one to finish")
        job = ReplayJob(uuid.uuid4().hex[:16], agent_id, plan)
        self.jobs[job.id] = job
        self._tasks[job.id] = asyncio.create_task(self._run(job, work), name=f"replay:{job.id}")
        self._forget_old()
        return job

    async def _run(self, job: ReplayJob, work: Callable[[Progress], Awaitable[ReplayReport]]) -> None:
        def progress(fraction: float) -> None:
            job.progress = fraction

        try:
            job.report = (await work(progress)).to_dict()
            job.state, job.progress = "done", 1.0
        except PuppetError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # a bug: said in the job and logged, never lost
            log.exception("replay_failed", job=job.id, agent_id=job.agent_id)
            job.state, job.error = "failed", f"{exc.__class__.__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            self._tasks.pop(job.id, None)

    def get(self, job_id: str) -> ReplayJob | None:
        return self.jobs.get(job_id)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.state != "running"]
        for job in finished[: max(0, len(finished) - KEEP)]:
            self.jobs.pop(job.id, None)

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
