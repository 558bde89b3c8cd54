"""Draw labelling windows from uncovered dev traces and print them for a labeller.

    python scripts/label_windows.py FILE[,FILE...] --seed S --window W --edge E \
        --take "id-substring=N[,id-substring=N...]" [--out /tmp/windows.txt]

For each ``id-substring=N`` in order, walks the trace files (``$TRACESTOP_DATA/traces``) in file
order and takes the first N traces whose id contains the substring, that are in the ``dev``
split, that no file in ``labels/``, ``labels/agreement/`` or the shared ``labels/`` covers, and
that have at least ``2·E + W`` steps. Each gets one window of W steps whose start is drawn with
one ``random.Random(S).randint(E, n − E − W)`` call per trace (one generator for the whole
run). Steps are cut as ``scripts/show_steps.py`` cuts them. Prints the picked windows; ``--out``
gets the question, the two steps before each window and the window (trace text, so write it
outside the repository). Sets 27–28 were drawn with:

    ... deepseek-r1-distill-qwen-32b__aime.jsonl --seed 27 --window 12 --edge 24 \
        --take "qwen-32b:aime24=5,qwen-32b:aime25=10"
    ... deepseek-r1-distill-qwen-32b__math500.jsonl --seed 28 --window 12 --edge 24 \
        --take "qwen-32b:math500:calibration=26"
    ... qwq-32b__math500.jsonl --seed 28 --window 10 --edge 6 --take "qwq-32b:math500=8"

(run before the set's own file existed: afterwards its traces count as covered).

``--free`` (sets 29-30) also takes traces that label files already cover, as long as a window
fits that overlaps no labelled index of that trace: the start is then drawn with one
``rng.choice`` over the starts in ``[E, n − E − W]`` whose window holds no labelled step (traces
with no such start are skipped); ``--min-steps M`` skips traces shorter than M steps.
Set 29 (run before sets 29-30 existed):

    ... deepseek-r1-distill-llama-70b__aime.jsonl --seed 29 --window 22 --edge 24 --free \
        --min-steps 100 --take "llama-70b:aime25=3"
    ... qwq-32b__aime.jsonl --seed 29 --window 22 --edge 24 --free --min-steps 100 \
        --take "qwq-32b:aime25=3"
    ... gemma-4-12b-it__mmlu-pro.jsonl,gemma-4-12b-it__gpqa-diamond.jsonl --seed 30 --window 20 \
        --edge 24 --free --min-steps 70 --take "mmlu-pro:candidate_reruns=1,gpqa-diamond=1"
    ... deepseek-r1-distill-qwen-1.5b__aime.jsonl --seed 30 --window 22 --edge 24 --free \
        --min-steps 100 --take "qwen-1.5b:aime25=1"

and then, with set 29 present (its windows count as labelled) and set 30 not yet:

    ... deepseek-r1-distill-llama-70b__aime.jsonl --seed 31 --window 22 --edge 24 --free \
        --min-steps 100 --take "llama-70b:aime25:2=3"
    ... qwq-32b__aime.jsonl --seed 31 --window 22 --edge 24 --free --min-steps 100 \
        --take "qwq-32b:aime25:2=2"
    ... gemma-4-12b-it__mmlu-pro.jsonl,gemma-4-12b-it__gpqa-diamond.jsonl --seed 31 --window 20 \
        --edge 24 --free --min-steps 70 --take "mmlu-pro:candidate_reruns:2199=1,gpqa-diamond-070=1"

``--whole`` (set 31) draws, per ``id-substring=N``, N of the uncovered dev traces with
``min-steps..W`` steps (``rng.sample`` over them in file order) and prints each whole. Sets 31-32,
in this order (set 31's first file written after the first command, set 32's first 76 rows after
the second and third; the last three ran with those rows present):

    ... deepseek-r1-distill-qwen-32b__math500.jsonl --seed 31 --window 24 --min-steps 8 --whole \
        --take "qwen-32b:math500=7"
    ... gemma-4-12b-it__mmlu-pro.jsonl,gemma-4-12b-it__gpqa-diamond.jsonl --seed 32 --window 16 \
        --edge 24 --free --min-steps 70 --take "mmlu-pro:candidate_reruns:1=1,gpqa-diamond-1=1"
    ... deepseek-r1-distill-qwen-7b__aime.jsonl,deepseek-r1-distill-llama-8b__aime.jsonl --seed 32 \
        --window 22 --edge 24 --free --min-steps 100 --take "qwen-7b:aime25=1,llama-8b:aime25=1"
    ... deepseek-r1-distill-qwen-32b__math500.jsonl --seed 33 --window 20 --min-steps 8 --whole \
        --take "qwen-32b:math500=2"
    ... gemma-4-12b-it__mmlu-pro.jsonl,gemma-4-12b-it__gpqa-diamond.jsonl --seed 33 --window 14 \
        --edge 24 --free --min-steps 70 --take "4746:s1=1,gpqa-diamond-087:s7=1"
"""

from __future__ import annotations

import argparse
import glob
import json
import random
from pathlib import Path

from tracestop.evaluate.data import data_dir, split_of
from tracestop.segment import segment, split_thinking


def labelled() -> dict[str, set[int]]:
    """Every labelled (trace_id -> indices) in labels/, labels/agreement/ and the shared labels."""
    files = glob.glob("labels/*.jsonl") + glob.glob("labels/agreement/*.jsonl")
    files += [str(p) for p in (data_dir(None) / "labels").glob("*.jsonl")]
    out: dict[str, set[int]] = {}
    for f in files:
        for x in Path(f).read_text(encoding="utf-8").splitlines():
            if x:
                r = json.loads(x)
                out.setdefault(r["trace_id"], set()).add(int(r["index"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--window", type=int, default=12)
    ap.add_argument("--edge", type=int, default=24)
    ap.add_argument("--take", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--free", action="store_true", help="covered traces too; avoid labelled indices")
    ap.add_argument("--min-steps", type=int, default=0)
    ap.add_argument("--whole", action="store_true",
                    help="uncovered traces of min-steps..window steps, labelled whole; N drawn with rng.sample")
    a = ap.parse_args()
    old = labelled()
    rng = random.Random(a.seed)
    picked: list[tuple[dict, list[str], int]] = []
    for group in a.take.split(","):
        sub, want = group.rsplit("=", 1)
        got = 0
        if a.whole:
            cands: list[tuple[dict, list[str], int]] = []
            for name in a.files.split(","):
                for line in (data_dir(None) / "traces" / name).read_text(encoding="utf-8").splitlines():
                    r = json.loads(line)
                    if sub not in r["id"] or split_of(r["question"]) != "dev" or r["id"] in old:
                        continue
                    steps = [s.text for s in segment(split_thinking(r["trace"])[0])]
                    if max(a.min_steps, 1) <= len(steps) <= a.window:
                        cands.append((r, steps, 0))
            picked += rng.sample(cands, min(int(want), len(cands)))
            continue
        for name in a.files.split(","):
            for line in (data_dir(None) / "traces" / name).read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                if got == int(want) or sub not in r["id"] or split_of(r["question"]) != "dev":
                    continue
                if r["id"] in old and not a.free:
                    continue
                steps = [s.text for s in segment(split_thinking(r["trace"])[0])]
                if len(steps) < max(2 * a.edge + a.window, a.min_steps):
                    continue
                if a.free:
                    done = old.get(r["id"], set())
                    starts = [
                        b
                        for b in range(a.edge, len(steps) - a.edge - a.window + 1)
                        if not done.intersection(range(b, b + a.window))
                    ]
                    if not starts:
                        continue
                    start = rng.choice(starts)
                else:
                    start = rng.randint(a.edge, len(steps) - a.edge - a.window)
                picked.append((r, steps, start))
                got += 1
    for r, steps, s in picked:
        e = len(steps) if a.whole else s + a.window
        print(r["id"], f"n={len(steps)}", f"window {s}..{e - 1}", f"closed={'</think>' in r['trace']}")
    if a.out:
        with Path(a.out).open("w", encoding="utf-8") as f:
            for r, steps, s in picked:
                e = len(steps) if a.whole else s + a.window
                f.write(f"######## TRACE {r['id']} n={len(steps)} window {s}..{e - 1}\n")
                f.write(f"QUESTION: {r['question']}\n")
                f.writelines(f"{'ctx' if j < s else '>>>'} [{j}] {steps[j]}\n" for j in range(max(0, s - 2), e))
                f.write("\n")


if __name__ == "__main__":
    main()
