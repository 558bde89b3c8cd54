"""Seeded, label-stratified sample of repo-labelled steps for a blind convention audit.

    python scripts/audit_sample.py [--seed 27] [--out labels/agreement/audit-set27-sample.jsonl]
    python scripts/audit_sample.py --compare labels/agreement/audit-set27-blind.jsonl

Draws from ``labels/steps-set{0..26}.jsonl`` (``--max-set``): 50 steps labelled case_consideration, 30 verification,
20 context_repetition, then 20 steps among the last 3 steps of their trace (any label, not
already drawn). Writes keys only (trace_id, index), sorted, so the packet of
``scripts/label_agreement.py packet --sample`` hides both the labels and the strata.
``--compare BLIND`` re-draws the same sample (same seed) and compares a blind relabel of it
with the set files' labels: flip rate per stratum and per original label, the confusions, and
the states-answer differences.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from tracestop.evaluate.data import data_dir
from tracestop.segment import segment, split_thinking

STRATA = (("case_consideration", 50), ("verification", 30), ("context_repetition", 20))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--last", type=int, default=20)
    ap.add_argument("--out", default="labels/agreement/audit-set27-sample.jsonl")
    ap.add_argument("--compare", default=None)
    ap.add_argument("--max-set", type=int, default=26, help="audit sets 0..N (26: the sets before this audit)")
    a = ap.parse_args()
    rows: dict[tuple[str, int], str] = {}
    full: dict[tuple[str, int], dict] = {}
    files = [f for f in glob.glob("labels/steps-set*.jsonl")
             if int(Path(f).stem.removeprefix("steps-set")) <= a.max_set]
    for f in sorted(files):
        for line in Path(f).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rows.setdefault((r["trace_id"], r["index"]), r["label"])
            full.setdefault((r["trace_id"], r["index"]), r)
    ids = {k[0] for k in rows}
    nsteps: dict[str, int] = {}
    for p in sorted((data_dir(None) / "traces").glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").splitlines():
            t = json.loads(line)
            if t["id"] in ids:
                nsteps[t["id"]] = len(segment(split_thinking(t["trace"])[0]))
    rng = random.Random(a.seed)
    picked: set[tuple[str, int]] = set()
    stratum: dict[tuple[str, int], str] = {}
    for label, n in STRATA:
        pool = sorted(k for k, v in rows.items() if v == label)
        got = rng.sample(pool, n)
        picked.update(got)
        stratum.update(dict.fromkeys(got, label))
    tail = sorted(k for k in rows if k not in picked and k[1] >= nsteps[k[0]] - 3)
    got = rng.sample(tail, a.last)
    picked.update(got)
    stratum.update(dict.fromkeys(got, "last 3 steps"))
    if a.compare:
        compare(full, stratum, a.compare)
        return
    with Path(a.out).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps({"trace_id": tid, "index": i}) + "\n" for tid, i in sorted(picked))
    print(f"{len(picked)} keys ({len(tail)} tail candidates) -> {a.out}")


def compare(full: dict, stratum: dict, path: str) -> None:
    blind = {(r["trace_id"], r["index"]): r for r in map(json.loads, Path(path).read_text(encoding="utf-8").splitlines())}
    assert set(blind) == set(stratum), "the blind file must hold exactly the sampled keys"
    for name, key in (("stratum", lambda k: stratum[k]), ("original label", lambda k: full[k]["label"])):
        print(f"flip rate by {name}:")
        groups: dict[str, list] = defaultdict(list)
        for k in blind:
            groups[key(k)].append(k)
        for g, ks in sorted(groups.items(), key=lambda x: -len(x[1])):
            flips = Counter(blind[k]["label"] for k in ks if blind[k]["label"] != full[k]["label"])
            n = sum(flips.values())
            print(f"  {g:26s} {n:2d}/{len(ks):2d} = {n / len(ks):.2f}  {dict(flips.most_common())}")
    tail = Counter(full[k]["label"] for k in blind if stratum[k] == "last 3 steps")
    print("set-file labels of the last-3 stratum:", dict(tail.most_common()))
    same = sum(blind[k]["label"] == full[k]["label"] for k in blind)
    print(f"type agreement {same}/{len(blind)} = {same / len(blind):.3f}")
    conf = Counter((full[k]["label"], blind[k]["label"]) for k in blind
                   if blind[k]["label"] != full[k]["label"])
    print("confusions (set file -> blind):", conf.most_common())
    shared = [json.loads(x) for x in (data_dir(None) / "labels" / "reasontype-dev.jsonl")
              .read_text(encoding="utf-8").splitlines() if x]
    for name, rows in (("set files", list(full.values())), ("shared labels", shared)):
        for fam in ("gemma", "other"):
            sub = [r for r in rows if ("gemma" in r["trace_id"]) == (fam == "gemma")]
            c = Counter(r["label"] for r in sub)
            print(f"{name} {fam}: {len(sub)} steps,", ", ".join(
                f"{t} {c[t] / len(sub):.3f}" for t in
                ("case_consideration", "verification", "final_conclusion", "context_repetition")))
    sa = [(full[k]["states_answer"], blind[k]["states_answer"]) for k in blind]
    print(f"states_answer: both {sum(x and y for x, y in sa)}, set file only "
          f"{sum(x and not y for x, y in sa)}, blind only {sum(y and not x for x, y in sa)}, "
          f"neither {sum(not x and not y for x, y in sa)}")


if __name__ == "__main__":
    main()
