"""Honest cross-validation helpers (tracestop.lab.honest): folds by problem and by model
family never share a problem (nor, by family, a model family) between training and test."""

from __future__ import annotations

from tracestop.lab.honest import _folds, family_of, problem_of, source_of

IDS = [
    "lco:gemma-4-12b-it:gpqa-diamond:087",
    "lco:gemma-4-12b-it:mmlu-pro-matched:12",
    "lco:gemma-4-12b-it:mmlu-pro:12",
    "rmp:qwq-32b:aime25:3",
    "rmp:deepseek-r1-distill-qwen-7b:aime25:3",
    "rmp:deepseek-r1-distill-llama-8b:aime25:3",
    "tli:deepseek-r1-distill-qwen-14b:math500:90",
    "tli:qwq-32b:gsm8k:5",
]


def test_family_problem_source() -> None:
    assert family_of(IDS[0]) == "gemma"
    assert family_of(IDS[3]) == "qwq"
    assert family_of(IDS[4]) == "r1-qwen"
    assert family_of(IDS[5]) == "r1-llama"
    assert problem_of(IDS[1]) == problem_of(IDS[2]) == "mmlu-pro:12"
    assert problem_of(IDS[3]) == problem_of(IDS[4]) == "aime25:3"
    assert source_of(IDS[6]) == "deepseek-r1-distill-qwen-14b:math500"


def test_problem_folds_keep_problems_apart() -> None:
    for _name, test, train in _folds(IDS, "problem", 3, 0):
        assert not test & train
        assert not {problem_of(t) for t in test} & {problem_of(t) for t in train}
        assert test | train == set(IDS)


def test_family_folds_keep_families_and_problems_apart() -> None:
    plan = _folds(IDS, "family", 0, 0)
    assert {name for name, _, _ in plan} == {
        "family gemma", "family qwq", "family r1-llama", "family r1-qwen"}
    for _name, test, train in plan:
        assert not {family_of(t) for t in test} & {family_of(t) for t in train}
        assert not {problem_of(t) for t in test} & {problem_of(t) for t in train}
    qwq = next(p for p in plan if p[0] == "family qwq")
    # the aime25:3 traces of the other families share the test problem: not trained on
    assert "rmp:deepseek-r1-distill-qwen-7b:aime25:3" not in qwq[2]
