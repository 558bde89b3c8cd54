"""Forced-answer points: what a reasoning prefix answers when generation is cut there.

``DATA/forced/*.jsonl`` (format: ``data/forced/FORMAT.md``) records, for some recorded traces,
the answer obtained when the thinking was cut after ``at`` characters and an answer forced
from the prefix. This module loads and validates those files and answers replay's question
"had generation stopped after step k, what would the answer have been?".

Coordinates. ``at`` counts characters of the trace's *thinking text*: the part before the
end-of-thinking marker, with an opening ``<think>`` / ``<|channel>thought`` marker removed.
That is exactly the text ``segment.split_thinking`` returns and the Monitor segments, so a
step's ``Step.end`` (an offset into that text) is a cut in the same coordinates.

Reading rule (FORMAT.md): the forced answer at a cut after ``c`` characters is the answer of
the last point with ``at <= c``; before the first point it is ``None`` (counts as wrong).

Wiring into replay (a few lines): load once with ``load_forced(root)``; for a prepared trace
``rec = forced.get(prep.result.id)`` (skip and count the trace when ``None``); re-grade each
policy outcome with ``forced_outcome(prep, outcome, rec)``; the ``oracle`` row is
``forced_oracle_outcome(prep, rec)``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracestop.errors import DataError, TraceFormatError
from tracestop.evaluate.data import read_jsonl

if TYPE_CHECKING:  # replay imports the Monitor; keep this module light to import
    from tracestop.evaluate.replay import Outcome, Prepared
    from tracestop.policies import StepRecord

__all__ = [
    "FORCED_DIR",
    "ForcedPoint",
    "ForcedRecord",
    "ForcedSet",
    "forced_answers",
    "forced_correct",
    "forced_oracle",
    "forced_oracle_outcome",
    "forced_outcome",
    "load_forced",
    "parse_forced",
    "read_forced_file",
    "step_ends",
]

#: the folder under the data directory that holds the forced-answer files
FORCED_DIR = "forced"


@dataclass(frozen=True, slots=True)
class ForcedPoint:
    """The answer forced from the first ``at`` characters of the thinking (``None``: no
    answer could be drawn); ``p`` the answerer's probability of it, where recorded."""

    at: int
    answer: str | None
    p: float | None = None


@dataclass(frozen=True)
class ForcedRecord:
    """The forced-answer points of one trace, sorted by ``at`` (strictly increasing)."""

    id: str
    points: tuple[ForcedPoint, ...]
    unit: str = "chars"
    answerer: str = ""
    granularity: str = ""
    source: str = ""
    file: str = ""  # where it was read from, ``path, line N``
    _ats: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ats = tuple(p.at for p in self.points)
        if not ats:
            raise ValueError(f"forced record {self.id!r} has no points")
        if any(b <= a for a, b in pairwise(ats)):
            raise ValueError(f"forced record {self.id!r}: points not strictly increasing in 'at'")
        object.__setattr__(self, "_ats", ats)

    def answer_at(self, chars: int) -> str | None:
        """FORMAT.md's reading rule: the answer of the last point with ``at <= chars``;
        ``None`` before the first point."""
        i = bisect.bisect_right(self._ats, chars)
        return self.points[i - 1].answer if i else None

    def point_at(self, chars: int) -> ForcedPoint | None:
        """The point the reading rule uses at a cut after ``chars`` characters."""
        i = bisect.bisect_right(self._ats, chars)
        return self.points[i - 1] if i else None

    @property
    def first_at(self) -> int:
        return self.points[0].at

    def to_json(self) -> dict[str, Any]:
        pts: list[list[Any]] = [
            [p.at, p.answer] if p.p is None else [p.at, p.answer, p.p] for p in self.points
        ]
        return {"id": self.id, "unit": self.unit, "points": pts, "answerer": self.answerer,
                "granularity": self.granularity, "source": self.source}


class ForcedSet(Mapping[str, ForcedRecord]):
    """Every forced record, indexed by trace id, and the files it was read from."""

    def __init__(self, records: Mapping[str, ForcedRecord], files: Sequence[str] = ()) -> None:
        self._records = dict(records)
        self.files = list(files)

    def __getitem__(self, key: str) -> ForcedRecord:
        return self._records[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def coverage(self, ids: Iterable[str]) -> tuple[int, int]:
        """``(with points, without)`` among the given trace ids."""
        have = without = 0
        for i in ids:
            if i in self._records:
                have += 1
            else:
                without += 1
        return have, without


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_forced(obj: Mapping[str, Any], path: str, line: int) -> ForcedRecord:
    """One JSON object → a ``ForcedRecord``; any problem is a ``TraceFormatError`` naming the
    file and line and saying what was expected."""

    def bad(problem: str) -> TraceFormatError:
        return TraceFormatError(path, line, problem)

    rid = obj.get("id")
    if not isinstance(rid, str) or not rid:
        raise bad("field 'id' is missing or not a non-empty string (the trace id in traces/*.jsonl)")
    unit = obj.get("unit", "chars")
    if unit != "chars":
        raise bad(f"{rid}: field 'unit' must be \"chars\" (the only unit FORMAT.md defines), got {unit!r}")
    raw = obj.get("points")
    if not isinstance(raw, list) or not raw:
        raise bad(f"{rid}: field 'points' must be a non-empty list of [at, answer] or [at, answer, p]")
    points: list[ForcedPoint] = []
    for j, pt in enumerate(raw):
        where = f"{rid}: point {j}"
        if not isinstance(pt, list) or len(pt) not in (2, 3):
            raise bad(f"{where} must be [at, answer] or [at, answer, p], got {pt!r}")
        at, ans = pt[0], pt[1]
        if not _is_int(at) or at < 0:
            raise bad(f"{where}: 'at' must be an integer >= 0 (characters of the thinking), got {at!r}")
        if ans is not None and not isinstance(ans, str):
            raise bad(f"{where}: the answer must be a string or null, got {ans!r}")
        p: float | None = None
        if len(pt) == 3 and pt[2] is not None:
            if isinstance(pt[2], bool) or not isinstance(pt[2], (int, float)) \
                    or not math.isfinite(pt[2]) or not 0.0 <= pt[2] <= 1.0:
                raise bad(f"{where}: 'p' must be a probability in [0, 1] or null, got {pt[2]!r}")
            p = float(pt[2])
        if points and at <= points[-1].at:
            raise bad(f"{where}: points must be sorted by 'at', strictly increasing "
                      f"({at} after {points[-1].at})")
        points.append(ForcedPoint(at, ans, p))
    text = {k: obj.get(k, "") for k in ("answerer", "granularity", "source")}
    for k, v in text.items():
        if not isinstance(v, str):
            raise bad(f"{rid}: field {k!r} must be a string, got {type(v).__name__}")
    return ForcedRecord(rid, tuple(points), unit, text["answerer"], text["granularity"],
                        text["source"], f"{path}, line {line}")


def read_forced_file(path: Path) -> list[ForcedRecord]:
    """Every record of one ``*.jsonl`` file; the first bad line raises ``TraceFormatError``."""
    out: list[ForcedRecord] = []
    for line, obj in read_jsonl(path):
        if isinstance(obj, TraceFormatError):
            raise obj
        out.append(parse_forced(obj, str(path), line))
    return out


def load_forced(root: Path, *, required: bool = True) -> ForcedSet:
    """Read every ``forced/*.jsonl`` under the data directory ``root``, indexed by trace id.

    Forced points are ground truth for replay's accuracy, so a malformed line is an error
    (naming file and line), not a silent skip; so is an id recorded twice. With
    ``required``, a missing or empty folder is a ``DataError``; else an empty set."""
    folder = Path(root) / FORCED_DIR
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        if required:
            raise DataError(f"no forced-answer files in {folder}: expected {FORCED_DIR}/*.jsonl "
                            f"(format: {FORCED_DIR}/FORMAT.md) under the data directory")
        return ForcedSet({})
    records: dict[str, ForcedRecord] = {}
    for path in files:
        for rec in read_forced_file(path):
            if rec.id in records:
                line = rec.file.rsplit("line ", 1)[-1]
                raise TraceFormatError(str(path), int(line), f"trace id {rec.id!r} already has forced "
                                       f"points ({records[rec.id].file}): one record per trace")
            records[rec.id] = rec
    return ForcedSet(records, [str(f) for f in files])


# --- step ends → forced answers ---------------------------------------------------------------


def step_ends(records: Sequence[StepRecord]) -> list[int]:
    """The cut (characters of the thinking text) after each step: ``Step.end``, the same
    coordinates as the forced points' ``at`` (both count from the start of the thinking text
    with the opening marker removed)."""
    return [r.tagged.step.end for r in records]


def forced_answers(records: Sequence[StepRecord], rec: ForcedRecord) -> list[str | None]:
    """The forced answer at the end of each step."""
    return [rec.answer_at(c) for c in step_ends(records)]


def forced_correct(prep: Prepared, rec: ForcedRecord) -> list[bool]:
    """Whether the forced answer at the end of each step is right, graded like any other
    answer (``Prepared.is_correct``: the project's ``equivalent``, memoised per trace)."""
    return [prep.is_correct(a) for a in forced_answers(prep.records, rec)]


def forced_oracle(prep: Prepared, rec: ForcedRecord) -> int | None:
    """The forced oracle: the first step (0-based) whose forced answer is right, among the
    steps a policy can stop after (``n_decided``, as replay's stated oracle); ``None`` if none."""
    for k, r in enumerate(prep.records[: prep.n_decided]):
        if prep.is_correct(rec.answer_at(r.tagged.step.end)):
            return k
    return None


def forced_outcome(prep: Prepared, outcome: Outcome, rec: ForcedRecord) -> Outcome:
    """A stated-answer replay outcome re-graded with the forced answer at its cut. A policy
    that did not stop keeps the recorded final answer (unchanged). (Replay's own:
    ``replay.forced_outcome``.)"""
    from tracestop.evaluate.replay import forced_outcome as regrade

    return regrade(prep, outcome, rec)


def forced_oracle_outcome(prep: Prepared, rec: ForcedRecord, name: str = "oracle") -> Outcome:
    """The ``oracle`` row under forced answers: stop after the first step whose forced answer
    is right; else the full trace with its recorded answer (``replay.forced_oracle_outcome``)."""
    from tracestop.evaluate.replay import forced_oracle_outcome as oracle

    return oracle(prep, rec, name)
