"""Benchmark the proxy against a fake upstream, both on 127.0.0.1, in the same run.

Measures, through the proxy and directly against the fake upstream:

* time to first byte (TTFB) of a streamed chat completion, median over sequential requests;
* per-chunk time over a long stream sent as fast as the upstream can (the proxy parses each
  event, feeds the Monitor and re-encodes it);
* 256 concurrent streams through the proxy (bounded: each stream has a fixed length; all
  traffic stays on loopback; the run ends by itself);
* the proxy process's CPU time per relayed chunk, with the default policy, with policy
  ``none``, and in a second proxy process whose Monitor is stubbed out (this bench only): the
  relay's own share, apart from the Monitor's.

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
import os
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


def _serve_proxy(port: int, upstream: str, stub: bool = False) -> None:
    import uvicorn

    from tracestop.proxy import create_app

    if stub:
        _stub_monitor()
    uvicorn.run(create_app(upstream, "default"), host="127.0.0.1", port=port,
                log_level="error", access_log=False)


def _stub_monitor() -> None:
    """In this (bench) process only: a Monitor that reads nothing, so that the proxy's CPU
    time is the relay's alone (SSE parsing, JSON, the hold-back, the HTTP hops). Its
    degenerate-step offload is turned off too: with no step ever completed, it would move
    every feed to a worker thread."""
    from tracestop.monitor import Monitor
    from tracestop.proxy import relay

    def nothing(self: Monitor, delta: str) -> None:
        return None

    Monitor.feed = nothing  # type: ignore[assignment,method-assign]
    Monitor.feed_thinking = nothing  # type: ignore[assignment,method-assign]
    Monitor.feed_answer = nothing  # type: ignore[method-assign]
    relay.OFFLOAD_CHARS = 10**12


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _payload(chunks: int, size: int = 12, delay: float = 0, policy: str = "default"
             ) -> dict[str, Any]:
    return {"model": "bench", "stream": True,
            "messages": [{"role": "user", "content": "How many apples are left?"}],
            "tracestop": {"policy": policy},
            "fake": {"chunks": chunks, "size": size, "delay": delay}}


async def _cpu(proxies: dict[str, tuple[str, int]], streams: int, chunks: int,
               fast_chunks: int) -> dict[str, Any]:
    """The proxy process's CPU time per relayed chunk, by what the proxy runs: ``default``
    (the default policy), ``none`` (the Monitor reads but never stops), ``relay`` (the
    Monitor stubbed out in that process: the relay's own cost). ``paced``: ``streams``
    concurrent streams of ``chunks`` chunks 2 ms apart (about one event per socket read, as
    from a model server); ``fast``: one stream of ``fast_chunks`` sent as fast as the fake
    can (many events per read, fewer reads and writes)."""
    out: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=streams + 8)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for name, (base, pid) in proxies.items():
            url = f"{base}/v1/chat/completions"
            policy = "none" if name == "none" else "default"
            await _one_stream(client, url, _payload(20, policy=policy), False)  # warm up
            c0 = _cpu_seconds(pid)
            res = await asyncio.gather(*(
                _one_stream(client, url, _payload(chunks, delay=0.002, policy=policy), False)
                for _ in range(streams)))
            paced = (_cpu_seconds(pid) - c0) / sum(r[2] for r in res) * 1e6
            c0 = _cpu_seconds(pid)
            _, _, events = await _one_stream(client, url, _payload(fast_chunks, policy=policy),
                                             False)
            fast = (_cpu_seconds(pid) - c0) / events * 1e6
            out[name] = {"paced_us_per_chunk": paced, "fast_us_per_chunk": fast}
    return out


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
                   concurrency: int, conc_chunks: int,
                   cpu: tuple[dict[str, tuple[str, int]], int, int, int] | None
                   ) -> dict[str, Any]:
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
    if cpu is not None:
        out["cpu"] = await _cpu(*cpu)
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
    ap.add_argument("--cpu-streams", type=int, default=64,
                    help="concurrent paced streams of the CPU-per-chunk part (0: skip it)")
    ap.add_argument("--cpu-chunks", type=int, default=200, help="chunks per paced stream")
    ap.add_argument("--cpu-fast-chunks", type=int, default=20000,
                    help="chunks of the full-speed stream of the CPU part")
    args = ap.parse_args(argv)

    up_port, px_port, stub_port = _free_port(), _free_port(), _free_port()
    upstream, proxy = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{px_port}"
    stubbed = f"http://127.0.0.1:{stub_port}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_serve_upstream, args=(up_port,), daemon=True),
             ctx.Process(target=_serve_proxy, args=(px_port, upstream), daemon=True),
             ctx.Process(target=_serve_proxy, args=(stub_port, upstream, True), daemon=True)]
    for p in procs:
        p.start()
    try:
        _wait_ready(upstream)
        _wait_ready(proxy)
        _wait_ready(stubbed)
        pid, stub_pid = procs[1].pid, procs[2].pid
        assert pid is not None and stub_pid is not None
        cpu = None
        if args.cpu_streams > 0:
            cpu = ({"default": (proxy, pid), "none": (proxy, pid), "relay": (stubbed, stub_pid)},
                   args.cpu_streams, args.cpu_chunks, args.cpu_fast_chunks)
        res = asyncio.run(_measure(proxy, upstream, args.ttfb_requests, args.chunks,
                                   args.concurrency, args.concurrent_chunks, cpu))
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
        if "cpu" in res:
            print(f"proxy CPU per relayed chunk (us): {args.cpu_streams} paced streams x "
                  f"{args.cpu_chunks} chunks / one {args.cpu_fast_chunks}-chunk stream at "
                  "full speed")
            labels = {"default": "policy default", "none": "policy none",
                      "relay": "Monitor stubbed (relay only)"}
            for name, row in res["cpu"].items():
                print(f"  {labels[name]:<30}{row['paced_us_per_chunk']:>8.1f}"
                      f"{row['fast_us_per_chunk']:>8.1f}")
    return 0 if c["errors"] == 0 and c["complete"] == c["streams"] else 1


if __name__ == "__main__":
    sys.exit(main())
