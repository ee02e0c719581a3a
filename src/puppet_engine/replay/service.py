"""A replay as the CLI and the API ask for it: from settings, an agent id, a time range and
maybe a changed agent file, to a :class:`~puppet_engine.replay.report.ReplayReport`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from puppet_engine.errors import ConfigError
from puppet_engine.llm.base import LLMProvider
from puppet_engine.llm.registry import build_provider
from puppet_engine.persona import AgentConfig, parse_agent_config
from puppet_engine.replay.clients import LLMMode, estimated_live_cost
from puppet_engine.replay.inputs import load_stretch
from puppet_engine.replay.report import ReplayReport
from puppet_engine.replay.runner import Progress, ReplayRequest, replay
from puppet_engine.settings import Settings
from puppet_engine.storage import Database
from puppet_engine.storage.repos import recordings
from puppet_engine.storage.repos.recordings import RecordCodec

LLM_MODES = ("live", "recorded", "sandbox")
MASKED = "***"


def parse_time(value: str | float, name: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise): ``2026-12-01T03:12``."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a time (use 2026-12-01T03:12 or epoch seconds)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def codec_for(settings: Settings) -> RecordCodec:
    key = settings.memory_encryption_key
    return RecordCodec(key.get_secret_value() if key is not None else None)


def _unmasked(data: Any) -> Any:
    """The stored config with its masked secrets dropped (a replay needs none of them)."""
    if isinstance(data, dict):
        return {k: _unmasked(v) for k, v in data.items() if v != MASKED}
    if isinstance(data, list):
        return [_unmasked(v) for v in data]
    return data


async def current_config(db: Database, agent_id: str) -> AgentConfig:
    stored = await recordings.stored_config(db, agent_id)
    if stored is None:
        raise ConfigError(f"replay: no agent {agent_id!r} in this database (give its file with --agent-file)")
    return parse_agent_config(_unmasked(stored), source=f"the stored config of {agent_id!r}")


@dataclass
class ReplayPlan:
    """A replay ready to run: what it replays with, and for ``live`` what it may cost."""

    request: ReplayRequest
    llm_calls: int
    estimated_cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {"agent_id": r.agent_id, "from": r.since, "to": r.until, "what_if": r.what_if, "llm": r.llm,
                "max_calls": r.max_calls, "recorded_llm_calls": self.llm_calls,
                "estimated_cost_usd": round(self.estimated_cost_usd, 4)}


async def plan(db: Database, settings: Settings, agent_id: str, since: float, until: float, *,
               changed: AgentConfig | None = None, llm: str | None = None, max_calls: int | None = None,
               live: LLMProvider | None = None) -> ReplayPlan:
    """Check the request and price it. ``changed``: a what-if with that persona; ``llm``: live,
    recorded or sandbox (default: the recorded answers, in order for an exact replay)."""
    if until <= since:
        raise ConfigError(f"replay: --to ({until:.0f}) must be after --from ({since:.0f})")
    if llm is not None and llm not in LLM_MODES:
        raise ConfigError(f"replay: --llm {llm!r}: expected one of {', '.join(LLM_MODES)}")
    if max_calls is not None and max_calls < 0:
        raise ConfigError("replay: --max-calls must be 0 or more")
    if changed is not None and changed.id != agent_id:
        raise ConfigError(f"replay: the agent file is for {changed.id!r}, not {agent_id!r}")
    config = changed or await current_config(db, agent_id)
    mode: LLMMode = "exact" if llm is None and changed is None else (llm or "recorded")  # type: ignore[assignment]
    runs = await load_stretch(db, codec_for(settings), agent_id, since, until)
    calls = [c for r in runs for c in r.llm]
    n, cost = 0, 0.0
    if mode == "live":
        live = live or build_provider(config.llm_provider, settings)
        model = config.llm_config.model or {"grok": settings.grok_model, "openai-compatible":
                                            settings.openai_compatible_model}.get(config.llm_provider,
                                                                                  settings.openai_model)
        n, cost = estimated_live_cost(calls[:max_calls] if max_calls is not None else calls, model)
    request = ReplayRequest(agent_id, since, until, config, what_if=changed is not None or llm is not None,
                            llm=mode, live=live, max_calls=max_calls)
    return ReplayPlan(request, n or len(calls), cost)


async def run(db: Database, settings: Settings, the_plan: ReplayPlan, progress: Progress | None = None) -> ReplayReport:
    try:
        return await replay(db, codec_for(settings), the_plan.request, progress)
    finally:
        if the_plan.request.live is not None:
            await the_plan.request.live.aclose()
