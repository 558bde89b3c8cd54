"""``tracestop tag``: tag steps from a JSONL file (or stdin), or print the tagger's quality
report."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from tracestop.cli._common import data_option, errors_to_click, progress_bar, require
from tracestop.errors import ConfigError, DataError, TraceFormatError
from tracestop.evaluate.data import iter_jsonl, read_jsonl


def tag_lines(lines: Iterable[tuple[int, dict[str, Any] | TraceFormatError]], name: str,
              tagger_name: str | None) -> list[dict[str, object]]:
    """Tag every record (``{"id", "text", "question"?, "trace_id"?}``) in order. The context a
    step is tagged in (the previous step's type, the step number) is that of its trace: it
    starts afresh whenever ``trace_id`` changes (lines without one form one trace). ``step`` in
    the output counts from 1 within the trace, as everywhere tracestop shows steps. A malformed
    line is an error naming its line number."""
    from tracestop.answers import extract_candidate, infer_format
    from tracestop.tag import get_tagger
    from tracestop.tag.base import TagContext

    try:
        tagger = get_tagger(tagger_name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    out: list[dict[str, object]] = []
    prev = None
    index = 0
    trace: object = None
    for line, obj in lines:
        if isinstance(obj, TraceFormatError):
            raise obj
        if "id" not in obj or not isinstance(obj.get("text"), str):
            raise TraceFormatError(name, line, 'expected {"id": ..., "text": "...", "question"?: "...", '
                                               '"trace_id"?: ...}')
        q = obj.get("question") or ""
        if not isinstance(q, str):
            raise TraceFormatError(name, line, "field 'question' must be a string")
        if obj.get("trace_id") != trace:  # a new trace: no context carried over
            trace, prev, index = obj.get("trace_id"), None, 0
        found = extract_candidate(obj["text"], infer_format(q))
        tag = tagger.tag(obj["text"], TagContext(index=index, previous=prev,
                                                 states_answer=found is not None and found[1] != "conclusion",
                                                 question=q))
        row: dict[str, object] = {"id": obj["id"]}
        if "trace_id" in obj:
            row["trace_id"] = obj["trace_id"]
        row.update({"step": index + 1, "type": tag.type.value, "role": tag.role.value,
                    "confidence": round(tag.confidence, 4), "evidence": tag.evidence})
        out.append(row)
        prev, index = tag.type, index + 1
    return out


def tag_file(path: Path, tagger_name: str | None) -> list[dict[str, object]]:
    """``tag_lines`` over a JSONL file."""
    if not path.is_file():
        raise DataError(f"steps file {path} does not exist")
    return tag_lines(read_jsonl(path), str(path), tagger_name)


@click.command("tag")
@click.option("--steps", "steps", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help='JSONL of {"id", "text", "question"?, "trace_id"?} ("-": stdin): one tag per '
                   "line, in order; the context resets when trace_id changes.")
@click.option("--tagger", default=None, help="Tagger name (default: the best measured).")
@click.option("--report", "quality", is_flag=True,
              help="Print the tagger's cross-validated quality on the shared labels instead.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Folds for --report (at least 2).")
@data_option
@click.option("--json", "as_json", is_flag=True, help="JSON output (JSONL for --steps).")
def tag_command(steps: str | None, tagger: str | None, quality: bool, folds: int, data: str | None,
                as_json: bool) -> None:
    """Tag reasoning steps with their type (14 types, 3 roles) and evidence."""
    with errors_to_click("`tracestop tag`"):
        if quality:
            from tracestop.evaluate.data import data_dir
            from tracestop.tag import DEFAULT_TAGGER

            name = tagger or DEFAULT_TAGGER
            if name not in ("linear", "rules"):
                raise ConfigError(f"unknown tagger {name!r} for --report; valid names: linear, rules")
            if name == "linear":  # each fold retrains the linear tagger
                require("`tracestop tag --report`", "sklearn")
            from tracestop.lab.quality import cross_validate, format_quality

            labels = data_dir(data) / "labels" / "reasontype-dev.jsonl"
            if not labels.is_file():
                raise DataError(f"no labels at {labels}: pass --data DIR holding labels/reasontype-dev.jsonl")
            with progress_bar(folds, "tag --report", unit="folds") as advance:
                rep = cross_validate(labels, tagger=name, folds=folds, seed=0, progress=advance)
            click.echo(json.dumps(rep) if as_json else format_quality(rep))
            return
        if steps is None:
            raise click.UsageError("give --steps FILE (or - for stdin) to tag, or --report for the "
                                   "quality report")
        if steps == "-":
            rows = tag_lines(iter_jsonl(sys.stdin.buffer, "<stdin>"), "<stdin>",
                             tagger)
        else:
            rows = tag_file(Path(steps), tagger)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r))
        else:
            click.echo(f"{r['id']}\t{r['type']}\t{r['role']}\t{r['confidence']:.2f}\t{r['evidence']}")
