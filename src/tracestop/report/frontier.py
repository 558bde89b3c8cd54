"""The accuracy–tokens frontier: each policy family over a small parameter grid, per benchmark.

One replay pass over the grid (plus full generation and the oracle) gives, per benchmark
pooled over its models, a point (thinking tokens saved %, accuracy) for every spec.

Example::

    from tracestop.report.frontier import frontier
    rows = frontier(split="dev", benchmarks=["gsm8k"])
    best = max((r for r in rows if r["family"] == "traces-shift"), key=lambda r: r["accuracy"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tracestop.evaluate.replay import TraceResult
from tracestop.evaluate.summary import POOLED, summarise

__all__ = ["FRONTIER_GRID", "frontier", "frontier_rows", "frontier_specs", "plot_frontier"]

#: policy family → the specs of its parameter grid (small on purpose: one replay covers it)
FRONTIER_GRID: dict[str, tuple[str, ...]] = {
    "traces-shift": tuple(
        f"traces-shift:window={w},delta={d}" for w, d in ((2, 1.0), (3, 0.67), (4, 0.75), (4, 1.0),
                                                           (6, 0.67), (8, 0.75))
    ),
    "traces-count": tuple(f"traces-count:k={k}" for k in (1, 2, 3, 5)),
    "budget": tuple(f"budget:tokens={n}" for n in (500, 1000, 2000, 4000, 8000)),
    "consistency": tuple(f"consistency:k={k}" for k in (2, 3, 4)),
}


def frontier_specs(grid: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every spec of the grid, then ``none`` and ``oracle`` (normalised, deduplicated)."""
    grid = FRONTIER_GRID if grid is None else grid
    specs = [s for family in grid.values() for s in family]
    return list(dict.fromkeys([*specs, "none", "oracle"]))


def _family(spec: str, grid: Mapping[str, Sequence[str]]) -> str:
    for family, specs in grid.items():
        if spec in specs:
            return family
    if spec in ("none", "oracle"):
        return spec
    return "chosen"


def frontier_rows(
    results: Iterable[TraceResult],
    specs: Sequence[str] | None = None,
    grid: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Frontier points from replay results: one row per benchmark × spec, pooled over models.

    Each row has ``benchmark``, ``policy``, ``family`` (grid family, ``none``, ``oracle`` or
    ``chosen`` for specs outside the grid), ``label`` (the parameters), ``n``, ``accuracy``,
    ``accuracy_full``, ``saved`` (thinking tokens saved, 0..1) and ``total_saved``.
    """
    grid = FRONTIER_GRID if grid is None else grid
    results = [r for r in results if not r.excluded]
    if not results:
        return []
    specs = list(dict.fromkeys(specs)) if specs is not None else frontier_specs(grid)
    available = set(results[0].outcomes)
    specs = [s for s in specs if s in available]
    rows = summarise(results, specs, pooled=True)
    out: list[dict[str, Any]] = []
    for bench in sorted({r["benchmark"] for r in rows}):
        mine = [r for r in rows if r["benchmark"] == bench]
        pooled = [r for r in mine if r["model"] == POOLED]
        chosen = pooled or mine  # a benchmark with a single model has no pooled rows
        models = sorted({r["model"] for r in mine if r["model"] != POOLED})
        for r in chosen:
            spec = r["policy"]
            out.append({
                "benchmark": bench,
                "models": models,
                "policy": spec,
                "family": _family(spec, grid),
                "label": spec.partition(":")[2] or spec,
                "n": r["n"],
                "accuracy": r["accuracy"],
                "accuracy_full": r["accuracy_full"],
                "saved": r["saved"],
                "total_saved": r["total_saved"],
                "regret": r["regret"],
            })
    return out


def frontier(
    data: str | None = None,
    split: str = "all",
    benchmarks: Sequence[str] = (),
    *,
    models: Sequence[str] = (),
    extra: Sequence[str] = (),
    grid: Mapping[str, Sequence[str]] | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Replay the recorded traces once over the grid (and ``extra`` specs) and return the
    frontier rows (see ``frontier_rows``).

    Args:
        data: the data directory (default: ``$TRACESTOP_DATA``, else ``../shared/data``).
        split: ``dev``, ``test`` or ``all``.
        benchmarks: only these benchmarks (all when empty).
        models: only these models (all when empty).
        extra: more specs to place on the plot (family ``chosen``).
        grid: policy family → specs; ``FRONTIER_GRID`` by default.
        workers: worker processes (default: all cores).
        progress: called with the number of traces just replayed.
    """
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import policy_specs, replay_many
    from tracestop.presets import load_presets

    grid = FRONTIER_GRID if grid is None else grid
    presets = load_presets()
    specs = list(dict.fromkeys([*frontier_specs(grid), *extra]))
    ts = load_traces(data_dir(data), benchmarks=tuple(benchmarks), models=tuple(models),
                     split=split)  # type: ignore[arg-type]
    results = replay_many(ts.traces, policy_specs(specs, presets), workers=workers,
                          progress=progress, presets=presets)
    return frontier_rows(results, specs, grid)


_STYLE = {
    "traces-shift": ("tab:red", "o"),
    "traces-count": ("tab:orange", "s"),
    "budget": ("tab:blue", "^"),
    "consistency": ("tab:green", "D"),
    "chosen": ("tab:purple", "*"),
}


def plot_frontier(rows: Sequence[Mapping[str, Any]], benchmark: str, *, fmt: str = "png",
                  answer: str = "stated") -> bytes:
    """The frontier figure of one benchmark as PNG (or SVG) bytes (``answer="forced"``: the
    rows grade stops by forced answers; the title says so)."""
    from tracestop.report._plot import figure_bytes, pyplot

    plt = pyplot()

    mine = [r for r in rows if r["benchmark"] == benchmark]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    try:
        for family, (color, marker) in _STYLE.items():
            pts = sorted((r for r in mine if r["family"] == family), key=lambda r: r["saved"])
            if not pts:
                continue
            xs = [100 * r["saved"] for r in pts]
            ys = [100 * r["accuracy"] for r in pts]
            ax.plot(xs, ys, marker=marker, color=color, label=family,
                    linestyle="-" if family != "chosen" else "none", alpha=0.85)
            for r, x, y in zip(pts, xs, ys):
                ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(3, 3),
                            fontsize=6, color=color)
        for r in mine:
            if r["family"] == "none":
                ax.scatter([100 * r["saved"]], [100 * r["accuracy"]], color="black", marker="X",
                           s=60, zorder=5, label="full generation")
            elif r["family"] == "oracle":
                ax.scatter([100 * r["saved"]], [100 * r["accuracy"]], color="gold", marker="*",
                           s=160, edgecolors="black", zorder=5, label="oracle")
        n = mine[0]["n"] if mine else 0
        what = ", forced answers" if answer == "forced" else ""
        ax.set_title(f"{benchmark} (n={n}, pooled over {len(mine[0]['models']) if mine else 0} "
                     f"model(s){what})", fontsize=10)
        ax.set_xlabel("thinking tokens saved (%)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        return figure_bytes(fig, fmt)
    finally:
        plt.close(fig)
