"""The behaviour shift: what a model does before versus after it first reaches the right answer.

For each trace whose thinking states a correct candidate, the first correct step is the first
step stating a candidate while the tracked candidate is graded correct (the oracle's rule,
``tracestop.answers.equivalent``). Steps before it and steps after it are counted by type and
macro role, per model family (or per benchmark). The first correct step itself is in neither
group.

Example::

    table = behaviour_shift(shifts)       # shifts: TraceShift per trace (see trace_shift)
    print(table.to_markdown())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracestop._types import Role, StepType
from tracestop.policies import StepRecord

__all__ = [
    "FAMILIES",
    "SHIFT_GROUPS",
    "ShiftTable",
    "TraceShift",
    "behaviour_shift",
    "family_of",
    "first_correct_step",
    "plot_shift",
    "trace_shift",
]

TYPES: tuple[StepType, ...] = tuple(StepType)
ROLES: tuple[Role, ...] = tuple(Role)

#: model families of the behaviour-shift figure, in display order: (name, substring of model)
FAMILIES: tuple[tuple[str, str], ...] = (
    ("deepseek-r1-distill-qwen", "r1-distill-qwen"),
    ("deepseek-r1-distill-llama", "r1-distill-llama"),
    ("qwq", "qwq"),
    ("gemma", "gemma"),
)


def family_of(model: str) -> str:
    """The behaviour-shift family of a model name (the model name itself when unknown)."""
    low = model.lower()
    for name, hint in FAMILIES:
        if hint in low:
            return name
    return low


def first_correct_step(records: Sequence[StepRecord], is_correct: Callable[[str], bool]) -> int | None:
    """Index of the first step that states a candidate while the tracked candidate is correct
    (the step that states it: a value in prose is judged a step later, ``Candidate.step``)."""
    for r in records:
        cand = r.tagged.candidate
        if cand is not None and is_correct(r.answer.current or cand.value):
            return cand.step
    return None


@dataclass(frozen=True)
class TraceShift:
    """One trace's step-type counts before and after its first correct step (``None`` when
    no step states a correct candidate: then both count tuples are all zero)."""

    trace_id: str
    model: str
    benchmark: str
    n_steps: int
    first_correct: int | None
    before: tuple[int, ...]  # per type, in StepType order
    after: tuple[int, ...]


def trace_shift(
    trace_id: str, model: str, benchmark: str, records: Sequence[StepRecord],
    is_correct: Callable[[str], bool],
) -> TraceShift:
    """Count step types before and after the first correct step of one trace."""
    k = first_correct_step(records, is_correct)
    before = [0] * len(TYPES)
    after = [0] * len(TYPES)
    if k is not None:
        pos = {t: i for i, t in enumerate(TYPES)}
        for i, r in enumerate(records):
            if i < k:
                before[pos[r.type]] += 1
            elif i > k:
                after[pos[r.type]] += 1
    return TraceShift(trace_id, model, benchmark, len(records), k, tuple(before), tuple(after))


@dataclass
class FamilyShift:
    """Aggregated counts of one model family."""

    family: str
    traces: int = 0  # traces considered (closed thinking, gold answer)
    with_correct: int = 0  # of which a step states a correct candidate
    before: list[int] = field(default_factory=lambda: [0] * len(TYPES))
    after: list[int] = field(default_factory=lambda: [0] * len(TYPES))
    position: list[float] = field(default_factory=list)  # first correct step / n_steps

    def roles(self, which: str) -> list[int]:
        counts = self.before if which == "before" else self.after
        out = [0] * len(ROLES)
        for t, c in zip(TYPES, counts):
            out[ROLES.index(t.role)] += c
        return out

    @staticmethod
    def share(counts: Sequence[int]) -> list[float]:
        n = sum(counts)
        return [c / n if n else 0.0 for c in counts]

    @property
    def median_position(self) -> float | None:
        if not self.position:
            return None
        s = sorted(self.position)
        m = len(s) // 2
        return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _cell(before: Sequence[int], after: Sequence[int], i: int) -> dict[str, Any]:
    return {"before": before[i], "after": after[i],
            "before_share": FamilyShift.share(before)[i], "after_share": FamilyShift.share(after)[i]}


@dataclass
class ShiftTable:
    """Behaviour-shift counts per model family."""

    families: list[FamilyShift]

    def to_json(self) -> dict[str, Any]:
        return {
            "families": [
                {
                    "family": f.family,
                    "traces": f.traces,
                    "with_correct": f.with_correct,
                    "median_first_correct_position": f.median_position,
                    "before": {t.value: c for t, c in zip(TYPES, f.before)},
                    "after": {t.value: c for t, c in zip(TYPES, f.after)},
                    "before_roles": {r.value: c for r, c in zip(ROLES, f.roles("before"))},
                    "after_roles": {r.value: c for r, c in zip(ROLES, f.roles("after"))},
                }
                for f in self.families
            ]
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per type, then per role: label, kind, and per family the counts and shares
        before and after."""
        out: list[dict[str, Any]] = []
        for i, t in enumerate(TYPES):
            out.append({"label": t.value, "kind": "type", "role": t.role.value,
                        "cells": [_cell(f.before, f.after, i) for f in self.families]})
        for i, role in enumerate(ROLES):
            out.append({"label": role.value, "kind": "role",
                        "cells": [_cell(f.roles("before"), f.roles("after"), i) for f in self.families]})
        return out

    def to_markdown(self) -> str:
        """A Markdown table: per type and role, the share (count) before → after, per family."""
        head = ["step type", "role"]
        for f in self.families:
            head += [f"{f.family} before", "after"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows():
            label = row["label"] if row["kind"] == "type" else f"**{row['label']} (role)**"
            cells = [label, row.get("role", "")]
            for c in row["cells"]:
                cells += [f"{100 * c['before_share']:.1f}% ({c['before']})",
                          f"{100 * c['after_share']:.1f}% ({c['after']})"]
            lines.append("| " + " | ".join(cells) + " |")
        steps = ["**steps**", ""]
        for f in self.families:
            steps += [str(sum(f.before)), str(sum(f.after))]
        lines.append("| " + " | ".join(steps) + " |")
        traces = ["**traces with a correct step / considered**", ""]
        for f in self.families:
            pos = f.median_position
            traces += [f"{f.with_correct} / {f.traces}",
                       "median at " + (f"{100 * pos:.0f}% of steps" if pos is not None else "-")]
        lines.append("| " + " | ".join(traces) + " |")
        return "\n".join(lines)


#: what ``behaviour_shift`` can group traces by
SHIFT_GROUPS = ("family", "benchmark")


def behaviour_shift(shifts: Iterable[TraceShift], by: str = "family") -> ShiftTable:
    """Aggregate per-trace counts into a table per model family (known families first) or,
    with ``by="benchmark"``, per benchmark."""
    if by not in SHIFT_GROUPS:
        raise ValueError(f"behaviour shift: by must be one of {', '.join(SHIFT_GROUPS)}, got {by!r}")
    fams: dict[str, FamilyShift] = {}
    for s in shifts:
        name = family_of(s.model) if by == "family" else s.benchmark
        f = fams.setdefault(name, FamilyShift(name))
        f.traces += 1
        if s.first_correct is None:
            continue
        f.with_correct += 1
        f.position.append(s.first_correct / max(1, s.n_steps))
        for i in range(len(TYPES)):
            f.before[i] += s.before[i]
            f.after[i] += s.after[i]
    order = [n for n, _ in FAMILIES]
    names = sorted(fams, key=lambda n: (order.index(n) if n in order else len(order), n))
    return ShiftTable([fams[n] for n in names])


def plot_shift(table: ShiftTable, *, fmt: str = "png") -> bytes:
    """The behaviour-shift figure: per family, the share of each step type (top) and macro role
    (bottom) before versus after the first correct answer. PNG (or SVG) bytes."""
    from tracestop.report._plot import figure_bytes, pyplot

    plt = pyplot()
    import numpy as np

    fams = [f for f in table.families if f.with_correct] or table.families
    ncol = max(1, len(fams))
    fig, axes = plt.subplots(2, ncol, figsize=(3.6 * ncol + 1.6, 8.2), dpi=100, squeeze=False,
                             gridspec_kw={"height_ratios": [14, 4]})
    try:
        y = np.arange(len(TYPES))
        yr = np.arange(len(ROLES))
        for j, f in enumerate(fams):
            ax = axes[0][j]
            b, a = FamilyShift.share(f.before), FamilyShift.share(f.after)
            ax.barh(y - 0.2, [100 * v for v in b], 0.4, color="tab:blue", label="before")
            ax.barh(y + 0.2, [100 * v for v in a], 0.4, color="tab:orange", label="after")
            ax.set_yticks(y, [t.value for t in TYPES] if j == 0 else [], fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{f.family}\n{f.with_correct} traces, {sum(f.before)}→{sum(f.after)} steps",
                         fontsize=9)
            ax.set_xlabel("share of steps (%)", fontsize=8)
            ax.grid(axis="x", alpha=0.3)
            axr = axes[1][j]
            rb, ra = FamilyShift.share(f.roles("before")), FamilyShift.share(f.roles("after"))
            axr.barh(yr - 0.2, [100 * v for v in rb], 0.4, color="tab:blue", label="before")
            axr.barh(yr + 0.2, [100 * v for v in ra], 0.4, color="tab:orange", label="after")
            axr.set_yticks(yr, [r.value for r in ROLES] if j == 0 else [], fontsize=8)
            axr.invert_yaxis()
            axr.set_xlabel("share of steps (%)", fontsize=8)
            axr.grid(axis="x", alpha=0.3)
        axes[0][0].legend(fontsize=8, loc="lower right", title="first correct answer", title_fontsize=7)
        fig.suptitle("Step types before vs after the first correct answer", fontsize=11)
        fig.tight_layout()
        return figure_bytes(fig, fmt)
    finally:
        plt.close(fig)
