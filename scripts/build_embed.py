"""Build the linear tagger's offline word encoder from the dev traces' thinking text.

    python scripts/build_embed.py [--data ../shared/data] [--out src/tracestop/tag/weights/embed.npz]

Word vectors from a truncated SVD of the positive-PMI word co-occurrence matrix
(``tracestop.lab.train.build_embedding``: the 8,000 most frequent words seen at least 5
times, a window of 4 words, 32 dimensions, SIF-weighted), over the thinking text of every
**dev** trace (never a test trace; no label is read). No downloaded weights. Deterministic:
two runs write identical bytes. Run it before ``scripts/train_tagger.py`` (the tagger's
weights name this file and its ``emb:`` rows depend on it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from tracestop.evaluate.data import load_traces
from tracestop.lab.train import (
    EMBED_DIM,
    EMBED_MIN_COUNT,
    EMBED_SCALE,
    EMBED_WINDOW,
    EMBED_WORDS,
    build_embedding,
    embed_texts,
    save_embedding,
)
from tracestop.tag.embed import DEFAULT_EMBED

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("TRACESTOP_DATA", ROOT / ".." / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data, help="shared data folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_EMBED, help="file to write")
    args = ap.parse_args(argv)
    traces = load_traces(args.data, split="dev", require_gold=False).traces
    texts = embed_texts(traces)
    emb = build_embedding(texts)
    meta = {"traces": len(texts), "chars": sum(map(len, texts)), "words": EMBED_WORDS,
            "dim": EMBED_DIM, "window": EMBED_WINDOW, "min_count": EMBED_MIN_COUNT,
            "scale": EMBED_SCALE, "split": "dev"}
    path = save_embedding(args.out, emb, meta)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, sha256 {digest}): "
          f"{len(emb.words)} words x {emb.dim} dims from {len(texts)} dev traces "
          f"({meta['chars'] / 1e6:.1f} M characters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
