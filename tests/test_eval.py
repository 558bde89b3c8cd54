"""``tracestop eval`` and ``tracestop tag`` end to end, on tiny data sets made here and on the
shared recorded traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import R1_TRACE
from tracestop.cli import cli
from tracestop.evaluate.data import load_traces, split_of

REQUIRED = {"benchmark", "model", "policy", "n", "accuracy", "accuracy_full", "delta_pts", "tokens",
            "tokens_full", "saved", "total_tokens", "total_tokens_full", "total_saved",
            "oracle_saved", "regret"}


def rec(i: int, **kw) -> dict:
    r = {"id": f"t:{i}", "benchmark": "gsm8k", "model": "qwq-32b", "question": f"Question number {i}?",
         "gold": "7", "trace": R1_TRACE}
    r.update(kw)
    return r


def make_data(tmp_path: Path, lines: list[bytes | dict]) -> Path:
    (tmp_path / "traces").mkdir(parents=True)
    with open(tmp_path / "traces" / "x.jsonl", "wb") as f:
        f.writelines(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n" for line in lines)
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_eval_json_on_a_small_set(tmp_path):
    root = make_data(tmp_path, [
        rec(1), rec(2), rec(3, gold="8"),
        rec(4, gold=None),  # no gold: counted
        rec(5, trace="never closed thinking ..."),  # cut off: counted
        b"{not json\n",  # malformed: counted and reported
        b"\xff\xfe bad bytes\n",  # not UTF-8: counted and reported
    ])
    r = invoke("eval", "--data", str(root), "--split", "all", "--policy", "traces-count:k=2",
               "--workers", "1", "--json", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["excluded"] == {"malformed line": 2, "no gold answer": 1, "thinking not closed (cut off)": 1}
    assert "qwen2.5" in doc["tokenizer"]
    rows = {row["policy"]: row for row in doc["results"]}
    assert set(rows) == {"traces-count:k=2", "none", "oracle"}
    for row in rows.values():
        assert REQUIRED <= set(row)
        assert row["n"] == 3
    full, tc = rows["none"], rows["traces-count:k=2"]
    assert full["accuracy_full"] == pytest.approx(2 / 3) and full["saved"] == 0
    assert tc["saved"] > 0.2 and tc["accuracy"] == pytest.approx(2 / 3)
    assert tc["saved"] == pytest.approx(1 - tc["tokens"] / tc["tokens_full"])
    assert "line 6: not valid JSON" in r.stderr and "line 7: not valid UTF-8" in r.stderr
    decisions = [json.loads(x) for x in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 9
    stopped = [d for d in decisions if d["policy"] == "traces-count:k=2"]
    assert all(d["stopped"] and d["reason"].startswith("stopped after step") for d in stopped)


def test_eval_table_output(tmp_path):
    root = make_data(tmp_path, [rec(1), rec(2)])
    r = invoke("eval", "--data", str(root), "--split", "all", "--workers", "1")
    assert r.exit_code == 0
    assert "benchmark" in r.stdout and "oracle" in r.stdout and "excluded: none" in r.stdout
    assert "answers: stated" in r.stdout  # every replay figure says which answers it graded


@pytest.mark.parametrize(
    "args,message",
    [
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--policy", "budget:tokenz=3"], "unknown parameter 'tokenz'"),
        (["--benchmark", "nosuch"], "no traces for benchmark(s) nosuch"),
    ],
)
def test_eval_bad_input_is_one_clear_line(tmp_path, args, message):
    root = make_data(tmp_path, [rec(1)])
    r = CliRunner().invoke(cli, ["eval", "--data", str(root), "--split", "all", *args])
    assert r.exit_code == 1
    assert message in r.output and "Traceback" not in r.output


def test_eval_missing_data_says_how_to_point_at_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACESTOP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["eval"])
    assert r.exit_code == 1
    assert "--data DIR" in r.output and "TRACESTOP_DATA" in r.output
    (tmp_path / "empty" / "traces").mkdir(parents=True)
    r = CliRunner().invoke(cli, ["eval", "--data", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no recorded traces" in r.output


def test_split_is_stable_and_normalised():
    assert split_of("What is  2+2?") == split_of("what is 2+2?\n")
    qs = [f"question {i}" for i in range(400)]
    dev = sum(split_of(q) == "dev" for q in qs)
    assert 150 < dev < 250


def test_same_problem_same_split_for_every_model(data_root):
    ts = load_traces(data_root, require_gold=False)
    by_q: dict[str, set[str]] = {}
    for t in ts.traces:
        by_q.setdefault(t.question.strip().lower(), set()).add(t.split)
    assert all(len(s) == 1 for s in by_q.values())
    assert not ts.problems


@pytest.mark.slow
def test_eval_on_the_recorded_traces(data_root):
    """The main job on real data (one benchmark to keep it quick)."""
    r = invoke("eval", "--data", str(data_root), "--split", "dev", "--benchmark", "aime",
               "--policy", "traces-shift", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    models = {row["model"] for row in doc["results"]}
    assert "all" in models and len(models) >= 4
    for row in doc["results"]:
        assert 0 <= row["accuracy"] <= 1 and row["tokens"] <= row["tokens_full"]
        if row["policy"] == "oracle":
            assert row["accuracy"] >= row["accuracy_full"]


def test_tag_command(tmp_path):
    steps = tmp_path / "steps.jsonl"
    steps.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a", "text": "Wait, let me double-check that calculation."},
        {"id": "b", "text": "So the answer is \\boxed{7}.", "question": "How many?"},
    ]) + "\n")
    r = invoke("tag", "--steps", str(steps), "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in rows] == ["a", "b"]
    assert rows[1]["type"] == "final_conclusion" and rows[1]["role"] == "evaluative"
    assert all(x["evidence"] for x in rows)


def test_tag_command_names_the_bad_line(tmp_path):
    steps = tmp_path / "steps.jsonl"
    steps.write_text('{"id": "a", "text": "fine step text here"}\n{"id": "b"}\n')
    r = CliRunner().invoke(cli, ["tag", "--steps", str(steps)])
    assert r.exit_code == 1 and "line 2" in r.output


def test_eval_forced_answers_on_the_recorded_traces(data_root):
    """`--answer forced`: only traces with forced points, the left-out count in the JSON, the
    oracle row is the forced oracle (on these Gemma traces it beats full generation)."""
    r = invoke("eval", "--data", str(data_root), "--split", "dev", "--benchmark", "mmlu-pro",
               "--workers", "1", "--answer", "forced", "--policy", "consistency:k=2", "--json")
    doc = json.loads(r.stdout)
    assert doc["answer"] == "forced"
    assert doc["forced"]["replayed"] > 30 and doc["forced"]["left_out"] >= 0
    rows = {x["policy"]: x for x in doc["results"] if x["model"] == "gemma-4-12b-it"}
    assert rows["oracle"]["accuracy"] > rows["none"]["accuracy"]  # the forced oracle rescues
    assert rows["none"]["accuracy"] == rows["none"]["accuracy_full"]
    stated = json.loads(invoke("eval", "--data", str(data_root), "--split", "dev", "--benchmark", "mmlu-pro",
                               "--workers", "1", "--policy", "consistency:k=2", "--json").stdout)
    assert stated["answer"] == "stated" and "forced" not in stated
    st = {x["policy"]: x for x in stated["results"] if x["model"] == "gemma-4-12b-it"}
    assert st["none"]["n"] >= rows["none"]["n"]  # stated answers replay every trace


def test_calibrate_ltt_on_forced_answers(data_root, tmp_path):
    presets = tmp_path / "p.json"
    r = invoke("calibrate", "--max-loss", "1", "--data", str(data_root), "--benchmark", "mmlu-pro",
               "--workers", "1", "--answer", "forced", "--alpha", "1", "--delta", "0.1",
               "--grid", "none", "--grid", "consistency:k=2", "--grid", "agree-eval:c=1,w=4,d=0.25",
               "--presets-file", str(presets), "--name", "mine", "--json")
    doc = json.loads(r.stdout)
    assert doc["answer"] == "forced" and doc["alpha_pts"] == 1.0 and doc["delta"] == 0.1
    (g,) = doc["groups"]
    assert g["group"] == "choice" and g["answer"] == "forced"
    # 40-odd traces cannot certify any stop at 1 pt: flagged, chosen on point estimates
    assert g["certified"] is (g["spec"] == "none") and doc["certifiable_n"] > 100
    assert json.loads(presets.read_text())["mine"]["choice"] == g["spec"]
