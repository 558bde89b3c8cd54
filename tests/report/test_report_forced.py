"""Forced-answer points on the report: per-step forced answers on a trace page that has them,
nothing on one that has none, and a forced frontier (no browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from tests.report.tiny import tiny_traces
from tracestop.report import trace_slug
from tracestop.segment import split_thinking

WITH = "tiny:m-qwen:gsm8k:1"  # the clean solve: 6 steps, "42" first stated in step 2
WITHOUT = "tiny:m-qwen:gsm8k:2"


def _forced_spans(html: str) -> list[tuple[str, str]]:
    """(class, text) of every forced-answer marker on a page."""
    return re.findall(r'<span class="(forced(?: ok)?)">([^<]*)</span>', html)


def test_report_shows_forced_points(tiny_data: Path, tmp_path: Path) -> None:
    from tracestop.cli import cli

    trace = next(t for t in tiny_traces() if t.id == WITH)
    thinking = split_thinking(trace.trace)[0]
    at = thinking.index("6 times 7 is 42")  # inside step 2: steps 2.. end after it
    (tiny_data / "forced").mkdir()
    (tiny_data / "forced" / "tiny.jsonl").write_text(json.dumps({
        "id": WITH, "unit": "chars", "points": [[0, "41"], [at, "42"]],
        "answerer": "tiny-reader", "granularity": "two points"}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["report", "--data", str(tiny_data), "--out", str(out),
                                   "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output

    html = (out / "t" / f"{trace_slug(WITH)}.html").read_text(encoding="utf-8")
    spans = _forced_spans(html)
    assert len(spans) == 6  # one per step
    assert spans[0] == ("forced", "forced: 41 ✗")  # step 1 ends before the second point
    assert all(s == ("forced ok", "forced: 42 ✓") for s in spans[1:])
    assert 'id="forced"' in html and "answerer tiny-reader" in html and "granularity two points" in html

    other = (out / "t" / f"{trace_slug(WITHOUT)}.html").read_text(encoding="utf-8")
    assert _forced_spans(other) == [] and 'id="forced"' not in other

    # the forced frontier: the one trace with points; its forced oracle stops after step 2
    doc = json.loads(res.stdout)
    rows = doc["frontier_forced"]
    assert rows and {r["n"] for r in rows} == {1}
    oracle = next(r for r in rows if r["policy"] == "oracle")
    assert oracle["accuracy"] == 1.0 and oracle["saved"] > 0
    assert "forced-answer frontier for gsm8k" in (out / "frontier.html").read_text(encoding="utf-8")


def test_report_without_forced_points(tiny_report) -> None:  # type: ignore[no-untyped-def]
    for page in (tiny_report.index.parent / "t").glob("*.html"):
        assert _forced_spans(page.read_text(encoding="utf-8")) == []
    assert not tiny_report.frontier_forced
    assert 'id="forced"' not in (tiny_report.index.parent / "frontier.html").read_text(encoding="utf-8")
