"""Seeded, label-stratified sample of repo-labelled steps for a blind convention audit.

    python scripts/audit_sample.py [--seed 27] [--out labels/agreement/audit-set27-sample.jsonl]

Draws from ``labels/steps-set*.jsonl``: 50 steps labelled case_consideration, 30 verification,
20 context_repetition, then 20 steps among the last 3 steps of their trace (any label, not
already drawn). Writes keys only (trace_id, index), sorted, so the packet of
``scripts/label_agreement.py packet --sample`` hides both the labels and the strata.
"""

from __future__ import annotations

import argparse
import glob
import json
import random

from tracestop.evaluate.data import data_dir
from tracestop.segment import segment, split_thinking

STRATA = (("case_consideration", 50), ("verification", 30), ("context_repetition", 20))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--last", type=int, default=20)
    ap.add_argument("--out", default="labels/agreement/audit-set27-sample.jsonl")
    a = ap.parse_args()
    rows: dict[tuple[str, int], str] = {}
    for f in sorted(glob.glob("labels/steps-set*.jsonl")):
        for line in open(f, encoding="utf-8"):
            r = json.loads(line)
            rows.setdefault((r["trace_id"], r["index"]), r["label"])
    ids = {k[0] for k in rows}
    nsteps: dict[str, int] = {}
    for p in sorted((data_dir(None) / "traces").glob("*.jsonl")):
        for line in open(p, encoding="utf-8"):
            t = json.loads(line)
            if t["id"] in ids:
                nsteps[t["id"]] = len(segment(split_thinking(t["trace"])[0]))
    rng = random.Random(a.seed)
    picked: set[tuple[str, int]] = set()
    for label, n in STRATA:
        pool = sorted(k for k, v in rows.items() if v == label)
        picked.update(rng.sample(pool, n))
    tail = sorted(k for k in rows if k not in picked and k[1] >= nsteps[k[0]] - 3)
    picked.update(rng.sample(tail, a.last))
    with open(a.out, "w", encoding="utf-8") as f:
        for tid, i in sorted(picked):
            f.write(json.dumps({"trace_id": tid, "index": i}) + "\n")
    print(f"{len(picked)} keys ({len(tail)} tail candidates) -> {a.out}")


if __name__ == "__main__":
    main()
