"""Loading recorded traces: one configurable data path, validated records, counted exclusions."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tracestop.errors import ConfigError, DataError, TraceFormatError

__all__ = [
    "DATA_ENV",
    "N_FOLDS",
    "Trace",
    "TraceSet",
    "as_split",
    "data_dir",
    "fold_of",
    "load_traces",
    "read_jsonl",
    "split_of",
]

DATA_ENV = "TRACESTOP_DATA"
Split = Literal["dev", "test", "all"]

_SPLITS: dict[str, Split] = {"dev": "dev", "test": "test", "all": "all"}


def as_split(value: str) -> Split:
    """``value`` as a ``Split``; a ``ConfigError`` naming the splits when it is none of them."""
    split = _SPLITS.get(value)
    if split is not None:
        return split
    raise ConfigError(f"unknown split {value!r}: use dev, test or all")


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$TRACESTOP_DATA``, else ``../shared/data``
    relative to the current directory. Raises ``DataError`` saying how to point at data."""
    if explicit:
        path, how = Path(explicit), "--data"
    elif os.environ.get(DATA_ENV):
        path, how = Path(os.environ[DATA_ENV]), f"${DATA_ENV}"
    else:
        path, how = Path("..") / "shared" / "data", "the default ../shared/data"
    traces = path / "traces"
    if not path.is_dir():
        raise DataError(
            f"data directory {path} (from {how}) does not exist: pass --data DIR or set "
            f"{DATA_ENV}=DIR to a folder holding traces/*.jsonl"
        )
    if not traces.is_dir() or not any(traces.glob("*.jsonl")):
        raise DataError(
            f"no recorded traces in {traces} (from {how}): expected traces/*.jsonl there; "
            f"pass --data DIR or set {DATA_ENV}=DIR"
        )
    return path


def normalise_question(q: str) -> str:
    return re.sub(r"\s+", " ", q).strip().lower()


def split_of(question: str) -> Literal["dev", "test"]:
    """``dev`` or ``test`` by a stable hash of the normalised question text, so a problem
    lands in the same split for every model."""
    h = hashlib.sha256(normalise_question(question).encode("utf-8")).digest()
    return "dev" if h[0] % 2 == 0 else "test"


#: folds of the dev split for cross-fitting (the answer scorer's out-of-fold weights)
N_FOLDS = 5


def fold_of(question: str, folds: int = N_FOLDS) -> int:
    """A fold in ``0..folds-1`` by a stable hash of the normalised question text (another byte
    of the hash than ``split_of``'s), so a problem lands in the same fold for every model."""
    h = hashlib.sha256(normalise_question(question).encode("utf-8")).digest()
    return h[1] % folds


@dataclass(frozen=True)
class Trace:
    """One recorded generation with its gold answer."""

    id: str
    benchmark: str
    model: str
    question: str
    gold: str | None
    trace: str
    final_answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source: str = ""

    @property
    def split(self) -> Literal["dev", "test"]:
        return split_of(self.question)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | TraceFormatError]]:
    """Yields ``(line number, record or the error for that line)``; a non-UTF-8 line is an
    error for that line, not for the file."""
    with open(path, "rb") as f:
        yield from iter_jsonl(f, str(path))


def iter_jsonl(f: Iterable[bytes], name: str) -> Iterator[tuple[int, dict[str, Any] | TraceFormatError]]:
    """``read_jsonl`` over an open binary stream (e.g. stdin) called ``name`` in errors."""
    for i, raw in enumerate(f, 1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i, TraceFormatError(name, i, f"not valid UTF-8 ({e.reason} at byte {e.start})")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield i, TraceFormatError(name, i, f"not valid JSON ({e.msg}, column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield i, TraceFormatError(name, i, f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield i, obj


_REQUIRED = ("id", "benchmark", "model", "question", "trace")


def _to_trace(obj: dict[str, Any], path: Path, line: int) -> Trace:
    for k in _REQUIRED:
        if not isinstance(obj.get(k), str):
            raise TraceFormatError(str(path), line, f"field {k!r} is missing or not a string")
    gold = obj.get("gold")
    if gold is not None and not isinstance(gold, (str, int, float)):
        raise TraceFormatError(str(path), line, "field 'gold' must be a string or null")
    fa = obj.get("final_answer")
    raw_meta = obj.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    return Trace(
        id=obj["id"],
        benchmark=obj["benchmark"],
        model=obj["model"],
        question=obj["question"],
        gold=None if gold is None or str(gold).strip() == "" else str(gold),
        trace=obj["trace"],
        final_answer=None if fa is None else str(fa),
        meta=meta,
        source=str(obj.get("source", "")),
    )


@dataclass
class TraceSet:
    """Loaded traces plus what was left out and why (reason → count), and the problems found
    in malformed lines (``file, line N: problem``)."""

    traces: list[Trace]
    excluded: Counter[str]
    problems: list[str]


def load_traces(
    root: Path,
    *,
    benchmarks: Iterable[str] = (),
    models: Iterable[str] = (),
    split: Split = "all",
    require_gold: bool = True,
) -> TraceSet:
    """Read every ``traces/*.jsonl`` under ``root``, keeping the chosen benchmarks, models
    and split. Malformed lines and traces without gold are counted, never silently dropped."""
    bset, mset = set(benchmarks), set(models)
    out: list[Trace] = []
    excluded: Counter[str] = Counter()
    problems: list[str] = []
    seen: set[str] = set()
    all_benchmarks: set[str] = set()
    all_models: set[str] = set()
    files = sorted((root / "traces").glob("*.jsonl"))
    if not files:
        raise DataError(f"no traces/*.jsonl under {root}")
    for path in files:
        for line, obj in read_jsonl(path):
            if isinstance(obj, TraceFormatError):
                excluded["malformed line"] += 1
                problems.append(str(obj))
                continue
            try:
                t = _to_trace(obj, path, line)
            except TraceFormatError as e:
                excluded["malformed line"] += 1
                problems.append(str(e))
                continue
            all_benchmarks.add(t.benchmark)
            all_models.add(t.model)
            if bset and t.benchmark not in bset:
                continue
            if mset and t.model not in mset:
                continue
            if split != "all" and t.split != split:
                continue
            if t.id in seen:
                excluded["duplicate id"] += 1
                problems.append(f"{path}, line {line}: duplicate id {t.id!r}")
                continue
            seen.add(t.id)
            if require_gold and t.gold is None:
                excluded["no gold answer"] += 1
                continue
            out.append(t)
    # a name not in the data is an error that lists the valid ones (a typo among several
    # names is not silently dropped)
    for what, asked, valid in (("benchmark", bset, all_benchmarks), ("model", mset, all_models)):
        unknown = asked - valid
        if unknown:
            raise DataError(
                f"no traces for {what}(s) {', '.join(sorted(unknown))} in {root / 'traces'}; "
                f"valid {what}s: {', '.join(sorted(valid)) or 'none'}"
            )
    return TraceSet(out, excluded, problems)
