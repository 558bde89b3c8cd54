"""Request parsing and validation: the body, the ``tracestop`` options, the question, and the
per-request Monitor. Every user mistake here is a ``ConfigError`` (answered with HTTP 400)."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request

from tracestop.errors import ConfigError
from tracestop.monitor import Monitor, MonitorConfig
from tracestop.proxy.config import check_family, check_policy, presets
from tracestop.proxy.errors import BodyTooLarge
from tracestop.proxy.exchange import Exchange, Kind
from tracestop.proxy.schema import OptionsError, pop_options
from tracestop.tag.base import Tagger
from tracestop.templates import template_for

__all__ = ["MAX_TOKENS_LIMIT", "build_exchange", "is_json_content_type", "question", "read_body"]

#: the largest ``max_tokens`` / ``max_completion_tokens`` a request may ask for
MAX_TOKENS_LIMIT = 10**7


def is_json_content_type(value: str | None) -> bool:
    """``application/json`` or ``application/<x>+json`` (parameters such as charset allowed);
    a missing type is refused too (a browser sends a typeless body without a preflight)."""
    if not value:
        return False
    mime = value.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/")
                                          and mime.endswith("+json"))


def check_fields(body: dict[str, Any]) -> bool:
    """Validate the body fields the proxy acts on; returns ``stream``. ``OptionsError``
    (HTTP 400) names the field."""
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise OptionsError(f"'stream' must be true or false, got {stream!r}", "stream")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not (
                1 <= value <= MAX_TOKENS_LIMIT):
            raise OptionsError(f"'{name}' must be an integer from 1 to {MAX_TOKENS_LIMIT}, "
                               f"got {value!r}", name)
    return stream


async def read_body(request: Request, limit: int, timeout: float = 30.0) -> bytes:
    """The request body; ``BodyTooLarge`` past ``limit`` bytes (declared or streamed),
    ``TimeoutError`` when it has not all arrived within ``timeout`` seconds (a client that
    sends a short body must not hold the connection)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    with anyio.fail_after(timeout):
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise BodyTooLarge
            parts.append(part)
    return b"".join(parts)


def question(kind: Kind, body: dict[str, Any]) -> str:
    if kind == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content
                                 if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def build_exchange(kind: Kind, body: dict[str, Any], headers: list[tuple[str, str]], *,
                   default_policy: str, model_family: str | None, tagger: Tagger) -> Exchange:
    """Validate a handled request and set up its Monitor; a ``ConfigError`` names the problem."""
    options = pop_options(body)
    stream = check_fields(body)
    policy = check_policy(options.policy or default_policy)
    family = options.model_family or model_family
    if family is not None:
        check_family(family)  # a ConfigError names the known families
    else:
        model = body.get("model")
        try:
            template_for(model if isinstance(model, str) else None)
            family = model if isinstance(model, str) else None
        except ConfigError:
            family = None  # an unknown model name: the default template
    can_force = True
    if kind == "completions":
        prompt = body.get("prompt")
        can_force = isinstance(prompt, str) or (
            isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str))
    elif not isinstance(body.get("messages"), list):
        raise OptionsError("'messages' must be a list of chat messages")
    n = body.get("n")
    # The Monitor watches choice 0; with several choices, or no way to force an answer, it
    # only observes.
    observe = options.observe or not can_force or (isinstance(n, int) and n > 1)
    monitor = Monitor(
        policy,
        tagger=tagger,
        question=question(kind, body),
        answer_format=options.answer_format,
        model=family,
        observe=observe,
        config=MonitorConfig(presets=presets()),
    )
    return Exchange(kind, body, options, monitor, headers, stream, can_force)
