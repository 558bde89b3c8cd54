"""Answer forcing and splicing: after a stop, ask the upstream for the final answer from the
truncated thinking, and build the chunks that splice it into the same response.

How the answer is asked for (``answer_path``, from ``--engine`` or ``tracestop.answer_path``):

* a completions request, or a chat request on the ``completions`` path (the default): the
  proxy writes the prompt (for chat: the family's chat template, ``templates.render_chat``),
  the kept thinking and the cue, and POSTs ``/v1/completions``. Any OpenAI-compatible server
  takes it, and the thinking is kept whatever the server's chat template does;
* ``continue``: the messages plus an assistant message holding the thinking and the cue, with
  ``continue_final_message`` (vLLM, SGLang);
* ``prefill``: the same trailing assistant message, no extra fields (llama-server, Ollama).

A chat answer on the completions path needs the family's chat template: when the model's
family is not known, no answer request is sent (it would start a fresh thinking run) and the
best candidate is spliced, flagged. A continuation that comes back as a new turn (it opens a
thinking block) is refused the same way.

If the answer request fails, the best candidate answer is spliced instead (flagged in the
report); with no candidate either, an ``UpstreamError`` ends the response — never a silent cut.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from tracestop.answers.extract import extract_candidate
from tracestop.answers.question import option_texts
from tracestop.errors import UpstreamError
from tracestop.proxy import sse
from tracestop.proxy.exchange import REASONING_FIELDS, Exchange
from tracestop.proxy.metrics import redact
from tracestop.proxy.upstream import Upstream
from tracestop.templates import CLOSE_MARKERS, OPEN_MARKERS, family_of, render_chat

__all__ = ["answer", "answer_request", "chunk", "force", "parse_answer"]

log = logging.getLogger("tracestop.proxy")

# Keys of the original body that the short answer request must not inherit.
_ANSWER_DROP = frozenset({
    "stream", "stream_options", "n", "best_of", "max_tokens", "max_completion_tokens", "echo",
    "logprobs", "top_logprobs", "tools", "tool_choice", "response_format",
})
# … and, when a chat request's answer is asked for through /v1/completions, its chat-only keys
_CHAT_ONLY = frozenset({
    "messages", "continue_final_message", "add_generation_prompt", "chat_template",
    "chat_template_kwargs", "reasoning_effort", "reasoning", "include_reasoning", "think",
    "parallel_tool_calls", "modalities", "audio", "prediction", "store", "metadata",
    "web_search_options", "functions", "function_call",
})
_LETTER = re.compile(r"^\W*\(?([A-J])\)?(?:\W|$)")
_YESNO = re.compile(r"\b(YES|NO)\b", re.IGNORECASE)


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
    cue + the best candidate when the answer cannot be forced. Raises ``UpstreamError`` when
    there is neither."""
    try:
        text = await force(upstream, ex, answer_tokens)
        ex.answer_source = "model"
        ex.forced_answer = parse_answer(ex.cue + text, ex)
        return ex.cue + text
    except UpstreamError as e:
        ex.answer_error = redact(str(e), ex.headers)  # it reaches the client and the log
        log.warning("answer request failed: %s", ex.answer_error)
    best = ex.monitor.answer.current
    if best is not None:
        ex.answer_source = "best_candidate"
        shown = f"\\boxed{{{best}}}" if ex.monitor.answer_format == "math" else best
        return ex.cue + shown
    ex.answer_source = "none"
    raise UpstreamError(
        f"stopped the thinking but could not get an answer: {ex.answer_error}; "
        "no candidate answer had been stated", 502)


def parse_answer(text: str, ex: Exchange) -> str | None:
    """The answer a forced text states, read by the project's extraction (``\\boxed{5}`` →
    ``5``; a lone letter for multiple choice; YES/NO)."""
    fmt = ex.monitor.answer_format
    found = extract_candidate(text, fmt, option_texts(ex.monitor.question) or None)
    if found:
        return found[0]
    tail = text.removeprefix(ex.cue)
    if fmt == "choice":
        m = _LETTER.match(tail.strip()[:20])
        return m.group(1) if m else None
    if fmt == "yesno":
        hits: list[str] = _YESNO.findall(tail)
        return hits[0].upper() if hits else None
    return None


def answer_path(ex: Exchange) -> str:
    return ex.options.answer_path or ex.default_path


def answer_request(ex: Exchange, answer_tokens: int) -> tuple[str, dict[str, Any]]:
    """The path and body of the answer request. Raises ``UpstreamError`` when a chat answer
    cannot be forced on the chosen path (the chat template of the model is unknown)."""
    m = ex.monitor
    body = {k: v for k, v in ex.body.items() if k not in _ANSWER_DROP}
    body["stream"] = False
    body["max_tokens"] = answer_tokens
    if ex.kind == "completions":
        prompt = ex.body["prompt"]
        body["prompt"] = ((prompt[0] if isinstance(prompt, list) else prompt)
                          + ex.kept_raw + m.forcing_suffix)
        return "/v1/completions", body
    path = answer_path(ex)
    if path == "completions":
        model = ex.body.get("model")
        family = (family_of(ex.options.model_family) or family_of(ex.default_family)
                  or family_of(model if isinstance(model, str) else None))
        rendered = render_chat(family, ex.body.get("messages")) if family else None
        if rendered is None:
            why = (f"the chat template of model {model!r} is not known (set --model-family, "
                   "or --engine for a server that continues an assistant message)"
                   if family is None else
                   "the conversation cannot be written with the family's chat template "
                   "(tool calls or non-text content)")
            raise UpstreamError(f"cannot force the answer through /v1/completions: {why}",
                                502)
        opener = ex.open_prefix
        if ex.reasoning_field is not None and not rendered.rstrip().endswith(
                m.template.open):
            opener = m.template.open  # the model wrote it; the server's parser removed it
        body = {k: v for k, v in body.items() if k not in _CHAT_ONLY}
        body["prompt"] = rendered + opener + m.truncated_thinking + m.forcing_suffix
        return "/v1/completions", body
    prefill = ex.kept_raw + m.forcing_suffix
    body["messages"] = [*ex.body["messages"], {"role": "assistant", "content": prefill}]
    if path == "continue":
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return "/v1/chat/completions", body


async def force(upstream: Upstream, ex: Exchange, answer_tokens: int) -> str:
    """Ask the upstream for the answer from the truncated thinking (non-streaming)."""
    path, body = answer_request(ex, answer_tokens)
    data = await upstream.post_json(path, ex.headers, body, "the answer request")
    try:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamError("the answer request returned an unexpected body", 502) from None
    if path == "/v1/chat/completions":
        message = choice.get("message") or {}
        reasoning = next((message[f] for f in REASONING_FIELDS
                          if isinstance(message.get(f), str) and message.get(f)), "")
        text = message.get("content") or reasoning
        if reasoning and message.get("content"):
            # a new turn that thought again, then answered: not a continuation
            raise UpstreamError("the server answered the continuation with a new thinking "
                                "turn (it does not continue an assistant message)", 502)
    else:
        text = choice.get("text") or ""
    if not isinstance(text, str) or not text.strip():
        raise UpstreamError("the answer request returned an empty answer", 502)
    stripped = text.lstrip()
    if any(stripped.startswith(o) for o in OPEN_MARKERS) or any(c in text for c in
                                                                CLOSE_MARKERS):
        raise UpstreamError("the answer request started a new thinking run instead of "
                            "answering (the server did not continue the thinking)", 502)
    if isinstance(usage, dict):
        tokens, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
        ex.answer_tokens = tokens if isinstance(tokens, int) else None
        ex.answer_prompt_tokens = prompt if isinstance(prompt, int) else None
    return text
