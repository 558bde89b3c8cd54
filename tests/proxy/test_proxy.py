"""The proxy end to end: the official OpenAI client → proxy → fake upstream, all on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.proxy.fakes import (
    ANSWER_TOKENS,
    FORCED,
    NO_ANSWER_TRACE,
    POLICY,
    PROXY_MAX_BODY,
    PROXY_TIMEOUT,
    QUESTION,
    STOP_TRACE,
    FakeUpstream,
)
from tracestop.monitor import Monitor
from tracestop.segment import split_thinking
from tracestop.templates import render_chat

FORMATS = ["reasoning_content", "reasoning", "thinking", "inline"]
SUFFIX = "\n</think>\n\n**Final Answer**\n"
CUE = "**Final Answer**\n"


def offline(app: Any, trace: str, policy: str, fmt: str = "inline",
            question: str = QUESTION) -> Monitor:
    """The same Monitor, fed the whole trace at once: what the proxy must reproduce."""
    m = Monitor(policy, tagger=app.state.tracestop.tagger, question=question)
    if fmt == "inline":
        m.feed(trace)
    else:
        m.feed_thinking(split_thinking(trace)[0])
    m.end()
    return m


def chat_stream(client: Any, fid: str, *, trace: str = STOP_TRACE, policy: str = POLICY,
                fmt: str = "reasoning_content", **fake: Any) -> tuple[list[Any], str, str]:
    """Stream a chat completion; returns (chunks, content, reasoning)."""
    stream = client.chat.completions.create(
        model="deepseek-r1-distill-qwen-7b",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        max_tokens=4000,
        extra_body={"tracestop": {"policy": policy},
                    "fake": {"id": fid, "trace": trace, "format": fmt, **fake}},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get(fmt) or "" for c in chunks
        if c.choices and fmt != "inline")
    return chunks, content, reasoning


def report_of(obj: Any) -> dict[str, Any]:
    extra = obj.model_extra or {}
    assert "tracestop" in extra, f"no tracestop object in {obj}"
    return extra["tracestop"]


def assert_same_result(ts: dict[str, Any], m: Monitor) -> None:
    assert ts["stopped"] is m.stopped
    assert ts["step"] == m.decision.step + 1
    assert ts["reason"] == m.decision.reason
    # stopped: "answer" is read from the forced answer, "candidate" is the Monitor's
    assert ts.get("candidate", ts["answer"]) == m.answer.current


# --- the stop -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_streaming_chat_stops_closes_upstream_and_splices_answer(
    client: Any, fake: FakeUpstream, proxy_app: Any, fid: str, fmt: str
) -> None:
    chunks, content, reasoning = chat_stream(client, fid, fmt=fmt)
    ts = report_of(chunks[-1])
    assert_same_result(ts, offline(proxy_app, STOP_TRACE, POLICY, fmt))
    assert ts["answer_source"] == "model"
    assert ts["thinking_field"] == ("inline" if fmt == "inline" else fmt)
    assert ts["steps"] and ts["policy"].startswith("consistency")
    assert "thinking_tokens_saved_estimate" not in ts  # max_tokens - used estimated nothing
    assert ts["thinking_tokens_received"] > ts["thinking_tokens"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The upstream was closed well before the end of the trace.
    rec = fake.wait(fid)
    assert rec.closed_early and rec.sent < rec.total
    # The answer is spliced into the same response.
    if fmt == "inline":
        assert content.endswith(SUFFIX + FORCED)
        assert "Tom starts with 12 apples" in content
    else:
        assert content == CUE + FORCED
        assert "Tom starts with 12 apples" in reasoning
    # The answer request continued the truncated thinking with a small budget, through
    # /v1/completions with the family's chat template written by the proxy.
    (answer_req,) = rec.answer_requests
    body = answer_req["body"]
    assert answer_req["path"] == "/v1/completions"
    assert body["max_tokens"] == ANSWER_TOKENS
    assert "continue_final_message" not in body and "messages" not in body
    m = offline(proxy_app, STOP_TRACE, POLICY, fmt)
    rendered = render_chat("deepseek-r1", [{"role": "user", "content": QUESTION}])
    assert body["prompt"] == rendered + m.truncated_thinking + SUFFIX
    assert "tracestop" not in body and "tracestop" not in rec.requests[0]["body"]


def test_streaming_completions_stop(client: Any, fake: FakeUpstream, proxy_app: Any,
                                    fid: str) -> None:
    prompt = f"<|User|>{QUESTION}<|Assistant|><think>\n"
    stream = client.completions.create(
        model="deepseek-r1-distill-qwen-7b", prompt=prompt, stream=True, max_tokens=4000,
        extra_body={"tracestop": {"policy": POLICY}, "fake": {"id": fid, "chunk": 7}})
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    m = offline(proxy_app, STOP_TRACE, POLICY)
    assert_same_result(report_of(chunks[-1]), m)
    assert text.endswith(SUFFIX + FORCED)
    rec = fake.wait(fid)
    assert rec.closed_early
    (answer_req,) = rec.answer_requests
    assert answer_req["path"] == "/v1/completions"
    assert answer_req["body"]["prompt"] == prompt + m.truncated_thinking + SUFFIX


@pytest.mark.parametrize("fmt", ["reasoning_content", "inline"])
def test_non_streaming_chat_stop(client: Any, fake: FakeUpstream, proxy_app: Any, fid: str,
                                 fmt: str) -> None:
    resp = client.chat.completions.create(
        model="qwq-32b", messages=[{"role": "user", "content": QUESTION}],
        max_tokens=4000,
        extra_body={"tracestop": {"policy": POLICY}, "fake": {"id": fid, "format": fmt}})
    m = offline(proxy_app, STOP_TRACE, POLICY, fmt)
    ts = report_of(resp)
    assert_same_result(ts, m)
    message = resp.choices[0].message
    if fmt == "inline":
        assert message.content == m.truncated_thinking + SUFFIX + FORCED
    else:
        assert message.content == CUE + FORCED
        assert (message.model_extra or {})["reasoning_content"] == m.truncated_thinking
    assert fake.wait(fid).closed_early


def test_non_streaming_completions_stop(client: Any, fake: FakeUpstream, proxy_app: Any,
                                        fid: str) -> None:
    resp = client.completions.create(
        model="r1", prompt="Q: " + QUESTION + "\n<think>\n", max_tokens=4000,
        extra_body={"tracestop": {"policy": POLICY}, "fake": {"id": fid}})
    m = offline(proxy_app, STOP_TRACE, POLICY)
    assert_same_result(report_of(resp), m)
    assert resp.choices[0].text == m.truncated_thinking + SUFFIX + FORCED
    assert fake.wait(fid).closed_early


def test_no_stop_relays_everything(client: Any, fake: FakeUpstream, fid: str) -> None:
    chunks, content, reasoning = chat_stream(client, fid, policy="none")
    ts = report_of(chunks[-1])
    assert ts["stopped"] is False and ts["answer_source"] == "model"
    assert "thinking_tokens_saved_estimate" not in ts
    thinking, _, answer = STOP_TRACE.partition("</think>")
    assert reasoning == thinking and content == answer
    rec = fake.wait(fid)
    assert not rec.closed_early and rec.sent == rec.total and not rec.answer_requests


def test_non_streaming_no_stop_keeps_usage(client: Any, fid: str) -> None:
    resp = client.chat.completions.create(
        model="r1", messages=[{"role": "user", "content": QUESTION}],
        extra_body={"tracestop": {"policy": "full"}, "fake": {"id": fid}})
    answer = STOP_TRACE.partition("</think>")[2]
    assert resp.choices[0].message.content == answer
    assert resp.usage is not None and resp.usage.prompt_tokens == 20
    assert report_of(resp)["stopped"] is False


def test_observe_never_stops_but_reports(client: Any, fake: FakeUpstream, proxy_app: Any,
                                         fid: str) -> None:
    stream = client.chat.completions.create(
        model="r1", messages=[{"role": "user", "content": QUESTION}], stream=True,
        extra_body={"tracestop": {"policy": POLICY, "observe": True}, "fake": {"id": fid}})
    ts = report_of(list(stream)[-1])
    m = offline(proxy_app, STOP_TRACE, POLICY, "reasoning_content")
    assert ts["stopped"] is False and ts["observe"] is True
    assert ts["step"] == m.decision.step + 1 and ts["reason"] == m.decision.reason
    assert ts["thinking_tokens_after_would_stop"] > 0
    rec = fake.wait(fid)
    assert not rec.closed_early and rec.sent == rec.total


def test_default_policy_and_model_family_option(client: Any, fid: str, proxy_app: Any) -> None:
    chunks, _content, _ = chat_stream(client, fid, policy="default", fmt="inline")
    ts = report_of(chunks[-1])
    m = offline(proxy_app, STOP_TRACE, "default")
    assert ts["stopped"] is m.stopped
    stream = client.chat.completions.create(
        model="r1", messages=[{"role": "user", "content": QUESTION}], stream=True,
        extra_body={"tracestop": {"policy": POLICY, "model_family": "gemma-4",
                                  "answer_format": "math"},
                    "fake": {"id": fid + "g", "format": "inline"}})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "\n<channel|>\n\nFinal answer: " + FORCED in text


# --- chunking does not change the result ----------------------------------------------------


@pytest.mark.parametrize(
    "fake_opts",
    [
        pytest.param({"chunk": 1, "delay": 0}, id="1-char"),
        pytest.param({"chunk": 5, "split_bytes": 3}, id="5-char-3-byte-writes"),
        pytest.param({"chunk": [1, 40, 3, 200, 7], "crlf": True}, id="ragged-crlf"),
        pytest.param({"chunk": 100000}, id="one-chunk"),
    ],
)
@pytest.mark.parametrize("fmt", ["reasoning", "inline"])
def test_result_does_not_depend_on_chunking(client: Any, proxy_app: Any, fid: str,
                                            fake_opts: dict[str, Any], fmt: str) -> None:
    chunks, content, _ = chat_stream(client, fid, fmt=fmt, **fake_opts)
    assert_same_result(report_of(chunks[-1]), offline(proxy_app, STOP_TRACE, POLICY, fmt))
    assert content.endswith(FORCED)


# --- pass-through ---------------------------------------------------------------------------


def test_models_pass_through(client: Any, proxy_url: str) -> None:
    assert [m.id for m in client.models.list()] == ["fake-r1"]
    r = httpx.get(f"{proxy_url}/v1/models")
    assert r.status_code == 200 and r.headers["x-fake-upstream"] == "models"


def test_unknown_route_pass_through(proxy_url: str) -> None:
    r = httpx.post(f"{proxy_url}/v1/whatever/else?x=1&y=2", content=b"raw \x00 bytes",
                   headers={"authorization": "Bearer sk-route"})
    assert r.status_code == 418 and r.headers["x-fake-upstream"] == "echo"
    echo = r.json()
    assert echo == {"method": "POST", "path": "/v1/whatever/else", "query": "x=1&y=2",
                    "body": "raw \x00 bytes", "authorization": "Bearer sk-route"}


def test_authorization_forwarded(client: Any, fake: FakeUpstream, fid: str) -> None:
    chat_stream(client, fid)
    rec = fake.wait(fid)
    assert [r["headers"]["authorization"] for r in rec.requests] == ["Bearer sk-test-123"] * 2


# --- bad requests ---------------------------------------------------------------------------


def test_unknown_tracestop_key_is_400(client: Any, fake: FakeUpstream, fid: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="r1", messages=[{"role": "user", "content": QUESTION}],
            extra_body={"tracestop": {"polcy": "default"}, "fake": {"id": fid}})
    assert "unknown key 'polcy'" in str(e.value) and "policy" in str(e.value)
    assert not fake.record(fid).requests  # nothing reached the upstream


def test_bad_policy_is_400_with_config_message(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="r1", messages=[{"role": "user", "content": QUESTION}],
            extra_body={"tracestop": {"policy": "traces-shift:windw=3"}})
    assert "traces-shift: unknown parameter 'windw'" in str(e.value)


def test_evaluation_only_policy_is_400_naming_it(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="r1", messages=[{"role": "user", "content": QUESTION}],
            extra_body={"tracestop": {"policy": "oracle"}})
    assert "policy 'oracle' is evaluation-only" in str(e.value)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("policy,words", [
    pytest.param("oracle", "oracle", id="oracle"),
    pytest.param("nosuch", "unknown policy 'nosuch'", id="unknown"),
])
def test_bad_or_evaluation_only_policy_is_400_json(proxy_url: str, fake: FakeUpstream, fid: str,
                                                   policy: str, words: str, stream: bool) -> None:
    """Not an unhandled ConfigError/ExceptionGroup: a 400 whose JSON error names the policy,
    streaming or not, and nothing generated upstream."""
    r = httpx.post(f"{proxy_url}/v1/chat/completions", timeout=10, json={
        "model": "r1", "messages": [{"role": "user", "content": QUESTION}], "stream": stream,
        "tracestop": {"policy": policy}, "fake": {"id": fid}})
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert words in err["message"] and err["type"] == "invalid_request_error"
    assert err["param"] == "tracestop" and err["code"] == 400
    assert not fake.record(fid).requests


def test_bad_option_type_is_400(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="r1", messages=[{"role": "user", "content": QUESTION}],
            extra_body={"tracestop": {"answer_format": "essay"}})
    assert "tracestop.answer_format" in str(e.value)


def test_body_over_limit_is_413(proxy_url: str) -> None:
    big = {"model": "r1", "messages": [{"role": "user", "content": "x" * PROXY_MAX_BODY}]}
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    r = httpx.post(f"{proxy_url}/v1/anything", content=b"x" * (PROXY_MAX_BODY + 1))
    assert r.status_code == 413


def test_invalid_json_is_400(proxy_url: str) -> None:
    r = httpx.post(f"{proxy_url}/v1/chat/completions", content=b"{nope",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_upstream_error_status_passes_through(proxy_url: str, fid: str, stream: bool) -> None:
    err = {"error": {"message": "the engine is on fire", "type": "server_error", "code": 500}}
    r = httpx.post(f"{proxy_url}/v1/chat/completions", json={
        "model": "r1", "messages": [{"role": "user", "content": "hi"}], "stream": stream,
        "fake": {"id": fid, "fault": {"status": 500, "body": err}}})
    assert r.status_code == 500 and r.json() == err


def test_upstream_error_status_via_openai_client(client: Any, fid: str) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        chat_stream(client, fid, fault={"status": 500, "body": {"error": {"message": "boom"}}})
    assert e.value.status_code == 500 and "boom" in str(e.value)


@pytest.mark.parametrize(
    "fault,words",
    [
        pytest.param({"stall_after": 3}, "timed out", id="stall"),
        pytest.param({"malformed_after": 3}, "not JSON", id="malformed-sse"),
        pytest.param({"disconnect_after": 3}, "broke mid-stream", id="disconnect"),
    ],
)
def test_mid_stream_faults_end_with_error_event(client: Any, fake: FakeUpstream, fid: str,
                                                fault: dict[str, int], words: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as e:
        chat_stream(client, fid, fault=fault)
    assert words in str(e.value)
    assert time.monotonic() - t0 < PROXY_TIMEOUT + 3  # never a hang
    assert fake.wait(fid).sent == 3


@pytest.mark.parametrize(
    "fault,status",
    [pytest.param({"stall_after": 3}, 504, id="stall"),
     pytest.param({"malformed_after": 3}, 502, id="malformed-sse"),
     pytest.param({"disconnect_after": 3}, 502, id="disconnect")],
)
def test_mid_stream_faults_non_streaming(proxy_url: str, fid: str, fault: dict[str, int],
                                         status: int) -> None:
    r = httpx.post(f"{proxy_url}/v1/chat/completions", timeout=10, json={
        "model": "r1", "messages": [{"role": "user", "content": QUESTION}],
        "fake": {"id": fid, "fault": fault}})
    assert r.status_code == status
    assert r.json()["error"]["message"] and "tracestop" in r.json()


def test_raw_error_event_then_done(proxy_url: str, fid: str) -> None:
    with httpx.stream("POST", f"{proxy_url}/v1/chat/completions", timeout=10, json={
            "model": "r1", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "fake": {"id": fid, "fault": {"malformed_after": 2}}}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    err = json.loads(lines[-2].removeprefix("data: "))
    assert err["error"]["type"] == "upstream_error" and "tracestop" in err


def test_client_disconnect_closes_upstream(proxy_url: str, fake: FakeUpstream, fid: str) -> None:
    with httpx.stream("POST", f"{proxy_url}/v1/chat/completions", timeout=10, json={
            "model": "r1", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "tracestop": {"policy": "none"},
            "fake": {"id": fid, "trace": NO_ANSWER_TRACE * 3, "chunk": 4, "delay": 0.005}}) as r:
        seen = 0
        for line in r.iter_lines():
            seen += bool(line)
            if seen >= 5:
                break
    t0 = time.monotonic()
    rec = fake.wait(fid, timeout=3)
    assert rec.closed_early and rec.sent < rec.total
    assert time.monotonic() - t0 < 1.5


def test_upstream_unreachable_is_502() -> None:
    from tracestop.proxy import create_app

    app = create_app("http://127.0.0.1:9", timeout=1.0)
    transport = httpx.ASGITransport(app=app)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.post("/v1/chat/completions", json={
                "model": "r1", "messages": [{"role": "user", "content": "hi"}]})

    import asyncio

    r = asyncio.run(go())
    assert r.status_code == 502 and "cannot reach the upstream" in r.json()["error"]["message"]


# --- the answer request fails ---------------------------------------------------------------


@pytest.mark.parametrize("answer_fault", ["500", "stall", "empty"])
def test_failed_answer_falls_back_to_best_candidate(client: Any, fid: str,
                                                    answer_fault: str) -> None:
    chunks, content, _ = chat_stream(client, fid, answer_fault=answer_fault)
    ts = report_of(chunks[-1])
    assert ts["answer_source"] == "best_candidate" and ts["answer"] == "7"
    assert ts["answer_error"]
    assert content == CUE + "\\boxed{7}"


def test_failed_answer_without_candidate_is_an_error(client: Any, proxy_url: str,
                                                     fid: str) -> None:
    with pytest.raises(openai.APIError) as e:
        chat_stream(client, fid, trace=NO_ANSWER_TRACE, policy="budget:tokens=30",
                    answer_fault="500")
    assert "could not get an answer" in str(e.value)
    r = httpx.post(f"{proxy_url}/v1/chat/completions", timeout=10, json={
        "model": "r1", "messages": [{"role": "user", "content": QUESTION}],
        "tracestop": {"policy": "budget:tokens=30"},
        "fake": {"id": fid + "b", "trace": NO_ANSWER_TRACE, "answer_fault": "500"}})
    assert r.status_code == 502 and r.json()["tracestop"]["answer_source"] == "none"
