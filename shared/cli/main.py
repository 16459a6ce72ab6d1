"""Command definitions. Each command is thin: options in, one ``shared.cli.*`` function, output out."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from typer.core import TyperOption

from shared import __version__
from shared.cli.environment import build_environ, export, settings_from
from shared.cli.output import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    err,
    expected_failures,
    out,
    print_json,
)


def _help_type(self: TyperOption, ctx: typer.Context) -> str | None:
    """The type column of an option's help: nothing for a flag, the metavar when set, ``<text>`` for a list.

    Typer (the range pyproject's ``local`` extra allows) prints ``<bool>`` for flags and ``<list[str]>``
    for repeatable options; that says nothing a user can act on."""
    if self.is_flag:
        return None
    if self.metavar:
        return self.metavar
    label = _typer_help_type(self, ctx)
    return None if label is None else label.replace("<list[", "<").replace("]>", ">")


_typer_help_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _help_type  # type: ignore[method-assign,assignment]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"streamduck {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="streamduck",
    help="StreamDuck: run the function app's functions locally, check the configuration, simulate traffic.",
    no_args_is_help=True,
    add_completion=True,
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
        fmt = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
    formatter = logging.Formatter(fmt, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime  # the one timestamp format of every command: ISO 8601 UTC, Z
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("streamduck").setLevel(level)
    logging.getLogger("streamduck.kafka.client").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """StreamDuck: run the function app's functions locally, check the configuration, simulate traffic.

    Shell completion: `streamduck --install-completion` (bash, zsh, fish, PowerShell).
    """


@app.command()
def version(as_json: JsonOut = False) -> None:
    """Print the StreamDuck version.

    Example: `streamduck version --json`
    """
    if as_json:
        print_json({"name": "streamduck", "version": __version__, "python": sys.version.split()[0]})
    else:
        out.print(f"streamduck {__version__}")


class Source(StrEnum):
    eventhubs = "eventhubs"
    kafka = "kafka"


@app.command()
def init(
    source: Annotated[
        list[Source] | None,
        typer.Option(
            "--source", "-s", help="A source to configure (repeatable; default: both).", show_default=False
        ),
    ] = None,
    hub: Annotated[str | None, typer.Option(help="Event Hub of mapping 1 (EVENTHUBNAME_1).")] = None,
    consumer_group: Annotated[str | None, typer.Option(help="Its consumer group.")] = None,
    namespace: Annotated[
        str | None,
        typer.Option(help="Event Hubs namespace, <name>.servicebus.windows.net (EVENTHUB_NAMESPACE)."),
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="Database of mapping 1 (MOTHERDUCK_1_DATABASE).")
    ] = None,
    schema: Annotated[str | None, typer.Option(help="Schema of mapping 1.")] = None,
    table: Annotated[str | None, typer.Option(help="Table of mapping 1.")] = None,
    motherduck_token: Annotated[
        str | None, typer.Option(help="MotherDuck token (none: a local DuckDB file).", show_default=False)
    ] = None,
    kafka_brokers: Annotated[
        str | None, typer.Option(help="Kafka brokers, host:port (KAFKA_BROKERS).")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL (REDIS_URL).")] = None,
    clickhouse_host: Annotated[
        str | None, typer.Option(help="ClickHouse host (none: embedded chDB).", show_default=False)
    ] = None,
    folder: Annotated[Path, typer.Option("--dir", help="Folder to write the two files in.")] = Path(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Never prompt, even on a terminal (flags and defaults only).")
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Write `local.settings.json` and `.env` for the chosen sources; both hold the same values.

    On a terminal it asks for every value no flag gave (Enter keeps the default shown); without a terminal,
    or with `--no-input`, flags and defaults are used. The values are validated before anything is written.

    Examples:

    * `streamduck init` (asks)
    * `streamduck init --source kafka --kafka-brokers 127.0.0.1:9092 --no-input`
    * `streamduck init -s eventhubs --hub telemetry --namespace my-ns.servicebus.windows.net --force`
    """
    from shared.cli.init import answers, write

    given = {
        name: value
        for name, value in (
            ("EVENTHUBNAME_1", hub),
            ("EVENTHUBNAME_1_CONSUMER_GROUP", consumer_group),
            ("EVENTHUB_NAMESPACE", namespace),
            ("MOTHERDUCK_1_DATABASE", database),
            ("MOTHERDUCK_1_SCHEMA", schema),
            ("MOTHERDUCK_1_TABLE", table),
            ("MOTHERDUCK_TOKEN", motherduck_token),
            ("KAFKA_BROKERS", kafka_brokers),
            ("REDIS_URL", redis_url),
            ("CLICKHOUSE_HOST", clickhouse_host),
        )
        if value is not None
    }
    interactive = not no_input and sys.stdin.isatty()
    with expected_failures():
        if source:
            sources = [s.value for s in source]
        elif interactive:
            chosen = typer.prompt("Sources (eventhubs, kafka or both)", default="both")
            sources = ["eventhubs", "kafka"] if chosen.strip() == "both" else [chosen.strip()]
            if any(s not in {"eventhubs", "kafka"} for s in sources):
                err.print(f"[bold red]error:[/] {escape(chosen)} is not eventhubs, kafka or both")
                raise typer.Exit(EXIT_USAGE)
        else:
            sources = ["eventhubs", "kafka"]

        def ask(question: str, default: str) -> str:
            return str(typer.prompt(question, default=default, show_default=True))

        written = write(folder, answers(sources, given, ask if interactive else None), force=force)
    if as_json:
        print_json(written.as_dict())
    else:
        for path in written.files:
            out.print(f"wrote {path}", markup=False)
        out.print("next: streamduck validate-config", markup=False)


@app.command("validate-config")
def validate_config(
    env_file: EnvFile = None,
    as_json: JsonOut = False,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for each connection check.")] = 5.0,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the settings only; connect to nothing.")
    ] = False,
    show_rbac: Annotated[
        bool,
        typer.Option(
            "--show-rbac",
            help="Also print the Azure role assignments (and Redis access policy) StreamDuck's identities "
            "need, with `az` commands to create them.",
        ),
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
    * `streamduck validate-config --offline --show-rbac` (roles per resource, `az` commands)
    """
    from shared.cli.validate import nothing_configured, problem_line, validate

    with expected_failures():
        environ = build_environ(env_file)
        checks = validate(environ, timeout=timeout, offline=offline, app_module=app_module, app_dir=app_dir)
    problems = [c for c in checks if not c.ok and not c.warning]
    rbac: dict[str, object] | None = None
    if show_rbac:
        from shared.cli.rbac import rbac_report

        rbac = rbac_report(environ, _hubs(environ))
    if as_json:
        report: dict[str, object] = {"ok": not problems, "checks": [c.as_dict() for c in checks]}
        if rbac is not None:
            report["rbac"] = rbac
        print_json(report)
    else:
        for c in checks:
            if c.ok:
                out.print(f"ok       {c.check}: {c.target}", markup=False)
        for c in checks:
            if not c.ok:
                label = "[yellow]warning:[/]" if c.warning else "[bold red]error:[/]"
                err.print(f"{label} {escape(problem_line(c))}")
        if problems:
            err.print(f"[bold red]error:[/] {len(problems)} problem(s); fix the variables named above")
        elif nothing_configured(checks):
            err.print(
                "[yellow]warning:[/] nothing is configured: every part runs on its defaults "
                "(`streamduck init` writes local.settings.json and .env)"
            )
        else:
            out.print("[green]configuration OK[/]")
        if rbac is not None:
            from shared.cli.rbac import render as render_rbac

            render_rbac(rbac)
    if problems:
        raise typer.Exit(EXIT_FAILED)


def _hubs(environ: Mapping[str, str]) -> list[str]:
    """The hub of every mapping (EVENTHUBNAME_N), in mapping order; read even when settings are invalid."""
    found = [
        (int(m[1]), v) for k, v in environ.items() if (m := re.fullmatch(r"EVENTHUBNAME_(\d+)", k)) and v
    ]
    return [hub for _, hub in sorted(found)]


@app.command("check-credentials")
def check_credentials(
    as_json: JsonOut = False,
    timeout: Annotated[
        float, typer.Option(min=0.5, help="Seconds allowed for all token requests together.")
    ] = 10.0,
) -> None:
    """Acquire a real Entra ID token (DefaultAzureCredential) for each scope StreamDuck uses; exit 1 if any fails.

    Scopes: Event Hubs `https://eventhubs.azure.net/.default`, Storage `https://storage.azure.com/.default`,
    Redis `https://redis.azure.com/.default`. Each row says which credential of the chain answered, or why
    every credential failed. A token proves authentication only: the roles are listed by
    `streamduck validate-config --show-rbac`.

    Examples:

    * `streamduck check-credentials`
    * `streamduck check-credentials --json --timeout 20`
    """
    from shared.cli.credentials import check_credentials as check

    results = check(timeout)
    failed = [r for r in results if not r.ok]
    hint = (
        "sign in with `az login` (then run this again), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
        "AZURE_CLIENT_SECRET for a service principal"
        if failed and all(r.credential is None for r in failed)
        else None
    )
    if as_json:
        print_json({"ok": not failed, "scopes": [r.as_dict() for r in results], "hint": hint})
    else:
        table = Table(title="Entra ID tokens (DefaultAzureCredential)", title_justify="left")
        for column in ("resource", "scope", "status", "credential / reason"):
            table.add_column(column, overflow="fold")
        for r in results:
            if r.ok:
                who = ", ".join(f"{k}={v}" for k, v in r.identity.items())
                table.add_row(
                    r.resource, r.scope, "[green]OK[/]", f"{r.credential}" + (f" ({who})" if who else "")
                )
            else:
                table.add_row(r.resource, r.scope, "[red]failed[/]", escape(r.error or ""))
        out.print(table)
        groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for r in failed:
            if r.attempts:
                groups.setdefault(tuple(r.attempts.items()), []).append(r.resource)
        for attempts, resources in groups.items():
            out.print(
                f"Credentials tried for {', '.join(resources)} (DefaultAzureCredential's chain, in order):"
            )
            for name, reason in attempts:
                out.print(f"  {name}: {reason}", markup=False)
    if failed:
        err.print(
            f"[bold red]error:[/] no token for {', '.join(r.resource for r in failed)} "
            f"({len(failed)} of {len(results)} scope(s) failed)"
        )
        if hint:
            err.print(f"try: {escape(hint)}")
        raise typer.Exit(EXIT_FAILED)


SMART_UNSUPPORTED = (
    "--smart (LLM-judged retries) is not supported: retry or park is decided by typed errors and the "
    "functions' retry policies; tune STREAMDUCK_RETRY_MAX_COUNT, STREAMDUCK_RETRY_MIN_INTERVAL and "
    'STREAMDUCK_RETRY_MAX_INTERVAL instead (docs/cli.md, "Why there is no run --smart")'
)


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
        list[str] | None,
        typer.Option("--function", "-f", metavar="<name>", help="Run only this function (repeatable)."),
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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve the metrics for Prometheus on this port (/metrics; 0 picks a free port).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the /metrics endpoint listens on.")
    ] = "127.0.0.1",
    connect_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="Exit 4 when a source has not connected after this many seconds (0: wait forever).",
        ),
    ] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    smart: Annotated[
        bool,
        typer.Option(
            "--smart", hidden=True, help="The earlier CLI's LLM-judged retries: not supported (docs/cli.md)."
        ),
    ] = False,
    app_module: AppModule = "function_app",
    app_dir: AppDir = Path(),
) -> None:
    """Run the function app's Event Hubs and Kafka functions locally, with the Functions host's semantics.

    Batches up to the configured size or wait time, the functions' retry policies, checkpoint / commit only
    after the function returns, graceful shutdown on SIGINT/SIGTERM (the batch in flight finishes and is
    checkpointed, exit 0).

    Metrics (the same as in Azure): in the live view and the summary; on a Prometheus endpoint with
    --metrics-port; to any OTLP backend when OTEL_EXPORTER_OTLP_ENDPOINT is set.

    Examples:

    * `streamduck run --dry-run`
    * `streamduck run --env-file .env`
    * `streamduck run -f engagement_enrich --exit-when-idle 5`
    * `streamduck run --metrics-port 9464`
    """
    from shared.cli.run import build_plan, install_metrics, print_plan, run_host

    if smart:
        err.print(f"[bold red]error:[/] {escape(SMART_UNSUPPORTED)}")
        raise typer.Exit(EXIT_USAGE)
    _logging(verbose)
    with expected_failures():
        environ = build_environ(env_file)
        settings = settings_from(environ)
        export(environ)
        # Before the app is imported: the CLI's own meter provider keeps the app's Azure Monitor set-up off.
        metrics = (
            install_metrics({}, port=None, host=metrics_host)
            if dry_run
            else install_metrics(environ, port=metrics_port, host=metrics_host)
        )
        try:
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
                planned,
                settings,
                environ,
                live=live,
                exit_when_idle=exit_when_idle,
                start_from=start_from.value,
                metrics=metrics,
                connect_timeout=connect_timeout or None,
            )
        finally:
            metrics.shutdown()
    if as_json:
        print_json(summary)
    if summary["unreachable"]:
        for sentence in summary["unreachable"]:
            err.print(f"[bold red]error:[/] {escape(sentence)}")
        raise typer.Exit(EXIT_UNAVAILABLE)
    if not as_json:
        err.print(
            f"stopped: {summary['events']:,} events in {summary['batches']:,} batches, "
            f"{summary['retries']} retries, {summary['failed_batches']} failed, "
            f"{summary['abandoned_batches']} left for the next start, "
            f"{summary.get('dead_letters', 0):,} dead-lettered"
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

    Exit 4 when a store could not be read (each named on stderr, with the setting to check); the report
    still shows every other part.

    Examples:

    * `streamduck status`
    * `streamduck status --top 5 --json`
    """
    from shared.cli.status import render
    from shared.readmodel.status import collect

    with expected_failures():
        environ = build_environ(env_file)
        settings = settings_from(environ)
        report = collect(settings, environ, top=top, window=window, timeout=timeout)
    if as_json:
        print_json(report)
    else:
        render(report)
    for sentence in report["unavailable"]:
        err.print(f"[bold red]error:[/] {escape(sentence)}")
    if report["unavailable"]:
        raise typer.Exit(EXIT_UNAVAILABLE)


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
    local_redis: Annotated[
        str | None,
        typer.Option(
            help="A running Redis to use when REDIS_URL is unset and it answers, e.g. redis://127.0.0.1:6379/0 "
            "(default: the demo's own redis-server, kept running with its data under .streamduck/redis)."
        ),
    ] = None,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the demo's own redis-server (its data stays); run nothing.")
    ] = False,
    env_file: EnvFile = None,
    as_json: JsonOut = False,
) -> None:
    """The main job on embedded defaults: simulated traffic through every function, then a summary.

    Uses local DuckDB files, embedded ClickHouse (chDB) and Redis: `REDIS_URL` when set, else the Redis
    named by `--local-redis` when it answers, else its own `redis-server`, left running (data under
    `.streamduck/redis`) so that `streamduck status` and `streamduck dashboard` show the results; the
    settings it chose go to `.streamduck/demo.env`, which every command here reads. Says what is missing
    when something cannot be started.

    Examples:

    * `streamduck demo`
    * `streamduck demo --events 20000 --json`
    * `streamduck demo --stop` (stop the demo's Redis; `make demo-stop`)
    """
    from shared.cli.demo import render, render_stop, run_demo, stop_demo

    if stop:
        result = stop_demo()
        if as_json:
            print_json(result)
        else:
            render_stop(result)
        return
    with expected_failures():
        environ = build_environ(env_file)
        summary = run_demo(environ, events=events, seed=seed, progress=not as_json, local_redis=local_redis)
    if as_json:
        print_json(summary)
    else:
        render(summary)


class VerifyOnly(StrEnum):
    eventhubs = "eventhubs"
    kafka = "kafka"


@app.command()
def verify(
    env_file: EnvFile = None,
    local_settings: Annotated[
        Path | None,
        typer.Option(
            "--local-settings",
            help="Read the Values of this local.settings.json (over the environment, under --env-file).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the test events to land.")
    ] = 120.0,
    only: Annotated[VerifyOnly | None, typer.Option("--only", help="Verify one pipeline only.")] = None,
    cleanup: Annotated[
        bool,
        typer.Option(
            "--cleanup", help="Afterwards delete this run's test data from DuckDB, ClickHouse, Redis."
        ),
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Send tagged test events through every configured source and wait until each lands; exit non-zero on a miss.

    Event Hubs: one event per mapping, found in the mapping's table. Kafka: a content row and an engagement,
    found in ClickHouse, the Redis leaderboard and the enriched topic. Exit 5 when an event did not arrive in
    time, 1 when a store failed (docs/cli.md).

    Examples:

    * `streamduck verify --timeout 300`
    * `streamduck verify --local-settings local.settings.json --json --cleanup`
    * `streamduck verify --only kafka --env-file prod.env`
    """
    from shared.cli.output import EXIT_NOT_ARRIVED
    from shared.verify import Source, run_verify
    from shared.verify.render import failure_line, render
    from shared.verify.steps import Status

    _logging(False)
    for noisy in ("azure", "urllib3", "clickhouse_connect"):  # their retries repeat what the steps report
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with expected_failures():
        environ = build_environ(env_file, local_settings=local_settings)
        settings = settings_from(environ)
        report = run_verify(
            settings, timeout=timeout, only=Source(only.value) if only else None, cleanup=cleanup
        )
    if as_json:
        print_json(report.as_dict())
    else:
        render(report, out)
    if not report.ok:
        err.print(f"[bold red]error:[/] {escape(failure_line(report))}")
        errors = any(s.status is Status.ERROR for s in report.failed)
        raise typer.Exit(EXIT_FAILED if errors else EXIT_NOT_ARRIVED)


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="Address to listen on (no sign-in).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")] = 8050,
    env_file: EnvFile = None,
) -> None:
    """Web dashboard: recent enriched events, engagement by content, the leaderboard, Event Hubs mappings.

    Refreshes itself every few seconds; JSON endpoints under `/api/` (docs/dashboard.md).

    Examples:

    * `streamduck dashboard`
    * `streamduck dashboard --port 8080 --env-file prod.env`
    """
    from shared.cli.dashboard import serve

    with expected_failures():
        environ = build_environ(env_file)
        serve(settings_from(environ), environ, host=host, port=port)


def main() -> None:
    """Console-script entry point (``streamduck``); ``python -m shared`` is the same program, same name."""
    app(prog_name="streamduck")
