"""Consoles and the one place expected failures become a clear line and an exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from shared.errors import ConfigError, StreamDuckError, TransientError, UnavailableError

# Exit codes shared by every command (documented in docs/cli.md).
EXIT_OK = 0
EXIT_FAILED = 1  # a check failed or the work could not be done
EXIT_USAGE = 2  # bad command line (Typer/Click)
EXIT_CONFIG = 3  # invalid configuration: the message names each variable to fix
EXIT_UNAVAILABLE = 4  # a store or service could not be reached / started
EXIT_NOT_ARRIVED = 5  # verify: test events sent, but not all arrived before --timeout

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(StreamDuckError):
    """An expected failure: printed as one line, no traceback."""

    def __init__(self, message: str, *, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    raise CliError(message, code=code)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def config_lines(exc: ConfigError) -> list[str]:
    return [f"{name}: {reason}" for name, reason in sorted(exc.problems.items())]


@contextmanager
def expected_failures() -> Iterator[None]:
    """Turn expected failures into ``error: ...`` on stderr and an exit code (no traceback)."""
    try:
        yield
    except CliError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        raise typer.Exit(exc.code) from None
    except ConfigError as exc:
        lines = config_lines(exc)
        err.print(f"[bold red]error:[/] invalid configuration ({len(lines)} problem(s)); fix:")
        for line in lines:
            err.print(f"  {line}", markup=False)
        raise typer.Exit(EXIT_CONFIG) from None
    except UnavailableError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    except TransientError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))} (temporary; try again)")
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    except StreamDuckError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
