"""The report's HTML, figures and tables on a tiny hand-made trace set (no browser)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.report.tiny import POLICIES, XSS, tiny_traces
from tracestop._types import Role, StepType
from tracestop.report import ReportResult, behaviour_shift, family_of, frontier_rows, trace_slug
from tracestop.report.shift import TraceShift, first_correct_step


class _Links(HTMLParser):
    """Collects tags, attributes and element classes of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def with_class(self, cls: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.tags if cls in (a.get("class") or "").split()]


def parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def page_of(report: ReportResult, trace_id: str) -> Path:
    return report.index.parent / "t" / f"{trace_slug(trace_id)}.html"


def all_pages(report: ReportResult) -> list[Path]:
    return sorted(report.index.parent.rglob("*.html"))


def test_every_page_is_self_contained(tiny_report: ReportResult) -> None:
    pages = all_pages(tiny_report)
    assert len(pages) == 4 + 2 + 3  # trace pages, list pages, index + frontier + shift
    for page in pages:
        p = parse(page)
        for tag, attrs in p.tags:
            assert tag not in ("script", "iframe", "object", "embed"), (page, tag)
            if tag == "link":
                assert attrs.get("rel") == "icon" and attrs.get("href") == "data:,", (page, attrs)
            for key in ("src", "href"):
                url = attrs.get(key) or ""
                assert not re.match(r"^\s*(https?:|//|ws)", url), (page, url)
                if url and not url.startswith(("data:", "#")):
                    target = (page.parent / url.split("#")[0]).resolve()
                    assert target.is_file(), f"{page.name}: broken link {url}"


def test_legend_lists_every_type_and_role(tiny_report: ReportResult) -> None:
    p = parse(page_of(tiny_report, "tiny:m-qwen:gsm8k:1"))
    types = [a["data-type"] for a in p.with_class("legend-type")]
    roles = [a["data-role"] for a in p.with_class("legend-role")]
    assert types == [t.value for t in StepType] and len(types) == 14
    assert roles == [r.value for r in Role]
    # every step carries its type and role as classes (colour and border)
    steps = p.with_class("step")
    assert len(steps) == 6
    for s in steps:
        classes = (s["class"] or "").split()
        assert any(c.removeprefix("t-") in types for c in classes if c.startswith("t-"))
        assert any(c.removeprefix("r-") in roles for c in classes if c.startswith("r-"))


def test_stop_markers_with_reason_and_saving(tiny_report: ReportResult) -> None:
    path = page_of(tiny_report, "tiny:m-qwen:gsm8k:1")
    p = parse(path)
    markers = {a["data-policy"]: int(a["data-step"] or 0) for a in p.with_class("stop-marker")}
    result = next(r for r in tiny_report.results if r.id == "tiny:m-qwen:gsm8k:1")
    for spec, o in result.outcomes.items():
        if spec in (*POLICIES, "oracle") and o.stopped:
            assert markers[spec] == o.step
    assert markers["oracle"] == 2  # "\boxed{42}" is stated in the second step
    assert markers["budget:tokens=20"] == 1
    html = path.read_text(encoding="utf-8")
    assert "stopped after step 2" in html  # the oracle's one-sentence reason
    assert "saves" in html and "first correct answer" in html
    # the marker follows the step where the policy stops
    assert html.index('id="s2"') < html.index('data-policy="oracle"') < html.index('id="s3"')


def test_candidates_marked_correct_or_not(tiny_report: ReportResult) -> None:
    html = page_of(tiny_report, "tiny:m-llama:gsm8k:3").read_text(encoding="utf-8")
    assert "step 1: 24" in html and "step 2: 25 ✓" in html
    assert 'class="cand ok"' in html
    # a value stated in prose is trusted once the next step is known: the page says when
    html = page_of(tiny_report, "tiny:m-qwen:gsm8k:1").read_text(encoding="utf-8")
    assert "step 3: 42 ✓ (trusted at step 4)" in html and "step 2: 42 ✓</a>" in html


def test_trace_text_is_escaped(tiny_report: ReportResult) -> None:
    for page in all_pages(tiny_report):
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html.lower()
        assert "<b>bold</b>" not in html
    html = page_of(tiny_report, "tiny:m-qwen:gsm8k:2").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # the recorded answer section, escaped too


def test_pagination_links_every_trace(tiny_report: ReportResult) -> None:
    root = tiny_report.index.parent
    assert tiny_report.pages == 2
    p1, p2 = parse(root / "traces-1.html"), parse(root / "traces-2.html")
    hrefs1 = [a.get("href") for t, a in p1.tags if t == "a"]
    hrefs2 = [a.get("href") for t, a in p2.tags if t == "a"]
    assert "traces-2.html" in hrefs1 and "traces-1.html" in hrefs2
    linked = {h for h in hrefs1 + hrefs2 if h and h.startswith("t/")}
    assert linked == {f"t/{trace_slug(t.id)}.html" for t in tiny_traces()}
    index = (root / "index.html").read_text(encoding="utf-8")
    assert "traces-1.html" in index and "excluded at replay" in index


def test_index_has_every_policy_per_benchmark_and_model(tiny_report: ReportResult) -> None:
    html = tiny_report.index.read_text(encoding="utf-8")
    for name in ("default", "budget:tokens=20", "full generation", "oracle"):
        assert f"<td>{name}</td>" in html
    assert html.count("deepseek-r1-distill-qwen-7b") >= 1 and "deepseek-r1-distill-llama-8b" in html
    doc = json.loads((tiny_report.index.parent / "report.json").read_text(encoding="utf-8"))
    assert doc["n_traces"] == 3 and doc["excluded"] == {"thinking not closed (cut off)": 1}


def test_figures_are_embedded(tiny_report: ReportResult) -> None:
    root = tiny_report.index.parent
    for name in ("frontier.html", "shift.html"):
        imgs = [a for t, a in parse(root / name).tags if t == "img"]
        assert imgs and all((a["src"] or "").startswith("data:image/png;base64,") for a in imgs)


def test_frontier_rows(tiny_report: ReportResult) -> None:
    rows = frontier_rows(tiny_report.results)
    assert {r["benchmark"] for r in rows} == {"gsm8k"}
    families = {r["family"] for r in rows}
    assert {"traces-shift", "traces-count", "budget", "consistency", "none", "oracle"} <= families
    full = next(r for r in rows if r["family"] == "none")
    oracle = next(r for r in rows if r["family"] == "oracle")
    assert full["saved"] == 0 and full["n"] == 3 and oracle["saved"] > 0
    assert oracle["accuracy"] == 1.0
    assert all(0 <= r["accuracy"] <= 1 for r in rows)


def test_behaviour_shift_counts(tiny_report: ReportResult) -> None:
    table = tiny_report.shift
    assert [f.family for f in table.families] == ["deepseek-r1-distill-qwen", "deepseek-r1-distill-llama"]
    qwen = table.families[0]
    assert (qwen.traces, qwen.with_correct) == (2, 2)
    # trace 1: 6 steps, first correct at step 2 → 1 before, 4 after; trace 2: 5 steps → 1, 3
    assert (sum(qwen.before), sum(qwen.after)) == (2, 7)
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| step type | role | deepseek-r1-distill-qwen before")
    assert len([ln for ln in md.splitlines() if ln.startswith("|")]) == 2 + 14 + 3 + 2


@pytest.mark.parametrize(
    "model,family",
    [
        ("deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen"),
        ("deepseek-r1-distill-llama-70b", "deepseek-r1-distill-llama"),
        ("qwq-32b", "qwq"),
        ("gemma-4-12b-it", "gemma"),
        ("other-model", "other-model"),
    ],
)
def test_family_of(model: str, family: str) -> None:
    assert family_of(model) == family


def test_behaviour_shift_without_correct_step() -> None:
    zero = (0,) * 14
    table = behaviour_shift([TraceShift("a", "qwq-32b", "aime", 10, None, zero, zero)])
    assert table.families[0].with_correct == 0 and table.families[0].traces == 1
    assert "0 / 1" in table.to_markdown()
    assert first_correct_step([], lambda v: True) is None


def test_behaviour_shift_by_benchmark() -> None:
    one = tuple(1 if i == 0 else 0 for i in range(14))
    shifts = [TraceShift("a", "qwq-32b", "aime", 10, 3, one, one),
              TraceShift("b", "qwq-32b", "gsm8k", 10, None, (0,) * 14, (0,) * 14),
              TraceShift("c", "gemma-4-12b-it", "gsm8k", 8, 2, one, one)]
    by_family = behaviour_shift(shifts)
    assert [f.family for f in by_family.families] == ["qwq", "gemma"]
    by_bench = behaviour_shift(shifts, by="benchmark")
    assert [(f.family, f.traces, f.with_correct) for f in by_bench.families] == [("aime", 1, 1), ("gsm8k", 2, 1)]
    with pytest.raises(ValueError, match="family, benchmark"):
        behaviour_shift(shifts, by="model")


def test_cli_report(tiny_data: Path, tmp_path: Path) -> None:
    from tracestop.cli import cli

    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["report", "--data", str(tiny_data), "--out", str(out),
                                   "--policy", "traces-count:k=2", "--limit", "1", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith("index.html")
    assert Path(res.stdout.strip().splitlines()[-1]).is_file()
    # --limit 1: one trace per benchmark × model
    assert len(list((out / "t").glob("*.html"))) == 2
    res = CliRunner().invoke(cli, ["report", "--data", str(tiny_data), "--out", str(out), "--json",
                                   "--workers", "1"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["n_traces"] == 3 and len(list((out / "t").glob("*.html"))) == 4


def test_cli_shift_only(tiny_data: Path, tmp_path: Path) -> None:
    from tracestop.cli import cli

    fig = tmp_path / "shift.png"
    res = CliRunner().invoke(cli, ["report", "--data", str(tiny_data), "--shift-only", "--markdown",
                                   "--figure", str(fig), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "| step type | role |" in res.stdout and "**evaluative (role)**" in res.stdout
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_policy_is_one_line(tiny_data: Path, tmp_path: Path) -> None:
    from tracestop.cli import cli

    res = CliRunner().invoke(cli, ["report", "--data", str(tiny_data), "--out", str(tmp_path),
                                   "--policy", "nonsense:k=1"])
    assert res.exit_code == 1 and "unknown policy" in res.output and "Traceback" not in res.output


def test_real_data_quick_look(tmp_path: Path) -> None:
    """A few recorded traces per model end to end (skipped without the data)."""
    import os

    from tracestop.cli import cli
    from tracestop.evaluate.data import DATA_ENV

    data = Path(os.environ.get(DATA_ENV, Path(__file__).parents[2].parent / "shared" / "data"))
    if not (data / "traces").is_dir():
        pytest.skip(f"no recorded traces at {data} (set {DATA_ENV})")
    res = CliRunner().invoke(cli, ["report", "--data", str(data), "--out", str(tmp_path),
                                   "--benchmark", "gsm8k", "--limit", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["n_traces"] > 0 and doc["behaviour_shift"]["families"]
    assert XSS not in (tmp_path / "index.html").read_text(encoding="utf-8")
