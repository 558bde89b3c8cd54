"""Recorded traces (real model output) through the proxy: the live stop equals the offline one.

Reads ``$TRACESTOP_DATA/traces`` (default ``<repo>/../shared/data``); skipped when absent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.proxy.fakes import FakeUpstream, shared_data
from tests.proxy.test_proxy import assert_same_result, offline, report_of

# (file, how many stopping traces to take from it): R1 "</think>", QwQ, Gemma "<channel|>"
PICKS = [
    ("qwq-32b__gsm8k.jsonl", 1),
    ("deepseek-r1-distill-qwen-1.5b__gsm8k.jsonl", 1),
    ("gemma-4-12b-it__mmlu-pro.jsonl", 1),
]


def _stopping_traces(app: Any) -> list[dict[str, Any]]:
    root = shared_data() / "traces"
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}: set TRACESTOP_DATA to run this test")
    out = []
    for name, n in PICKS:
        candidates = []
        with open(root / name, encoding="utf-8") as f:
            for _, line in zip(range(40), f):
                rec = json.loads(line)
                m = offline(app, rec["trace"], "default", question=rec["question"])
                # stops well before the end, so that the early close is visible
                if m.stopped and len(m.truncated_thinking) < 0.8 * len(m.thinking_text):
                    candidates.append(rec)
        candidates.sort(key=lambda r: len(r["trace"]))
        out += candidates[:n]
    if not out:
        pytest.skip("no recorded trace stops under the default policy with this tagger")
    return out


@pytest.fixture(scope="module")
def recorded(proxy_app: Any) -> list[dict[str, Any]]:
    return _stopping_traces(proxy_app)


@pytest.mark.parametrize("fmt", ["reasoning_content", "inline"])
def test_recorded_traces_stop_live_as_offline(client: Any, fake: FakeUpstream, proxy_app: Any,
                                              recorded: list[dict[str, Any]], fid: str,
                                              fmt: str) -> None:
    for i, rec in enumerate(recorded):
        key = f"{fid}-{i}"
        stream = client.chat.completions.create(
            model=rec["model"], messages=[{"role": "user", "content": rec["question"]}],
            stream=True,
            extra_body={"fake": {"id": key, "trace": rec["trace"], "format": fmt,
                                 "chunk": [3, 17, 40], "delay": 0.001}})
        chunks = list(stream)
        ts = report_of(chunks[-1])
        assert_same_result(ts, offline(proxy_app, rec["trace"], "default", fmt,
                                       question=rec["question"]))
        assert ts["answer_source"] == "model", rec["id"]
        log = fake.wait(key)
        assert log.closed_early and log.sent < log.total, rec["id"]
