"""Training data for the linear tagger: the hand labels, the extra labels and weak labels.

Sources:

- the shared hand labels, ``data/labels/reasontype-dev.jsonl`` (the 14 types and the
  ``states_answer`` flag; text included);
- the repository's extra hand labels, ``labels/*.jsonl`` (same fields, no text: each step is
  re-cut from the shared trace with ``segment(split_thinking(trace)[0])``, as
  ``scripts/show_steps.py`` shows it to the labeller); see ``load_extra_labels``;
- optionally, weak labels mapped from other taxonomies in the traces' ``step_labels``
  (``WEAK_MAP``; consecutive sentences with the same mapped type are joined into one
  pseudo-step, as the blank-line steps of the hand labels are paragraphs, not sentences).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracestop._types import StepType
from tracestop.tag.base import TagContext

__all__ = [
    "WEAK_MAP",
    "WEAK_WEIGHT",
    "Example",
    "answer_format",
    "derived_flag",
    "load_extra_labels",
    "load_labels",
    "load_weak",
]

T = StepType

#: Sample weight of a weak (mapped) example relative to a hand-labelled one.
WEAK_WEIGHT = 0.2

#: Other taxonomies → the 14 types. ``None`` = too ambiguous to map (dropped).
WEAK_MAP: dict[str, dict[str, StepType | None]] = {
    # Thought Anchors' function tags (traces/*__math.jsonl, one per sentence)
    "math": {
        "problem_setup": T.PROBLEM_RESTATEMENT,
        "plan_generation": T.HEURISTIC_INTUITION,
        "fact_retrieval": T.DEFINITION_RECALL,
        "active_computation": None,  # formula_substitution vs symbolic_transformation
        "result_consolidation": T.CONTEXT_REPETITION,
        "uncertainty_management": T.META_COGNITION,
        "self_checking": T.VERIFICATION,
        "final_answer_emission": T.FINAL_CONCLUSION,
    },
    # the steering paper's six labels (traces/*__stl-prompts.jsonl, per span)
    "stl-prompts": {
        "initializing": T.PROBLEM_RESTATEMENT,
        "adding-knowledge": T.DEFINITION_RECALL,
        "deduction": None,  # any constructive mid-phase type
        "uncertainty-estimation": T.META_COGNITION,
        "backtracking": T.META_COGNITION,
        "example-testing": T.CASE_CONSIDERATION,
    },
}


@dataclass(frozen=True, slots=True)
class Example:
    """One training step: text, gold type, the context the tagger sees (``states_answer`` =
    the gold flag), its trace, weight, and ``derived``: the answer extractor's verdict on the
    step (the states-answer head is trained with it in the context, as at run time)."""

    text: str
    label: StepType
    context: TagContext
    trace_id: str
    weight: float = 1.0
    derived: bool = False
    #: the gold ``states_answer`` flag when ``context.states_answer`` holds the run-time
    #: flag instead (honest cross-validation, ``tracestop.lab.honest``); None: the context's
    sa_label: bool | None = None

    @property
    def gold_states_answer(self) -> bool:
        """The gold flag (the states-answer head's training target)."""
        return self.context.states_answer if self.sa_label is None else self.sa_label


def answer_format(trace_id: str) -> str:
    """The answer format of a trace from its id's benchmark part (choice / yesno / math)."""
    parts = trace_id.split(":")
    bench = parts[2] if len(parts) > 2 else ""
    if bench.startswith(("gpqa", "mmlu")):
        return "choice"
    if "iphr" in bench:
        return "yesno"
    return "math"


def derived_flag(text: str, trace_id: str) -> bool:
    """Whether ``tracestop.answers.extract_candidate`` finds a candidate (format by trace)."""
    from tracestop.answers import extract_candidate

    return extract_candidate(text, answer_format(trace_id)) is not None  # type: ignore[arg-type]


def _traces(traces_dir: Path, ids: set[str] | None = None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(traces_dir.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if ids is None or str(r["id"]) in ids:
                out[str(r["id"])] = r
    return out


def _examples(rows: Iterable[dict[str, Any]], questions: dict[str, str]) -> list[Example]:
    """Examples from label rows with ``text``, in order; ``previous`` is the gold type of
    the step before (when that step is labelled too)."""
    out: list[Example] = []
    prev: tuple[str, int, StepType] | None = None
    for r in rows:
        label = StepType(r["label"])
        tid, index = str(r["trace_id"]), int(r["index"])
        before = prev[2] if prev and prev[0] == tid and prev[1] == index - 1 else None
        ctx = TagContext(index=index, previous=before,
                         states_answer=bool(r["states_answer"]),
                         question=questions.get(tid, ""))
        out.append(Example(r["text"], label, ctx, tid, derived=derived_flag(r["text"], tid)))
        prev = (tid, index, label)
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                continue
    return rows


def load_labels(path: Path | str, traces_dir: Path | str | None = None) -> list[Example]:
    """The shared hand labels (with text), in file order.

    ``question`` comes from the traces (default: ``../traces`` beside the labels folder) —
    the Monitor passes it at run time too; without the traces it stays empty.
    """
    path = Path(path)
    tdir = Path(traces_dir) if traces_dir is not None else path.parent.parent / "traces"
    traces = _traces(tdir) if tdir.is_dir() else {}
    questions = {k: str(r.get("question") or "") for k, r in traces.items()}
    return _examples(_read_jsonl(path), questions)


def load_extra_labels(labels_dir: Path | str, traces_dir: Path | str,
                      exclude_traces: Iterable[str] = ()) -> list[Example]:
    """Every ``labels_dir/*.jsonl`` (``trace_id, index, label, states_answer, answer``; no
    text), the text re-cut from ``traces_dir`` exactly as ``scripts/show_steps.py`` prints it.

    Rows are sorted by (trace, index) and de-duplicated (the first file in name order wins);
    rows of traces in ``exclude_traces`` (the shared labels' traces, to keep cross-validation
    honest), of unknown traces or out-of-range indices, and malformed rows are skipped.
    """
    from tracestop.segment import segment, split_thinking

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    excluded = set(exclude_traces)
    for f in sorted(Path(labels_dir).glob("*.jsonl")):
        for r in _read_jsonl(f):
            try:
                key = (str(r["trace_id"]), int(r["index"]))
                StepType(r["label"])
                bool(r["states_answer"])
            except (KeyError, TypeError, ValueError):
                continue
            if key[0] not in excluded:
                rows.setdefault(key, r)
    traces = _traces(Path(traces_dir), {k[0] for k in rows})
    steps: dict[str, list[str]] = {}
    out_rows = []
    for key in sorted(rows):
        tr = traces.get(key[0])
        if tr is None:
            continue
        if key[0] not in steps:
            steps[key[0]] = [s.text for s in segment(split_thinking(str(tr["trace"]))[0])]
        cut = steps[key[0]]
        if not 0 <= key[1] < len(cut):
            continue
        out_rows.append({**rows[key], "trace_id": key[0], "index": key[1], "text": cut[key[1]]})
    questions = {k: str(r.get("question") or "") for k, r in traces.items()}
    return _examples(out_rows, questions)


def load_weak(traces_dir: Path | str, max_sentences: int = 4,
              weight: float = WEAK_WEIGHT) -> list[Example]:
    """Weak examples from ``step_labels`` of ``*__math.jsonl`` and ``*__stl-prompts.jsonl``."""
    out: list[Example] = []
    for f in sorted(Path(traces_dir).glob("*.jsonl")):
        bench = f.stem.split("__", 1)[-1]
        mapping = WEAK_MAP.get(bench)
        if mapping is None:
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            spans = r.get("step_labels") or []
            groups: list[tuple[StepType | None, list[str]]] = []
            for s in spans:
                t = mapping.get(str(s.get("label")))
                if groups and groups[-1][0] == t and len(groups[-1][1]) < max_sentences:
                    groups[-1][1].append(str(s["text"]).strip())
                else:
                    groups.append((t, [str(s["text"]).strip()]))
            prev: StepType | None = None
            for i, (t, texts) in enumerate(groups):
                if t is not None:
                    ctx = TagContext(index=i, previous=prev, states_answer=False)
                    text = " ".join(texts)
                    out.append(Example(text, t, ctx, str(r["id"]), weight,
                                       derived=derived_flag(text, str(r["id"]))))
                prev = t
    return out
