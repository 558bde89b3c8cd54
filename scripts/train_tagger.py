"""Train the linear step tagger on the hand labels and write its weights.

    python scripts/train_tagger.py [--data ../shared/data] [--extra labels] [--no-extra]
                                   [--out src/tracestop/tag/weights/linear.npz]

Training data: the shared labels (``data/labels/reasontype-dev.jsonl``) plus every
``labels/*.jsonl`` of the repository (no text: each step is re-cut from the shared traces,
see ``tracestop.lab.labels.load_extra_labels``), each step with the context the Monitor
gives at run time (``tracestop.lab.honest.load_runtime_examples``: the answer reader's
``states_answer`` flag, never the gold one; the gold flag is the states-answer head's target). Deterministic (sorted vocabulary, lbfgs,
fixed seed, fixed zip timestamps): two runs on the same labels write identical bytes.
The offline word encoder (``scripts/build_embed.py``, ``tag/weights/embed.npz``) is read with
``--embed`` (off by default: ``tracestop.lab.train.USE_EMBED``, docs/tagger.md "Offline
encoder"); it is copied next to ``--out`` when elsewhere, as the weights file names it.
Weak labels mapped from other taxonomies are off by default: they lowered the grouped
cross-validated accuracy (docs/tagger.md); ``--weak`` adds them anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

from tracestop.lab.honest import load_runtime_examples
from tracestop.lab.labels import load_labels, load_weak
from tracestop.lab.train import DEFAULT_C, TYPE_CLASS_WEIGHT, USE_EMBED, fit, save_weights
from tracestop.tag.embed import DEFAULT_EMBED, load_embedding
from tracestop.tag.linear import DEFAULT_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("TRACESTOP_DATA", ROOT / ".." / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data, help="shared data folder")
    ap.add_argument("--extra", type=Path, default=ROOT / "labels",
                    help="folder of extra labels (*.jsonl, no text)")
    ap.add_argument("--no-extra", action="store_true", help="shared labels only")
    ap.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS, help="weights file to write")
    ap.add_argument("--c", type=float, default=DEFAULT_C, help="inverse L2 strength")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weak", action="store_true", help="add mapped weak labels")
    ap.add_argument("--embed", action=argparse.BooleanOptionalAction, default=USE_EMBED,
                    help="with the offline encoder (default: off)")
    ap.add_argument("--embed-file", type=Path, default=DEFAULT_EMBED,
                    help="the offline encoder's file (scripts/build_embed.py)")
    args = ap.parse_args(argv)
    use_embed = args.embed

    labels = args.data / "labels" / "reasontype-dev.jsonl"
    # the run-time context (as the Monitor gives it): the answer reader's states_answer flag,
    # the question the model saw, the previous step's text and flag (tracestop.lab.honest)
    examples, _ = load_runtime_examples(args.data, None if args.no_extra else args.extra)
    shared_ids = {ex.trace_id for ex in load_labels(labels, args.data / "traces")}
    n_shared = sum(ex.trace_id in shared_ids for ex in examples)
    extra = [ex for ex in examples if ex.trace_id not in shared_ids]
    if args.weak:
        examples += load_weak(args.data / "traces")
    embed_file = None
    embed = None
    if use_embed:
        embed_file = args.embed_file.name
        target = args.out.parent / embed_file
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() != args.embed_file.resolve():
            shutil.copyfile(args.embed_file, target)
        embed = load_embedding(target)
    weights = fit(examples, c=args.c, seed=args.seed, embed=embed)
    meta = {"n_examples": len(examples), "n_shared": n_shared, "n_extra": len(extra),
            "c": args.c, "type_class_weight": TYPE_CLASS_WEIGHT, "seed": args.seed,
            "weak": args.weak, "labels_file": labels.name, "embed": embed_file,
            "extra_files": [] if args.no_extra else sorted(
                p.name for p in args.extra.glob("*.jsonl"))}
    path = save_weights(args.out, weights, meta, embed_file=embed_file)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, sha256 {digest}) "
          f"from {len(examples)} steps ({n_shared} shared, {len(extra)} extra, "
          f"vocabulary {len(weights.vocab)}, encoder {embed_file or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
