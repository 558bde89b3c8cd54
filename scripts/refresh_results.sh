#!/usr/bin/env bash
# Regenerate the figures the README quotes, in order (about 15 minutes on 2 cores).
# Training and calibration read the dev split only; every reported number is on test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TS=.venv/bin/tracestop
OUT=${OUT:-artifacts/results}
mkdir -p "$OUT"

# Tagger weights are NOT retrained here: `$PY scripts/train_tagger.py` reproduces the shipped
# linear.npz (version 6, run-time flags, every label set) byte for byte; the honest
# CV below measures that recipe fold by fold.
$PY scripts/train_answer_scorer.py | tee "$OUT/answer_scorer.txt"   # answer scorer (dev)
$PY -m tracestop.lab.quality --tagger rules | tee "$OUT/tagger_rules.txt"
$PY -m tracestop.lab.quality --tagger linear | tee "$OUT/tagger_linear.txt"
$PY -m tracestop.lab.honest --tagger rules | tee "$OUT/tagger_honest_rules.txt"     # honest CV (issue 16)
$PY -m tracestop.lab.honest --tagger linear | tee "$OUT/tagger_honest_linear.txt"
$PY -m tracestop.lab.honest --tagger linear --scheme family | tee "$OUT/tagger_honest_linear_family.txt"
$PY -m tracestop.lab.honest --states | tee "$OUT/states_honest.txt"               # states-answer head
$PY -m tracestop.lab.honest --states --scheme family | tee "$OUT/states_honest_family.txt"
$PY scripts/forced_bar.py | tee "$OUT/forced_bar.txt"                              # stated vs forced bars (dev)
$PY scripts/states_answer_agreement.py | tee "$OUT/states_answer_agreement.txt"
$PY scripts/rough_oracle.py | tee "$OUT/rough_oracle.txt"
$PY scripts/small_benchmark_rule.py | tee "$OUT/small_benchmark_rule.txt"   # the small-benchmark rule, dev only

# calibration on dev; the result is what PRESETS["default"] in src/tracestop/policies.py holds
TRACESTOP_PRESETS="$OUT/presets.json" $TS calibrate --max-loss 1 --answer stated --alpha 1 \
    --delta 0.1 --workers 1 --name default-calibrated | tee "$OUT/calibrate.txt"

$TS compare --split test | tee "$OUT/compare_test.txt"
$TS compare --split test --answer forced | tee "$OUT/compare_test_forced.txt"
$TS eval --split dev --policy oracle --candidates tagged --json > "$OUT/oracle_tagged_dev.json"
$TS eval --split dev --policy oracle --json > "$OUT/oracle_scored_dev.json"
$TS report --split dev --shift-only --markdown --figure docs/behaviour-shift.png | tee "$OUT/shift.md"
$TS report --split dev --shift-only --markdown --shift-by benchmark | tee "$OUT/shift_benchmark.md"
$PY bench/bench_eval.py | tee "$OUT/bench_eval.txt"
$PY bench/bench_proxy.py | tee "$OUT/bench_proxy.txt"
