"""Shared fixtures: the shared data path (``$TRACESTOP_DATA``, else ``../shared/data`` beside
the repository) and small hand-made traces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tracestop.tag.linear import LinearTagger

REPO = Path(__file__).resolve().parents[1]


def linear_tagger_or_skip() -> LinearTagger:
    """The linear tagger with its weights loaded; the test is skipped when they are missing."""
    t = LinearTagger()
    try:
        _ = t.weights
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return t


def shared_data() -> Path:
    return Path(os.environ.get("TRACESTOP_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = shared_data()
    if not (root / "traces").is_dir():
        pytest.skip(f"shared data not found at {root}: set TRACESTOP_DATA to run this test")
    return root


@pytest.fixture(scope="session")
def sample_traces(data_root: Path) -> list[dict]:
    """A few real traces of every kind of file (first 3 lines of each file)."""
    out = []
    for path in sorted((data_root / "traces").glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for _, line in zip(range(3), f):
                out.append(json.loads(line))
    return out


@pytest.fixture(autouse=True)
def _data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the shared data through the same variable users set."""
    if "TRACESTOP_DATA" not in os.environ:
        monkeypatch.setenv("TRACESTOP_DATA", str(shared_data()))


# A short R1-style trace: states an answer, then verifies it repeatedly.
R1_TRACE = (
    "Okay, so I need to find how many apples Tom has left after giving some away.\n\n"
    "Tom starts with 12 apples and gives away 5, so 12 - 5 = 7 apples are left.\n\n"
    "So the answer is 7.\n\n"
    "Wait, let me double-check that. 12 minus 5 is 7, yes that is correct.\n\n"
    "Let me verify again by adding back: 7 + 5 = 12, which matches the start.\n\n"
    "Yes, I'm confident the answer is 7 and the check confirms it.\n\n"
    "Just to be thorough, let me verify once more: 12 - 5 = 7. Correct.\n\n"
    "Therefore, the final answer is \\boxed{7}.\n"
    "</think>\n\nTom has \\boxed{7} apples left."
)


class PrefixTagger:
    """Test double: the type is the ``[type]`` prefix of the step text (default ``other``)."""

    name = "prefix"

    def tag(self, text, context=None):
        from tracestop._types import StepType, Tag

        body = text.strip()
        if body.startswith("[") and "]" in body:
            name = body[1 : body.index("]")]
            return Tag(StepType(name), 1.0, f"prefix: {name}")
        return Tag(StepType.OTHER, 1.0, "no prefix")


def chunk(text: str, rng, max_len: int) -> list[str]:
    """``text`` cut into random pieces of 1..max_len characters."""
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, max_len)
        out.append(text[i : i + n])
        i += n
    return out


def scripted(*steps: str, close: bool = True, answer: str = "") -> str:
    """A trace from ``[type] text`` steps (each padded past the 20-character merge rule)."""
    body = "\n\n".join(s if len(s) >= 20 else s + " " * 0 + " padding padding pad" for s in steps)
    return body + ("\n</think>\n\n" + answer if close else "")


@pytest.fixture
def prefix_tagger() -> PrefixTagger:
    return PrefixTagger()
