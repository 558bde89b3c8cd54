"""Fixtures of the report tests: a report built from the tiny trace set, and that set as a
data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report.tiny import POLICIES, tiny_traces


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tracestop.report import build_report

    out = tmp_path_factory.mktemp("report")
    return build_report(tiny_traces(), out, POLICIES, workers=1, page_size=2)


@pytest.fixture()
def tiny_data(tmp_path: Path) -> Path:
    """The tiny trace set as a data directory (traces/tiny.jsonl)."""
    (tmp_path / "traces").mkdir()
    with open(tmp_path / "traces" / "tiny.jsonl", "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"id": t.id, "benchmark": t.benchmark, "model": t.model,
                        "question": t.question, "gold": t.gold, "trace": t.trace}) + "\n"
            for t in tiny_traces()
        )
    return tmp_path
