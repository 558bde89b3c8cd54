"""The per-request ``tracestop`` options: the only part of a request body the proxy validates.

Clients send them with the official OpenAI client as
``extra_body={"tracestop": {"policy": "paper-count", "observe": True}}``; the client merges
``extra_body`` into the top level of the JSON body, so they arrive as ``body["tracestop"]``.
Everything else in the body goes to the upstream unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tracestop.errors import ConfigError

__all__ = ["OptionsError", "TracestopOptions", "pop_options"]

_KEY = "tracestop"


class TracestopOptions(BaseModel):
    """Per-request control. Unknown keys are an error, never silently ignored.

    * **policy** - a policy spec (``"traces-count:k=2"``) or a preset name (``"default"``).
    * **observe** - never stop; the ``tracestop`` object reports where it would have stopped.
    * **answer_format** - ``"math"``, ``"choice"`` or ``"yesno"``; inferred from the question
      when absent.
    * **model_family** - the end-of-thinking template (``"qwen3"``, ``"gemma-4"``, …); taken
      from the request's ``model`` when absent.
    * **answer_path** - how the answer is forced after a stop on a chat request:
      ``"completions"`` (the proxy writes the family's chat template and asks
      ``/v1/completions``; works on any OpenAI-compatible server), ``"continue"`` (an
      assistant message with ``continue_final_message``: vLLM, SGLang) or ``"prefill"`` (a
      trailing assistant message: Ollama, llama-server); by default from ``--engine``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str | None = None
    observe: bool = False
    answer_format: Literal["math", "choice", "yesno"] | None = None
    model_family: str | None = None
    answer_path: Literal["completions", "continue", "prefill"] | None = None


class OptionsError(ConfigError):
    """The ``tracestop`` object (or another field the proxy acts on, named by ``param``) of a
    request is invalid: answered with HTTP 400."""

    def __init__(self, message: str, param: str = "tracestop") -> None:
        super().__init__(message)
        self.param = param


def pop_options(body: dict[str, Any]) -> TracestopOptions:
    """Remove ``body["tracestop"]`` (it never reaches the upstream) and validate it."""
    raw = body.pop(_KEY, None)
    if raw is None:
        return TracestopOptions()
    if not isinstance(raw, dict):
        raise OptionsError(
            f"'tracestop' must be a JSON object such as {{\"policy\": \"default\"}}, "
            f"got {type(raw).__name__}"
        )
    try:
        return TracestopOptions.model_validate(raw)
    except ValidationError as e:
        raise OptionsError(_explain(e)) from None


def _explain(e: ValidationError) -> str:
    valid = ", ".join(TracestopOptions.model_fields)
    problems = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "tracestop"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {loc!r} in 'tracestop' (valid keys: {valid})")
        else:
            problems.append(f"'tracestop.{loc}': {err['msg']}")
    return "; ".join(problems)
