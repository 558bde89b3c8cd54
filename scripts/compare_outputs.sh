#!/usr/bin/env bash
# Behaviour check for a refactor: `tracestop eval --json` and `tracestop tag` output of the
# working tree against those of another revision, byte for byte.
#   usage: bash scripts/compare_outputs.sh BASE_REV [dev|all]
# Runs both with this checkout's virtual environment (.venv), each revision's own src/ first on
# the path. The tag input is the shared labelled steps (DATA/labels/reasontype-dev.jsonl).
set -euo pipefail
base=${1:?base revision}; split=${2:-dev}
top=$(git rev-parse --show-toplevel); cd "$top"
data=${TRACESTOP_DATA:-$top/../shared/data}
py=$top/.venv/bin/python
tmp=$(mktemp -d); trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/base" "$base"
"$py" -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); print(json.dumps({"id": d["trace_id"] + ":" + str(d["index"]), "text": d["text"]}))' \
  "$data/labels/reasontype-dev.jsonl" > "$tmp/steps.jsonl"
run() {  # run SRC OUT
  PYTHONPATH=$1 TRACESTOP_DATA=$data "$py" -m tracestop eval --split "$split" --json --workers 1 > "$2.eval.json"
  PYTHONPATH=$1 "$py" -m tracestop tag --steps "$tmp/steps.jsonl" --json > "$2.tag.jsonl"
}
run "$tmp/base/src" "$tmp/before"
run "$top/src" "$tmp/after"
status=0
for f in eval.json tag.jsonl; do
  if cmp -s "$tmp/before.$f" "$tmp/after.$f"; then echo "$f: identical"; else echo "$f: DIFFERS"; status=1; fi
done
exit $status
