"""A small offline word encoder for the linear tagger (issue 16: "a small offline encoder").

Word vectors from a truncated SVD of the positive PMI matrix of word co-occurrences in the
thinking text of **dev** traces (``tracestop.lab.train.build_embedding``, ``python
scripts/build_embed.py``); no downloaded weights. Each stored vector is already scaled by the
word's smooth-inverse-frequency weight ``a / (a + p(word))``, so frequent function words
count little. A step's vector is the mean of its known words' vectors (words outside the
encoder's vocabulary, numbers and symbols are skipped): a bounded amount of work per step (the
tagger passes at most its head's 6 and its body's 80 tokens).

The idea: words of the same function ("double-check", "verify", "confirm") share directions,
so wording learnt from one model family carries to another. Numpy only, no I/O but ``load``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_EMBED", "Embedding", "load_embedding"]

DEFAULT_EMBED = Path(__file__).with_name("weights") / "embed.npz"


@dataclass(frozen=True, slots=True)
class Embedding:
    """Word vectors: ``words`` (row order) and ``vectors`` (len(words), dim), SIF-scaled."""

    words: tuple[str, ...]
    vectors: np.ndarray
    #: word -> row + 1 (0 is the zero row of ``_table``), derived
    rows: dict[str, int] = field(init=False, repr=False, compare=False)
    #: the vectors with a zero row in front (float64: the sums are exact enough and fast)
    table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"{len(self.words)} words but vectors of shape {self.vectors.shape}")
        object.__setattr__(self, "rows", {w: i + 1 for i, w in enumerate(self.words)})
        table = np.zeros((len(self.words) + 1, self.vectors.shape[1]), dtype=np.float64)
        table[1:] = self.vectors
        object.__setattr__(self, "table", table)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def mean(self, tokens: Sequence[str]) -> list[float] | None:
        """The mean of the known tokens' vectors; None when no token is known."""
        hit = [*filter(None, map(self.rows.get, tokens))]
        if not hit:
            return None
        v: list[float] = (self.table.take(hit, 0).sum(0) * (1.0 / len(hit))).tolist()
        return v


_CACHE: dict[Path, Embedding] = {}
_LOCK = threading.Lock()


def load_embedding(path: Path | str = DEFAULT_EMBED) -> Embedding:
    """The embedding stored at ``path`` (``words``, ``vectors``), loaded once per path."""
    key = Path(path).resolve()
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    with _LOCK:
        if key not in _CACHE:
            with np.load(key) as z:
                _CACHE[key] = Embedding(tuple(str(w) for w in z["words"]),
                                        np.asarray(z["vectors"], dtype=np.float32))
    return _CACHE[key]
