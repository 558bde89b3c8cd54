"""The proxy in front of fakes that behave like each engine of docs/serving.md's recipes: what
the answer request looks like on each answer path, where the thinking is read from, and what
the client gets after a stop (nothing of the step after it, the forced answer parsed, usage).

Each fake is an OpenAI-compatible server with one engine's habits:

* ``strict`` (transformers serve, an OpenAI-strict server): 422 on any field it does not know
  (``continue_final_message``, ``add_generation_prompt``); thinking in ``reasoning_content``;
* ``vllm``: thinking in ``reasoning``; continues an assistant message with
  ``continue_final_message`` (the continuation, without an end marker, filed under
  ``reasoning``);
* ``llama-server``: thinking in ``reasoning_content``; a completions prompt taken as it is;
* ``ollama``: thinking in ``reasoning`` (with an empty ``content`` beside it); a trailing
  assistant message is a prefill;
* ``new-turn`` (llama-cpp-python's server): ignores a trailing assistant message and opens a
  new turn that thinks again.

Every answer request is answered ``\\boxed{8}`` (the thinking says 7), so an answer of 8 can
only have come from the answer request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.proxy.fakes import QUESTION, STOP_TRACE, ServerThread, _json
from tracestop.monitor import Monitor
from tracestop.proxy.testing import lifespan, read_body
from tracestop.segment import split_thinking
from tracestop.templates import render_chat

POLICY = "consistency:k=3"
SUFFIX = "\n</think>\n\n**Final Answer**\n"
CUE = "**Final Answer**\n"
ANSWER = "\\boxed{8}"
MODEL = "deepseek-r1-distill-qwen-7b"
MESSAGES = [{"role": "user", "content": QUESTION}]
ANSWER_PROMPT_TOKENS = 5000  # what every fake says the answer request's prompt was

_STRICT_FIELDS = {"model", "messages", "prompt", "max_tokens", "stream", "stream_options",
                  "temperature", "top_p", "stop", "seed", "n"}
FIELD = {"strict": "reasoning_content", "vllm": "reasoning", "llama-server": "reasoning_content",
         "ollama": "reasoning", "new-turn": "reasoning_content"}


class EngineFake:
    """An ASGI app playing one engine; ``requests`` logs every body it got."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        req = json.loads(body)
        path = scope["path"]
        self.requests.append({"path": path, "body": req})
        if self.engine == "strict" and set(req) - _STRICT_FIELDS:
            await _json(send, 422, {"error": f"Unexpected fields: {sorted(set(req) - _STRICT_FIELDS)}"})
            return
        chat = path.endswith("/chat/completions")
        if req.get("stream"):
            await self._stream(req, chat, send)
        else:
            await self._answer(req, chat, send)

    async def _stream(self, req: dict[str, Any], chat: bool, send: Any) -> None:
        think, answer = split_thinking(STOP_TRACE)
        field = FIELD[self.engine]
        if chat:
            deltas = [{field: think[i:i + 16]} for i in range(0, len(think), 16)]
            if self.engine == "ollama":  # Ollama sends an empty content beside the reasoning
                deltas = [{"content": "", **d} for d in deltas]
            deltas += [{"content": (answer or "")}]
        else:
            deltas = [{"text": STOP_TRACE[i:i + 16]} for i in range(0, len(STOP_TRACE), 16)]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for d in deltas:
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = d
            else:
                choice["text"] = d["text"]
            data = json.dumps({"id": "e-1", "object": "x", "created": 1, "model": req["model"],
                               "choices": [choice]})
            await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n",
                    "more_body": False})

    async def _answer(self, req: dict[str, Any], chat: bool, send: Any) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": ANSWER}
        last = (req.get("messages") or [{}])[-1]
        if chat and last.get("role") == "assistant":
            if self.engine == "new-turn" or (self.engine == "vllm"
                                             and not req.get("continue_final_message")):
                message = {"role": "assistant", "reasoning_content": "Let me think again.",
                           "content": "<think>\nOkay, so the question asks"}
            elif self.engine == "vllm":
                message = {"role": "assistant", "content": None, "reasoning": ANSWER}
        elif chat:
            message = {"role": "assistant", "content": "<think>\nOkay, so the question asks"}
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = message
        else:
            choice["text"] = ANSWER
        await _json(send, 200, {"id": "a-1", "object": "x", "created": 1, "model": req["model"],
                                "choices": [choice],
                                "usage": {"prompt_tokens": ANSWER_PROMPT_TOKENS,
                                          "completion_tokens": 4,
                                          "total_tokens": ANSWER_PROMPT_TOKENS + 4}})


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, tuple[EngineFake, Any, str]]]:
    """Per engine: the fake, the proxy app, the proxy's client base URL."""
    from contextlib import ExitStack

    from tracestop.proxy import create_app

    out: dict[str, tuple[EngineFake, Any, str]] = {}
    with ExitStack() as stack:
        for engine in FIELD:
            fake = EngineFake(engine)
            up = stack.enter_context(ServerThread(fake))
            kind = engine if engine in ("vllm", "llama-server", "ollama") else "generic"
            app = create_app(up, "default", timeout=5.0, answer_tokens=32, engine=kind)
            out[engine] = (fake, app, stack.enter_context(ServerThread(app)))
        yield out


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-test", max_retries=0, timeout=15)


def offline(app: Any) -> Monitor:
    m = Monitor(POLICY, tagger=app.state.tracestop.tagger, question=QUESTION)
    m.feed_thinking(split_thinking(STOP_TRACE)[0])
    m.end()
    return m


def stream_chat(base: str, **extra: Any) -> tuple[str, str, Any, dict[str, Any], list[Any]]:
    """(reasoning, content, usage, tracestop, chunks) of a streamed chat request."""
    chunks = list(client(base).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4000, stream=True,
        stream_options={"include_usage": True},
        extra_body={"tracestop": {"policy": POLICY, **extra}}))
    reasoning = content = ""
    usage, report = None, {}
    for c in chunks:
        if c.choices:
            d = c.choices[0].delta.model_extra or {}
            reasoning += next((d[f] for f in ("reasoning_content", "reasoning", "thinking")
                               if d.get(f)), "")
            content += c.choices[0].delta.content or ""
        usage = c.usage or usage
        report = (c.model_extra or {}).get("tracestop", report)
    return reasoning, content, usage, report, chunks


# --- a. the answer is forced on any OpenAI server ----------------------------------------------


def test_strict_server_chat_stop_forces_through_completions(engines: Any) -> None:
    """Before: the chat answer request carried continue_final_message/add_generation_prompt,
    a strict server answered 422, and the client got an error (no candidate) or a flagged
    best candidate."""
    fake, app, base = engines["strict"]
    fake.requests.clear()
    _reasoning, content, _usage, rep, _ = stream_chat(base)
    assert rep["stopped"] is True
    assert rep["answer_source"] == "model", rep.get("answer_error")
    assert content == CUE + ANSWER
    answer_req = fake.requests[-1]
    assert answer_req["path"] == "/v1/completions"
    m = offline(app)
    assert answer_req["body"]["prompt"] == (render_chat("deepseek-r1", MESSAGES)
                                            + m.truncated_thinking + SUFFIX)


def test_unknown_chat_template_falls_back_to_the_best_candidate(engines: Any) -> None:
    """No family can be told from the model name: no answer request is sent (it would be a
    fresh thinking run), and the best candidate is spliced, flagged."""
    fake, _app, base = engines["strict"]
    fake.requests.clear()
    chunks = list(client(base).chat.completions.create(
        model="my-private-model", messages=MESSAGES, max_tokens=4000, stream=True,
        extra_body={"tracestop": {"policy": POLICY}}))
    rep = chunks[-1].model_extra["tracestop"]
    assert rep["stopped"] is True
    assert rep["answer_source"] == "best_candidate"
    assert "chat template" in rep["answer_error"]
    assert [r["body"].get("stream") for r in fake.requests] == [True]  # no answer request
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == CUE + "\\boxed{7}"


def test_model_family_option_makes_the_template_known(engines: Any) -> None:
    fake, _app, base = engines["strict"]
    _r, content, _u, rep, _ = stream_chat(base, model_family="qwen3")
    assert rep["answer_source"] == "model" and content == CUE + ANSWER
    assert fake.requests[-1]["body"]["prompt"].startswith("<|im_start|>user\n" + QUESTION)


@pytest.mark.parametrize("engine", ["vllm", "ollama"])
def test_engine_recipes_continue_the_assistant_message(engines: Any, engine: str) -> None:
    fake, app, base = engines[engine]
    fake.requests.clear()
    reasoning, content, _usage, rep, _ = stream_chat(base)
    assert rep["answer_source"] == "model", rep.get("answer_error")
    assert rep["thinking_field"] == FIELD[engine]
    assert rep["answer"] == "8"
    assert content == CUE + ANSWER
    m = offline(app)
    assert reasoning == m.truncated_thinking
    body = fake.requests[-1]["body"]
    assert fake.requests[-1]["path"] == "/v1/chat/completions"
    assert body["messages"][-1] == {"role": "assistant", "content": m.truncated_thinking + SUFFIX}
    assert ("continue_final_message" in body) is (engine == "vllm")


def test_llama_server_recipe_forces_through_completions(engines: Any) -> None:
    """llama-server refuses an assistant prefill while thinking is on: its engine uses the
    completions path, and the thinking is read from reasoning_content."""
    fake, app, base = engines["llama-server"]
    fake.requests.clear()
    reasoning, content, _usage, rep, _ = stream_chat(base)
    assert rep["thinking_field"] == "reasoning_content"
    assert rep["answer_source"] == "model" and rep["answer"] == "8"
    assert reasoning == offline(app).truncated_thinking and content == CUE + ANSWER
    assert fake.requests[-1]["path"] == "/v1/completions"


def test_per_request_answer_path_overrides_the_engine(engines: Any) -> None:
    fake, _app, base = engines["vllm"]
    _r, content, _u, rep, _ = stream_chat(base, answer_path="completions")
    assert fake.requests[-1]["path"] == "/v1/completions"
    assert rep["answer_source"] == "model" and content == CUE + ANSWER


def test_a_new_turn_is_not_reported_as_the_models_answer(engines: Any) -> None:
    """Before: a server that ignores the prefill and thinks again had that fresh thinking run
    spliced as the answer, with answer_source "model"."""
    _fake, _app, base = engines["new-turn"]
    _r, content, _u, rep, _ = stream_chat(base, answer_path="prefill")
    assert rep["answer_source"] == "best_candidate"
    assert "new thinking" in rep["answer_error"]
    assert content == CUE + "\\boxed{7}"


# --- b. nothing after the stop step reaches a streaming client ---------------------------------


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_stream_holds_back_the_step_after_the_stop(engines: Any, kind: str) -> None:
    """Before: the chunks of the step after the stop step were relayed before the Monitor
    decided, so its first characters reached the client."""
    _fake, app, base = engines["strict"]
    m = offline(app)
    if kind == "chat":
        reasoning, content, _u, _rep, _ = stream_chat(base)
        assert reasoning == m.truncated_thinking
        assert content == CUE + ANSWER
        return
    chunks = list(client(base).completions.create(
        model=MODEL, prompt=QUESTION, max_tokens=4000, stream=True,
        extra_body={"tracestop": {"policy": POLICY}}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == m.truncated_thinking + SUFFIX + ANSWER


# --- c. the forced answer is parsed into the report -------------------------------------------


def test_report_answer_is_the_forced_answer(engines: Any) -> None:
    """Before: tracestop.answer was the Monitor's candidate (or null), not what was spliced."""
    _fake, _app, base = engines["strict"]
    r = client(base).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4000,
        extra_body={"tracestop": {"policy": POLICY}})
    rep = r.model_extra["tracestop"]
    assert rep["answer"] == "8" and rep["candidate"] == "7"
    assert r.choices[0].message.content == CUE + ANSWER


# --- d. usage after a stop ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_usage_after_a_stop(engines: Any, stream: bool) -> None:
    """Before: usage was null after a stop. Now: the answer request's figures plus the thinking
    the server generated, counted by the Monitor's counter."""
    _fake, app, base = engines["strict"]
    m = offline(app)
    if stream:
        _r, _c, usage, rep, _ = stream_chat(base)
    else:
        r = client(base).chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=4000,
            extra_body={"tracestop": {"policy": POLICY}})
        usage, rep = r.usage, r.model_extra["tracestop"]
    assert usage is not None
    assert rep["usage_prompt_tokens_from"] == "answer request less counted"
    assert usage.prompt_tokens == ANSWER_PROMPT_TOKENS - m.count_tokens(
        m.truncated_thinking + SUFFIX)
    kept = m.count_tokens(m.truncated_thinking)
    assert kept + 4 <= usage.completion_tokens <= kept + 4 + 30
    assert usage.completion_tokens == rep["thinking_tokens_received"] + 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_no_saved_estimate_in_the_report(engines: Any) -> None:
    """Before: thinking_tokens_saved_estimate was max_tokens - used (not an estimate of
    anything)."""
    _fake, _app, base = engines["strict"]
    _r, _c, _u, rep, _ = stream_chat(base)
    assert "thinking_tokens_saved_estimate" not in rep
