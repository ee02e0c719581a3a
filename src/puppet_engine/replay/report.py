"""What a replay found: each event's decision then and now, and the differences in words."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from puppet_engine.replay.inputs import RecordedEvent

ACTION_KINDS = {"post": "post", "thread": "post", "reply": "reply", "quote": "quote", "like": "like",
                "retweet": "retweet", "trade": "trade"}


def _plain(value: Any) -> Any:
    """Through JSON, as recorded: tuples become lists, so then and now compare alike."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


@dataclass
class Decision:
    """What one run of an event decided: its result (or error), side effects and follow-up keys."""

    result: dict[str, Any] | None
    actions: list[dict[str, Any]]
    follow_ups: list[str]
    error: str | None = None
    risk: list[list[dict[str, Any]] | None] = field(default_factory=list)  # per trade action (replays): the rules' checks

    @classmethod
    def of(cls, outcome: dict[str, Any] | None, error: dict[str, Any] | None) -> Decision:
        if outcome is None:
            return cls(None, [], [], f"{(error or {}).get('type', 'Error')}: {(error or {}).get('message', '')}")
        outcome = _plain(outcome)
        return cls(outcome.get("result"), [{"kind": a["kind"], "key": a["key"], "payload": a["payload"]}
                                           for a in outcome.get("actions", [])],
                   [f"{f['type']}:{f['key']}" for f in outcome.get("follow_ups", [])])

    def verdict(self) -> str | None:
        """Why nothing (or something else) was done: a validation or risk verdict, a skip, an error."""
        if self.error:
            return self.error
        failed = [c for checks in self.risk if checks for c in checks if not c["passed"]]
        if failed:
            return f"refused by risk rule {failed[0]['rule']}: {failed[0]['detail']}"
        r = self.result or {}
        for key in ("skipped", "rejected", "reason", "refused", "error"):
            if r.get(key):
                return key + ": " + (r[key] if isinstance(r[key], str) else "; ".join(map(str, r[key])))
        if isinstance(r.get("decision"), str) and r["decision"] != "reply":
            return str(r["decision"])
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "actions": self.actions, "verdict": self.verdict(), "error": self.error,
                **({"risk": self.risk} if self.risk else {})}


def _texts(actions: list[dict[str, Any]]) -> list[str]:
    return [" / ".join(a["payload"].get("parts", [])) or str(a["payload"].get("text", a["payload"]))
            for a in actions]


def describe(event_type: str, then: Decision, now: Decision) -> str | None:
    """The difference in words (``None`` when the decisions are the same)."""
    same = (then.result, then.actions, then.follow_ups, then.error) == (now.result, now.actions, now.follow_ups,
                                                                          now.error)
    if same and then.verdict() == now.verdict():
        return None
    kinds_then = sorted({ACTION_KINDS.get(a["kind"], a["kind"]) for a in then.actions})
    kinds_now = sorted({ACTION_KINDS.get(a["kind"], a["kind"]) for a in now.actions})
    if then.actions and not now.actions:
        return f"{', '.join(kinds_then)} sent then, not now ({now.verdict() or 'no action'})"
    if now.actions and not then.actions:
        return f"{', '.join(kinds_now)} now, not sent then ({then.verdict() or 'no action'})"
    if kinds_then != kinds_now:
        return f"{', '.join(kinds_then)} then, {', '.join(kinds_now)} now"
    if _texts(then.actions) != _texts(now.actions):
        return f"a different {', '.join(kinds_now)}: {_texts(then.actions)} then, {_texts(now.actions)} now"
    if then.verdict() != now.verdict() and (then.risk or now.risk):
        return f"{', '.join(kinds_now)} then ({then.verdict() or 'allowed by the risk rules'}), now " \
               f"{now.verdict() or 'allowed by the risk rules'}"
    r_then, r_now = then.result or {}, now.result or {}
    if r_then.get("decision") != r_now.get("decision"):
        return f"decision {r_then.get('decision')!r} then, {r_now.get('decision')!r} now"
    if then.error != now.error:
        return f"failed then ({then.error}), now ({now.error})"
    if then.follow_ups != now.follow_ups:
        return f"next events {then.follow_ups} then, {now.follow_ups} now"
    return f"a different result: {then.verdict() or then.result} then, {now.verdict() or now.result} now"


@dataclass
class EventReplay:
    """One event, then and now."""

    run: RecordedEvent
    then: Decision
    now: Decision
    difference: str | None

    def to_dict(self) -> dict[str, Any]:
        e = self.run.event
        return {"at": self.run.started_at, "event_id": e.id, "type": e.type, "key": e.key,
                "then": self.then.to_dict(), "now": self.now.to_dict(), "difference": self.difference}


@dataclass
class ReplayReport:
    """A replay's result. ``differences`` lists the events decided otherwise now; ``side_by_side``
    the events that sent (or would now send) something, with both decisions and their verdicts."""

    agent_id: str
    since: float
    until: float
    what_if: bool
    llm_mode: str
    events: list[EventReplay] = field(default_factory=list)
    llm: dict[str, Any] = field(default_factory=dict)
    missing_reads: int = 0
    not_replayed: dict[str, int] = field(default_factory=dict)  # event type → runs left out
    wall_seconds: float = 0.0

    @property
    def differences(self) -> list[EventReplay]:
        return [e for e in self.events if e.difference is not None]

    @property
    def virtual_hours(self) -> float:
        """Hours between the first and the last event replayed."""
        if not self.events:
            return 0.0
        return (self.events[-1].run.started_at - self.events[0].run.started_at) / 3600

    @property
    def virtual_hours_per_second(self) -> float:
        return self.virtual_hours / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        sent = [e for e in self.events if e.then.actions or e.now.actions]
        return {"agent_id": self.agent_id, "from": self.since, "to": self.until, "what_if": self.what_if,
                "llm": {"mode": self.llm_mode, **self.llm}, "events": len(self.events),
                "differences": [e.to_dict() for e in self.differences],
                "side_by_side": [e.to_dict() for e in sent], "missing_reads": self.missing_reads,
                "not_replayed": self.not_replayed,
                "wall_seconds": round(self.wall_seconds, 3), "virtual_hours": round(self.virtual_hours, 2),
                "virtual_hours_per_second": round(self.virtual_hours_per_second, 1)}
