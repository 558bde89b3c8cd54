"""Agreement between two step labellers (type, macro role, states-answer), and the packet a
second labeller reads.

    python scripts/label_agreement.py sample LABELS... [--n 60] [--seed 0] [--out labels/agreement/sample.jsonl]
    python scripts/label_agreement.py packet [--sample labels/agreement/sample.jsonl] [--out /tmp/packet.txt]
    python scripts/label_agreement.py score FIRST[,FIRST2...] [SECOND] [--monitor]

``sample`` draws steps from label files (``trace_id, index, label, states_answer, answer``),
stratified by trace, and writes their keys only (no labels, no text). ``packet`` renders each
sampled step for a second labeller: the question, the two steps before it as context, the step
itself, cut exactly as ``scripts/show_steps.py`` cuts it; it holds no labels and, since it
copies trace text, is written outside the repository. ``score`` joins two label files on
``(trace_id, index)`` (FIRST may be several files, comma-separated) and prints accuracy and Cohen's kappa for the 14 types, the 3 macro roles
and the states-answer flag (with precision / recall / F1, FIRST as reference), and how often
the stated answers agree where both flag one. ``--monitor`` also scores the shipped tagger and
the Monitor's answer tracking against FIRST on the same steps (on all of FIRST's steps when
SECOND is left out), each trace replayed whole from
step 0 exactly as ``tracestop eval`` does (a baseline, not an agreement between labellers).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any


def _read(path: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out.setdefault((str(r["trace_id"]), int(r["index"])), r)
    return out


def kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two equally long label sequences (1.0 when both are constant and equal)."""
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def _role(label: str) -> str:
    from tracestop._types import StepType

    return StepType(label).role.value


def _line(name: str, a: Sequence[Hashable], b: Sequence[Hashable]) -> str:
    acc = sum(x == y for x, y in zip(a, b)) / len(a)
    return f"{name:14s} n={len(a):4d}  accuracy {acc:.3f}  kappa {kappa(a, b):.3f}"


def _prf(ref: Sequence[bool], other: Sequence[bool]) -> str:
    tp = sum(r and o for r, o in zip(ref, other))
    fp = sum(o and not r for r, o in zip(ref, other))
    fn = sum(r and not o for r, o in zip(ref, other))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return f"{'':14s} P {p:.3f}  R {r:.3f}  F1 {f1:.3f}  (tp {tp}, fp {fp}, fn {fn})"


def _norm_answer(x: Any) -> str:
    return str(x).strip().strip("().").upper() if x is not None else ""


def report(first: dict[tuple[str, int], dict[str, Any]],
           second: dict[tuple[str, int], dict[str, Any]], title: str) -> None:
    keys = sorted(set(first) & set(second))
    print(f"# {title}: {len(keys)} common steps of {len({k[0] for k in keys})} traces")
    if not keys:
        return
    ta = [first[k]["label"] for k in keys]
    tb = [second[k]["label"] for k in keys]
    print(_line("type", ta, tb))
    print(_line("role", [_role(x) for x in ta], [_role(x) for x in tb]))
    sa = [bool(first[k]["states_answer"]) for k in keys]
    sb = [bool(second[k]["states_answer"]) for k in keys]
    print(_line("states_answer", sa, sb))
    print(_prf(sa, sb))
    both = [k for k in keys if first[k]["states_answer"] and second[k]["states_answer"]]
    if both:
        same = sum(_norm_answer(first[k].get("answer")) == _norm_answer(second[k].get("answer")) for k in both)
        print(f"{'answer':14s} same value on {same} of {len(both)} steps both flag")
    by_src: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for k in keys:
        by_src["gemma (choice)" if "gemma" in k[0] else "math"].append(k)
    if len(by_src) > 1:
        for src, ks in sorted(by_src.items()):
            print(f"  {src}:")
            print("  " + _line("type", [first[k]["label"] for k in ks], [second[k]["label"] for k in ks]))
            print("  " + _line("role", [_role(first[k]["label"]) for k in ks],
                               [_role(second[k]["label"]) for k in ks]))
            print("  " + _line("states_answer", [bool(first[k]["states_answer"]) for k in ks],
                               [bool(second[k]["states_answer"]) for k in ks]))
    confusions = Counter((x, y) for x, y in zip(ta, tb) if x != y)
    print("most frequent type disagreements (first -> second):")
    for (x, y), c in confusions.most_common(8):
        print(f"  {c:3d}  {x} -> {y}")


def monitor_labels(keys: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The shipped tagger's type and the Monitor's states-answer verdict on these steps, each
    trace fed whole from step 0 to a Monitor built as ``tracestop.evaluate.replay.prepare``
    builds it (policy ``none``), cut-off traces included (``prepare`` skips those)."""
    from tracestop.answers import infer_format
    from tracestop.evaluate.data import data_dir, load_traces
    from tracestop.evaluate.replay import out_of_fold_scorer
    from tracestop.monitor import Monitor, MonitorConfig
    from tracestop.policies import Never, candidates_by_step
    from tracestop.tokens import counter_for

    ids = {k[0] for k in keys}
    traces = [t for t in load_traces(data_dir(None), require_gold=False).traces if t.id in ids]
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for t in traces:
        fmt = infer_format(t.question, t.benchmark)
        prompt = t.meta.get("prompt")
        question = prompt if fmt == "choice" and isinstance(prompt, str) and prompt else t.question
        config = MonitorConfig(answer_scorer=out_of_fold_scorer(t.question)) if t.split == "dev" else None
        m = Monitor(Never(), question=question, answer_format=fmt, model=t.model,
                    count_tokens=counter_for(t.model), config=config)
        m.feed(t.trace)
        m.end()
        stated = candidates_by_step(m.records)
        for i, rec in enumerate(m.records):
            if (t.id, i) in keys:
                c = stated.get(i)
                out[(t.id, i)] = {"label": rec.tagged.tag.type.value, "states_answer": c is not None,
                                  "answer": c.value if c is not None else None}
    return out


def cmd_sample(a: argparse.Namespace) -> None:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for f in a.labels:
        rows.update(_read(f))
    by_trace: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for k in sorted(rows):
        by_trace[k[0]].append(k)
    rng = random.Random(a.seed)
    per = -(-a.n // len(by_trace))  # ceil: every trace gets the same share, then trim to n
    picked: list[tuple[str, int]] = []
    for tid in sorted(by_trace):
        ks = by_trace[tid]
        picked += rng.sample(ks, min(per, len(ks)))
    picked = sorted(rng.sample(picked, min(a.n, len(picked))))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with Path(a.out).open("w", encoding="utf-8") as f:
        for tid, i in picked:
            f.write(json.dumps({"trace_id": tid, "index": i}) + "\n")
    print(f"{len(picked)} steps of {len({k[0] for k in picked})} traces -> {a.out}")


def cmd_packet(a: argparse.Namespace) -> None:
    from tracestop.answers import infer_format
    from tracestop.evaluate.data import data_dir
    from tracestop.segment import segment, split_thinking

    keys = list(_read(a.sample))
    ids = {k[0] for k in keys}
    traces: dict[str, dict[str, Any]] = {}
    for path in sorted((data_dir(None) / "traces").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            r = json.loads(line)
            if r["id"] in ids:
                traces[r["id"]] = r
    cut: dict[str, list[str]] = {}
    with Path(a.out).open("w", encoding="utf-8") as f:
        for n, (tid, i) in enumerate(keys, 1):
            r = traces[tid]
            if tid not in cut:
                cut[tid] = [s.text for s in segment(split_thinking(r["trace"])[0])]
            steps = cut[tid]
            # a choice question's options are in the prompt, not in the question field
            prompt = (r.get("meta") or {}).get("prompt")
            full = prompt if isinstance(prompt, str) and prompt and \
                infer_format(r["question"], r["benchmark"]) == "choice" else r["question"]
            q = full if len(full) <= a.question_chars else full[: a.question_chars] + " [...]"
            f.write(f"=============== ITEM {n}  trace_id={tid}  index={i}  benchmark={r['benchmark']}\n")
            f.write(f"QUESTION: {q}\n\n")
            f.writelines(f"--- context: step {j} ---\n{steps[j]}\n\n" for j in range(max(0, i - 2), i))
            f.write(f">>> STEP {i} (label this one) >>>\n{steps[i]}\n\n")
    print(f"{len(keys)} items -> {a.out}")


def cmd_score(a: argparse.Namespace) -> None:
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for f in a.first.split(","):
        first.update(_read(f))
    keys = set(first)
    if a.second:
        second = _read(a.second)
        report(first, second, f"{a.first} vs {a.second}")
        keys &= set(second)
        print()
    if a.monitor:
        report(first, monitor_labels(keys),
               f"{a.first} vs the shipped tagger + Monitor answer tracking (a baseline)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("labels", nargs="+")
    s.add_argument("--n", type=int, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="labels/agreement/sample.jsonl")
    p = sub.add_parser("packet")
    p.add_argument("--sample", default="labels/agreement/sample.jsonl")
    p.add_argument("--out", default="/tmp/label_packet.txt")
    p.add_argument("--question-chars", type=int, default=1500)
    c = sub.add_parser("score")
    c.add_argument("first")
    c.add_argument("second", nargs="?", default=None)
    c.add_argument("--monitor", action="store_true")
    a = ap.parse_args()
    {"sample": cmd_sample, "packet": cmd_packet, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    main()
