"""Build the static HTML report: index, paginated trace lists, one page per trace, figures.

Every page opens from disk with no network: CSS is inline, figures are PNG data URIs, and
there is no script. Trace text is escaped (jinja2 autoescape). Each trace is replayed with
``tracestop.evaluate.replay.prepare``/``apply_policy`` (the evaluation code path: one
Monitor pass whose tagged steps the page shows); replay, grading and page rendering run in worker
processes, so a report over every recorded trace builds in minutes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tracestop._types import Role, StepType
from tracestop.evaluate.data import Trace
from tracestop.evaluate.forced import ForcedRecord
from tracestop.evaluate.replay import (
    Outcome,
    TraceResult,
    apply_policy,
    forced_oracle_outcome,
    forced_outcome,
    policy_specs,
    prepare,
)
from tracestop.evaluate.summary import summarise
from tracestop.policies import StepRecord, candidates_by_step
from tracestop.report.frontier import FRONTIER_GRID, frontier_rows, frontier_specs, plot_frontier
from tracestop.report.shift import ShiftTable, TraceShift, behaviour_shift, plot_shift, trace_shift

__all__ = ["ROLE_COLORS", "TYPE_COLORS", "ReportResult", "build_report", "trace_slug"]

#: background colour of each step type (light, so the text stays readable)
TYPE_COLORS: dict[StepType, str] = {
    StepType.PROBLEM_RESTATEMENT: "#dbeafe",
    StepType.CONTEXT_REPETITION: "#e0e7ff",
    StepType.DEFINITION_RECALL: "#cffafe",
    StepType.FORMULA_SUBSTITUTION: "#dcfce7",
    StepType.SYMBOLIC_TRANSFORMATION: "#d9f99d",
    StepType.CASE_CONSIDERATION: "#fef9c3",
    StepType.PATTERN_RECOGNITION: "#fde68a",
    StepType.VERIFICATION: "#fed7aa",
    StepType.HEURISTIC_INTUITION: "#fce7f3",
    StepType.ALTERNATIVE_APPROACH: "#f5d0fe",
    StepType.NUMERICAL_INTERPRETATION: "#e9d5ff",
    StepType.META_COGNITION: "#fecaca",
    StepType.FINAL_CONCLUSION: "#fdba74",
    StepType.OTHER: "#e5e7eb",
}
#: left-border colour of each macro role
ROLE_COLORS: dict[Role, str] = {
    Role.CONSTRUCTIVE: "#2563eb",
    Role.EVALUATIVE: "#dc2626",
    Role.OTHER: "#9ca3af",
}
_MARKER = ".tracestop-report"
_NOTE = ("After a stop, the predicted answer is the last candidate stated in the kept steps: "
         "replay cannot ask the model, so this is a conservative stand-in for a live stop.")


def trace_slug(trace_id: str) -> str:
    """A file-name-safe, unique name for a trace page."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", trace_id).strip("-.")[:80]
    return f"{safe}-{hashlib.sha1(trace_id.encode('utf-8')).hexdigest()[:8]}"


@dataclass(frozen=True)
class _Job:
    trace: Trace
    slug: str
    list_page: int
    prev: str | None
    next: str | None
    #: the trace's forced-answer points, where recorded (``DATA/forced/*.jsonl``)
    forced: ForcedRecord | None = None


@dataclass
class ReportResult:
    """What a build produced: the index path, per-trace results and the summary."""

    index: Path
    pages: int
    results: list[TraceResult]
    summary: list[dict[str, Any]]
    frontier: list[dict[str, Any]]
    shift: ShiftTable
    #: frontier rows with every stop graded by the forced answer at its cut (traces with points)
    frontier_forced: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index),
            "trace_pages": sum(1 for _ in self.results),
            "list_pages": self.pages,
            "n_traces": sum(1 for r in self.results if not r.excluded),
            "excluded": dict(Counter(r.excluded for r in self.results if r.excluded)),
            "results": self.summary,
            "frontier": self.frontier,
            "frontier_forced": self.frontier_forced or [],
            "behaviour_shift": self.shift.to_json(),
        }


# --- templates --------------------------------------------------------------------------------


def _env() -> Any:
    try:
        import jinja2
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the install
        raise ImportError("tracestop.report needs jinja2: pip install 'tracestop[eval]'") from e
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tracestop.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        type_colors=[(t.value, t.role.value, c) for t, c in TYPE_COLORS.items()],
        role_colors=[(r.value, c) for r, c in ROLE_COLORS.items()],
        note=_NOTE,
    )
    env.filters["pct"] = lambda v, d=1: "-" if v is None else f"{100 * v:.{d}f}%"
    return env


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# --- per trace (in worker processes) ----------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init(specs: list[str], shown: list[str], tagger: str | None, out: str | None,
          counter_name: str | None) -> None:
    from tracestop.tokens import counter_for

    _WORKER.update(specs=specs, shown=shown, tagger=tagger, out=Path(out) if out else None,
                   counter=counter_for(counter_name), env=_env() if out else None)


def _outcome_view(o: Outcome, r: TraceResult) -> dict[str, Any]:
    saved = r.tokens_full - o.tokens
    return {
        "policy": o.policy, "stopped": o.stopped, "step": o.step, "reason": o.reason,
        "predicted": o.predicted, "correct": o.correct, "tokens": o.tokens,
        "saved_tokens": saved, "saved": saved / r.tokens_full if r.tokens_full else 0.0,
    }


def _process(job: _Job) -> tuple[TraceResult, TraceShift | None, TraceResult | None]:
    from tracestop.segment import split_thinking

    w = _WORKER
    t = job.trace
    prep = prepare(t, tagger=w["tagger"], counter=w["counter"])
    result = prep.result
    for spec in w["specs"]:
        if not result.excluded:
            result.outcomes[spec] = apply_policy(prep, spec)
    forced_result = None
    if job.forced is not None and not result.excluded:
        # the same stops, graded by the forced answer at each cut (oracle: the forced oracle)
        # (replay's own re-grading: what ``apply_policy(..., answer="forced")`` does)
        forced_result = replace(result, outcomes={
            spec: forced_oracle_outcome(prep, job.forced) if spec == "oracle"
            else forced_outcome(prep, o, job.forced) for spec, o in result.outcomes.items()})
    out: Path | None = w["out"]
    if result.excluded and out is None:
        return result, None, forced_result
    records = prep.records
    if result.excluded:  # still show its steps: the thinking was cut off, not empty
        from tracestop.monitor import Monitor
        from tracestop.policies import Never

        m = Monitor(Never(), tagger=w["tagger"], question=t.question,
                    answer_format=result.answer_format, model=t.model,
                    count_tokens=w["counter"])
        m.feed(t.trace)
        m.end()
        records = m.records

    def is_correct(value: str) -> bool:
        return bool(t.gold) and prep.is_correct(value)

    shift = None
    if not result.excluded:
        shift = trace_shift(t.id, t.model, t.benchmark, records, is_correct)
    if out is not None:
        answer_text = split_thinking(t.trace)[1] or ""
        _render_trace(job, result, records, answer_text, shift, is_correct, out)
    return result, shift, forced_result


def _render_trace(job: _Job, result: TraceResult, records: Sequence[StepRecord], answer_text: str,
                  shift: TraceShift | None, is_correct: Callable[[str], bool], out: Path) -> None:
    t = job.trace
    shown = [result.outcomes[s] for s in _WORKER["shown"] if s in result.outcomes]
    stops: dict[int, list[dict[str, Any]]] = {}
    for o in shown:
        if o.stopped and o.step is not None:
            stops.setdefault(o.step, []).append(_outcome_view(o, result))
    steps = []
    candidates = []
    # a candidate is shown on the step that states it, tracked as of the step it was judged at
    stated = candidates_by_step(records)
    for r in records:
        c = r.tagged.candidate
        if c is not None:
            candidates.append({"step": c.step + 1, "value": c.value, "correct": is_correct(c.value),
                               "tracked": r.answer.current, "judged": r.index + 1})
    rec = job.forced
    for i, r in enumerate(records):
        cand = stated.get(i)
        ok = cand is not None and is_correct(cand.value)
        forced: dict[str, Any] | None = None
        if rec is not None:  # the reading rule: the last point at or before the step's end
            fa = rec.answer_at(r.tagged.step.end)
            forced = {"answer": fa, "correct": fa is not None and is_correct(fa)}
        steps.append({
            "n": i + 1, "type": r.type.value, "role": r.tagged.tag.role.value,
            "confidence": r.tagged.tag.confidence, "evidence": r.tagged.tag.evidence,
            "tokens": r.tagged.tokens, "tokens_cum": r.tokens_cum, "text": r.tagged.step.text,
            "candidate": cand.value if cand else None, "correct": ok,
            "first_correct": shift is not None and shift.first_correct == i,
            "stops": stops.get(i + 1, []), "forced": forced,
        })
    html = _WORKER["env"].get_template("trace.html").render(
        root="../", title=f"{t.benchmark} · {t.model} · {t.id}", trace=t, result=result,
        outcomes=[_outcome_view(o, result) for o in shown], steps=steps, candidates=candidates,
        answer_text=answer_text, list_page=job.list_page, prev=job.prev, next=job.next,
        counter=_WORKER["counter"].name, forced=rec,
    )
    _write(out / "t" / f"{job.slug}.html", html)


def _run(batch: list[_Job]) -> list[tuple[TraceResult, TraceShift | None, TraceResult | None]]:
    return [_process(j) for j in batch]


def process_traces(
    jobs: Sequence[_Job], specs: Sequence[str], shown: Sequence[str], *, tagger: str | None = None,
    out: Path | None = None, workers: int | None = None,
    progress: Callable[[int], None] | None = None, batch_size: int = 16,
    counter: str | None = None,
) -> list[tuple[TraceResult, TraceShift | None, TraceResult | None]]:
    """Replay, tag and (when ``out`` is set) render every job, in ``workers`` processes.
    Each job gives its result, its behaviour shift and, for a trace with forced points, its
    result with every stop graded by the forced answer (else ``None``)."""
    workers = workers or os.cpu_count() or 1
    batches = [list(jobs[i : i + batch_size]) for i in range(0, len(jobs), batch_size)]
    args = (list(specs), list(shown), tagger, str(out) if out else None, counter)
    res: list[tuple[TraceResult, TraceShift | None, TraceResult | None]] = []
    if workers <= 1 or len(batches) <= 1:
        _init(*args)
        for b in batches:
            res.extend(_run(b))
            if progress:
                progress(len(b))
        return res
    with ProcessPoolExecutor(workers, initializer=_init, initargs=args) as ex:
        for done in ex.map(_run, batches):
            res.extend(done)
            if progress:
                progress(len(done))
    return res


def make_jobs(traces: Sequence[Trace], page_size: int = 200,
              forced: Mapping[str, ForcedRecord] | None = None) -> list[_Job]:
    """Traces in report order (benchmark, model, id) with their page names and neighbours,
    and their forced-answer points where ``forced`` has them."""
    order = sorted(traces, key=lambda t: (t.benchmark, t.model, t.id))
    slugs = [trace_slug(t.id) for t in order]
    return [
        _Job(t, slugs[i], i // page_size + 1, slugs[i - 1] if i else None,
             slugs[i + 1] if i + 1 < len(order) else None,
             forced.get(t.id) if forced is not None else None)
        for i, t in enumerate(order)
    ]


# --- the whole report -------------------------------------------------------------------------


def _png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _group_id(benchmark: str, model: str) -> str:
    return "g-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{benchmark}--{model}")


def _clean(out: Path) -> None:
    """Remove the pages of an earlier build (only in a folder this module made)."""
    if not (out / _MARKER).exists():
        return
    for p in [*out.glob("traces-*.html"), *(out / "t").glob("*.html")]:
        p.unlink()


def build_report(
    traces: Sequence[Trace],
    out: str | os.PathLike[str],
    policies: Sequence[str] = (),
    *,
    tagger: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    page_size: int = 200,
    grid: Mapping[str, Sequence[str]] | None = None,
    split: str = "all",
    excluded: Mapping[str, int] | None = None,
    counter: str | None = None,
    forced: Mapping[str, ForcedRecord] | None = None,
) -> ReportResult:
    """Write the HTML report for ``traces`` under ``out`` and return what was built.

    Args:
        traces: the traces to report (with gold answers).
        out: the output folder (created; pages of an earlier report there are replaced).
        policies: policy specs to show (default: the ``default`` preset); ``none`` and
            ``oracle`` are always added. The frontier grid is replayed in the same pass.
        progress: called with the number of traces just finished.
        page_size: rows per page of the trace list.
        excluded: traces left out while loading (reason → count), shown on the index.
        forced: forced-answer points by trace id (``evaluate.forced.load_forced``, loaded once):
            trace pages show the forced answer at each step's end, and the frontier page adds
            a frontier graded by forced answers over the traces that have points.

    Example::

        ts = load_traces(data_dir(), benchmarks=["gsm8k"])
        build_report(ts.traces, "tracestop-report", ["default", "traces-count:k=2"])
    """
    from tracestop.tokens import counter_for

    grid = FRONTIER_GRID if grid is None else grid
    shown = policy_specs(list(policies) or ["default"])
    specs = list(dict.fromkeys([*shown, *frontier_specs(grid)]))
    outp = Path(out)
    (outp / "t").mkdir(parents=True, exist_ok=True)
    _clean(outp)
    (outp / _MARKER).write_text("made by tracestop report\n", encoding="utf-8")

    jobs = make_jobs(traces, page_size, forced)
    done = process_traces(jobs, specs, shown, tagger=tagger, out=outp, workers=workers,
                          progress=progress, counter=counter)
    results = [r for r, _, _ in done]
    shifts = [s for _, s, _ in done if s is not None]
    forced_results = [f for _, _, f in done if f is not None]

    summary = summarise(results, shown)
    front = frontier_rows(results, [*frontier_specs(grid), *shown], grid)
    front_forced = frontier_rows(forced_results, [*frontier_specs(grid), *shown], grid)
    table = behaviour_shift(shifts)
    env = _env()
    ctr = counter_for(counter).name
    n_pages = max(1, -(-len(jobs) // page_size))
    first_page: dict[str, int] = {}
    first_job: dict[str, str] = {}
    for j in jobs:
        gid = _group_id(j.trace.benchmark, j.trace.model)
        first_page.setdefault(gid, j.list_page)
        first_job.setdefault(gid, j.slug)

    ex = Counter(dict(excluded or {}))
    for r in results:
        if r.excluded:
            ex[r.excluded] += 1
    groups: list[dict[str, Any]] = []
    for row in summary:
        gid = _group_id(row["benchmark"], row["model"])
        if not groups or (groups[-1]["benchmark"], groups[-1]["model"]) != (row["benchmark"], row["model"]):
            groups.append({"benchmark": row["benchmark"], "model": row["model"], "n": row["n"],
                           "page": first_page.get(gid), "gid": gid, "rows": []})
        groups[-1]["rows"].append(row)
    common = {"root": "", "counter": ctr, "split": split, "n_pages": n_pages}
    _write(outp / "index.html", env.get_template("index.html").render(
        title="tracestop report", groups=groups, policies=shown, excluded=dict(sorted(ex.items())),
        n_traces=sum(1 for r in results if not r.excluded), n_all=len(results), **common))

    by_id = {r.id: r for r in results}
    for page in range(1, n_pages + 1):
        rows = []
        for j in jobs[(page - 1) * page_size : page * page_size]:
            r = by_id[j.trace.id]
            gid = _group_id(j.trace.benchmark, j.trace.model)
            rows.append({
                "slug": j.slug, "trace": j.trace, "r": r,
                "anchor": gid if first_job[gid] == j.slug else None,
                "outcomes": [_outcome_view(r.outcomes[s], r) for s in shown
                             if s != "none" and s in r.outcomes],
            })
        _write(outp / f"traces-{page}.html", env.get_template("list.html").render(
            title=f"traces, page {page} of {n_pages}", page=page, rows=rows,
            policies=[s for s in shown if s != "none"], **common))

    benches = sorted({r["benchmark"] for r in front})
    plots = [{"benchmark": b, "src": _png(plot_frontier(front, b)),
              "rows": [r for r in front if r["benchmark"] == b]} for b in benches]
    fbenches = sorted({r["benchmark"] for r in front_forced})
    fplots = [{"benchmark": b, "src": _png(plot_frontier(front_forced, b, answer="forced")),
               "rows": [r for r in front_forced if r["benchmark"] == b]} for b in fbenches]
    _write(outp / "frontier.html", env.get_template("frontier.html").render(
        title="accuracy–tokens frontier", plots=plots, fplots=fplots, grid=grid, **common))
    _write(outp / "shift.html", env.get_template("shift.html").render(
        title="behaviour shift", table=table, rows=table.rows(),
        src=_png(plot_shift(table)) if shifts else None, **common))
    result = ReportResult(outp / "index.html", n_pages, results, summary, front, table, front_forced)
    (outp / "report.json").write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
    return result


def shift_only(
    traces: Sequence[Trace], *, tagger: str | None = None, workers: int | None = None,
    progress: Callable[[int], None] | None = None, counter: str | None = None, by: str = "family",
) -> ShiftTable:
    """The behaviour-shift table of ``traces`` (per model family, or ``by="benchmark"``)
    without writing a report."""
    done = process_traces(make_jobs(traces), ["none"], ["none"], tagger=tagger, workers=workers,
                          progress=progress, counter=counter)
    return behaviour_shift((s for _, s, _ in done if s is not None), by=by)
