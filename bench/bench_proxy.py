"""Benchmark the proxy against a fake upstream, both on 127.0.0.1, in the same run.

Measures, through the proxy and directly against the fake upstream:

* time to first byte (TTFB) of a streamed chat completion, median over sequential requests;
* per-chunk time over a long stream sent as fast as the upstream can (the proxy parses each
  event, feeds the Monitor and re-encodes it);
* 256 concurrent streams through the proxy (bounded: each stream has a fixed length; all
  traffic stays on loopback; the run ends by itself).

The upstream and the proxy run in their own processes (uvicorn), the client in this one.
The streamed text is reasoning that never states an answer, so the Monitor segments and
tags every step but never stops: the figures are the steady-state relay overhead.

    .venv/bin/python bench/bench_proxy.py            # table
    .venv/bin/python bench/bench_proxy.py --json     # machine-readable
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import statistics
import sys
import time
from typing import Any

import httpx

from tracestop.proxy.testing import lifespan, read_body

STEP = ("Let me consider the structure of this problem a little more before going on, "
        "looking at each quantity in turn.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _fake_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Streams ``fake.chunks`` reasoning chunks of ``fake.size`` characters, then [DONE]."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = await read_body(receive)
    spec = json.loads(body or b"{}").get("fake", {})
    n, size, delay = int(spec.get("chunks", 100)), int(spec.get("size", 12)), spec.get("delay", 0)
    text = ("\n\n".join([STEP] * (n * size // len(STEP) + 2)))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    for i in range(n):
        piece = text[i * size : (i + 1) * size]
        chunk = {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": "bench",
                 "choices": [{"index": 0, "delta": {"reasoning_content": piece},
                              "finish_reason": None}]}
        await send({"type": "http.response.body", "more_body": True,
                    "body": b"data: " + json.dumps(chunk).encode() + b"\n\n"})
        if delay:
            await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def _serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(_fake_upstream, host="127.0.0.1", port=port, log_level="error",
                access_log=False)


def _serve_proxy(port: int, upstream: str) -> None:
    import uvicorn

    from tracestop.proxy import create_app

    uvicorn.run(create_app(upstream, "default"), host="127.0.0.1", port=port,
                log_level="error", access_log=False)


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _payload(chunks: int, size: int = 12, delay: float = 0) -> dict[str, Any]:
    return {"model": "bench", "stream": True,
            "messages": [{"role": "user", "content": "How many apples are left?"}],
            "tracestop": {"policy": "default"},
            "fake": {"chunks": chunks, "size": size, "delay": delay}}


async def _one_stream(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                      direct: bool) -> tuple[float, float, int]:
    """(ttfb s, first-to-last-byte s, events) of one streamed request."""
    if direct:
        body = {k: v for k, v in body.items() if k != "tracestop"}
    t0 = time.perf_counter()
    first = last = 0.0
    events = 0
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            now = time.perf_counter()
            if not first:
                first = now
            if line.startswith("data:"):
                events += 1
                last = now
    return first - t0, last - first, events


async def _measure(proxy: str, upstream: str, ttfb_n: int, chunks: int,
                   concurrency: int, conc_chunks: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        out: dict[str, Any] = {}
        for name, base, direct in (("direct", upstream, True), ("proxy", proxy, False)):
            url = f"{base}/v1/chat/completions"
            await _one_stream(client, url, _payload(5), direct)  # warm the connection
            ttfbs = [(await _one_stream(client, url, _payload(5), direct))[0]
                     for _ in range(ttfb_n)]
            spans = []
            for _ in range(3):
                _, span, events = await _one_stream(client, url, _payload(chunks), direct)
                spans.append(span / max(1, events - 1))
            out[name] = {"ttfb_ms": statistics.median(ttfbs) * 1e3,
                         "per_chunk_ms": statistics.median(spans) * 1e3}
        for name, base, direct in (("concurrent_direct", upstream, True),
                                   ("concurrent", proxy, False)):
            out[name] = await _concurrent(client, f"{base}/v1/chat/completions", direct,
                                          concurrency, conc_chunks)
        return out


async def _concurrent(client: httpx.AsyncClient, url: str, direct: bool, concurrency: int,
                      chunks: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(_one_stream(client, url, _payload(chunks, delay=0.002), direct)
          for _ in range(concurrency)),
        return_exceptions=True)
    wall = time.perf_counter() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    ttfb = sorted(r[0] for r in ok) or [float("nan")]
    # proxy: every chunk + the tracestop chunk + [DONE]; direct: every chunk + [DONE]
    expected = chunks + (1 if direct else 2)
    return {
        "streams": concurrency,
        "ok": len(ok),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "complete": sum(r[2] == expected for r in ok),
        "chunks_each": chunks,
        "wall_s": wall,
        "ttfb_p50_ms": ttfb[len(ttfb) // 2] * 1e3,
        "ttfb_p99_ms": ttfb[min(len(ttfb) - 1, int(len(ttfb) * 0.99))] * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--ttfb-requests", type=int, default=50)
    ap.add_argument("--chunks", type=int, default=2000, help="chunks in the per-chunk stream")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--concurrent-chunks", type=int, default=200)
    args = ap.parse_args(argv)

    up_port, px_port = _free_port(), _free_port()
    upstream, proxy = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{px_port}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_serve_upstream, args=(up_port,), daemon=True),
             ctx.Process(target=_serve_proxy, args=(px_port, upstream), daemon=True)]
    for p in procs:
        p.start()
    try:
        _wait_ready(upstream)
        _wait_ready(proxy)
        res = asyncio.run(_measure(proxy, upstream, args.ttfb_requests, args.chunks,
                                   args.concurrency, args.concurrent_chunks))
    finally:
        for p in procs:
            p.terminate()
            p.join(5)
    d, p_, c = res["direct"], res["proxy"], res["concurrent"]
    res["ttfb_added_ms"] = p_["ttfb_ms"] - d["ttfb_ms"]
    res["ttfb_ratio"] = p_["ttfb_ms"] / d["ttfb_ms"]
    res["per_chunk_added_ms"] = p_["per_chunk_ms"] - d["per_chunk_ms"]
    res["per_chunk_ratio"] = p_["per_chunk_ms"] / d["per_chunk_ms"]
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{'metric':<28}{'direct':>10}{'proxy':>10}{'added':>10}{'ratio':>8}")
        print(f"{'TTFB (ms, median)':<28}{d['ttfb_ms']:>10.2f}{p_['ttfb_ms']:>10.2f}"
              f"{res['ttfb_added_ms']:>10.2f}{res['ttfb_ratio']:>8.2f}")
        print(f"{'per chunk (ms, median)':<28}{d['per_chunk_ms']:>10.3f}{p_['per_chunk_ms']:>10.3f}"
              f"{res['per_chunk_added_ms']:>10.3f}{res['per_chunk_ratio']:>8.2f}")
        for label, k in (("direct", "concurrent_direct"), ("proxy", "concurrent")):
            c_ = res[k]
            print(f"{c_['streams']} concurrent streams x {c_['chunks_each']} chunks, {label}: "
                  f"{c_['ok']} ok, {c_['complete']} complete, {c_['errors']} errors, "
                  f"wall {c_['wall_s']:.2f} s, TTFB p50 {c_['ttfb_p50_ms']:.1f} ms, "
                  f"p99 {c_['ttfb_p99_ms']:.1f} ms")
    return 0 if c["errors"] == 0 and c["complete"] == c["streams"] else 1


if __name__ == "__main__":
    sys.exit(main())
