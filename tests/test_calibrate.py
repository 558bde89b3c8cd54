from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.test_eval import make_data, rec
from tracestop.cli import cli
from tracestop.errors import ConfigError, DataError
from tracestop.evaluate.calibrate import bound_applies, clopper_pearson_upper
from tracestop.evaluate.data import split_of
from tracestop.policies import parse_policy, resolve_preset
from tracestop.presets import load_presets, save_preset


@pytest.mark.parametrize(
    "k,n,expected",
    [(0, 79, 1 - 0.05 ** (1 / 79)), (0, 300, 1 - 0.05 ** (1 / 300)), (10, 10, 1.0)],
)
def test_clopper_pearson_upper(k, n, expected):
    assert clopper_pearson_upper(k, n) == pytest.approx(expected, abs=1e-6)


def test_clopper_pearson_known_value():
    # 3 events in 100 trials: the one-sided 95% upper bound is 0.0757 (exact binomial)
    assert clopper_pearson_upper(3, 100) == pytest.approx(0.0757, abs=5e-4)


def test_bound_applies_only_where_a_clean_policy_could_pass():
    assert not bound_applies(100, 1.0) and bound_applies(300, 1.0) and not bound_applies(1000, 0)


def test_presets_pick_by_benchmark_then_format():
    value = {"benchmark:gsm8k": "budget:tokens=10", "math": "budget:tokens=20", "*": "none"}
    assert resolve_preset("p", value, "math", "gsm8k") == "budget:tokens=10"
    assert resolve_preset("p", value, "math", "aime") == "budget:tokens=20"
    assert resolve_preset("p", value, "choice") == "none"
    with pytest.raises(ConfigError, match="no entry for answer format"):
        resolve_preset("p", {"math": "none"}, "choice")
    p = parse_policy("mine", {"mine": value}, answer_format="math", benchmark="gsm8k")
    assert p.spec() == "budget:tokens=10"


def test_presets_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "presets.json"
    save_preset("fast", {"math": "traces-count:k=1", "*": "none"}, {"why": "test"}, path)
    got = load_presets(path)
    assert got["fast"] == {"math": "traces-count:k=1", "*": "none"} and "default" in got
    path.write_text('{"bad": "traces-count:k=0"}')
    with pytest.raises(DataError, match="preset 'bad'.*k must be >= 1"):
        load_presets(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_presets(path)


def test_calibrate_writes_a_preset_that_eval_accepts(tmp_path, monkeypatch):
    # questions in the dev split only: calibration looks at nothing else
    qs = [q for q in (f"How many apples, case {i}?" for i in range(40)) if split_of(q) == "dev"][:4]
    root = make_data(tmp_path / "data", [rec(i, question=q) for i, q in enumerate(qs)])
    presets = tmp_path / "presets.json"
    monkeypatch.setenv("TRACESTOP_PRESETS", str(presets))
    r = CliRunner().invoke(cli, ["calibrate", "--method", "regret", "--max-loss", "0", "--data", str(root), "--workers", "1",
                                 "--grid", "traces-count:k=2", "--grid", "traces-count:k=9",
                                 "--name", "mine", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["value"] == {"math": "traces-count:k=2", "*": "none"}
    assert "Clopper-Pearson" in doc["bound"]
    assert json.loads(presets.read_text())["mine"]["math"] == "traces-count:k=2"
    r = CliRunner().invoke(cli, ["eval", "--data", str(root), "--split", "all", "--policy", "mine",
                                 "--workers", "1", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = {x["policy"]: x for x in json.loads(r.stdout)["results"]}
    assert rows["mine"]["saved"] > 0.2


def test_calibrate_rejects_bad_options(tmp_path):
    root = make_data(tmp_path / "data", [rec(1)])
    r = CliRunner().invoke(cli, ["calibrate", "--max-loss", "-1", "--data", str(root)])
    assert r.exit_code == 1 and "--max-loss must be between 0 and 100" in r.output
    r = CliRunner().invoke(cli, ["calibrate", "--max-loss", "1", "--data", str(root), "--name", "budget"])
    assert r.exit_code == 1 and "is a policy name" in r.output
    r = CliRunner().invoke(cli, ["calibrate", "--max-loss", "1", "--data", str(root), "--by", "benchmark"])
    assert r.exit_code == 1 and "never per benchmark" in r.output
    r = CliRunner().invoke(cli, ["calibrate", "--max-loss", "1", "--data", str(root), "--delta", "1.5"])
    assert r.exit_code == 1 and "--delta must be in (0, 1)" in r.output


def test_compare_reports_best_baselines_at_the_same_accuracy(tmp_path):
    root = make_data(tmp_path / "data", [rec(i) for i in range(3)])
    r = CliRunner().invoke(cli, ["compare", "--data", str(root), "--split", "all", "--workers", "1",
                                 "--policy", "traces-count:k=2", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)["rows"]
    assert row["benchmark"] == "gsm8k" and row["n"] == 3
    assert row["saved"] > 0.2 and row["accuracy"] == row["accuracy_full"] == 1.0
    # a budget small enough to save as much loses the answer, so the best budget saves less
    assert row["budget"] is None or row["budget"]["saved"] < row["saved"]
    assert row["consistency"]["accuracy"] >= row["accuracy"]


def test_small_group_keeps_the_format_choice_only_if_it_holds_on_its_own_traces():
    from tracestop.evaluate.calibrate import Choice, Score, adopt_format_choice

    def sc(spec, n, loss, saved, regret=0, ucb=0.0):
        return Score(spec, n, 0.5, 0.5, loss, saved, regret, ucb, 0.3)

    fmt = [sc("none", 1000, 0.0, 0.0), sc("a", 1000, 0.5, 0.30, 3, 0.9), sc("b", 1000, 0.2, 0.20, 2, 0.6)]
    fmt_choice = Choice("math", "a", fmt[1], True, 3, 3)
    # 40 traces, no regret (a stop rescued one trace): the format's choice is kept
    small = [sc("none", 40, 0.0, 0.0), sc("a", 40, -2.5, 0.35, 0), sc("b", 40, 0.0, 0.5)]
    got = adopt_format_choice("aime", small, fmt_choice, 1.0)
    assert (got.spec, got.bound_applied, got.score.n) == ("a", False, 40)
    assert got.admissible == 3  # configurations that hold here, for the report
    # one regret, offset by a rescue (no net loss): 'none', and 'b', which happens to hold
    # here, is not taken either: the small group checks the format's choice, it does not search
    small[1] = sc("a", 40, 0.0, 0.35, 1)
    got = adopt_format_choice("aime", small, fmt_choice, 1.0)
    assert got.spec == "none" and got.score.saved == 0.0
    with pytest.raises(ValueError, match="add 'none'"):
        adopt_format_choice("aime", small[1:], fmt_choice, 1.0)


def test_without_the_bound_rescues_do_not_offset_regret():
    from tracestop.evaluate.calibrate import Score

    # 81 traces: 6 regrets offset by 6 rescues is no loss, but 6 traces of regret
    lucky = Score("x", 81, 0.5, 0.5, 0.0, 0.2, 6, 14.1, 0.1)
    assert not lucky.admissible(1.0, use_bound=False)
    assert Score("y", 81, 0.5, 0.5, 0.0, 0.2, 1, 5.0, 0.1).admissible(1.0, use_bound=False)


def test_calibrate_in_worker_processes_gives_the_same_scores(tmp_path):
    from tracestop.evaluate.calibrate import calibrate
    from tracestop.evaluate.data import load_traces
    from tracestop.evaluate.replay import prepare_many

    root = make_data(tmp_path / "data", [rec(i, gold=g) for i, g in enumerate(["7", "7", "8", "7"])])
    preps = prepare_many(load_traces(root, split="all").traces, workers=1)
    grid = ["none", "traces-count:k=1", "traces-count:k=2", "consistency:k=2", "budget:tokens=5"]
    ticks: list[int] = []
    serial = calibrate(preps, 1.0, grid=grid, workers=1)
    forked = calibrate(preps, 1.0, grid=grid, workers=2, progress=ticks.append)
    assert forked == serial
    assert len(ticks) == len(grid)  # one tick per (group, configuration)
    assert {s.spec for s in serial[1]["math"]} == set(grid)


def test_fold_of_is_stable_and_spreads_problems():
    from tracestop.evaluate.data import N_FOLDS, fold_of

    qs = [f"How many apples, case {i}?" for i in range(200)]
    folds = [fold_of(q) for q in qs]
    assert set(folds) == set(range(N_FOLDS))
    assert fold_of("How many  APPLES, case 3?") == folds[3]  # normalised like split_of


def test_dev_traces_are_replayed_with_out_of_fold_scorers(tmp_path, monkeypatch):
    from tracestop.answers.scorer import DEFAULT_WEIGHTS, fold_weights
    from tracestop.evaluate import replay
    from tracestop.evaluate.data import fold_of, load_traces
    from tracestop.monitor import MonitorConfig

    qs = [f"How many apples, case {i}?" for i in range(16)]
    root = make_data(tmp_path / "data", [rec(i, question=q) for i, q in enumerate(qs)])
    traces = load_traces(root, split="all").traces
    assert {t.split for t in traces} == {"dev", "test"}
    used: dict[str, str | None] = {}
    real = replay.Monitor

    def spy(*args, **kw):
        scorer = kw["config"].answer_scorer
        used[kw["question"]] = None if scorer is None else str(scorer)
        return real(*args, **kw)

    monkeypatch.setattr(replay, "Monitor", spy)
    replay.prepare_many(traces, workers=1)
    assert replay.cross_fitting()
    # a dev trace gets the model trained without its problem's fold; a test trace the shipped one
    assert used == {t.question: str(fold_weights(fold_of(t.question))) if t.split == "dev" else None
                    for t in traces}
    # a scorer named by the caller wins
    used.clear()
    replay.prepare_many(traces, workers=1, config=MonitorConfig(answer_scorer=str(DEFAULT_WEIGHTS)))
    assert set(used.values()) == {str(DEFAULT_WEIGHTS)}


def test_shipped_scorer_has_its_out_of_fold_models():
    from tracestop.answers.scorer import AnswerScorer, fold_weights
    from tracestop.evaluate.data import N_FOLDS

    for f in range(N_FOLDS):
        assert f"without fold {f}" in AnswerScorer(fold_weights(f)).meta


def test_a_lower_confidence_admits_more_regret(tmp_path):
    """The bound's level is the user's choice: on 320 traces with 1 regret, the one-sided 95%
    bound (1.47 points) rejects a 1-point budget while an 80% bound (0.94 points) admits it."""
    from tracestop.evaluate.calibrate import calibrate

    assert 100 * clopper_pearson_upper(1, 320) > 1.0 > 100 * clopper_pearson_upper(1, 320, 0.2)
    assert bound_applies(170, 1.0, 0.2) and not bound_applies(170, 1.0)
    with pytest.raises(ValueError, match="confidence must be in"):
        calibrate([], 1.0, confidence=1.0)
    root = make_data(tmp_path / "data", [rec(1)])
    r = CliRunner().invoke(cli, ["calibrate", "--method", "regret", "--max-loss", "1", "--data", str(root), "--confidence", "0.3"])
    assert r.exit_code == 2 and "--confidence" in r.output


def test_calibrate_records_the_confidence_in_the_preset(tmp_path, monkeypatch):
    qs = [q for q in (f"How many apples, case {i}?" for i in range(40)) if split_of(q) == "dev"][:4]
    root = make_data(tmp_path / "data", [rec(i, question=q) for i, q in enumerate(qs)])
    monkeypatch.setenv("TRACESTOP_PRESETS", str(tmp_path / "presets.json"))
    r = CliRunner().invoke(cli, ["calibrate", "--method", "regret", "--max-loss", "0", "--data", str(root), "--workers", "1",
                                 "--grid", "traces-count:k=2", "--confidence", "0.8", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["confidence"] == 0.8 and doc["bound"].startswith("one-sided 80% Clopper-Pearson")


def test_regret_frontier_keeps_what_each_extra_regret_buys():
    from tracestop.evaluate.calibrate import Score, regret_frontier

    def sc(spec, regret, saved, loss=0.0):
        return Score(spec, 100, 0.9, 0.9, loss, saved, regret, 0.0, 0.3)

    got = regret_frontier([sc("none", 0, 0.0), sc("a", 0, 0.10), sc("b", 1, 0.08), sc("c", 2, 0.20),
                           sc("d", 2, 0.20, loss=1.0), sc("e", 5, 0.35), sc("f", 3, 0.15)])
    # b and f save less than a configuration with fewer regrets; of c and d, c loses less
    assert [(s.spec, s.regret) for s in got] == [("a", 0), ("c", 2), ("e", 5)]
    assert regret_frontier([]) == []


def test_calibrate_frontier_in_json_and_text(tmp_path, monkeypatch):
    qs = [q for q in (f"How many apples, case {i}?" for i in range(40)) if split_of(q) == "dev"][:4]
    root = make_data(tmp_path / "data", [rec(i, question=q) for i, q in enumerate(qs)])
    monkeypatch.setenv("TRACESTOP_PRESETS", str(tmp_path / "presets.json"))
    args = ["calibrate", "--method", "regret", "--max-loss", "0", "--data", str(root), "--workers", "1",
            "--grid", "traces-count:k=2", "--grid", "traces-count:k=9"]
    r = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    front = json.loads(r.stdout)["frontier"]["math"]
    assert [(f["spec"], f["regret"]) for f in front] == [("traces-count:k=2", 0)]
    assert front[0]["saved"] > 0.2
    r = CliRunner().invoke(cli, [*args, "--frontier"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "math: the most thinking tokens saved for each number of early-stop regrets" in r.stdout
    assert "traces-count:k=2" in r.stdout.split("math: the most")[1]


def test_an_uncertified_format_takes_no_regret_even_with_rescues() -> None:
    """Too few traces for the guarantee: rescues are not netted against regrets."""
    from tracestop.evaluate.calibrate import NetScore, uncertified_ok

    clean = NetScore("consistency:k=4", 84, 0.02, 0, 1, 84, 0.02, 0, 0, regrets_forced=0)
    netted = NetScore("agree-eval:c=1,w=4,d=0.25", 84, 0.2, 4, 4, 84, 0.2, 4, 4)
    forced_regret = NetScore("consistency:k=3", 84, 0.05, 0, 0, 84, 0.05, 0, 0, n_forced=82,
                             regrets_forced=1, rescues_forced=2)
    assert uncertified_ok(clean)
    assert not uncertified_ok(netted)
    assert not uncertified_ok(forced_regret)


def _fake_walks(monkeypatch, outcomes):
    """calibrate_net over synthetic per-trace outcomes: ``outcomes[spec]`` lists, per trace,
    (benchmark, half, regret, rescue, tokens used of 100)."""
    from types import SimpleNamespace

    from tracestop.evaluate import calibrate as cal

    def walk(preps, spec, answer, presets, half):
        rows = outcomes[spec]
        return cal._Walk([r[1] for r in rows], [True] * len(rows), [r[2] for r in rows], [r[3] for r in rows],
                         [r[4] for r in rows], [100] * len(rows), [r[2] for r in rows], [r[3] for r in rows],
                         [r[0] for r in rows], [None] * len(rows))

    monkeypatch.setattr(cal, "_walk", walk)
    n = len(next(iter(outcomes.values())))
    return [SimpleNamespace(result=SimpleNamespace(excluded=None, format_live="math", id=str(i)), forced=None)
            for i in range(n)]


def test_the_per_benchmark_check_refuses_a_choice_that_loses_on_one_benchmark(monkeypatch):
    from tracestop.evaluate.calibrate import calibrate_net

    benches = ["gsm8k"] * 900 + ["aime"] * 100
    halves = [i % 2 for i in range(1000)]
    # "risky" saves the most and loses 2 traces overall (0.2 pt: certified), both on aime, where
    # one is rescued (one regret in each half); "safe" loses nothing
    risky = [(b, h, i in (900, 903), i == 905, 80) for i, (b, h) in enumerate(zip(benches, halves, strict=True))]
    safe = [(b, h, False, False, 97) for b, h in zip(benches, halves, strict=True)]
    preps = _fake_walks(monkeypatch, {"none": [(b, h, False, False, 100) for b, h in zip(benches, halves, strict=True)],
                                      "safe": safe, "risky": risky})
    half = {str(i): h for i, h in enumerate(halves)}
    pick = {}
    for check in ("off", "net", "regrets"):
        (c,), scores = calibrate_net(preps, answer="stated", grid=["none", "safe", "risky"], half=half,
                                     per_benchmark=check)
        assert c.certified and "half 0" in c.note
        pick[check] = c.spec
    assert pick == {"off": "risky", "net": "risky", "regrets": "safe"}
    aime = {b.benchmark: b for r in scores["math"] if r.spec == "risky" for b in r.benchmarks}["aime"]
    assert (aime.n, aime.regrets, aime.rescues) == (100, 2, 1) and abs(aime.saved - 0.2) < 1e-9
    with pytest.raises(ConfigError, match="per_benchmark"):
        calibrate_net(preps, answer="stated", grid=["none", "safe"], per_benchmark="maybe")


def test_half_of_keeps_a_problem_together_and_splits_problems():
    from tracestop.evaluate.calibrate import half_of

    assert half_of("What is 2 + 2?") == half_of("What is 2 + 2?")
    halves = [half_of(f"How many apples are left after {i} are eaten?") for i in range(400)]
    assert 150 < sum(halves) < 250
