"""``puppet-engine history AGENT``: an agent's state at a moment (``--at``), or its timeline
(``--from``/``--to``), from the database the engine writes; ``--json`` for tools."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import typer

from puppet_engine.errors import ConfigError, PuppetError
from puppet_engine.history import parse_time, render, show_time, state_at, timeline
from puppet_engine.memory import build_memory_store
from puppet_engine.settings import load_settings
from puppet_engine.storage import Database


def history(
    agent: Annotated[str, typer.Argument(help="the agent's id")],
    at: Annotated[str | None, typer.Option("--at", help="its state at this moment (ISO 8601, UTC by default)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="timeline start (ISO 8601)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="timeline end (ISO 8601); default: now")] = None,
    query: Annotated[str | None, typer.Option("--query", help="with --at: the memories a search for this "
                                                                "would have found then")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50, help="memories found at most")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for tools")] = False,
    database_url: Annotated[str | None, typer.Option(help="default: DATABASE_URL")] = None,
) -> None:
    """What an agent felt, knew and planned at a moment, or what it did between two (times in UTC)."""
    try:
        if (at is None) == (start is None):
            raise ConfigError("give either --at TIME (its state then) or --from TIME [--to TIME] (a timeline)")
        if at is None and query is not None:
            raise ConfigError("--query goes with --at")
        out = asyncio.run(_history(agent, at, start, end, query, limit, database_url))
    except PuppetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
    elif at is not None:
        typer.echo(describe_state(out))
    else:
        typer.echo(f"{agent} from {out['start']} to {out['end']} ({len(out['entries'])} entries)")
        typer.echo(render(out["entries"]) or "(nothing happened)")


async def _history(agent: str, at: str | None, start: str | None, end: str | None, query: str | None,
                   limit: int, database_url: str | None) -> dict[str, Any]:
    settings = load_settings(**({"database_url": database_url} if database_url else {}))
    db = Database(settings.database_url)
    store = None
    try:
        await db.migrate()
        if at is not None:
            moment = parse_time(at, name="--at")
            if query:
                store = build_memory_store(settings, db)
            return await state_at(db, agent, moment, store=store, query=query, limit=limit)
        assert start is not None
        first = parse_time(start, name="--from")
        last = parse_time(end, name="--to") if end else time.time()
        if last < first:
            raise ConfigError("--to is before --from")
        return {"agent_id": agent, "start": show_time(first), "end": show_time(last),
                "entries": await timeline(db, agent, first, last)}
    finally:
        if store is not None:
            await store.close()
        await db.close()


def describe_state(s: dict[str, Any]) -> str:
    """The state-at answer as readable lines."""
    if not s["known"]:
        return f"{s['agent_id']} at {s['at']}: nothing recorded that early (or no such agent)"
    lines = [f"{s['agent_id']} at {s['at']}"]
    if s["lifecycle"]:
        lc = s["lifecycle"]
        lines.append(f"  lifecycle   {lc['status']}" + (f" by {lc['by']}" if lc.get("by") else "") + f" ({lc['at']})")
    if s["config"]:
        c = s["config"]
        lines.append(f"  config      version {c['version']} ({c.get('source')}"
                     + (f", by {c['by']}" if c.get("by") else "") + f", since {c['at']})")
    if s["mood"]:
        m = s["mood"]
        lines.append(f"  mood        {m['label']} (valence {m['valence']:+.2f}, arousal {m['arousal']:+.2f}, "
                     f"dominance {m['dominance']:+.2f})")
    planned = [f"{k.replace('_at', '').replace('_', ' ')} {v}" for k, v in s["schedule"].items() if v]
    lines.append("  schedule    " + ("; ".join(planned) or "nothing planned"))
    if s["balances"]:
        b = s["balances"]
        tokens = ", ".join(f"{amount:g} {mint[:8]}…" for mint, amount in (b.get("tokens") or {}).items())
        lines.append(f"  balances    {b['sol']:.4f} SOL" + (f", {tokens}" if tokens else "") + f" (after trade, {b['at']})")
    for t in s["trades"][-3:]:
        lines.append(f"  trade       {t.get('status')} {t.get('key')}" + (f" rule {t['rule']}" if t.get("rule") else "")
                     + f" ({t['at']})")
    rels = s["relationships"]
    lines.append(f"  relations   {len(rels)}" + (": " + "; ".join(
        f"{r['other']} sentiment {r['sentiment']:+.2f} familiarity {r['familiarity']:.2f} trust {r['trust']:.2f}"
        for r in rels[:5]) if rels else ""))
    mem = s["memories"]
    lines.append(f"  memories    {mem['count']}")
    for hit in mem.get("found") or []:
        gone = f", forgotten {hit['forgotten_at']}" if hit.get("forgotten_at") else ""
        lines.append(f"    {hit['score']:.3f} [{hit['kind']}] {hit['content'][:100]}{gone}")
    for skip in s["skips"][-3:]:
        lines.append(f"  skipped     {skip['event']}: {skip['reason'][:100]} ({skip['at']})")
    lines.append("  events before:")
    lines += [f"    {e['at']}  {e['type']} {e['status']}  {_result(e)}" for e in s["events_before"]] or ["    none"]
    lines.append("  events after:")
    lines += [f"    {e['at']}  {e['type']} {e['status']}  {_result(e)}" for e in s["events_after"]] or ["    none"]
    return "\n".join(lines)


def _result(event: dict[str, Any]) -> str:
    text = json.dumps(event["result"] or event["error"] or {}, default=str)
    return text if len(text) <= 100 else text[:99] + "…"
