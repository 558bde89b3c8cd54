"""How far the Monitor's answer tracking agrees with the hand labels' ``states_answer``.

    python scripts/states_answer_agreement.py [--data DIR]

Every trace of the shared labels is replayed through the Monitor exactly as ``tracestop eval``
does; a labelled step "states an answer" for the Monitor when it yields a candidate (a value
in prose is judged once the next step is known, and counts for the step that states it). Prints
precision / recall / F1 against the labels, overall and per answer format; also for a looser
reading that adds steps restating the candidate already current (a value or option letter
equal to it). Nothing is trained here: the labels are only read.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    from tracestop.answers import normalize, value_sentences
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import prepare
    from tracestop.policies import candidates_by_step

    root = data_dir(a.data)
    rows = [json.loads(line) for line in (root / "labels" / "reasontype-dev.jsonl").open(encoding="utf-8")
            if line.strip()]
    ids = {r["trace_id"] for r in rows}
    traces = {t.id: t for t in load_traces(root, require_gold=False).traces if t.id in ids}
    preps = {i: prepare(t) for i, t in traces.items()}
    stated = {i: candidates_by_step(p.records) for i, p in preps.items()}

    def restates(text: str, cur: str | None, fmt: str) -> bool:
        if cur is None:
            return False
        if fmt == "math":
            return any(normalize(v) == normalize(cur) for _, v, _, _ in value_sentences(text))
        if fmt == "choice":
            pat = r"(?:\(|\b(?:option|choice|answer)\s+)" + re.escape(cur) + r"\b|\b" + re.escape(cur) + r"[.):]"
            return re.search(pat, text) is not None
        return re.search(r"\b" + re.escape(cur) + r"\b", text, re.IGNORECASE) is not None

    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        p = preps.get(r["trace_id"])
        if p is None or r["index"] >= len(p.records):
            continue
        rec = p.records[r["index"]]
        fmt = p.result.answer_format
        prev = p.records[r["index"] - 1].answer.current if r["index"] else None
        # a value in prose is judged once the next step is known; it is stated at Candidate.step
        cand = r["index"] in stated[r["trace_id"]]
        gold = bool(r["states_answer"])
        for name, pred in (("candidate", cand),
                           ("candidate or restatement", cand or restates(rec.tagged.step.text, prev, fmt))):
            for key in (f"{name} | all", f"{name} | {fmt}"):
                c = counts[key]
                c[0] += pred and gold
                c[1] += pred and not gold
                c[2] += gold and not pred
    print(f"{'reading | format':38s} {'P':>6s} {'R':>6s} {'F1':>6s}   tp   fp   fn")
    for key, (tp, fp, fn) in sorted(counts.items()):
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec_ = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec_ / (prec + rec_) if prec + rec_ else 0.0
        print(f"{key:38s} {prec:6.3f} {rec_:6.3f} {f1:6.3f} {tp:4d} {fp:4d} {fn:4d}")


if __name__ == "__main__":
    main()
