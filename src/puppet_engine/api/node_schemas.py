"""Response models of ``GET /nodes``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NodeOut(BaseModel):
    """One ``puppet-engine run`` process on this database."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "host-1a2b3c4d", "role": "worker", "host": "host", "pid": 4242, "version": "0.1.0",
        "started_at": 1767225600.0, "last_seen": 1767229200.0, "stopped_at": None, "status": "live",
        "agents": 3, "this": False}]})
    id: str = Field(description="the node id used in leases, GET /agents owner and commands' applied_by")
    role: Literal["all", "worker", "api"]
    host: str
    pid: int
    version: str
    started_at: float
    last_seen: float = Field(description="its last heartbeat (every 2 s)")
    stopped_at: float | None = None
    status: Literal["live", "gone", "stopped"] = Field(
        description="live; gone: no heartbeat for 10 s (died or lost the database); stopped: cleanly")
    agents: int = Field(description="agents it runs now (live leases)")
    this: bool = Field(False, description="the node that answered")
