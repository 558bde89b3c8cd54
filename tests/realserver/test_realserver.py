"""The proxy in front of a real inference server: ``transformers serve`` running a tiny Qwen3
model whose greedy output is scripted (``tiny_model.py``), driven with the official ``openai``
client.

The model thinks forever in identical steps (``STEP``, blank-line separated) and, after
tracestop's forcing cue, answers ``\\boxed{5}``. A ``budget:tokens=20`` policy therefore stops
after a known number of whole steps, and the answer can only have come from the model.

How a test sees that the proxy aborted the server's generation: ``transformers serve`` (without
continuous batching) generates one request at a time in its model process. A stopped request
asked for ``MAX_TOKENS`` tokens; had its generation gone on, a one-token request sent straight to
the server right after would wait for the rest of it (seconds, measured by
``seconds_per_token``). It must come back at once.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import openai
import pytest

from tests.realserver.conftest import Stack
from tests.realserver.tiny_model import ANSWER, CUE, QUESTION, STEP, chat_prompt

pytestmark = pytest.mark.realserver

BUDGET = {"tracestop": {"policy": "budget:tokens=20"}}
NEVER = {"tracestop": {"policy": "none"}}
MAX_TOKENS = 4000  # what a stopped request asks for: seconds of generation if not aborted
STEP_TOKENS = 11  # STEP is 11 tokens of the tiny tokenizer (checked in tiny_model.build)
ANSWER_TOKENS = 5  # \boxed{5} is 4 tokens, then <|im_end|>
MESSAGES = [{"role": "user", "content": QUESTION}]


def steps(k: int) -> str:
    return "\n\n".join([STEP] * k)


def kept_tokens(k: int) -> int:
    """Tokens of ``<think>\\n\\n`` + k steps joined by blank lines."""
    return 2 + k * STEP_TOKENS + (k - 1)


def report_of(obj: Any) -> dict[str, Any]:
    extra = obj.model_extra or {}
    assert "tracestop" in extra, f"no tracestop object in {obj}"
    return dict(extra["tracestop"])


def reasoning_of(obj: Any) -> str:
    return str((obj.model_extra or {}).get("reasoning_content") or "")


def prompt_tokens(stack: Stack, chat: bool) -> int:
    """The server's own count of the prompt's tokens (a direct one-token request)."""
    c = stack.client(direct=True)
    if chat:
        r = c.chat.completions.create(model=stack.model_name, messages=MESSAGES, max_tokens=1)
    else:
        r = c.completions.create(model=stack.model_name, prompt=chat_prompt(), max_tokens=1)
    return int(r.usage.prompt_tokens)


def server_requests(stack: Stack, since: int) -> list[dict[str, Any]]:
    """The requests the server logged (``--enable-log-requests``) after ``since`` characters of
    its log: prompt tokens, streamed or not, max_new_tokens."""
    out = []
    for m in re.finditer(r"Request \S+: model .*?, (\d+) prompt tokens, \w+, stream (\w+), "
                         r"\{'max_new_tokens': (\d+)", stack.server.log_text()[since:]):
        out.append({"prompt": int(m[1]), "stream": m[2] == "True", "max_new_tokens": int(m[3])})
    return out


def assert_server_idle(stack: Stack, seconds_per_token: float, remaining: int) -> None:
    """The server's generation of the request just ended early: a direct request does not wait
    for ``remaining`` more tokens of it."""
    would_wait = remaining * seconds_per_token
    assert would_wait > 2.0, f"MAX_TOKENS too small to tell: {would_wait:.2f} s"
    t0 = time.monotonic()
    r = stack.client(direct=True).completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=1)
    waited = time.monotonic() - t0
    assert r.choices[0].text == "<think>"
    assert waited < would_wait / 4, (
        f"the server was still busy for {waited:.2f} s (the rest of the aborted generation "
        f"would take {would_wait:.2f} s): the upstream generation was not aborted")


class Checks:
    """Checks that all run, so that one failing test lists every way the response is wrong."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, ok: bool, what: str) -> None:
        if not ok:
            self.failed.append(what)

    def done(self) -> None:
        assert not self.failed, "\n".join(["the response is wrong:", *self.failed])


#: how far the proxy's token counter (chars/4 here: the tiny model's tokenizer is not one the
#: proxy knows) may be from the tiny tokenizer over the thinking of 4 steps (~215 characters,
#: 49 tokens: chars/4 says 54) and the cue
COUNTER_SLACK = 12


def check_usage(check: Checks, usage: Any, prompt: int, k: int, rep: dict[str, Any]) -> None:
    """``usage`` after a stop: the prompt, plus the thinking the server generated (the kept
    steps, and at most one step more before the abort) plus the forced answer. The server
    never reports the aborted request's usage: the proxy takes the answer request's figures
    and counts the thinking with its token counter (named in the report)."""
    if usage is None:
        check(False, "usage is missing after a stop")
        return
    exact = rep.get("usage_prompt_tokens_from") == "server"
    slack = 0 if exact else COUNTER_SLACK
    check(abs(usage.prompt_tokens - prompt) <= slack,
          f"usage.prompt_tokens {usage.prompt_tokens} is not {prompt} (±{slack})")
    low = kept_tokens(k) + ANSWER_TOKENS - 1 - slack
    high = kept_tokens(k + 1) + ANSWER_TOKENS + 2 + slack
    check(low <= usage.completion_tokens <= high,
          f"usage.completion_tokens {usage.completion_tokens} not in [{low}, {high}]")
    check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
          f"usage.total_tokens {usage.total_tokens} is not prompt + completion")


def check_stopped_report(check: Checks, rep: dict[str, Any], k: int) -> None:
    check(rep["stopped"] is True, f"tracestop.stopped is {rep['stopped']!r}")
    check(rep["policy"] == "budget:tokens=20", f"tracestop.policy is {rep['policy']!r}")
    check(rep["thinking_tokens"] >= 20, f"tracestop.thinking_tokens {rep['thinking_tokens']}")
    check(rep["answer_source"] == "model",
          f"tracestop.answer_source is {rep['answer_source']!r} ({rep.get('answer_error')})")
    check(rep.get("answer_error") is None, f"tracestop.answer_error {rep.get('answer_error')!r}")
    check(rep["answer"] == "5", f"tracestop.answer is {rep['answer']!r}, the model answered 5")


# --- no stop: the proxy passes the real server's stream through -------------------------------


def test_stream_chat_no_stop(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model=stack.model_name, messages=MESSAGES, max_tokens=30, stream=True,
        stream_options={"include_usage": True}, extra_body=NEVER)
    reasoning, content, usage, reports, finish = "", "", None, [], None
    for chunk in stream:
        if chunk.choices:
            reasoning += reasoning_of(chunk.choices[0].delta)
            content += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
        if "tracestop" in (chunk.model_extra or {}):
            reports.append(report_of(chunk))
    # 30 tokens: <think> (parsed away by the server), \n\n, two steps and \n\n each, 4 more
    assert reasoning == "\n\n" + steps(2) + "\n\nChecking the sum again"
    assert content == ""
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 30
    assert usage.prompt_tokens == prompt_tokens(stack, chat=True)
    assert len(reports) == 1 and reports[0]["stopped"] is False
    assert reports[0]["thinking_field"] == "reasoning_content"


def test_stream_completions_no_stop(stack: Stack) -> None:
    stream = stack.client().completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=30, stream=True,
        stream_options={"include_usage": True}, extra_body=NEVER)
    text, usage, reports = "", None, []
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].text or ""
        usage = chunk.usage or usage
        if "tracestop" in (chunk.model_extra or {}):
            reports.append(report_of(chunk))
    assert text == "<think>\n\n" + steps(2) + "\n\nChecking the sum again"
    assert usage is not None and usage.completion_tokens == 30
    assert usage.prompt_tokens == prompt_tokens(stack, chat=False)
    assert len(reports) == 1 and reports[0]["stopped"] is False
    assert reports[0]["thinking_field"] == "inline"
    assert [s["step"] for s in reports[0]["steps"]][:2] == [1, 2]


def test_nonstream_chat_no_stop(stack: Stack) -> None:
    r = stack.client().chat.completions.create(
        model=stack.model_name, messages=MESSAGES, max_tokens=30, extra_body=NEVER)
    msg = r.choices[0].message
    assert reasoning_of(msg).startswith("\n\n" + steps(2))
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 30
    assert r.usage.prompt_tokens == prompt_tokens(stack, chat=True)
    assert report_of(r)["stopped"] is False


# --- a policy stop: upstream aborted, the model's answer spliced ------------------------------


def test_stream_completions_stop(stack: Stack, seconds_per_token: float) -> None:
    since = len(stack.server.log_text())
    stream = stack.client().completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=MAX_TOKENS, stream=True,
        stream_options={"include_usage": True}, extra_body=BUDGET)
    text, usage, reports = "", None, []
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].text or ""
        usage = chunk.usage or usage
        if "tracestop" in (chunk.model_extra or {}):
            reports.append(report_of(chunk))
    assert len(reports) == 1
    rep = reports[0]
    k = int(rep["step"] or 0)
    assert 1 <= k <= 3, rep
    assert_server_idle(stack, seconds_per_token, MAX_TOKENS - kept_tokens(k + 1))
    # the server's own log: the thinking request (streamed, MAX_TOKENS), then the answer
    # request (not streamed, --answer-tokens 16) whose prompt is the prompt + kept thinking + cue
    prompt = prompt_tokens(stack, chat=False)
    seen = server_requests(stack, since)[:2]
    assert seen[0] == {"prompt": prompt, "stream": True, "max_new_tokens": MAX_TOKENS}
    assert seen[1]["stream"] is False and seen[1]["max_new_tokens"] == 16
    assert seen[1]["prompt"] > prompt + kept_tokens(k)
    check = Checks()
    # the kept thinking, the cue and the model's answer, and nothing of the step after the stop
    check(text == "<think>\n\n" + steps(k) + CUE + ANSWER, f"text is {text[-120:]!r}")
    check_stopped_report(check, rep, k)
    check_usage(check, usage, prompt, k, rep)
    check.done()


def test_stream_chat_stop(stack: Stack, seconds_per_token: float) -> None:
    stream = stack.client().chat.completions.create(
        model=stack.model_name, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True,
        stream_options={"include_usage": True}, extra_body=BUDGET)
    reasoning, content, usage, reports = "", "", None, []
    try:
        for chunk in stream:
            if chunk.choices:
                reasoning += reasoning_of(chunk.choices[0].delta)
                content += chunk.choices[0].delta.content or ""
            usage = chunk.usage or usage
            if "tracestop" in (chunk.model_extra or {}):
                reports.append(report_of(chunk))
    finally:
        # whatever the proxy made of the answer, the thinking request itself was aborted
        assert_server_idle(stack, seconds_per_token, MAX_TOKENS - kept_tokens(4))
    assert len(reports) == 1
    rep = reports[0]
    k = int(rep["step"] or 0)
    assert 1 <= k <= 3, rep
    check = Checks()
    check(reasoning.strip() == steps(k), f"reasoning is {reasoning[-120:]!r}")
    check(content == "**Final Answer**\n" + ANSWER, f"content is {content!r}")
    check(rep["thinking_field"] == "reasoning_content", f"thinking_field {rep['thinking_field']}")
    check_stopped_report(check, rep, k)
    check_usage(check, usage, prompt_tokens(stack, chat=True), k, rep)
    check.done()


def test_nonstream_completions_stop(stack: Stack, seconds_per_token: float) -> None:
    r = stack.client().completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=MAX_TOKENS, extra_body=BUDGET)
    rep = report_of(r)
    k = int(rep["step"] or 0)
    assert 1 <= k <= 3, rep
    assert_server_idle(stack, seconds_per_token, MAX_TOKENS - kept_tokens(k + 1))
    check = Checks()
    text = r.choices[0].text
    check(text == "<think>\n\n" + steps(k) + CUE + ANSWER, f"text is {text[-120:]!r}")
    check_stopped_report(check, rep, k)
    check_usage(check, r.usage, prompt_tokens(stack, chat=False), k, rep)
    check.done()


def test_nonstream_chat_stop(stack: Stack, seconds_per_token: float) -> None:
    try:
        r = stack.client().chat.completions.create(
            model=stack.model_name, messages=MESSAGES, max_tokens=MAX_TOKENS, extra_body=BUDGET)
    finally:
        assert_server_idle(stack, seconds_per_token, MAX_TOKENS - kept_tokens(4))
    rep = report_of(r)
    k = int(rep["step"] or 0)
    assert 1 <= k <= 3, rep
    msg = r.choices[0].message
    check = Checks()
    check(reasoning_of(msg).strip() == steps(k), f"reasoning is {reasoning_of(msg)[-120:]!r}")
    check(msg.content == "**Final Answer**\n" + ANSWER, f"content is {msg.content!r}")
    check_stopped_report(check, rep, k)
    check_usage(check, r.usage, prompt_tokens(stack, chat=True), k, rep)
    check.done()


def test_stream_completions_stop_raw_sse(stack: Stack) -> None:
    """On the wire: the server never sends ``data: [DONE]``; the proxy ends with it, and the
    ``tracestop`` object rides on the last chunk before it."""
    body = {"model": stack.model_name, "prompt": chat_prompt(), "max_tokens": MAX_TOKENS,
            "stream": True, **BUDGET}
    with httpx.stream("POST", stack.proxy.url + "/v1/completions", json=body,
                      timeout=60.0) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    assert '"tracestop"' in events[-2]
    assert all('"tracestop"' not in e for e in events[:-2])


# --- faults: the client leaves, the server goes away -----------------------------------------


def test_client_disconnect_aborts_server(stack: Stack, seconds_per_token: float) -> None:
    stream = stack.client().completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=MAX_TOKENS, stream=True,
        extra_body=NEVER)
    for got, _chunk in enumerate(stream, 1):
        if got == 20:
            break
    stream.close()  # the client goes away mid-stream
    time.sleep(0.2)  # let the proxy see it and close its own upstream stream
    assert_server_idle(stack, seconds_per_token, MAX_TOKENS - 200)


def test_server_goes_away_mid_stream(spare_stack: Stack) -> None:
    client = spare_stack.client(timeout=30.0)
    stream = client.completions.create(
        model=spare_stack.model_name, prompt=chat_prompt(), max_tokens=MAX_TOKENS, stream=True,
        extra_body=NEVER)
    text = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].text or ""
            if len(text) > 200 and spare_stack.server.proc is not None:
                spare_stack.server.kill()  # the whole server, model process included
    # the stream did not end silently: the client got the proxy's error event
    assert text.startswith("<think>\n\n" + STEP)
    assert "502" in str(err.value) or "upstream" in str(err.value).lower(), err.value
    # and the proxy keeps serving, with a 502 while the server is gone
    with pytest.raises(openai.APIStatusError) as gone:
        client.completions.create(model=spare_stack.model_name, prompt=chat_prompt(),
                                  max_tokens=5, extra_body=NEVER)
    assert gone.value.status_code == 502


def test_control_a_busy_server_makes_the_probe_wait(stack: Stack,
                                                    seconds_per_token: float) -> None:
    """The control for ``assert_server_idle``: while a generation runs on the server, a direct
    request waits for it. Without this, a probe that comes back fast would prove nothing."""
    import threading

    n = min(6000, int(3.0 / seconds_per_token))
    busy = threading.Thread(target=lambda: stack.client(direct=True).completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=n))
    busy.start()
    time.sleep(0.3)
    with pytest.raises(AssertionError, match="was not aborted"):
        assert_server_idle(stack, seconds_per_token, n)
    busy.join()


# --- what the operator sees --------------------------------------------------------------------


def test_operator_sees_startup_line_request_lines_and_metrics(stack: Stack) -> None:
    """The proxy's own log (a real process with its real handler): the startup line, and one
    JSON line per handled request, without the client's key; ``/metrics`` counts the stop."""
    before = httpx.get(stack.proxy.url + "/metrics", timeout=10).text
    since = len(stack.proxy.log_text())
    r = stack.client().completions.create(
        model=stack.model_name, prompt=chat_prompt(), max_tokens=MAX_TOKENS, extra_body=BUDGET)
    rep = report_of(r)
    assert rep["stopped"] is True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "tracestop.proxy.requests" not in \
            stack.proxy.log_text()[since:]:
        time.sleep(0.05)
    log = stack.proxy.log_text()
    assert "sk-realserver-test" not in log
    startup = next(ln for ln in log.splitlines() if "listening on" in ln)
    assert stack.proxy.url in startup and stack.server.url in startup and "policy none" in startup
    lines = [json.loads(ln.split(" request ", 1)[1]) for ln in log[since:].splitlines()
             if "tracestop.proxy.requests" in ln]
    assert len(lines) == 1, log[since:]
    rec = lines[0]
    assert rec["model"] == stack.model_name and rec["policy"] == "budget:tokens=20"
    assert rec["stopped"] is True and rec["stop_step"] == rep["step"]
    assert rec["reason"] == rep["reason"] and rec["answer_source"] == "model"
    assert rec["thinking_tokens_used"] >= rep["thinking_tokens"]
    assert rec["upstream_status"] == 200 and rec["latency_ms"] > 0
    after = httpx.get(stack.proxy.url + "/metrics", timeout=10).text

    def value(text: str, sample: str) -> float:
        for ln in text.splitlines():
            if ln.startswith(sample + " "):
                return float(ln.split()[-1])
        return 0.0

    stopped = 'tracestop_requests_total{outcome="stopped",route="completions"}'
    assert value(after, stopped) == value(before, stopped) + 1
    answered = 'tracestop_added_latency_seconds_count{part="answer"}'
    assert value(after, answered) == value(before, answered) + 1
