"""Fixtures for the proxy tests: the fake upstream and the proxy, both served by uvicorn on
127.0.0.1 for the whole session (see ``fakes.py``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from tests.proxy.fakes import (
    ANSWER_TOKENS,
    PROXY_MAX_BODY,
    PROXY_TIMEOUT,
    FakeUpstream,
    ServerThread,
)


@pytest.fixture(scope="session")
def fake() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture(scope="session")
def upstream_url(fake: FakeUpstream):
    with ServerThread(fake) as url:
        yield url




@pytest.fixture(scope="session")
def proxy_app(upstream_url: str):
    from tracestop.proxy import create_app

    return create_app(upstream_url, "default", timeout=PROXY_TIMEOUT, max_body=PROXY_MAX_BODY,
                      answer_tokens=ANSWER_TOKENS)


@pytest.fixture(scope="session")
def proxy_url(proxy_app: Any):
    with ServerThread(proxy_app) as url:
        yield url


@pytest.fixture
def client(proxy_url: str) -> Any:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="sk-test-123", max_retries=0,
                         timeout=15)


@pytest.fixture
def fid() -> str:
    """A fresh id for the fake upstream's log."""
    return uuid.uuid4().hex
