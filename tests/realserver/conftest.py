"""Fixtures for the real-server tests: a tiny scripted Qwen3 model (``tiny_model.py``), served by
``transformers serve`` on 127.0.0.1, with ``tracestop serve`` in front of it, both real
processes. Two pairs start at once: the main one for the whole session, and a spare one that
``test_server_goes_away`` kills.

Everything is offline (``HF_HUB_OFFLINE=1``). Every test here is marked ``realserver``:
``pytest -m realserver`` runs them alone. Needs the ``hf``, ``serving``, ``proxy`` and ``test`` extras;
without them the tests skip, unless ``TRACESTOP_REALSERVER_REQUIRED=1`` (CI), where they fail.
A server that does not come up is always an error, never a skip.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: set in CI (.ci/run): a missing dependency is an error there, not a skip
REQUIRED = os.environ.get("TRACESTOP_REALSERVER_REQUIRED", "") not in ("", "0")


def _need(name: str) -> Any:
    if REQUIRED:
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"the realserver tests need {name} "
                                            "(extras: hf, serving, proxy, test)")


for _name in ("torch", "transformers", "accelerate", "fastapi", "uvicorn", "tokenizers"):
    _need(_name)  # accelerate: transformers serve loads the model with a device map
openai = _need("openai")
httpx = _need("httpx")

from tests.realserver import tiny_model

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0  # seconds for a server to answer /health (about 10 s on 2 busy cores)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), src, env.get("PYTHONPATH")) if p)
    return env


@dataclass
class Proc:
    """A server in its own process group, its output in ``log``."""

    name: str
    argv: list[str]
    port: int
    log: Path
    health: str | None  # a route that answers 200 once it is ready; None: the port listens
    started: float = 0.0
    ready_s: float | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proc:
        self.started = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         env=_env(), cwd=str(self.log.parent),
                                         start_new_session=True)
        return self

    def ready(self) -> bool:
        """Whether it answers its health route now; raises if it died."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.log_text()[-4000:]}")
        if time.monotonic() > self.started + READY_TIMEOUT:
            raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT} s:\n"
                               f"{self.log_text()[-4000:]}")
        try:
            if self.health is None:  # listening is enough (every route of the proxy is upstream)
                socket.create_connection(("127.0.0.1", self.port), timeout=2.0).close()
                ok = True
            else:
                ok = httpx.get(self.url + self.health, timeout=2.0).status_code == 200
        except (OSError, httpx.HTTPError):
            return False
        if ok:
            self.ready_s = time.monotonic() - self.started
        return ok

    def kill(self) -> None:
        """Kill the whole process group at once (the server going away)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _transformers_serve(model: Path, log: Path) -> Proc:
    exe = Path(sys.executable).with_name("transformers")
    port = _free_port()
    argv = [str(exe), "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--device", "cpu", "--no-continuous-batching", "--enable-log-requests",
            "--log-level", "info"]
    return Proc("transformers serve", argv, port, log, "/health")


def _tracestop_serve(upstream: str, log: Path) -> Proc:
    port = _free_port()
    argv = [sys.executable, "-m", "tracestop", "serve", "--upstream", upstream, "--port",
            str(port), "--policy", "none", "--answer-tokens", "16", "--timeout", "30",
            "--log-level", "info"]
    return Proc("tracestop serve", argv, port, log, None)


@dataclass
class Stack:
    model: Path
    server: Proc
    proxy: Proc

    @property
    def model_name(self) -> str:
        return str(self.model)  # transformers serve refuses any other model name

    def client(self, *, direct: bool = False, timeout: float = 60.0) -> Any:
        base = self.server.url if direct else self.proxy.url
        return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-realserver-test", max_retries=0,
                             timeout=timeout)


@dataclass
class Timings:
    build_s: float = 0.0
    ready: dict[str, float] = field(default_factory=dict)


TIMINGS = Timings()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t0 = time.monotonic()
    path = tmp_path_factory.mktemp("realserver") / "tiny-qwen3"  # "qwen3": the proxy's family
    tiny_model.build(path)
    TIMINGS.build_s = time.monotonic() - t0
    return path


@pytest.fixture(scope="session")
def _stacks(tiny_model_dir: Path) -> Iterator[tuple[Stack, Stack]]:
    """Both pairs, started together so that the spare one costs no extra wall time."""
    logs = tiny_model_dir.parent
    main_server = _transformers_serve(tiny_model_dir, logs / "server-main.log").start()
    spare_server = _transformers_serve(tiny_model_dir, logs / "server-spare.log").start()
    main_proxy = _tracestop_serve(main_server.url, logs / "proxy-main.log").start()
    spare_proxy = _tracestop_serve(spare_server.url, logs / "proxy-spare.log").start()
    procs = [main_server, spare_server, main_proxy, spare_proxy]
    try:
        waiting = list(procs)
        while waiting:
            waiting = [p for p in waiting if not p.ready()]
            time.sleep(0.2)
        for p in procs:
            TIMINGS.ready[p.log.stem] = p.ready_s or 0.0
        yield (Stack(tiny_model_dir, main_server, main_proxy),
               Stack(tiny_model_dir, spare_server, spare_proxy))
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture(scope="session")
def stack(_stacks: tuple[Stack, Stack]) -> Stack:
    return _stacks[0]


@pytest.fixture(scope="session")
def spare_stack(_stacks: tuple[Stack, Stack]) -> Stack:
    return _stacks[1]


@pytest.fixture(scope="session")
def seconds_per_token(stack: Stack) -> float:
    """How long the server takes per generated token (a direct 300-token generation, after a
    one-token warm-up)."""
    client = stack.client(direct=True)
    client.completions.create(model=stack.model_name, prompt=tiny_model.chat_prompt(),
                              max_tokens=1)
    t0 = time.monotonic()
    r = client.completions.create(model=stack.model_name, prompt=tiny_model.chat_prompt(),
                                  max_tokens=300)
    dt = time.monotonic() - t0
    assert r.usage.completion_tokens == 300
    return dt / 300


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS.build_s:
        ready = ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.ready.items())
        terminalreporter.write_line(
            f"realserver: tiny model built in {TIMINGS.build_s:.1f} s; ready: {ready}")
