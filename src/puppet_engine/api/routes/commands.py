"""``/commands/{id}``: the outcome of an operator command (start, stop, restart, config, restart_all).

Any node answers: the command is a row of the shared database. ``?wait=5`` holds the answer
until the command is decided (no longer ``pending`` or ``applying``) (or the wait is over), so a caller behind a load
balancer can send *Stop* to any node and learn when the agent's owner applied it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from puppet_engine.api.auth import require
from puppet_engine.api.deps import Ctx
from puppet_engine.api.errors import not_found
from puppet_engine.api.schemas import CommandOut, responses
from puppet_engine.storage.repos.commands import OPEN

router = APIRouter(prefix="/commands", tags=["commands"])
WAIT_STEP_SECONDS = 0.1  # how often a waiting request looks again (real seconds: processes are real)


@router.get("/{command_id}", response_model=CommandOut, dependencies=[Depends(require("read"))],
            responses=responses(404, 422), summary="An operator command and its outcome (pending, applied, failed)")
async def get_command(ctx: Ctx, command_id: Annotated[int, Path(ge=1, le=2**62)],
                      wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait while pending or applying")] = 0,
                      ) -> CommandOut:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        row = await ctx.engine.command(command_id)
        if row is None:
            raise not_found("command", str(command_id))
        if row["state"] not in OPEN or loop.time() >= deadline:
            return CommandOut(**row)
        await asyncio.sleep(WAIT_STEP_SECONDS)
