"""Forced-answer points: loading and validation, the reading rule, step ends in the same
coordinates as the points, the forced oracle, and one real trace of each forced file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import R1_TRACE
from tracestop.errors import DataError, TraceFormatError
from tracestop.evaluate.data import Trace, load_traces
from tracestop.evaluate.forced import (
    ForcedPoint,
    ForcedRecord,
    forced_answers,
    forced_correct,
    forced_oracle,
    forced_oracle_outcome,
    forced_outcome,
    load_forced,
    parse_forced,
    step_ends,
)
from tracestop.evaluate.replay import apply_policy, prepare
from tracestop.segment import split_thinking


def write(root: Path, name: str, lines: list[object]) -> Path:
    (root / "forced").mkdir(parents=True, exist_ok=True)
    path = root / "forced" / name
    with open(path, "w", encoding="utf-8") as f:
        f.writelines((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    return path


def record(rid: str = "t:1", points: list[list[object]] | None = None) -> dict[str, object]:
    return {"id": rid, "unit": "chars", "points": points or [[10, None], [20, "7"]],
            "answerer": "test", "granularity": "test", "source": "here"}


# --- reading rule ---------------------------------------------------------------------------


def test_reading_rule_last_point_at_or_before_the_cut():
    rec = ForcedRecord("x", (ForcedPoint(5, "3"), ForcedPoint(10, None), ForcedPoint(20, "7", 0.9)))
    assert rec.answer_at(0) is None  # before the first point
    assert rec.answer_at(4) is None
    assert rec.answer_at(5) == "3"  # at <= c: the point itself counts
    assert rec.answer_at(9) == "3"
    assert rec.answer_at(10) is None  # a recorded "no answer"
    assert rec.answer_at(19) is None
    assert rec.answer_at(20) == "7"
    assert rec.answer_at(10**9) == "7"
    p = rec.point_at(25)
    assert p is not None and p.p == 0.9


def test_points_must_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        ForcedRecord("x", (ForcedPoint(5, "3"), ForcedPoint(5, "4")))


# --- loading and validation -----------------------------------------------------------------


def test_load_indexes_every_file_by_id(tmp_path):
    write(tmp_path, "a.jsonl", [record("t:1"), record("t:2", [[0, "A", 0.5], [30, "B", 1]])])
    write(tmp_path, "b.jsonl", [record("t:3")])
    fs = load_forced(tmp_path)
    assert sorted(fs) == ["t:1", "t:2", "t:3"] and len(fs.files) == 2
    assert fs["t:2"].points[1] == ForcedPoint(30, "B", 1.0)
    assert fs["t:1"].file.endswith("a.jsonl, line 1")
    assert fs.coverage(["t:1", "t:9", "t:3"]) == (2, 1)
    assert parse_forced(fs["t:2"].to_json(), "x", 1).points == fs["t:2"].points


@pytest.mark.parametrize(("points", "problem"), [
    ([[-1, "7"]], "'at' must be an integer >= 0"),
    ([[1.5, "7"]], "'at' must be an integer"),
    ([[True, "7"]], "'at' must be an integer"),
    ([[3, 7]], "answer must be a string or null"),
    ([[3]], "must be [at, answer]"),
    ([[3, "7", 1.5]], "'p' must be a probability"),
    ([[3, "7", "high"]], "'p' must be a probability"),
    ([[9, "7"], [3, "8"]], "strictly increasing"),
    ([], "non-empty list"),
])
def test_bad_points_name_file_line_and_problem(tmp_path, points, problem):
    bad = record("t:2")
    bad["points"] = points
    path = write(tmp_path, "a.jsonl", [record("t:1"), bad])
    with pytest.raises(TraceFormatError) as e:
        load_forced(tmp_path)
    assert e.value.path == str(path) and e.value.line == 2
    assert problem in str(e.value) and "t:2" in str(e.value)


def test_bad_lines_and_fields(tmp_path):
    write(tmp_path, "a.jsonl", ["{not json"])
    with pytest.raises(TraceFormatError, match="line 1: not valid JSON"):
        load_forced(tmp_path)
    write(tmp_path, "a.jsonl", [{**record(), "unit": "tokens"}])
    with pytest.raises(TraceFormatError, match="'unit' must be"):
        load_forced(tmp_path)
    write(tmp_path, "a.jsonl", [{**record(), "id": ""}])
    with pytest.raises(TraceFormatError, match="'id'"):
        load_forced(tmp_path)


def test_an_id_twice_is_an_error(tmp_path):
    write(tmp_path, "a.jsonl", [record("t:1")])
    write(tmp_path, "b.jsonl", [record("t:2"), record("t:1")])
    with pytest.raises(TraceFormatError, match=r"b\.jsonl, line 2: .*'t:1' already has forced points"):
        load_forced(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no forced-answer files"):
        load_forced(tmp_path)
    assert len(load_forced(tmp_path, required=False)) == 0


# --- step ends, forced answers, the forced oracle ------------------------------------------


def _trace(text: str = R1_TRACE, gold: str = "7", model: str = "qwq-32b") -> Trace:
    return Trace("t:1", "gsm8k", model, "How many apples does Tom have left?", gold, text)


def test_step_ends_are_offsets_into_the_thinking_text():
    for text, model in ((R1_TRACE, "qwq-32b"), ("<think>\n" + R1_TRACE, "qwq-32b"),
                        (R1_TRACE.replace("</think>", "<channel|>").replace("Okay", "<|channel>thought\nOkay", 1),
                         "gemma-4-12b-it")):
        prep = prepare(_trace(text, model=model))
        thinking, _ = split_thinking(text)
        ends = step_ends(prep.records)
        assert len(ends) == len(prep.records) >= 5
        for r, end in zip(prep.records, ends, strict=True):
            assert thinking[r.tagged.step.start:end] == r.tagged.step.text
        assert thinking[: ends[0]].endswith("giving some away.")


def test_forced_answers_oracle_and_outcomes():
    prep = prepare(_trace())
    ends = step_ends(prep.records)
    # wrong before step 2's end, null from step 3's end, right from just after step 4's end
    rec = ForcedRecord("t:1", (ForcedPoint(0, "5"), ForcedPoint(ends[2], None), ForcedPoint(ends[3] + 1, "7")))
    got = forced_answers(prep.records, rec)
    assert got[:5] == ["5", "5", None, None, "7"]
    assert forced_correct(prep, rec)[:5] == [False, False, False, False, True]
    assert forced_oracle(prep, rec) == 4
    o = forced_oracle_outcome(prep, rec)
    assert o.stopped and o.step == 5 and o.correct and o.predicted == "7"
    assert o.tokens == prep.records[4].tokens_cum + prep.cue_tokens
    # a stated-answer outcome re-graded at its cut: consistency:k=2 stops once "7" is stated twice
    stated = apply_policy(prep, "consistency:k=2")
    assert stated.stopped and stated.correct
    forced = forced_outcome(prep, stated, rec)
    assert forced.step == stated.step and forced.tokens == stated.tokens
    assert forced.predicted == got[stated.step - 1]
    assert forced.correct == (got[stated.step - 1] == "7")
    # not stopped: the recorded final answer, unchanged
    never = apply_policy(prep, "none")
    assert forced_outcome(prep, never, rec) == never


def test_no_right_forced_answer_means_no_oracle_stop():
    prep = prepare(_trace())
    rec = ForcedRecord("t:1", (ForcedPoint(0, None), ForcedPoint(10, "8")))
    assert forced_oracle(prep, rec) is None
    o = forced_oracle_outcome(prep, rec)
    assert not o.stopped and o.correct == prep.result.correct_full and o.tokens == prep.result.tokens_full


# --- real data ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(data_root):
    if not (data_root / "forced").is_dir():
        pytest.skip("no forced/ folder in the shared data")
    fs = load_forced(data_root)
    traces = {t.id: t for t in load_traces(data_root, benchmarks=["math500", "gpqa-diamond"]).traces}
    return fs, traces


def test_real_files_load_and_match_the_thinking(real):
    fs, traces = real
    assert len(fs) >= 597
    gemma = next(i for i in fs if i.startswith("lco:") and ":gpqa-diamond:" in i
                 and split_thinking(traces[i].trace)[1] is not None)
    thinking, _ = split_thinking(traces[gemma].trace)
    # the 100% decile is the whole thinking text, in the splitter's coordinates
    assert fs[gemma].points[-1].at == len(thinking) and fs[gemma].points[0].at == 0
    ml = next(i for i in fs if i.startswith("ml:"))
    thinking, _ = split_thinking(traces[ml].trace)
    assert fs[ml].points[-1].at <= len(thinking) == traces[ml].meta["think_chars"] + 1  # "\n</think>"


def test_one_real_trace_end_to_end(real):
    fs, traces = real
    tid = next(i for i in fs if i.startswith("lco:") and ":gpqa-diamond:" in i
               and split_thinking(traces[i].trace)[1] is not None)
    prep = prepare(traces[tid], counter=len)
    rec = fs[tid]
    ans = forced_answers(prep.records, rec)
    ends = step_ends(prep.records)
    assert ans == [rec.answer_at(c) for c in ends]
    # the last step ends at or within a character or two of the 100% point: its answer is the
    # 90% or 100% decile's
    assert ans[-1] in {rec.points[-1].answer, rec.points[-2].answer}
    assert ans[0] == rec.points[0].answer  # the 0% point holds from the start
    k = forced_oracle(prep, rec)
    right = forced_correct(prep, rec)
    assert (k is None) == (not any(right[: prep.n_decided]))
    if k is not None:
        assert right[k] and not any(right[:k])
