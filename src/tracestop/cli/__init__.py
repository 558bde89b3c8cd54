"""The ``tracestop`` command line: ``eval``, ``tag``, ``serve``, ``report``, ``calibrate``."""

from __future__ import annotations

import importlib

import click

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tracestop")
def cli() -> None:
    """Stop reasoning models once they have their answer (TRACES)."""


# Each command lives in its own module; a command whose optional dependencies are missing
# is still listed and explains what to install when run.
_COMMANDS = {
    "eval": "tracestop.cli.evaluate:eval_command",
    "tag": "tracestop.cli.tag:tag_command",
    "serve": "tracestop.cli.serve:serve",
    "report": "tracestop.cli.report:report_command",
    "calibrate": "tracestop.cli.calibrate:calibrate_command",
    "compare": "tracestop.cli.compare:compare_command",
}

for _name, _target in _COMMANDS.items():
    _module, _attr = _target.split(":")
    try:
        cli.add_command(getattr(importlib.import_module(_module), _attr), _name)
    except ModuleNotFoundError as _e:
        if _e.name and _e.name.startswith("tracestop"):
            continue  # command not part of this build

        from tracestop.cli._common import missing_dependency

        def _missing(mod: str = _e.name or "", name: str = _name) -> None:
            raise missing_dependency(f"`tracestop {name}`", mod)

        cli.add_command(click.Command(_name, callback=_missing, help=f"(unavailable: {_e})"))


def main() -> None:
    cli()
