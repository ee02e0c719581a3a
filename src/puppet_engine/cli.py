"""``puppet-engine``: run, sandbox, simulate, agents, memory, db."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import make_url

from puppet_engine.agents.legacy import LegacyFormatError
from puppet_engine.agents.legacy import import_legacy as run_import
from puppet_engine.api.app import close_streams, create_app
from puppet_engine.api.auth import KEY_FILE
from puppet_engine.content.validation import length_warnings
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.errors import ConfigError, PuppetError
from puppet_engine.events import Event, records
from puppet_engine.history_cli import history
from puppet_engine.memory import Memory, build_memory_store
from puppet_engine.observability.logging import configure_logging
from puppet_engine.persona import (
    agent_json_schema,
    check_files,
    load_agent_file,
    load_agents_dir,
)
from puppet_engine.replay.command import replay_command
from puppet_engine.serving import KEEP_ALIVE_SECONDS, BackgroundServer, run_main
from puppet_engine.settings import load_settings
from puppet_engine.simulate import simulate as run_simulation
from puppet_engine.storage import Database
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.wiring import build_sandbox

app = typer.Typer(help="Puppet Engine: autonomous AI agents on X and Solana.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
agents_app = typer.Typer(help="Validate and inspect agent files.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(db_app, name="db")
memory_app = typer.Typer(help="Agent memory: add, search, list, reindex.", no_args_is_help=True)
app.add_typer(memory_app, name="memory")
app.command("history")(history)  # puppet_engine.history_cli: state at a moment, timeline
app.command("replay")(replay_command)

console = Console(stderr=True)
AgentsDir = Annotated[Path, typer.Option("--agents", help="directory of agent JSON files")]


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
    raise typer.Exit(1)


def _settings(**overrides: object):
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def _setup_logging(settings) -> None:
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())


@app.command()
def run(
    agents: AgentsDir = Path("agents"),
    host: Annotated[str, typer.Option(help="API and dashboard host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API and dashboard port")] = 8000,
    sandbox_url: Annotated[str | None, typer.Option(help="use this running sandbox")] = None,
    database_url: Annotated[str | None, typer.Option(help="overrides DATABASE_URL")] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="the same as --role worker")] = False,
    role: Annotated[str, typer.Option(
        help="all: run agents and serve the API (default); worker: run agents, no API; "
             "api: serve the API and dashboard from the shared database, run no agent")] = "all",
) -> None:
    """Run every agent until interrupted (Ctrl-C or SIGTERM finishes in-flight work)."""

    try:
        if no_api and role == "api":
            raise ConfigError("--no-api and --role api contradict each other (an api node only serves the API)")
        role = "worker" if no_api and role == "all" else role
        settings = _settings(database_url=database_url, agents_dir=str(agents))
        _setup_logging(settings)
        engine = Engine(settings, EngineOptions(agents_dir=agents, sandbox_url=sandbox_url, role=role))
        run_main(_run(engine, host, port, serve_api=role != "worker"))  # on uvloop where installed
    except PuppetError as exc:
        _fail(exc)


async def _run(engine, host: str, port: int, *, serve_api: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[list[str]]] = set()

    def reload() -> None:  # SIGHUP: new credentials from the environment / .env, no restart
        task = asyncio.ensure_future(engine.reload_credentials())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    api_server = None
    if serve_api:  # up first, so /health answers while agents are being connected
        await engine.db.migrate()
        api_server = await _start_api(engine, host, port)
    await engine.start()
    runner = asyncio.create_task(engine.run())
    console.print(_startup_summary(engine, f"http://{host}:{port}" if api_server else None),
                  highlight=False, markup=False, soft_wrap=True)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    console.print("stopping: finishing in-flight work…")
    if api_server is not None:

        close_streams(api_server.server.config.app)  # open dashboards must not hold shutdown up
        await api_server.stop()
    await engine.stop()
    console.print("stopped: nothing is in flight; the next start resumes from here")
    if runner.done() and runner.exception():
        raise runner.exception()  # type: ignore[misc]


def _startup_summary(engine, api_url: str | None) -> str:
    """A few lines saying what runs and where: agents, API and dashboard, key, sandbox, logs."""

    manager, settings = engine.manager, engine.settings
    running = sorted(manager.running)
    waiting = sorted(set(manager.agents) - set(running))
    lines = [f"Puppet Engine: {len(running)} of {len(manager.agents)} agent(s) running: {', '.join(running) or '-'}"]
    if engine.role == "api":  # runs none itself: the workers on the same database do
        lines = [f"Puppet Engine api node {engine.owner}: serving {len(manager.agents)} agent(s) "
                 "run by the workers on this database (GET /nodes)"]
        waiting = []
    elif engine.role == "worker":
        lines[0] += f"  [worker {engine.owner}, no API]"
    if waiting:
        lines.append(f"  not running:      {', '.join(waiting)} (see the lines below and GET /agents)")
    if api_url:
        key = ("PUPPET_API_KEYS" if settings.puppet_api_keys is not None
               else f"admin key in {Path(KEY_FILE).resolve()}")
        lines.append(f"  API and dashboard {api_url}  ({key})")
    if engine.wiring.uses_sandbox:
        lines.append(f"  sandbox           {engine.wiring.sandbox_url}  (X, LLM, Solana and Jupiter emulators: "
                     "nothing leaves this machine)")
    lines.append(f"  database          {make_url(engine.db.url).render_as_string(hide_password=True)}"
                 + (f"  (this process: {engine.owner}, sharing agents by lease)" if engine.leases else ""))
    lines.append("  what the agents do follows, one line each (LOG_LEVEL=DEBUG for details, "
                 "LOG_FORMAT=json for collectors); Ctrl-C stops")
    return "\n".join(lines)


async def _start_api(engine, host: str, port: int):
    server = BackgroundServer(create_app(engine), host=host, port=port,
                              forwarded_allow_ips=engine.settings.forwarded_allow_ips)
    await server.start()
    return server


@app.command()
def sandbox(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8100,
    crowd_rate: Annotated[float, typer.Option(help="crowd mentions per minute across all agents (0 = none)")] = 0.0,
    openai_key: Annotated[str, typer.Option(help="API key the sandbox LLM API accepts")] = "sk-sandbox",
    seed: Annotated[int, typer.Option()] = 7,
    snapshot: Annotated[Path | None, typer.Option(help="keep the sandbox's state in this file")] = None,
) -> None:
    """Serve the sandbox (X, OpenAI, Solana RPC, Jupiter emulators) on one port."""

    box = build_sandbox(seed=seed, openai_key=openai_key, crowd_rate=crowd_rate, snapshot_path=snapshot)
    console.print(f"sandbox on http://{host}:{port} (admin under /sandbox, docs at /sandbox/docs)")
    uvicorn.run(box.app, host=host, port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS)


@app.command()
def simulate(
    agents: AgentsDir = Path("agents"),
    hours: Annotated[float, typer.Option(help="virtual hours to simulate")] = 24.0,
    seed: Annotated[int, typer.Option()] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
    database_url: Annotated[str | None, typer.Option(help="default: a fresh temporary SQLite file")] = None,
    crowd_rate: Annotated[float, typer.Option(help="crowd mentions per virtual minute (0 = none)")] = 0.1,
) -> None:
    """Run the engine on a virtual clock against the in-process sandbox; print a summary."""



    with tempfile.TemporaryDirectory() as tmp:
        try:
            settings = _settings(database_url=database_url or f"sqlite:///{tmp}/simulate.db", log_level="WARNING")
            _setup_logging(settings)
            options = EngineOptions(agents_dir=agents, seed=seed)
            with Progress(console=console, transient=True, disable=as_json) as bar:
                task = bar.add_task("simulating", total=100)
                report = asyncio.run(run_simulation(
                    settings, options, hours, lambda f: bar.update(task, completed=round(f * 100, 1)), crowd_rate))
        except PuppetError as exc:
            _fail(exc)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return

    table = Table(title=f"{hours:g} virtual hours")
    columns = {"posts": "posts", "replies": "replies", "trades": "trades", "events": "events",
               "failed_events": "failed events", "posts_skipped": "posts skipped",
               "replies_skipped": "mentions unanswered"}
    table.add_column("agent")
    for title in columns.values():
        table.add_column(title, justify="right")
    for agent_id, c in report.agents.items():
        table.add_row(agent_id, *(str(c[k]) for k in columns))
    Console().print(table)
    for line in _why_lines(report.agents):
        typer.echo(line)  # unwrapped: one line per agent and cause, for grep as much as for eyes


def _why_lines(agents: dict[str, dict]) -> list[str]:
    """Under the table: why an agent did not start, post or answer, most common reasons first."""
    lines = []
    for agent_id, c in agents.items():
        if c.get("start_error"):
            lines.append(f"{agent_id}: did not start: {c['start_error']}")
        for count, noun, reasons in ((c.get("posts_skipped", 0), "scheduled post(s) skipped",
                                      c.get("post_skip_reasons", [])),
                                     (c.get("replies_skipped", 0), f"of {c.get('mentions', 0)} mention(s) "
                                      "not answered", c.get("reply_skip_reasons", []))):
            if count:
                why = "; ".join(f"{r['reason']} ×{r['count']}"
                                + (f" (e.g. {r['example']})" if r["example"] != r["reason"] else "")
                                for r in reasons)
                lines.append(f"{agent_id}: {count} {noun}: {why}")
    return lines


@agents_app.command("validate")
def agents_validate(files: Annotated[list[Path], typer.Argument(help="agent JSON files")]) -> None:
    """Exit 0 when every file is valid, 1 otherwise, printing every problem and warning."""

    problems, warnings = check_files(files)
    for warning in warnings:
        typer.echo(f"warning: {warning}")
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(1)
    for path in files:
        loaded = load_agent_file(path)
        for warning in length_warnings(loaded.config, loaded.source):
            typer.echo(f"warning: {warning}")
    typer.echo(f"{len(files)} agent file(s) valid")


@agents_app.command("schema")
def agents_schema() -> None:
    """Print the JSON Schema of agent files (for editor completion)."""

    typer.echo(json.dumps(agent_json_schema(), indent=2))


@agents_app.command("list")
def agents_list(agents: AgentsDir = Path("agents")) -> None:
    """List the agents in a directory."""

    try:
        for config in load_agents_dir(agents):
            trading = "trading" if config.trading_enabled else "no trading"
            typer.echo(f"{config.id}\t{config.name}\t{config.llm_provider}\t{trading}")
    except ConfigError as exc:
        _fail(exc)


@db_app.command("upgrade")
def db_upgrade(database_url: Annotated[str | None, typer.Option()] = None) -> None:
    """Apply database migrations up to the latest."""

    async def go() -> None:
        db = Database(_settings(database_url=database_url).database_url)
        await db.migrate()
        await db.close()

    try:
        asyncio.run(go())
    except PuppetError as exc:
        _fail(exc)
    typer.echo("database is up to date")


async def _with_memory(fn, database_url: str | None = None):
    """Run ``fn(store)`` against the configured database's memory store."""

    settings = _settings(database_url=database_url)
    db = Database(settings.database_url)
    await db.migrate()
    store = build_memory_store(settings, db)
    try:
        return await fn(store)
    finally:
        await store.close()
        await db.close()


def _memory_row(m) -> dict[str, object]:
    return {"id": m.id, "kind": m.kind, "importance": m.importance, "created_at": m.created_at,
            "content": m.content, "metadata": m.metadata}


@memory_app.command("add")
def memory_add(
    agent: Annotated[str, typer.Argument(help="agent id")],
    text: Annotated[str, typer.Argument(help="what the agent should remember")],
    kind: Annotated[str, typer.Option(help="core, post, reply, mention, trade, event, knowledge")] = "knowledge",
    importance: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
    database_url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Store a memory for an agent."""

    try:
        memory_id = asyncio.run(_with_memory(
            lambda store: store.add_memory(agent, Memory(content=text, kind=kind, importance=importance)),  # type: ignore[arg-type]
            database_url))
    except (PuppetError, ValueError) as exc:
        _fail(exc)
    typer.echo(memory_id)


@memory_app.command("search")
def memory_search(
    agent: Annotated[str, typer.Argument(help="agent id")],
    query: Annotated[str, typer.Argument()],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database_url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """The memories most relevant to QUERY, best first."""
    try:
        found = asyncio.run(_with_memory(lambda store: store.search_memories(agent, query, limit=limit),
                                         database_url))
    except PuppetError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([{**_memory_row(s.memory), "score": round(s.score, 4)} for s in found]))
        return
    for scored in found:
        typer.echo(f"{scored.score:6.3f}  [{scored.memory.kind}] {scored.memory.content}")


@memory_app.command("list")
def memory_list(
    agent: Annotated[str, typer.Argument(help="agent id")],
    kind: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database_url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """An agent's memories, newest first."""
    try:
        memories = asyncio.run(_with_memory(lambda store: store.list_memories(agent, kind=kind, limit=limit),
                                            database_url))
    except PuppetError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([_memory_row(m) for m in memories]))
        return
    for m in memories:
        typer.echo(f"{m.id}  [{m.kind}] {m.content}")


@memory_app.command("reindex")
def memory_reindex(
    agent: Annotated[str | None, typer.Argument(help="agent id; all agents when omitted")] = None,
    force: Annotated[bool, typer.Option(help="re-embed every memory, not only mismatched ones")] = False,
    database_url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Re-embed memories with the current embedder (after changing EMBEDDER)."""

    with Progress(console=console) as bar:
        task = bar.add_task("re-embedding", total=None)

        def progress(agent_id: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"re-embedding {agent_id}")

        try:
            count = asyncio.run(_with_memory(lambda store: store.reindex(agent, progress, force=force),
                                             database_url))
        except PuppetError as exc:
            _fail(exc)
    typer.echo(f"re-embedded {count} memories")


@app.command()
def news(
    text: Annotated[str, typer.Argument(help="the headline agents may react to")],
    agent: Annotated[list[str] | None, typer.Option(help="only these agents (repeatable); default all")] = None,
    database_url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Inject a news event; running engines pick it up at their next poll."""

    async def go() -> int:
        settings = _settings(database_url=database_url)
        db = Database(settings.database_url)
        await db.migrate()
        news_id = uuid.uuid4().hex[:12]
        try:
            targets = [a for a in await agent_rows.ids(db) if not agent or a in agent]
            async with db.transaction() as conn:
                for agent_id in targets:
                    await records.insert_event(conn, Event("news", agent_id, {"text": text, "id": news_id},
                                                           key=f"news:{agent_id}:{news_id}"), time.time())
            return len(targets)
        finally:
            await db.close()

    try:
        count = asyncio.run(go())
    except PuppetError as exc:
        _fail(exc)
    typer.echo(f"news sent to {count} agent(s)")


@app.command("import-legacy")
def import_legacy(
    data_dir: Annotated[Path, typer.Argument(help="the original Puppet Engine's data/ directory")],
    agents: Annotated[Path | None, typer.Option("--agents", help="agent files (default: AGENTS_DIR if present)")]
    = None,
    database_url: Annotated[str | None, typer.Option(help="overrides DATABASE_URL")] = None,
) -> None:
    """Bring the original engine's memories, relationships and handled mentions in (safe to run twice)."""

    try:
        settings = _settings(database_url=database_url)
        agents_dir = agents if agents is not None else Path(settings.agents_dir)
        agent_ids = ([c.id for c in load_agents_dir(agents_dir)]
                     if agents is not None or agents_dir.is_dir() else None)
        report = asyncio.run(_with_memory(lambda store: run_import(data_dir, store, store.db, agent_ids=agent_ids),
                                          database_url))
    except (PuppetError, LegacyFormatError) as exc:
        _fail(exc)
    for line in report.lines():
        typer.echo(line)
    for note in report.notes:
        typer.echo(f"note: {note}")
    for problem in report.problems:  # unwrapped: one problem per line, whatever the terminal width
        typer.echo(f"error: {problem}", err=True)
    if report.problems:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
