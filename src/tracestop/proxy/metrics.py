"""What an operator sees: one structured log line per handled request, Prometheus metrics at
``/metrics`` (``prometheus-client``), and the logging setup of ``tracestop serve``.

Nothing here ever reads a request's headers: a log line or a metric holds the request's id,
model, policy and outcome, never a key. The upstream URL is logged without its user info.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from tracestop.proxy.exchange import Exchange

__all__ = ["ProxyMetrics", "configure_logging", "log_request", "redact", "safe_url"]

log = logging.getLogger("tracestop.proxy")
request_log = logging.getLogger("tracestop.proxy.requests")

#: seconds: from a 1 ms Monitor pass to a 30 s answer request
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def configure_logging(level: str = "info") -> None:
    """Give the ``tracestop`` loggers a real handler (stderr, one line a record) at ``level``.
    Called by ``tracestop serve``; a program embedding ``create_app`` sets up its own."""
    logger = logging.getLogger("tracestop")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_tracestop", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._tracestop = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


_SECRET_HEADERS = ("authorization", "proxy-authorization", "api-key", "x-api-key")
_KEYLIKE = re.compile(r"(?i)\b(bearer|basic)\s+\S+|\bsk-[A-Za-z0-9_\-]{6,}")


def redact(text: str, headers: Sequence[tuple[str, str]] = ()) -> str:
    """``text`` (an upstream's error body, say) without the request's keys: the values of its
    credential headers, ``Bearer …``, and anything shaped like an ``sk-…`` key."""
    for name, value in headers:
        if name.lower() in _SECRET_HEADERS:
            for secret in {value, value.split(" ", 1)[-1]}:
                if len(secret) >= 4:
                    text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def safe_url(url: str) -> str:
    """``url`` without user info (``http://user:key@host`` → ``http://host``) or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ProxyMetrics:
    """The app's Prometheus metrics, in a registry of its own (several apps in one process
    do not collide). ``enabled`` is False without ``prometheus-client``."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            self.enabled = False
            return
        self.enabled = True
        r = self.registry = CollectorRegistry()
        self.requests = Counter("tracestop_requests", "Handled chat/completions requests, by "
                                "route and outcome (stopped, completed, error)",
                                ["route", "outcome"], registry=r)
        self.stops = Counter("tracestop_stops", "Requests whose thinking the proxy stopped, by "
                             "where the answer came from", ["answer_source"], registry=r)
        self.thinking_tokens = Counter(
            "tracestop_thinking_tokens", "Thinking tokens received from the upstream (used), "
            "by the Monitor's token counter", registry=r)
        self.kept_tokens = Counter(
            "tracestop_thinking_tokens_kept", "Thinking tokens up to the stop step (all of them "
            "when not stopped)", registry=r)
        self.upstream_errors = Counter(
            "tracestop_upstream_errors", "Upstream faults: an error status, a broken or "
            "malformed stream, a failed answer request", ["kind"], registry=r)
        self.added = Histogram(
            "tracestop_added_latency_seconds", "Time the proxy added to a request: monitor (its "
            "own work on the stream), hold (the longest a chunk waited for its step to be "
            "decided), answer (the answer request after a stop)", ["part"], buckets=_BUCKETS,
            registry=r)
        self.latency = Histogram("tracestop_request_seconds", "Whole handled requests",
                                 ["route"], buckets=_BUCKETS, registry=r)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def record(self, ex: Exchange, outcome: str) -> None:
        if not self.enabled:
            return
        m = ex.monitor
        self.requests.labels(ex.kind, outcome).inc()
        if m.stopped:
            self.stops.labels(ex.answer_source).inc()
        self.thinking_tokens.inc(m.count_tokens(m.thinking_text))
        self.kept_tokens.inc(m.thinking_tokens)
        if ex.upstream_status is not None and ex.upstream_status >= 400:
            self.upstream_errors.labels("status").inc()
        elif outcome == "error":
            self.upstream_errors.labels("stream").inc()
        if ex.answer_error:
            self.upstream_errors.labels("answer_request").inc()
        self.added.labels("monitor").observe(ex.monitor_seconds)
        self.added.labels("hold").observe(ex.hold_seconds)
        if m.stopped:
            self.added.labels("answer").observe(ex.answer_seconds)
        self.latency.labels(ex.kind).observe(time.monotonic() - ex.started)

    def record_error(self, kind: str, status: int) -> None:
        """A request that never reached the stream (the upstream refused or was down)."""
        if self.enabled:
            self.requests.labels(kind, "error").inc()
            self.upstream_errors.labels("status").inc()


def log_request(ex: Exchange, outcome: str, error: str | None = None) -> None:
    """The one structured (JSON) line a handled request gets, at INFO."""
    m = ex.monitor
    d = m.decision
    fields: dict[str, Any] = {
        "id": ex.id or None,
        "route": ex.kind,
        "model": ex.body.get("model") if isinstance(ex.body.get("model"), str) else None,
        "policy": m.policy.spec(),
        "outcome": outcome,
        "stopped": m.stopped,
        "observe": m.observe,
        "stop_step": (d.step + 1) if d is not None and d.step is not None else None,
        "reason": d.reason if d is not None else None,
        "answer_source": ex.answer_source if m.stopped else None,
        "thinking_tokens_used": m.count_tokens(m.thinking_text),
        "thinking_tokens_kept": m.thinking_tokens,
        "latency_ms": round((time.monotonic() - ex.started) * 1000, 1),
        "added_ms": round((ex.monitor_seconds + ex.answer_seconds) * 1000, 1),
        "upstream_status": ex.upstream_status,
    }
    if error:
        fields["error"] = redact(error, ex.headers)[:300]
    request_log.info("request %s", json.dumps(fields, ensure_ascii=False))
