"""``/nodes``: the processes sharing this database, their roles and whether they are alive.

Every ``puppet-engine run`` process heartbeats in the ``nodes`` table every two seconds; one
unseen for ``storage/repos/nodes.STALE_SECONDS`` is ``gone``, one that stopped cleanly ``stopped``.
``agents`` is how many agents the node holds a live lease on (with no leases: one process, all).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from puppet_engine.api.auth import require
from puppet_engine.api.deps import Ctx
from puppet_engine.api.node_schemas import NodeOut
from puppet_engine.api.schemas import responses
from puppet_engine.storage.repos import nodes as node_rows

router = APIRouter(prefix="/nodes", tags=["system"])


@router.get("", response_model=list[NodeOut], dependencies=[Depends(require("read"))], responses=responses(),
            summary="Every node on this database: role, host, pid, version, heartbeat, live or gone")
async def list_nodes(ctx: Ctx) -> list[dict[str, Any]]:
    engine = ctx.engine
    rows = await node_rows.listing(ctx.db, engine.clock.now())
    for row in rows:
        row["this"] = row["id"] == engine.owner
        if row["id"] == engine.owner and engine.role != "api" and not row["agents"]:
            row["agents"] = len(await engine.owners(list(engine.manager.running)))  # no leases: all of them
    return rows
