"""``tracestop serve``: run the early-stopping proxy in front of an OpenAI-compatible server."""

from __future__ import annotations

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
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="Level of the proxy's log (one JSON line per request at info).")
def serve(upstream: str, host: str, port: int, policy: str, timeout: float, max_body: int,
          answer_tokens: int, model_family: str | None, engine: str, log_level: str) -> None:
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
    try:
        app = create_app(upstream, policy, timeout=timeout, max_body=max_body,
                         answer_tokens=answer_tokens, model_family=model_family,
                         engine=engine)
    except TracestopError as e:
        raise click.ClickException(str(e)) from None
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
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
