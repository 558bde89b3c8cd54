"""Answer forcing and splicing: after a stop, ask the upstream for the final answer from the
truncated thinking, and build the chunks that splice it into the same response.

If the answer request fails, the best candidate answer is spliced instead (flagged in the
report); with no candidate either, an ``UpstreamError`` ends the response — never a silent cut.
"""

from __future__ import annotations

import logging
from typing import Any

from tracestop.errors import UpstreamError
from tracestop.proxy import sse
from tracestop.proxy.exchange import REASONING_FIELDS, Exchange
from tracestop.proxy.upstream import Upstream

__all__ = ["answer", "chunk", "force"]

log = logging.getLogger("tracestop.proxy")

# Keys of the original body that the short answer request must not inherit.
_ANSWER_DROP = frozenset({
    "stream", "stream_options", "n", "best_of", "max_tokens", "max_completion_tokens", "echo",
    "logprobs", "top_logprobs", "tools", "tool_choice", "response_format",
})


def chunk(ex: Exchange, *, content: str | None = None, finish: str | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chunk of the exchange's kind (chat or completions), with its id, model and time."""
    if ex.kind == "chat":
        return sse.chat_chunk(ex.id, ex.model, ex.created, content=content,
                              finish_reason=finish, extra=extra)
    return sse.completion_chunk(ex.id, ex.model, ex.created, text=content or "",
                                finish_reason=finish, extra=extra)


async def answer(upstream: Upstream, ex: Exchange, answer_tokens: int) -> str:
    """The text spliced after the truncated thinking: cue + the model's forced answer, or
    cue + the best candidate when the answer request fails. Raises ``UpstreamError`` when
    there is neither."""
    try:
        text = await force(upstream, ex, answer_tokens)
        ex.answer_source = "model"
        return ex.cue + text
    except UpstreamError as e:
        ex.answer_error = str(e)
        log.warning("answer request failed: %s", e)
    best = ex.monitor.answer.current
    if best is not None:
        ex.answer_source = "best_candidate"
        shown = f"\\boxed{{{best}}}" if ex.monitor.answer_format == "math" else best
        return ex.cue + shown
    ex.answer_source = "none"
    raise UpstreamError(
        f"stopped the thinking but could not get an answer: {ex.answer_error}; "
        "no candidate answer had been stated", 502)


async def force(upstream: Upstream, ex: Exchange, answer_tokens: int) -> str:
    """Ask the upstream for the answer from the truncated thinking (non-streaming)."""
    m = ex.monitor
    prefill = ex.open_prefix + m.truncated_thinking + m.forcing_suffix
    body = {k: v for k, v in ex.body.items() if k not in _ANSWER_DROP}
    body["stream"] = False
    body["max_tokens"] = answer_tokens
    if ex.kind == "chat":
        path = "/v1/chat/completions"
        body["messages"] = [*ex.body["messages"], {"role": "assistant", "content": prefill}]
        # vLLM/SGLang: continue the assistant message; llama.cpp treats it as a prefill.
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    else:
        path = "/v1/completions"
        prompt = ex.body["prompt"]
        body["prompt"] = (prompt[0] if isinstance(prompt, list) else prompt) + prefill
    data = await upstream.post_json(path, ex.headers, body, "the answer request")
    try:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamError("the answer request returned an unexpected body", 502) from None
    if ex.kind == "chat":
        message = choice.get("message") or {}
        # A reasoning parser may file a continuation with no end marker under "reasoning".
        text = message.get("content") or next(
            (message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str)
             and message.get(f)), "")
    else:
        text = choice.get("text") or ""
    if not isinstance(text, str) or not text.strip():
        raise UpstreamError("the answer request returned an empty answer", 502)
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    ex.answer_tokens = tokens if isinstance(tokens, int) else None
    return text
