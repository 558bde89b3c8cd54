"""Load test: concurrent streams direct to a fake upstream and through the proxy, in one run.

Three parts, all on 127.0.0.1, each bounded in time (``--phase-timeout``):

* **load** - for each stream count (``--streams 64,256``), with and without early stops:
  the same number of concurrent streamed chat completions, first directly against the fake
  upstream, then through the proxy; p50/p99 of the whole-response time and of the time to
  first byte, and the proxy/direct ratios. "stops": the streamed reasoning states its answer
  again and again, so ``consistency:k=3`` stops it early and the proxy asks the fake for the
  answer; "no stops": reasoning without an answer (``default`` policy, never stops).
* **cpu** - the proxy's CPU time per relayed chunk (its process's user+system time over one
  long stream sent as fast as the fake can), Monitor included.
* **stall** - while one stream degenerates (``\\boxed{`` repeated ``--stall-boxes`` times in
  one step, a model in a loop), the latency of ``GET /v1/models`` through the same proxy,
  with the Monitor's heavy steps on the event loop and in a worker thread.

The fake upstream, each proxy and the client run in separate processes; the proxy under load
is ``tracestop serve`` itself (``--workers N``: its worker processes). On a shared machine
the figures move with the load, so run it on a quiet one and compare ratios.

One run of a load row is noisy (a neighbour's burst lands on the direct or the proxy half),
so each row is measured ``--repeats`` times (direct, then proxy, each time: what one run
measures is unchanged) and the verdict is the median of the per-run ratios, with their
range and how many runs kept the p50 ratio within ``--bar``; the CPU figure is the median
of as many long streams.

    .venv/bin/python bench/bench_load.py                 # table
    .venv/bin/python bench/bench_load.py --json          # machine-readable
    .venv/bin/python bench/bench_load.py --workers 2 --no-stall
    .venv/bin/python bench/bench_load.py --streams 256 --no-stall --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from tracestop.proxy.testing import lifespan, read_body

STEP = ("Let me consider the structure of this problem a little more before going on, "
        "looking at each quantity in turn.")
ANSWER_STEP = "Computing it once more: 12 - 5 = 7, so the answer is 7."
QUESTION = "Tom has 12 apples and gives 5 away. How many apples are left?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(kind: str, chars: int, boxes: int) -> str:
    if kind == "degenerate":
        return "Let me think.\n\n" + "\\boxed{" * boxes + "\n\nSo the answer is 7."
    step = ANSWER_STEP if kind == "stop" else STEP
    return "\n\n".join([step] * (chars // len(step) + 2))


async def _fake_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Streams ``fake.chunks`` reasoning chunks of ``fake.size`` characters ``fake.delay``
    seconds apart, then the answer and [DONE]; answers a non-streamed request at once."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = await read_body(receive)
    if scope["path"] == "/v1/models":
        data = b'{"object":"list","data":[{"id":"bench","object":"model"}]}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
        return
    req = json.loads(body or b"{}")
    if not req.get("stream"):
        data = json.dumps({"id": "a", "object": "chat.completion", "created": 1, "model": "b",
                           "choices": [{"index": 0, "finish_reason": "stop", "text": " \\boxed{7}",
                                        "message": {"role": "assistant",
                                                    "content": " \\boxed{7}"}}],
                           "usage": {"completion_tokens": 4}}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
        return
    spec = req.get("fake", {})
    n, size, delay = int(spec.get("chunks", 100)), int(spec.get("size", 12)), spec.get("delay", 0)
    text = _text(spec.get("kind", "nostop"), n * size, int(spec.get("boxes", 0)))
    if spec.get("kind") == "degenerate":
        n = len(text) // size + 1
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": "bench",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    try:
        for i in range(n):
            piece = text[i * size : (i + 1) * size]
            await send({"type": "http.response.body", "more_body": True,
                        "body": frame({"reasoning_content": piece})})
            if delay:
                await asyncio.sleep(delay)
        await send({"type": "http.response.body", "more_body": True,
                    "body": frame({"content": "The answer is 7."}, "stop")})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n",
                    "more_body": False})
    except OSError:
        return  # the client (the proxy, after a stop) went away


def _serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(_fake_upstream, host="127.0.0.1", port=port, log_level="error",
                access_log=False, backlog=4096)


def _serve_proxy(port: int, upstream: str, offload_chars: int | None) -> None:
    import uvicorn

    from tracestop.proxy import create_app, relay

    if offload_chars is not None:
        relay.OFFLOAD_CHARS = offload_chars
    uvicorn.run(create_app(upstream, "default", model_family="qwen3"), host="127.0.0.1", port=port,
                log_level="error", access_log=False, backlog=4096)


def _start_serve(port: int, upstream: str, workers: int) -> subprocess.Popen[bytes]:
    """``tracestop serve`` as an operator runs it, with ``workers`` worker processes."""
    cmd = [sys.executable, "-m", "tracestop", "serve", "--upstream", upstream, "--port",
           str(port), "--model-family", "qwen3", "--workers", str(workers),
           "--log-level", "warning"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants (uvicorn's workers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        kids = [c for c, p in parents.items() if p in frontier and c not in tree]
        tree.update(kids)
        frontier = kids
    total = 0.0
    for p in tree:
        try:
            total += _cpu_seconds(p)
        except OSError:
            continue
    return total


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _payload(kind: str, chunks: int, delay: float, *, boxes: int = 0,
             direct: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "bench", "stream": True, "max_tokens": 8000,
        "messages": [{"role": "user", "content": QUESTION}],
        "fake": {"kind": kind, "chunks": chunks, "size": 12, "delay": delay, "boxes": boxes}}
    if not direct:
        body["tracestop"] = {"policy": "consistency:k=3" if kind == "stop" else "default"}
    return body


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, Any]
               ) -> tuple[float, float, int]:
    """(first byte s, whole response s, data events) of one streamed request."""
    t0 = time.perf_counter()
    first = 0.0
    events = 0
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for part in r.aiter_bytes():
            if not first:
                first = time.perf_counter() - t0
            events += part.count(b"data:")
    return first, time.perf_counter() - t0, events


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


async def _load(base: str, n: int, kind: str, chunks: int, delay: float, direct: bool,
                timeout: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        body = _payload(kind, chunks, delay, direct=direct)
        t0 = time.perf_counter()
        res = await asyncio.wait_for(asyncio.gather(
            *(_one(client, f"{base}/v1/chat/completions", body) for _ in range(n)),
            return_exceptions=True), timeout)
        wall = time.perf_counter() - t0
    ok = [r for r in res if not isinstance(r, BaseException)]
    return {"streams": n, "ok": len(ok), "errors": n - len(ok), "wall_s": wall,
            "ttfb_p50_s": _pct([r[0] for r in ok], 0.5),
            "ttfb_p99_s": _pct([r[0] for r in ok], 0.99),
            "total_p50_s": _pct([r[1] for r in ok], 0.5),
            "total_p99_s": _pct([r[1] for r in ok], 0.99),
            "events_p50": statistics.median([r[2] for r in ok]) if ok else 0}


async def _stall(proxy: str, boxes: int, timeout: float) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=timeout) as client:
        body = _payload("degenerate", 0, 0.0, boxes=boxes)
        body["tracestop"] = {"policy": "none"}
        task = asyncio.create_task(_one(client, f"{proxy}/v1/chat/completions", body))
        lat: list[float] = []
        deadline = time.monotonic() + timeout
        while not task.done() and time.monotonic() < deadline:
            t0 = time.perf_counter()
            await client.get(f"{proxy}/v1/models")
            lat.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
        _, whole, _ = await asyncio.wait_for(task, timeout)
    return {"boxes": boxes, "stream_s": whole, "gets": len(lat),
            "get_max_s": max(lat) if lat else float("nan"),
            "get_p50_s": _pct(lat, 0.5)}


RATIOS = ("total_p50_s", "total_p99_s", "ttfb_p50_s", "ttfb_p99_s")


def _summary(kind: str, n: int, runs: list[dict[str, Any]], bar: float) -> dict[str, Any]:
    """One load row over its runs: the median, least and greatest of each proxy/direct ratio,
    and how many runs kept the p50 ratio within ``bar``."""
    ratios = {k: [r["ratio"][k] for r in runs] for k in RATIOS}
    return {"kind": kind, "streams": n, "runs": runs, "bar": bar,
            "ratio": {k: statistics.median(v) for k, v in ratios.items()},
            "ratio_min": {k: min(v) for k, v in ratios.items()},
            "ratio_max": {k: max(v) for k, v in ratios.items()},
            "runs_within_bar": sum(r <= bar for r in ratios["total_p50_s"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--streams", default="64,256", help="concurrent stream counts")
    ap.add_argument("--chunks", type=int, default=200, help="chunks per stream")
    ap.add_argument("--delay", type=float, default=0.002, help="seconds between chunks")
    ap.add_argument("--cpu-chunks", type=int, default=5000)
    ap.add_argument("--stall-boxes", type=int, default=2000)
    ap.add_argument("--phase-timeout", type=float, default=120.0)
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes of the proxy under load (tracestop serve --workers)")
    ap.add_argument("--no-stall", action="store_true", help="skip the stall part")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each load row and of the CPU stream; the verdict is the median")
    ap.add_argument("--bar", type=float, default=1.5,
                    help="the proxy/direct p50 ratio a run must stay within (issue 18)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")

    up, px, px_loop = _free_port(), _free_port(), _free_port()
    upstream = f"http://127.0.0.1:{up}"
    proxy, proxy_loop = f"http://127.0.0.1:{px}", f"http://127.0.0.1:{px_loop}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_serve_upstream, args=(up,), daemon=True),
             ctx.Process(target=_serve_proxy, args=(px_loop, upstream, 10**12), daemon=True)]
    for p in procs:
        p.start()
    serve = _start_serve(px, upstream, args.workers)
    out: dict[str, Any] = {"load": [], "workers": args.workers,
                           "machine": f"{os.cpu_count()} CPUs, load average "
                           f"{os.getloadavg()[0]:.2f} at start"}
    try:
        for url in (upstream, proxy, proxy_loop):
            _wait_ready(url + "/v1/models")
        # warm both proxies (tagger weights, connection pools)
        for base in (proxy, proxy_loop):
            httpx.post(f"{base}/v1/chat/completions", json=_payload("stop", 20, 0), timeout=60)
        for kind in ("nostop", "stop"):
            for n in (int(x) for x in args.streams.split(",")):
                runs = []
                for _ in range(args.repeats):
                    run: dict[str, Any] = {}
                    for name, base in (("direct", upstream), ("proxy", proxy)):
                        run[name] = asyncio.run(_load(base, n, kind, args.chunks, args.delay,
                                                      name == "direct", args.phase_timeout))
                    d, p_ = run["direct"], run["proxy"]
                    run["ratio"] = {k: p_[k] / d[k] for k in RATIOS}
                    runs.append(run)
                out["load"].append(_summary(kind, n, runs, args.bar))
        # CPU per relayed chunk: one long stream sent as fast as the fake can
        cpu = []
        for _ in range(args.repeats):
            c0 = _tree_cpu_seconds(serve.pid)
            _, _, events = asyncio.run(_one(httpx.AsyncClient(timeout=args.phase_timeout),
                                            f"{proxy}/v1/chat/completions",
                                            _payload("nostop", args.cpu_chunks, 0.0)))
            cpu.append((_tree_cpu_seconds(serve.pid) - c0) / max(1, events) * 1e6)
        out["cpu_us_per_chunk"] = statistics.median(cpu)
        out["cpu_us_per_chunk_runs"] = cpu
        if not args.no_stall:
            out["stall"] = {
                "thread": asyncio.run(_stall(proxy, args.stall_boxes, args.phase_timeout)),
                "loop": asyncio.run(_stall(proxy_loop, args.stall_boxes, args.phase_timeout))}
    finally:
        serve.terminate()
        try:
            serve.wait(10)
        except subprocess.TimeoutExpired:
            serve.kill()
        for p in procs:
            p.terminate()
            p.join(5)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"machine: {out['machine']} (shared machines move these figures); proxy: "
          f"tracestop serve --workers {args.workers}; {args.repeats} run(s) per row")
    print(f"{'kind':<8}{'streams':>8}{'side':>8}{'ok':>6}{'p50 s':>8}{'p99 s':>8}"
          f"{'TTFB p50':>10}{'TTFB p99':>10}{'events':>8}")
    for row in out["load"]:
        for i, run in enumerate(row["runs"]):
            for side in ("direct", "proxy"):
                r = run[side]
                print(f"{row['kind']:<8}{row['streams']:>8}{side:>8}{r['ok']:>6}"
                      f"{r['total_p50_s']:>8.2f}{r['total_p99_s']:>8.2f}"
                      f"{r['ttfb_p50_s']:>10.3f}{r['ttfb_p99_s']:>10.3f}{r['events_p50']:>8.0f}")
            q = run["ratio"]
            print(f"{'':<8}{'run ' + str(i + 1):>8}{'ratio':>8}{'':>6}{q['total_p50_s']:>8.2f}"
                  f"{q['total_p99_s']:>8.2f}{q['ttfb_p50_s']:>10.2f}{q['ttfb_p99_s']:>10.2f}")
        q, lo, hi = row["ratio"], row["ratio_min"], row["ratio_max"]
        print(f"{row['kind']:<8}{row['streams']:>8}{'median':>8}{'':>6}{q['total_p50_s']:>8.2f}"
              f"{q['total_p99_s']:>8.2f}{q['ttfb_p50_s']:>10.2f}{q['ttfb_p99_s']:>10.2f}"
              f"   ratio of {len(row['runs'])} run(s)")
        print(f"{'':<16}{'range':>8}{'':>6}"
              + "".join(f"  {lo[k]:.2f}-{hi[k]:.2f}" for k in RATIOS) + "   (p50, p99, TTFB p50, TTFB p99)")
        print(f"{'':<16}verdict: p50 ratio {q['total_p50_s']:.2f} (median), within "
              f"{row['bar']:g} in {row['runs_within_bar']} of {len(row['runs'])} run(s)")
    print(f"proxy CPU per relayed chunk: {out['cpu_us_per_chunk']:.1f} us median (runs "
          + ", ".join(f"{c:.1f}" for c in out["cpu_us_per_chunk_runs"])
          + f"; Monitor included; one {args.cpu_chunks}-chunk stream at full speed each)")
    for mode, s in out.get("stall", {}).items():
        print(f"stall, Monitor heavy steps on the {mode}: {s['boxes']} boxes, stream "
              f"{s['stream_s']:.2f} s; GET /v1/models p50 {s['get_p50_s'] * 1e3:.1f} ms, "
              f"max {s['get_max_s'] * 1e3:.1f} ms over {s['gets']} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
