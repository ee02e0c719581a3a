"""What an agent remembers of what it did: every post, reply and trade becomes a memory."""

from __future__ import annotations

from puppet_engine.agents.runtime import AgentRuntime
from puppet_engine.events import Action, ActionOutcome
from puppet_engine.memory.base import MemoryKind

_KIND: dict[str, MemoryKind] = {"post": "post", "thread": "post", "quote": "post", "reply": "reply", "trade": "trade"}


async def remember_action(agent: AgentRuntime, action: Action, outcome: ActionOutcome, now: float) -> None:
    kind = _KIND.get(action.kind)
    if kind is None or agent.memory is None:
        return
    from puppet_engine.memory.base import Memory

    p = action.payload
    if action.kind == "thread":
        content = " ".join(p.get("parts", []))
    elif action.kind == "trade":
        content = p.get("summary") or f"traded {p.get('amount')} {p.get('input')} for {p.get('output')}"
    else:
        content = p.get("text", "")
    if not content:
        return
    metadata = {"action_key": action.key, "external_id": outcome.external_id}
    if p.get("reply_to"):
        metadata["reply_to"] = p["reply_to"]
    await agent.memory.add_memory(agent.id, Memory(agent_id=agent.id, kind=kind, content=content,
                                                   importance=0.6 if kind == "trade" else 0.4,
                                                   created_at=now, metadata=metadata))
