"""``tracestop tag``: tag steps from a JSONL file, or print the tagger's quality report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tracestop.cli._common import data_option, errors_to_click
from tracestop.errors import ConfigError, DataError, TraceFormatError
from tracestop.evaluate.data import read_jsonl


def tag_file(path: Path, tagger_name: str | None) -> list[dict[str, object]]:
    """Tag every line of ``path`` (``{"id", "text", "question"?}``); a malformed line is an
    error naming its line number."""
    from tracestop.answers import extract_candidate, infer_format
    from tracestop.tag import get_tagger
    from tracestop.tag.base import TagContext

    try:
        tagger = get_tagger(tagger_name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not path.is_file():
        raise DataError(f"steps file {path} does not exist")
    out: list[dict[str, object]] = []
    prev = None
    index = 0
    for line, obj in read_jsonl(path):
        if isinstance(obj, TraceFormatError):
            raise obj
        if "id" not in obj or not isinstance(obj.get("text"), str):
            raise TraceFormatError(str(path), line, 'expected {"id": ..., "text": "...", "question"?: "..."}')
        q = obj.get("question") or ""
        if not isinstance(q, str):
            raise TraceFormatError(str(path), line, "field 'question' must be a string")
        found = extract_candidate(obj["text"], infer_format(q))
        tag = tagger.tag(obj["text"], TagContext(index=index, previous=prev, states_answer=found is not None and found[1] != "conclusion", question=q))
        out.append({"id": obj["id"], "type": tag.type.value, "role": tag.role.value,
                    "confidence": round(tag.confidence, 4), "evidence": tag.evidence})
        prev, index = tag.type, index + 1
    return out


@click.command("tag")
@click.option("--steps", "steps", type=click.Path(dir_okay=False), default=None,
              help='JSONL of {"id", "text", "question"?}: one tag per line, in order.')
@click.option("--tagger", default=None, help="Tagger name (default: the best measured).")
@click.option("--report", "quality", is_flag=True,
              help="Print the tagger's cross-validated quality on the shared labels instead.")
@click.option("--folds", default=5, show_default=True, help="Folds for --report.")
@data_option
@click.option("--json", "as_json", is_flag=True, help="JSON output (JSONL for --steps).")
def tag_command(steps: str | None, tagger: str | None, quality: bool, folds: int, data: str | None,
                as_json: bool) -> None:
    """Tag reasoning steps with their type (14 types, 3 roles) and evidence."""
    with errors_to_click():
        if quality:
            from tracestop.evaluate.data import data_dir
            from tracestop.lab.quality import cross_validate, format_quality

            labels = data_dir(data) / "labels" / "reasontype-dev.jsonl"
            if not labels.is_file():
                raise DataError(f"no labels at {labels}: pass --data DIR holding labels/reasontype-dev.jsonl")
            from tracestop.tag import DEFAULT_TAGGER

            rep = cross_validate(labels, tagger=tagger or DEFAULT_TAGGER, folds=folds, seed=0)
            click.echo(json.dumps(rep) if as_json else format_quality(rep))
            return
        if steps is None:
            raise click.UsageError("give --steps FILE to tag, or --report for the quality report")
        rows = tag_file(Path(steps), tagger)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r))
        else:
            click.echo(f"{r['id']}\t{r['type']}\t{r['role']}\t{r['confidence']:.2f}\t{r['evidence']}")
