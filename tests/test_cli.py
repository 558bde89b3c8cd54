"""CLI polish (issue 17 item 4, issue 18 items 5 and 8): progress when stderr is not a
terminal, `tag` per trace and from stdin, missing optional dependencies, the presets path,
one step numbering, valid choices in errors, output paths checked before any work."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.test_eval import make_data, rec
from tracestop.cli import _common, cli

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRACESTOP_DATA", ROOT.parent / "shared" / "data"))
NO_DATA = "/nonexistent/tracestop-data"  # any work would fail on it with a data error


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def no_traceback(r) -> None:
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


# --- 1. plain progress when stderr is not a terminal --------------------------------------


def test_eval_prints_a_plain_progress_line_when_not_a_terminal(tmp_path):
    root = make_data(tmp_path, [rec(1), rec(2), rec(3)])
    r = run("eval", "--data", str(root), "--split", "all", "--workers", "1", "--json")
    assert r.exit_code == 0, r.output
    assert re.search(r"^eval: 3/3 traces \(100%\), \d+ s$", r.stderr, re.MULTILINE), r.stderr
    json.loads(r.stdout)  # stdout stays one JSON object


def test_plain_progress_every_interval_and_at_the_end(monkeypatch, capsys):
    monkeypatch.setattr(_common, "PROGRESS_EVERY", 0.0)
    with _common.progress_bar(4, "eval") as advance:
        advance(1)
        advance(1)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("eval: 1/4 traces (25%), ")
    assert err[1].startswith("eval: 2/4 traces (50%), ")
    assert err[-1].startswith("eval: 2/4 traces (50%), ") and len(err) == 3
    with _common.progress_bar(4, "eval", enabled=False) as advance:
        advance(4)
    assert capsys.readouterr().err == ""


def test_report_shift_only_prints_progress(tmp_path):
    root = make_data(tmp_path, [rec(1), rec(2)])
    r = run("report", "--data", str(root), "--workers", "1", "--shift-only")
    assert r.exit_code == 0, r.output
    assert re.search(r"^report: 2/2 traces \(100%\), \d+ s$", r.stderr, re.MULTILINE), r.stderr


def test_calibrate_prints_progress(tmp_path):
    root = make_data(tmp_path, [rec(i) for i in range(1, 7)])
    r = run("calibrate", "--max-loss", "1", "--data", str(root), "--grid", "traces-count:k=2",
            "--grid", "traces-count:k=3", "--method", "regret", "--by", "pooled", "--workers", "1",
            "--presets-file", str(tmp_path / "presets.json"))
    assert r.exit_code == 0, r.output
    assert re.search(r"^calibrate: tagging dev traces: (\d+)/\1 traces \(100%\), \d+ s$", r.stderr,
                     re.MULTILINE), r.stderr
    assert re.search(r"^calibrate: searching: 2/2 configurations \(100%\), \d+ s$", r.stderr,
                     re.MULTILINE), r.stderr


def test_calibrate_net_search_counts_configurations(tmp_path):
    root = make_data(tmp_path, [rec(i) for i in range(1, 7)])
    r = run("calibrate", "--max-loss", "1", "--data", str(root), "--grid", "traces-count:k=2",
            "--grid", "traces-count:k=3", "--workers", "1",
            "--presets-file", str(tmp_path / "presets.json"))
    assert r.exit_code == 0, r.output
    assert re.search(r"^searching configurations: (\d+)/\1 configurations \(100%\), \d+ s$",
                     r.stderr, re.MULTILINE), r.stderr


def test_compare_prints_progress(tmp_path):
    root = make_data(tmp_path, [rec(1), rec(2)])
    r = run("compare", "--data", str(root), "--split", "all", "--workers", "1")
    assert r.exit_code == 0, r.output
    assert re.search(r"^compare: 2/2 traces \(100%\), \d+ s$", r.stderr, re.MULTILINE), r.stderr


@pytest.mark.skipif(not (SHARED / "labels" / "reasontype-dev.jsonl").is_file(),
                    reason="shared labels not available")
def test_tag_report_prints_progress_per_fold():
    r = run("tag", "--report", "--tagger", "rules", "--folds", "2", "--data", str(SHARED), "--json")
    assert r.exit_code == 0, r.output
    assert re.search(r"^tag --report: 2/2 folds \(100%\), \d+ s$", r.stderr, re.MULTILINE), r.stderr
    assert json.loads(r.stdout)["folds"] == 2


# --- 2. tag: context per trace, stdin --------------------------------------------------------

STEPS = [
    "First, compute 3 + 4 = 7.",
    "Wait, let me double-check that calculation: 3 + 4 is indeed 7.",
    "So the answer is \\boxed{7}.",
]


def tag_rows(lines: list[dict]) -> list[dict]:
    text = "".join(json.dumps(x) + "\n" for x in lines)
    r = run("tag", "--steps", "-", "--json", input=text)
    assert r.exit_code == 0, r.output
    return [json.loads(x) for x in r.stdout.splitlines()]


def test_tag_resets_the_context_when_the_trace_changes():
    alone = tag_rows([{"id": f"b{i}", "text": t} for i, t in enumerate(STEPS)])
    both = tag_rows([{"id": f"a{i}", "text": t, "trace_id": "A"} for i, t in enumerate(STEPS[::-1])]
                    + [{"id": f"b{i}", "text": t, "trace_id": "B"} for i, t in enumerate(STEPS)])
    second = both[len(STEPS):]
    # trace B is tagged exactly as if it were alone in the file: nothing carried over from A
    for x, y in zip(alone, second, strict=True):
        assert (x["type"], x["confidence"], x["step"]) == (y["type"], y["confidence"], y["step"])
        assert y["trace_id"] == "B"
    assert [x["step"] for x in both] == [1, 2, 3, 1, 2, 3]


def test_tag_reads_stdin_and_names_it_in_errors():
    r = run("tag", "--steps", "-", input='{"id": "a", "text": "fine step text here"}\n{"id": "b"}\n')
    assert r.exit_code == 1 and "<stdin>" in r.output and "line 2" in r.output
    no_traceback(r)


# --- 3. missing optional dependencies ---------------------------------------------------------


def hide(monkeypatch, *modules: str) -> None:
    """Make ``modules`` (and their submodules) impossible to import."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def test_tag_report_without_scikit_learn_names_the_train_extra(monkeypatch):
    hide(monkeypatch, "sklearn")
    r = run("tag", "--report", "--tagger", "linear", "--data", str(SHARED))
    assert r.exit_code == 1
    assert "scikit-learn" in r.output and "pip install 'tracestop[train]'" in r.output
    no_traceback(r)


@pytest.mark.parametrize("module", ["jinja2", "matplotlib"])
def test_report_without_its_extra_fails_before_any_work(monkeypatch, tmp_path, module):
    hide(monkeypatch, module)
    r = run("report", "--data", NO_DATA, "--out", str(tmp_path / "rep"))
    assert r.exit_code == 1
    assert module in r.output and "pip install 'tracestop[eval]'" in r.output
    no_traceback(r)


def test_report_figure_without_matplotlib(monkeypatch, tmp_path):
    hide(monkeypatch, "matplotlib")
    r = run("report", "--data", NO_DATA, "--shift-only", "--figure", str(tmp_path / "f.png"))
    assert r.exit_code == 1 and "pip install 'tracestop[eval]'" in r.output
    no_traceback(r)


def test_serve_without_the_proxy_extra(monkeypatch):
    hide(monkeypatch, "fastapi", "tracestop.proxy")
    r = run("serve", "--upstream", "http://127.0.0.1:9")
    assert r.exit_code == 1 and "pip install 'tracestop[proxy]'" in r.output
    no_traceback(r)


def test_an_import_error_during_the_work_names_the_extra():
    with pytest.raises(click.ClickException, match=r"tracestop\[train\]"), \
            _common.errors_to_click("`tracestop x`"):
        try:
            raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
        except ImportError as e:
            raise ImportError("training needs scikit-learn") from e
    with pytest.raises(ImportError), _common.errors_to_click():  # not ours: a real bug
        raise ModuleNotFoundError("No module named 'nosuch'", name="nosuch")


# --- 4. the presets path ------------------------------------------------------------------


def test_presets_path_is_the_documented_one(monkeypatch, tmp_path):
    from tracestop.presets import presets_path

    monkeypatch.delenv("TRACESTOP_PRESETS", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert presets_path() == Path.home() / ".config" / "tracestop" / "presets.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert presets_path() == tmp_path / "tracestop" / "presets.json"
    monkeypatch.setenv("TRACESTOP_PRESETS", str(tmp_path / "p.json"))
    assert presets_path() == tmp_path / "p.json"
    assert presets_path(tmp_path / "q.json") == tmp_path / "q.json"


@pytest.mark.parametrize("doc", ["README.md", "docs/policies.md"])
def test_docs_say_where_the_shown_calibration_wrote_its_preset(doc):
    """The docs show `wrote preset ... to PATH`: the command they give must write there, and
    they must name the default location."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    written = set(re.findall(r"wrote preset '[^']+' to (\S+);", text))
    assert written
    for path in written:
        assert f"TRACESTOP_PRESETS={path}" in text or f"--presets-file {path}" in text, path
    assert "~/.config/tracestop/presets.json" in text and "$XDG_CONFIG_HOME" in text


# --- 5. one step numbering ------------------------------------------------------------------


def test_steps_are_numbered_from_one_everywhere(tmp_path):
    root = make_data(tmp_path, [rec(1), rec(2)])
    r = run("eval", "--data", str(root), "--split", "all", "--policy", "traces-count:k=2",
            "--workers", "1", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    for d in map(json.loads, (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()):
        if d["stopped"]:
            assert d["reason"].startswith(f"stopped after step {d['stop_step']}:"), d
            assert 1 <= d["stop_step"] <= d["n_steps"]


def test_monitor_report_steps_count_from_one():
    from tests.conftest import R1_TRACE
    from tracestop.monitor import Monitor

    m = Monitor("traces-count:k=2", question="What is 3 + 4?")
    m.feed(R1_TRACE)
    rep = m.report()
    assert rep["stopped"] and rep["reason"].startswith(f"stopped after step {rep['step']}:")
    assert [s["step"] for s in rep["steps"]] == list(range(1, len(rep["steps"]) + 1))
    assert rep["steps"][-1]["step"] == rep["step"]


# --- 6. valid choices in errors -------------------------------------------------------------


@pytest.mark.parametrize("args,valid", [
    (["--benchmark", "gsm8kk"], "valid benchmarks: gsm8k, math500"),
    (["--benchmark", "gsm8k", "--benchmark", "math50"], "valid benchmarks: gsm8k, math500"),
    (["--model", "qwq"], "valid models: qwq-32b"),
    (["--policy", "travces-count"], "use one of"),
    (["--tagger", "linar"], "valid names: rules, linear"),
    (["--split", "train"], "'dev', 'test', 'all'"),
])
def test_unknown_names_list_the_valid_ones(tmp_path, args, valid):
    root = make_data(tmp_path, [rec(1), rec(2, benchmark="math500")])
    r = run("eval", "--data", str(root), "--split", "all", "--workers", "1", *args)
    assert r.exit_code in (1, 2) and valid in r.output, r.output
    no_traceback(r)


# --- 7. output paths before any work, bad numbers -------------------------------------------


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file: nothing can be created under it."""
    p = tmp_path / "blocker"
    p.write_text("x")
    return p


def test_calibrate_presets_file_checked_before_any_work(blocker):
    r = run("calibrate", "--max-loss", "1", "--data", NO_DATA,
            "--presets-file", str(blocker / "sub" / "presets.json"))
    assert r.exit_code == 2 and "--presets-file" in r.output and "data" not in r.output.lower()
    no_traceback(r)


def test_calibrate_creates_a_missing_presets_directory_at_once(tmp_path):
    target = tmp_path / "new" / "dir" / "presets.json"
    r = run("calibrate", "--max-loss", "1", "--data", NO_DATA, "--presets-file", str(target))
    assert r.exit_code == 1 and target.parent.is_dir()  # then the data error, no traceback
    no_traceback(r)


@pytest.mark.parametrize("argv", [
    ["eval", "--out", "{b}"],
    ["eval", "--out", "{b}/sub"],
    ["report", "--out", "{b}"],
    ["report", "--out", "{b}/sub"],
    ["report", "--shift-only", "--figure", "{b}/sub/f.png"],
    ["report", "--shift-only", "--figure", "{d}"],
])
def test_output_paths_checked_before_any_work(blocker, tmp_path, argv):
    argv = [a.format(b=blocker, d=tmp_path) for a in argv]
    r = run(*argv, "--data", NO_DATA)
    assert r.exit_code == 2 and argv[-2] in r.output and "data" not in r.output.lower(), r.output
    no_traceback(r)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_out_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = run("report", "--data", NO_DATA, "--out", str(ro))
        assert r.exit_code == 2 and "cannot write" in r.output
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("folds", ["0", "1", "-3"])
def test_tag_report_folds_below_two(folds):
    r = run("tag", "--report", "--folds", folds)
    assert r.exit_code == 2 and "--folds" in r.output
    no_traceback(r)


@pytest.mark.parametrize("workers", ["0", "-2"])
@pytest.mark.parametrize("command", ["eval", "report", "calibrate", "compare"])
def test_workers_must_be_at_least_one(command, workers):
    extra = ["--max-loss", "1"] if command == "calibrate" else []
    r = run(command, *extra, "--workers", workers, "--data", NO_DATA)
    assert r.exit_code == 2 and "--workers" in r.output
    no_traceback(r)


def test_eval_with_every_line_skipped_fails_and_says_why(tmp_path):
    root = make_data(tmp_path, [b"{not json\n", rec(1, gold=None),
                                rec(2, trace="never closed thinking ...")])
    r = run("eval", "--data", str(root), "--split", "all", "--workers", "1")
    assert r.exit_code == 1
    assert "no trace left to evaluate" in r.output
    assert "malformed line: 1" in r.output and "no gold answer: 1" in r.output
    assert "thinking not closed (cut off): 1" in r.output
    no_traceback(r)
