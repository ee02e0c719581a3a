"""``puppet-engine replay AGENT --from T1 --to T2``: exact and what-if replays from the command line.

Exit codes: 0 when every decision is the same, 3 when some differ (a regression check can
fail on it), 1 on an error (nothing recorded, a bad time or agent file).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from puppet_engine.errors import PuppetError
from puppet_engine.observability.logging import configure_logging
from puppet_engine.persona import AgentConfig, load_agent_file
from puppet_engine.replay import service
from puppet_engine.replay.report import EventReplay, ReplayReport
from puppet_engine.settings import Settings, load_settings
from puppet_engine.storage import Database

DIFFERENCES_EXIT = 3
console = Console(stderr=True)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _said(side: dict) -> str:
    texts = [" / ".join(a["payload"].get("parts", [])) or a["payload"].get("text") or a["kind"]
             for a in side["actions"]]
    said = "; ".join(f"{a['kind']}: {t}" for a, t in zip(side["actions"], texts, strict=True))
    return said or f"(nothing: {side['verdict'] or 'no action'})"


def _print(report: ReplayReport) -> None:
    d = report.to_dict()
    llm = d["llm"]
    typer.echo(f"{report.agent_id}: {d['events']} events replayed from {_when(report.since)} to {_when(report.until)} "
               f"({d['virtual_hours']} virtual hours in {d['wall_seconds']} s); LLM {llm['mode']}: "
               f"{llm['recorded']} recorded answers, {llm['generated']} written now, "
               f"{llm['changed_requests']} prompts changed")
    if report.not_replayed:
        typer.echo("not replayed: " + ", ".join(f"{n} {t}" for t, n in sorted(report.not_replayed.items())))
    rows: list[EventReplay] = [e for e in report.events if e.then.actions or e.now.actions] if report.what_if \
        else report.differences
    if rows:
        table = Table(title="side by side" if report.what_if else "differences")
        for column in ("time", "event", "then", "now"):
            table.add_column(column, overflow="fold")
        for e in rows:
            table.add_row(_when(e.run.started_at), e.run.event.type, _said(e.then.to_dict()), _said(e.now.to_dict()))
        Console(width=200).print(table)
    for e in report.differences:  # one greppable line per difference
        typer.echo(f"DIFF {_when(e.run.started_at)} {e.run.event.type} {e.run.event.key}: {e.difference}")
    typer.echo(f"{len(report.differences)} decision(s) differ")


def replay_command(
    agent: Annotated[str, typer.Argument(help="the agent's id")],
    since: Annotated[str, typer.Option("--from", help="start: 2026-12-01T03:12 (UTC) or epoch seconds")],
    until: Annotated[str, typer.Option("--to", help="end: same formats")],
    agent_file: Annotated[Path | None, typer.Option(help="what-if: replay with this changed agent file")] = None,
    llm: Annotated[str | None, typer.Option(help="live, recorded or sandbox (default: the recorded answers)")] = None,
    max_calls: Annotated[int | None, typer.Option(help="with --llm live: at most this many provider calls")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="with --llm live: run without asking about the cost")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as one JSON object")] = False,
    database_url: Annotated[str | None, typer.Option(help="default: DATABASE_URL")] = None,
) -> None:
    """Re-run an agent's recorded stretch through the current code (or a changed persona), sending
    nothing anywhere, and report every decision that differs from what happened."""
    try:
        settings = load_settings(**({"database_url": database_url} if database_url else {}))
        configure_logging("WARNING", settings.log_format, settings.secret_values())  # the report is the output
        changed = load_agent_file(agent_file).config if agent_file is not None else None
        t1, t2 = service.parse_time(since, "--from"), service.parse_time(until, "--to")
        report = asyncio.run(_run(settings, agent, t1, t2, changed, llm, max_calls, yes))
    except PuppetError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if report is None:
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        _print(report)
    if report.differences:
        raise typer.Exit(DIFFERENCES_EXIT)


async def _run(settings: Settings, agent: str, t1: float, t2: float, changed: AgentConfig | None, llm: str | None,
               max_calls: int | None, yes: bool) -> ReplayReport | None:
    db = Database(settings.database_url)
    try:
        plan = await service.plan(db, settings, agent, t1, t2, changed=changed, llm=llm, max_calls=max_calls)
        if plan.request.llm == "live":
            console.print(f"--llm live: up to {plan.llm_calls} provider calls, estimated "
                          f"${plan.estimated_cost_usd:.4f}", highlight=False)
            if not yes and not typer.confirm("run it?", err=True):
                return None
        return await service.run(db, settings, plan)
    finally:
        await db.close()
