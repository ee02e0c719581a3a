"""An agent's timeline between two moments: what it received, decided, sent, and why it skipped.

:func:`timeline` merges, in time order, the mentions it received (``mentions``), the events it
handled and their results (``events``), the side effects it sent (``actions``) and the facts
of its state changes (mood, schedule, relationships, config, lifecycle, trades, skips).
:func:`render` prints one line per entry, in UTC.
"""

from __future__ import annotations

import json
from typing import Any

from puppet_engine.history.times import show_time
from puppet_engine.storage import Database
from puppet_engine.storage.repos import facts as fact_rows

LIMIT = 2000  # entries of each source in one timeline
_QUIET_STATE = {"poll_seq", "last_poll_at", "idle_polls", "since_id", "post_seq", "trade_seq", "last_post_at",
                "last_interact_at", "last_trade_check_at", "post_skip_streak", "post_skip_reasons", "x_account"}
_QUIET_EVENTS = {"mentions.poll", "mood.drift"}  # shown only when they did something worth a line


async def timeline(db: Database, agent_id: str, start: float, end: float) -> list[dict[str, Any]]:
    """The agent's entries in ``[start, end]``, oldest first: ``{"at", "what", "text", "detail"}``
    with ``what`` one of received, decided, sent, skipped, changed."""
    entries: list[tuple[float, int, dict[str, Any]]] = []
    for m in await fact_rows.mentions_between(db, agent_id, start, end, LIMIT):
        decision = m["decision"] or "undecided"
        entries.append((m["received_at"], 0, _entry(m["received_at"], "received",
                        f"@{m['author_username'] or '?'}: {_short(m['text'])}  → {decision}",
                        {"tweet_id": m["tweet_id"], "decision": decision, "reply_tweet_id": m["reply_tweet_id"]})))
    for e in await fact_rows.events_between(db, agent_id, start, end, LIMIT):
        line = _event_line(e)
        if line is not None:
            at = e["finished_at"] if e["finished_at"] is not None else e["due_at"]
            entries.append((at, 1, _entry(at, "decided", line, {"event_id": e["id"], "type": e["type"],
                                                                 "status": e["status"], "result": e["result"]})))
    for a in await fact_rows.actions_between(db, agent_id, start, end, LIMIT):
        entries.append((a["created_at"], 2, _entry(a["created_at"], "sent", _action_line(a),
                                                   {"action_id": a["id"], "kind": a["kind"], "status": a["status"],
                                                    "external_id": a["external_id"], "event_id": a["event_id"]})))
    for f in await fact_rows.of_agent(db, agent_id, since=start, until=end, limit=LIMIT):
        line = _fact_line(f)
        if line is not None:
            what = "skipped" if f["kind"] == "skip" else "changed"
            entries.append((f["at"], 3, _entry(f["at"], what, line, {"kind": f["kind"], "cause": f["cause"],
                                                                     "payload": f["payload"]})))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in entries]


def render(entries: list[dict[str, Any]]) -> str:
    """One readable line per entry: ``2026-12-01T03:12:00Z  sent      post "…" (done, 1234)``."""
    return "\n".join(f"{e['at']}  {e['what']:<8}  {e['text']}" for e in entries)


def _entry(at: float, what: str, text: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"at": show_time(at), "what": what, "text": text, "detail": detail}


def _short(text: Any, width: int = 90) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _event_line(e: dict[str, Any]) -> str | None:
    result = e["result"] or {}
    if e["status"] == "failed":
        return f"{e['type']} failed: {_short(e['error'])}"
    if e["status"] != "done":
        return f"{e['type']} {e['status']}" if e["type"] not in _QUIET_EVENTS else None
    if "skipped" in result or "rejected" in result:
        return None  # the skip fact says it, with its reason
    if e["type"] in _QUIET_EVENTS:
        return None  # a poll's mentions are "received" lines, a mood drift a "changed" one
    if "decision" in result:  # a mention: what the agent decided to do about it
        flags = ", ".join(map(str, result.get("flags") or []))
        return f"{e['type']} → {result['decision']}" + (f" (flags: {flags})" if flags else "")
    parts = result.get("parts") or result.get("reply") or []
    wrote = f" → wrote {len(parts)} part{'s' if len(parts) != 1 else ''}" if parts else ""
    summary = ", ".join(f"{k}={_short(json.dumps(v, default=str), 60)}" for k, v in result.items()
                        if k not in ("parts", "text", "reply"))
    return f"{e['type']}{wrote}" + (f"  ({summary})" if summary else "")


def _action_line(a: dict[str, Any]) -> str:
    p = a["payload"] or {}
    if a["kind"] == "trade":
        what = f"{p.get('amount', p.get('amount_sol', '?'))} {p.get('input', '?')} → {p.get('output', '?')}"
    else:
        parts = p.get("parts") or ([p["text"]] if p.get("text") else [])
        target = p.get("in_reply_to") or p.get("tweet_id") or p.get("quote_tweet_id")
        what = (f'"{_short(" / ".join(map(str, parts)))}"' if parts else "") + (f" to {target}" if target else "")
    outcome = a["status"] + (f", {a['external_id']}" if a["external_id"] else "") + (
        f", {_short(a['error'], 60)}" if a["error"] else "")
    return f"{a['kind']} {what.strip()} ({outcome})"


def _fact_line(f: dict[str, Any]) -> str | None:
    kind, p = f["kind"], f["payload"] or {}
    if kind == "skip":
        return f"{p.get('event')}: {_short(p.get('reason'), 140)}"
    if kind == "state":
        shown = []
        if isinstance(p.get("mood"), dict):
            m = p["mood"]
            shown.append("mood " + " ".join(f"{k[0]}={v:+.2f}" for k, v in m.items() if isinstance(v, int | float)))
        for key in ("next_post_at", "next_trade_check_at"):
            if p.get(key) is not None:
                shown.append(f"{key.replace('_at', '')} {show_time(p[key])}")
        shown += [f"{k}={_short(json.dumps(v, default=str), 40)}" for k, v in p.items()
                  if k not in _QUIET_STATE and k not in ("mood", "next_post_at", "next_trade_check_at")]
        return "; ".join(shown) or None
    if kind == "relationship":
        if p.get("deleted") or p.get("cleared"):
            return f"relationship {p.get('other', '(all)')} removed"
        return (f"relationship {p['other']}: sentiment {p['sentiment']:+.2f}, familiarity {p['familiarity']:.2f}, "
                f"trust {p['trust']:.2f} ({p['interactions']} interactions)")
    if kind == "config":
        return f"config version {p.get('version')} ({p.get('source')}{', by ' + str(p['by']) if p.get('by') else ''})"
    if kind == "lifecycle":
        return f"{p.get('status')}{' by ' + str(p['by']) if p.get('by') else ''}"
    if kind == "trade":
        return (f"trade {p.get('status')}: {p.get('input_mint', '?')[:6]}… → {p.get('output_mint', '?')[:6]}…"
                + (f" rule {p['rule']}" if p.get("rule") else "") + (f" ({_short(p['error'], 60)})" if p.get("error")
                                                                      else ""))
    if kind == "balances":
        return f"balances: {p.get('sol', 0):.4f} SOL" + "".join(
            f", {amount:g} {mint[:6]}…" for mint, amount in (p.get("tokens") or {}).items())
    if kind == "memory_added":
        return f"remembered ({p.get('kind')})"
    if kind == "memory_forgotten":
        return f"forgot ({p.get('kind')})"
    return None
