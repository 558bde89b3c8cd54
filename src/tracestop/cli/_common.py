"""Helpers shared by CLI commands: data path option, error mapping, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from tracestop.errors import TracestopError

F = TypeVar("F", bound=Callable[..., Any])


def data_option(f: F) -> F:
    return click.option(
        "--data",
        "data",
        type=click.Path(file_okay=False),
        default=None,
        help="Data directory holding traces/ (default: $TRACESTOP_DATA, else ../shared/data).",
    )(f)


#: options shared by the commands that replay traces (same names, same help everywhere)
benchmark_option = click.option("--benchmark", "benchmarks", multiple=True,
                                help="Only these benchmarks (repeatable).")
model_option = click.option("--model", "models", multiple=True,
                            help="Only these models (repeatable).")
tagger_option = click.option("--tagger", default=None,
                             help="Step tagger name (default: the best measured).")
workers_option = click.option("--workers", type=int, default=None,
                              help="Worker processes (default: all cores).")


@contextmanager
def errors_to_click() -> Iterator[None]:
    """Library errors become one red line and exit status 1, never a traceback."""
    try:
        yield
    except TracestopError as e:
        raise click.ClickException(str(e)) from None


@contextmanager
def progress_bar(total: int, label: str, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    on = console.is_terminal if enabled is None else enabled
    if not on:
        yield lambda n: None
        return
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    ) as prog:
        task = prog.add_task(label, total=total)
        yield lambda n: prog.advance(task, n)


def warn(msg: str) -> None:
    click.echo(msg, err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()
