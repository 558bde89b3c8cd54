"""``tracestop serve``: run the early-stopping proxy in front of an OpenAI-compatible server."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from tracestop.errors import TracestopError

__all__ = ["serve"]


@click.command("serve")
@click.option("--upstream", required=True, metavar="URL",
              help="Base URL of the model server, e.g. http://127.0.0.1:8000 (a trailing /v1 "
                   "is fine).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. The default serves this machine only.")
@click.option("--port", default=8400, show_default=True, type=click.IntRange(0, 65535))
@click.option("--policy", default="default", show_default=True, metavar="SPEC",
              help="Default policy spec or preset, e.g. 'traces-count:k=3' "
                   "(per request: extra_body={'tracestop': {'policy': ...}}).")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds to wait for the upstream: to connect, and between two reads.")
@click.option("--max-body", default=4 * 1024 * 1024, show_default=True,
              type=click.IntRange(min=1), help="Largest request body in bytes (larger: 413).")
@click.option("--answer-tokens", default=128, show_default=True, type=click.IntRange(min=1),
              help="max_tokens of the request that writes the answer after a stop.")
@click.option("--model-family", default=None, metavar="FAMILY",
              help="End-of-thinking template (deepseek-r1, qwq, qwen3, gemma-4); by default "
                   "it is read from each request's model name.")
@click.option("--engine", default="generic", show_default=True,
              type=click.Choice(["generic", "transformers", "vllm", "sglang", "llama-server",
                                 "ollama"]),
              help="The upstream server: how a chat answer is forced after a stop. generic: "
                   "/v1/completions with the model family's chat template (any server); "
                   "vllm/sglang: continue_final_message; ollama: assistant prefill; "
                   "llama-server: as generic. See docs/serving.md.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes (uvicorn). The proxy keeps no state between requests.")
@click.option("--header-timeout", default=10.0, show_default=True,
              type=click.FloatRange(min=0.001),
              help="Seconds a client has to send its request headers (then: closed).")
@click.option("--body-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0.001),
              help="Seconds a client has to send its whole request body (then: 408).")
@click.option("--max-event", default=1024 * 1024, show_default=True,
              type=click.IntRange(min=1),
              help="Largest single upstream SSE event in bytes (larger: an error event).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Accept this Host name too (repeatable; '*' for any). IP literals, "
                   "localhost and --host are always accepted; others get 403.")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN",
              help="Accept browser requests from this origin, e.g. https://app.example "
                   "(repeatable; '*' for any). Loopback origins are always accepted.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="Level of the proxy's log (one JSON line per request at info).")
def serve(upstream: str, host: str, port: int, policy: str, timeout: float, max_body: int,
          answer_tokens: int, model_family: str | None, engine: str, workers: int,
          header_timeout: float, body_timeout: float, max_event: int,
          allow_hosts: tuple[str, ...], allow_origins: tuple[str, ...], log_level: str) -> None:
    """Serve an OpenAI-compatible proxy that stops the reasoning once it has its answer.

    \b
    Example:
      tracestop serve --upstream http://127.0.0.1:8000 --policy default
      # then point any OpenAI client at http://127.0.0.1:8400/v1
    """
    try:
        import uvicorn

        from tracestop.proxy import create_app
        from tracestop.proxy.metrics import configure_logging, safe_url
    except ImportError as e:
        raise click.ClickException(
            f"`tracestop serve` needs the proxy extra ({e.name or e}): "
            "pip install 'tracestop[proxy]'"
        ) from None
    settings: dict[str, Any] = {
        "upstream": upstream, "policy": policy, "timeout": timeout, "max_body": max_body,
        "answer_tokens": answer_tokens, "model_family": model_family, "engine": engine,
        "max_event": max_event,
        "body_timeout": body_timeout, "bind_host": host, "allow_hosts": list(allow_hosts),
        "allow_origins": list(allow_origins)}
    try:
        app = create_app(**settings)  # also with --workers: bad settings fail here, once
    except TracestopError as e:
        raise click.ClickException(str(e)) from None
    from tracestop.proxy import server

    os.environ[server.HEADER_TIMEOUT_ENV] = str(header_timeout)
    try:
        import httptools  # noqa: F401

        http = server.PROTOCOL
    except ImportError:  # pragma: no cover - uvicorn[standard] ships httptools
        http = "auto"
        click.echo("warning: httptools is missing: --header-timeout is not enforced", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}: the proxy has no authentication of its own; "
                   "it forwards the clients' Authorization headers upstream", err=True)
    configure_logging(log_level)
    import logging

    logging.getLogger("tracestop.proxy").info(
        "tracestop serve: listening on http://%s:%s, upstream %s, policy %s, engine %s, "
        "metrics at /metrics", host, port, safe_url(upstream), policy, engine)
    # Access logs would not show headers, but keep them quiet: one line per request is
    # logged by tracestop.proxy itself.
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, http=http)
        return
    os.environ[server.CONFIG_ENV] = json.dumps(settings)
    uvicorn.run("tracestop.proxy.server:app_from_env", factory=True, workers=workers,
                host=host, port=port, log_level=log_level, access_log=False, http=http)
