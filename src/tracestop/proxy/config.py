"""The proxy's settings and the per-request policy check (a bad spec is a ``ConfigError``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tracestop.errors import ConfigError, DataError
from tracestop.policies import Preset, parse_policy
from tracestop.presets import load_presets
from tracestop.templates import TEMPLATES

__all__ = ["ENGINES", "ProxyConfig", "check_family", "check_policy", "presets"]

#: ``--engine`` → how a chat answer is forced after a stop (``tracestop.answer_path``):
#: ``completions`` works on any OpenAI-compatible server (the proxy applies the family's chat
#: template); ``continue`` and ``prefill`` ask the server to continue an assistant message.
ENGINES: dict[str, str] = {
    "generic": "completions",
    "transformers": "completions",
    "vllm": "continue",
    "sglang": "continue",
    # llama-server's trailing assistant message is a prefill, but it refuses one while
    # thinking is on (llama.cpp #21889): its /v1/completions takes the proxy's prompt
    "llama-server": "completions",
    "ollama": "prefill",
}


@dataclass(frozen=True)
class ProxyConfig:
    """Settings of one proxy app.

    * **upstream** - base URL of the model server, with or without a trailing ``/v1``.
    * **policy** - default policy spec or preset (per request: ``tracestop.policy``).
    * **timeout** - seconds to wait for the upstream (connect, and between two reads).
    * **max_body** - largest request body accepted, in bytes (larger: HTTP 413).
    * **answer_tokens** - ``max_tokens`` of the request that writes the final answer.
    * **model_family** - default end-of-thinking template; by default, from ``model``.
    * **max_connections** - size of the upstream connection pool.
    * **engine** - the upstream server kind (``ENGINES``): picks how a chat answer is forced.
    * **max_event** - largest single upstream SSE event, in bytes (larger: the response ends
      with an error event and the upstream is closed).
    * **body_timeout** - seconds a client has to send its whole request body (else HTTP 408).
    * **bind_host** - the address the proxy listens on (``Host``/``Origin`` checks).
    * **allow_hosts** - ``Host`` names accepted besides IP literals, ``localhost`` and
      ``bind_host`` (``"*"``: any). Others get 403: a DNS-rebinding page cannot reach it.
    * **allow_origins** - browser origins accepted besides loopback ones and ``bind_host``
      (``"*"``: any; ``"https://app.example"``: that origin). Others get 403.
    """

    upstream: str
    policy: str = "default"
    timeout: float = 300.0
    max_body: int = 4 * 1024 * 1024
    answer_tokens: int = 128
    model_family: str | None = None
    max_connections: int = 1024
    engine: str = "generic"
    max_event: int = 1024 * 1024
    body_timeout: float = 30.0
    bind_host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise ConfigError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_body < 1:
            raise ConfigError(f"max_body must be >= 1 byte, got {self.max_body}")
        if self.max_event < 1:
            raise ConfigError(f"max_event must be >= 1 byte, got {self.max_event}")
        if self.body_timeout <= 0:
            raise ConfigError(f"body_timeout must be > 0 seconds, got {self.body_timeout}")
        if self.answer_tokens < 1:
            raise ConfigError(f"answer_tokens must be >= 1, got {self.answer_tokens}")
        check_policy(self.policy)  # fail at start-up, not on the first request
        if self.model_family is not None:
            check_family(self.model_family)
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}")

    @property
    def answer_path(self) -> str:
        return ENGINES[self.engine]

    def target(self, path: str, query: str = "") -> str:
        """The upstream URL for a request path (``/v1`` is not doubled)."""
        base = self.upstream.rstrip("/")
        if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
            path = path[3:]
        return base + path + (f"?{query}" if query else "")


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """Built-in presets plus the user's presets file (``tracestop calibrate`` writes it), read
    once per process."""
    try:
        return load_presets()
    except DataError as e:
        raise ConfigError(str(e)) from None


@lru_cache(maxsize=256)
def check_policy(spec: str) -> str:
    """Validate a spec for every answer format (a bad one is a 400); the Monitor resolves it,
    since presets such as ``default`` pick a configuration by the question's answer format."""
    for fmt in ("math", "choice", "yesno"):
        parse_policy(spec, presets(), answer_format=fmt)
    return spec


def check_family(family: str) -> str:
    """A model family must be one of the templates' names (a model name is not a family:
    ``model`` is read for that). A ``ConfigError`` lists the valid choices."""
    if family not in TEMPLATES:
        raise ConfigError(f"unknown template family {family!r} for model_family: valid "
                          f"choices are {', '.join(TEMPLATES)}")
    return family
