"""Train the states-answer head (``tracestop.tag.states``) and write its weights.

    python scripts/train_states.py [--data DIR] [--extra labels] [--out src/tracestop/weights/states.npz]

Every hand-labelled step (the shared labels and ``labels/*.jsonl``), each trace fed whole from
step 0 to a Monitor (rules tagger) to get the head's run-time context (``states_rows``); the
target is the gold ``states_answer`` flag; the decision threshold is chosen by an inner
cross-validation grouped by problem (``tracestop.lab.honest.fit_states``). Deterministic: the
same labels give the same bytes. Its honest estimate: ``python -m tracestop.lab.honest --states``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from tracestop.lab.honest import fit_states, load_runtime_examples, save_states, states_rows
    from tracestop.tag.states import DEFAULT_STATES_WEIGHTS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("TRACESTOP_DATA", ROOT / ".." / "shared" / "data")))
    ap.add_argument("--extra", type=Path, default=ROOT / "labels")
    ap.add_argument("--out", type=Path, default=DEFAULT_STATES_WEIGHTS)
    a = ap.parse_args(argv)
    examples, traces = load_runtime_examples(a.data, a.extra)
    rows = states_rows(examples, traces)
    w = fit_states(rows)
    meta = {"steps": len(rows), "positives": sum(r[3] for r in rows),
            "traces": len({r[0] for r in rows}), "threshold": w.threshold}
    path = save_states(a.out, w, meta)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"{path}: {len(rows)} steps, vocabulary {len(w.vocab)}, threshold {w.threshold:.2f}, "
          f"{path.stat().st_size // 1024} KiB, sha256 {digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
