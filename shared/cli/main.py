"""Command definitions. Each command is thin: options in, one ``shared.cli.*`` function, output out."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler
from rich.table import Table

from shared import __version__
from shared.cli.environment import build_environ, export, settings_from
from shared.cli.output import EXIT_FAILED, err, expected_failures, out, print_json

app = typer.Typer(
    name="streamduck",
    help="StreamDuck: run the function app's functions locally, check the configuration, simulate traffic.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file", "-e", help="Read settings from this .env file (its values win over the environment)."
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
AppModule = Annotated[str, typer.Option("--app", help="Module that defines the FunctionApp.")]
AppDir = Annotated[Path, typer.Option("--app-dir", help="Folder of the app (host.json, the module).")]


def _logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if err.is_terminal:
        handler: logging.Handler = RichHandler(
            console=err, show_path=False, markup=False, rich_tracebacks=False
        )
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, format=fmt, handlers=[handler], force=True)
    logging.getLogger("streamduck").setLevel(level)
    logging.getLogger("streamduck.kafka.client").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


@app.command()
def version(as_json: JsonOut = False) -> None:
    """Print the StreamDuck version.

    Example: `streamduck version --json`
    """
    if as_json:
        print_json({"name": "streamduck", "version": __version__, "python": sys.version.split()[0]})
    else:
        out.print(f"streamduck {__version__}")


@app.command("validate-config")
def validate_config(
    env_file: EnvFile = None,
    as_json: JsonOut = False,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for each connection check.")] = 5.0,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the settings only; connect to nothing.")
    ] = False,
    app_module: AppModule = "function_app",
    app_dir: AppDir = Path(),
) -> None:
    """Check every setting and connect to every configured store; exit 1 on any problem.

    Non-interactive: never prompts, works without a terminal. Each problem names the variable to fix.

    Examples:

    * `streamduck validate-config`
    * `streamduck validate-config --env-file prod.env --json`
    * `streamduck validate-config --offline` (settings only)
    """
    from shared.cli.validate import validate

    with expected_failures():
        environ = build_environ(env_file)
        checks = validate(environ, timeout=timeout, offline=offline, app_module=app_module, app_dir=app_dir)
    problems = [c for c in checks if not c.ok and not c.warning]
    if as_json:
        print_json({"ok": not problems, "checks": [c.as_dict() for c in checks]})
    else:
        table = Table(title="Configuration", title_justify="left")
        for column in ("check", "target", "status", "variable to fix", "detail"):
            table.add_column(column, overflow="fold")
        for c in checks:
            status = "[green]ok[/]" if c.ok else ("[yellow]warning[/]" if c.warning else "[red]problem[/]")
            table.add_row(c.check, c.target, status, c.variable, c.detail)
        out.print(table)
        out.print(f"{len(problems)} problem(s)" if problems else "[green]configuration OK[/]")
    if problems:
        raise typer.Exit(EXIT_FAILED)


class StartFrom(StrEnum):
    earliest = "earliest"
    latest = "latest"


@app.command()
def run(
    env_file: EnvFile = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the plan (functions, sources, effective batch sizes); touch nothing."
        ),
    ] = False,
    as_json: JsonOut = False,
    function: Annotated[
        list[str] | None, typer.Option("--function", "-f", help="Run only this function (repeatable).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Override the batch size of every function (default: host.json)."),
    ] = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            help="Stop (gracefully, exit 0) once every source is drained and idle for this many seconds."
        ),
    ] = None,
    start_from: Annotated[
        StartFrom, typer.Option(help="Where a partition without a checkpoint/commit starts.")
    ] = StartFrom.earliest,
    live: Annotated[
        bool, typer.Option(help="Live view on a terminal (a progress line every 10 s otherwise).")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    app_module: AppModule = "function_app",
    app_dir: AppDir = Path(),
) -> None:
    """Run the function app's Event Hubs and Kafka functions locally, with the Functions host's semantics.

    Batches up to the configured size or wait time, the functions' retry policies, checkpoint / commit only
    after the function returns, graceful shutdown on SIGINT/SIGTERM (the batch in flight finishes and is
    checkpointed, exit 0).

    Examples:

    * `streamduck run --dry-run`
    * `streamduck run --env-file .env`
    * `streamduck run -f enrich_engagement --exit-when-idle 5`
    """
    from shared.cli.run import build_plan, print_plan, run_host

    _logging(verbose)
    with expected_failures():
        environ = build_environ(env_file)
        settings = settings_from(environ)
        export(environ)
        planned = build_plan(
            settings,
            environ,
            app_module=app_module,
            app_dir=app_dir.resolve(),
            functions=function,
            batch_size=batch_size,
        )
        if dry_run:
            print_plan(planned, as_json=as_json)
            return
        summary = run_host(
            planned, settings, environ, live=live, exit_when_idle=exit_when_idle, start_from=start_from.value
        )
    if as_json:
        print_json(summary)
    else:
        err.print(
            f"stopped: {summary['events']:,} events in {summary['batches']:,} batches, "
            f"{summary['retries']} retries, {summary['failed_batches']} failed, "
            f"{summary['abandoned_batches']} left for the next start"
        )


@app.command()
def status(
    env_file: EnvFile = None,
    as_json: JsonOut = False,
    top: Annotated[int, typer.Option(min=1, help="Leaderboard entries to show.")] = 10,
    window: Annotated[int, typer.Option(min=1, help="Leaderboard window in minutes.")] = 10,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for each source or store.")] = 5.0,
) -> None:
    """Per mapping: watermarks and lag per partition, dead letters, last compaction; Kafka lag; leaderboard.

    Examples:

    * `streamduck status`
    * `streamduck status --top 5 --json`
    """
    from shared.cli.status import collect, render

    with expected_failures():
        environ = build_environ(env_file)
        settings = settings_from(environ)
        report = collect(settings, environ, top=top, window=window, timeout=timeout)
    if as_json:
        print_json(report)
    else:
        render(report)


class Target(StrEnum):
    postgres = "postgres"
    kafka = "kafka"
    eventhubs = "eventhubs"


@app.command()
def simulate(
    target: Annotated[Target, typer.Option("--target", "-t", help="Where the traffic goes.")] = Target.kafka,
    count: Annotated[int | None, typer.Option(min=0, help="Stop after this many engagement events.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed: the same seed gives the same content and events.")
    ] = None,
    rate: Annotated[float, typer.Option(min=0, help="Events per second (0: as fast as possible).")] = 5.0,
    burst: Annotated[int, typer.Option(min=1, help="Most events per commit / produce batch.")] = 50,
    jitter: Annotated[float, typer.Option(min=0, max=1, help="Relative jitter of the pauses.")] = 0.3,
    ensure_content: Annotated[int, typer.Option(min=0, help="Content rows to make sure exist first.")] = 10,
    device: Annotated[list[str] | None, typer.Option(help="Device names (repeatable).")] = None,
    content_type: Annotated[
        list[str] | None, typer.Option("--content-type", help="podcast, newsletter, video (repeatable).")
    ] = None,
    raw_payload: Annotated[bool, typer.Option(help="Attach the raw JSON payload to each event.")] = True,
    dsn: Annotated[
        str | None, typer.Option(envvar="PG_DSN", help="Postgres DSN for --target postgres (or PG_DSN).")
    ] = None,
    hub: Annotated[
        str | None, typer.Option(help="Event Hub for --target eventhubs (default: EVENTHUBNAME_1).")
    ] = None,
    start_time: Annotated[
        str | None, typer.Option(help="Event time of the first event, ISO 8601 (default: now).")
    ] = None,
    first_id: Annotated[
        int | None, typer.Option(help="First engagement event id (kafka/eventhubs targets).")
    ] = None,
    env_file: EnvFile = None,
    as_json: JsonOut = False,
) -> None:
    """Simulated engagement traffic: content seeding, play/pause/click/finish events, devices, raw payloads.

    Targets: **postgres** (the CDC path: rows in `content` / `engagement_events`), **kafka** (Debezium-shaped
    messages straight to TOPIC_CONTENT / TOPIC_ENGAGE) or **eventhubs** (JSON events to an Event Hub).

    Examples:

    * `streamduck simulate --target kafka --count 10000 --rate 0 --seed 7`
    * `streamduck simulate --target postgres --dsn postgresql://app:app@127.0.0.1:5432/appdb --rate 20`
    * `streamduck simulate --target eventhubs --hub telemetry --count 1000 --burst 200`
    """
    from shared.cli.simulate import simulate_command

    with expected_failures():
        environ = build_environ(env_file)
        settings = settings_from(environ)
        summary = simulate_command(
            settings,
            environ,
            target=target.value,
            count=count,
            seed=seed,
            rate=rate,
            burst=burst,
            jitter=jitter,
            ensure_content=ensure_content,
            devices=device,
            content_types=content_type,
            raw_payload=raw_payload,
            dsn=dsn,
            hub=hub,
            start_time=start_time,
            first_id=first_id,
            progress=not as_json,
        )
    if as_json:
        print_json(summary)
    else:
        out.print(
            f"sent {summary['events']:,} events and {summary['content']:,} content rows "
            f"to {summary['target']} "
            f"in {summary['seconds']:.2f}s"
        )


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=1, help="Simulated events per pipeline.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 42,
    env_file: EnvFile = None,
    as_json: JsonOut = False,
) -> None:
    """The main job on embedded defaults: simulated traffic through every function, then a summary.

    Uses local DuckDB files, embedded ClickHouse (chDB) and Redis (a temporary `redis-server` is started when
    none is configured or reachable). Says what is missing when something cannot be started.

    Examples:

    * `streamduck demo`
    * `streamduck demo --events 20000 --json`
    """
    from shared.cli.demo import render, run_demo

    with expected_failures():
        environ = build_environ(env_file)
        summary = run_demo(environ, events=events, seed=seed, progress=not as_json)
    if as_json:
        print_json(summary)
    else:
        render(summary)


def main() -> None:
    """Console-script entry point (``streamduck``)."""
    app()
