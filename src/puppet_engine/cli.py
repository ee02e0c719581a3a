"""``puppet-engine``: run, sandbox, simulate, agents, memory, db."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from puppet_engine.errors import ConfigError, PuppetError

app = typer.Typer(help="Puppet Engine: autonomous AI agents on X and Solana.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
agents_app = typer.Typer(help="Validate and inspect agent files.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(db_app, name="db")

console = Console(stderr=True)
AgentsDir = Annotated[Path, typer.Option("--agents", help="directory of agent JSON files")]


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
    raise typer.Exit(1)


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    from puppet_engine.settings import load_settings

    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def _setup_logging(settings) -> None:  # type: ignore[no-untyped-def]
    try:
        from puppet_engine.observability.logging import configure_logging
    except ImportError:
        return
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())


@app.command()
def run(
    agents: AgentsDir = Path("agents"),
    host: Annotated[str, typer.Option(help="API and dashboard host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API and dashboard port")] = 8000,
    sandbox_url: Annotated[str | None, typer.Option(help="use this running sandbox")] = None,
    database_url: Annotated[str | None, typer.Option(help="overrides DATABASE_URL")] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="do not serve the API and dashboard")] = False,
) -> None:
    """Run every agent until interrupted (Ctrl-C or SIGTERM finishes in-flight work)."""
    from puppet_engine.engine import Engine, EngineOptions

    try:
        settings = _settings(database_url=database_url, agents_dir=str(agents))
        _setup_logging(settings)
        engine = Engine(settings, EngineOptions(agents_dir=agents, sandbox_url=sandbox_url))
        asyncio.run(_run(engine, host, port, serve_api=not no_api))
    except PuppetError as exc:
        _fail(exc)


async def _run(engine, host: str, port: int, *, serve_api: bool) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    api_server = None
    if serve_api:
        api_server = await _start_api(engine, host, port)
    runner = asyncio.create_task(engine.run())
    console.print(f"[green]Puppet Engine running[/green] with {len(engine.manager.agents)} agents"
                  + (f"; API and dashboard on http://{host}:{port}" if api_server else "")
                  + (f"; sandbox at {engine.wiring.sandbox_url}" if engine.wiring.uses_sandbox else ""))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    console.print("stopping: finishing in-flight work…")
    if api_server is not None:
        await api_server.stop()
    await engine.stop()
    if runner.done() and runner.exception():
        raise runner.exception()  # type: ignore[misc]


async def _start_api(engine, host: str, port: int):  # type: ignore[no-untyped-def]
    try:
        from puppet_engine.api.app import create_app
    except ImportError:
        return None
    from puppet_engine.serving import BackgroundServer

    server = BackgroundServer(create_app(engine), host=host, port=port)
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
    import uvicorn

    from puppet_engine.sandbox import Sandbox, SandboxConfig

    box = Sandbox(SandboxConfig(seed=seed, openai_key=openai_key, crowd_rate=crowd_rate, snapshot_path=snapshot))
    console.print(f"sandbox on http://{host}:{port} (admin under /sandbox, docs at /sandbox/docs)")
    uvicorn.run(box.app, host=host, port=port, log_level="warning")


@app.command()
def simulate(
    agents: AgentsDir = Path("agents"),
    hours: Annotated[float, typer.Option(help="virtual hours to simulate")] = 24.0,
    seed: Annotated[int, typer.Option()] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
    database_url: Annotated[str | None, typer.Option(help="default: a fresh temporary SQLite file")] = None,
) -> None:
    """Run the engine on a virtual clock against the in-process sandbox; print a summary."""
    import tempfile

    from rich.progress import Progress

    from puppet_engine.engine import EngineOptions
    from puppet_engine.simulate import simulate as run_simulation

    with tempfile.TemporaryDirectory() as tmp:
        try:
            settings = _settings(database_url=database_url or f"sqlite:///{tmp}/simulate.db", log_level="WARNING")
            _setup_logging(settings)
            options = EngineOptions(agents_dir=agents, seed=seed)
            with Progress(console=console, transient=True, disable=as_json) as bar:
                task = bar.add_task("simulating", total=100)
                report = asyncio.run(run_simulation(
                    settings, options, hours, lambda f: bar.update(task, completed=round(f * 100, 1))))
        except PuppetError as exc:
            _fail(exc)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    from rich.table import Table

    table = Table(title=f"{hours:g} virtual hours")
    for column in ("agent", "posts", "replies", "trades", "events", "failed events"):
        table.add_column(column, justify="right" if column != "agent" else "left")
    for agent_id, c in report.agents.items():
        table.add_row(agent_id, *(str(c[k]) for k in ("posts", "replies", "trades", "events", "failed_events")))
    Console().print(table)


@agents_app.command("validate")
def agents_validate(files: Annotated[list[Path], typer.Argument(help="agent JSON files")]) -> None:
    """Exit 0 when every file is valid, 1 otherwise, printing every problem."""
    from puppet_engine.agents.config import validate_files

    problems = validate_files(files)
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(files)} agent file(s) valid")


@agents_app.command("schema")
def agents_schema() -> None:
    """Print the JSON Schema of agent files (for editor completion)."""
    from puppet_engine.agents.config import agent_json_schema

    typer.echo(json.dumps(agent_json_schema(), indent=2))


@agents_app.command("list")
def agents_list(agents: AgentsDir = Path("agents")) -> None:
    """List the agents in a directory."""
    from puppet_engine.agents.config import load_agents_dir

    try:
        for config in load_agents_dir(agents):
            trading = "trading" if config.trading_enabled else "no trading"
            typer.echo(f"{config.id}\t{config.name}\t{config.llm_provider}\t{trading}")
    except ConfigError as exc:
        _fail(exc)


@db_app.command("upgrade")
def db_upgrade(database_url: Annotated[str | None, typer.Option()] = None) -> None:
    """Apply database migrations up to the latest."""
    from puppet_engine.storage import Database

    async def go() -> None:
        db = Database(_settings(database_url=database_url).database_url)
        await db.migrate()
        await db.close()

    try:
        asyncio.run(go())
    except PuppetError as exc:
        _fail(exc)
    typer.echo("database is up to date")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
