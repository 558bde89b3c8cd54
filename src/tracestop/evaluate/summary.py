"""Aggregate replay results per benchmark × model × policy."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tracestop.evaluate.replay import TraceResult
from tracestop.evaluate.tally import Tally, saved_share

__all__ = ["POOLED", "summarise"]

#: the model name of rows pooled over every model of a benchmark
POOLED = "all"


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def _row(benchmark: str, model: str, policy: str, rs: Sequence[TraceResult]) -> dict[str, Any]:
    n = len(rs)
    outs = [r.outcomes[policy] for r in rs]
    t = Tally.of((o.correct, r.correct_full, o.tokens, r.tokens_full) for r, o in zip(rs, outs))
    right, right_full, regret, tokens, tokens_full = t.right, t.right_full, t.regret, t.used, t.full
    total = sum(o.total_tokens for o in outs)
    total_full = sum(r.tokens_full + r.answer_tokens for r in rs)
    oracle_tokens = sum(r.outcomes["oracle"].tokens for r in rs) if "oracle" in rs[0].outcomes else tokens_full
    diffs = [int(o.correct) - int(r.correct_full) for r, o in zip(rs, outs)]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / max(1, n - 1)
    half = 1.96 * math.sqrt(var / n)
    saved = t.saved
    oracle_saved = saved_share(oracle_tokens, tokens_full)
    return {
        "benchmark": benchmark,
        "model": model,
        "policy": policy,
        "n": n,
        "accuracy": t.accuracy,
        "accuracy_full": t.accuracy_full,
        "accuracy_ci": list(_wilson(right, n)),
        "delta_pts": 100 * (right - right_full) / n,
        "delta_ci_pts": [100 * (mean - half), 100 * (mean + half)],
        "tokens": tokens,
        "tokens_full": tokens_full,
        "saved": saved,
        "total_tokens": total,
        "total_tokens_full": total_full,
        "total_saved": saved_share(total, total_full),
        "oracle_saved": oracle_saved,
        "oracle_captured": saved / oracle_saved if oracle_saved > 0 else None,
        "regret": regret / n,
        "regret_count": regret,
        "stopped": sum(o.stopped for o in outs),
    }


def summarise(
    results: Iterable[TraceResult], policies: Sequence[str], *, pooled: bool = True
) -> list[dict[str, Any]]:
    """Rows per benchmark × model × policy (and per benchmark pooled over models, model
    ``"all"``, when a benchmark has more than one model)."""
    groups: dict[tuple[str, str], list[TraceResult]] = defaultdict(list)
    by_bench: dict[str, list[TraceResult]] = defaultdict(list)
    for r in results:
        if r.excluded:
            continue
        groups[(r.benchmark, r.model)].append(r)
        by_bench[r.benchmark].append(r)
    rows = []
    for bench in sorted(by_bench):
        models = sorted(m for b, m in groups if b == bench)
        keys = [(bench, m) for m in models]
        if pooled and len(models) > 1:
            keys.append((bench, POOLED))
        for b, m in keys:
            rs = by_bench[b] if m == POOLED else groups[(b, m)]
            for p in policies:
                rows.append(_row(b, m, p, rs))
    return rows
