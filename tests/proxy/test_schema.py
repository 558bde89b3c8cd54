"""The ``tracestop`` request object: validated strictly, removed before the upstream."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic")

from tracestop.errors import ConfigError
from tracestop.proxy.schema import OptionsError, TracestopOptions, pop_options


def test_pop_removes_and_validates() -> None:
    body = {"model": "m", "tracestop": {"policy": "paper-count", "observe": True}}
    opts = pop_options(body)
    assert body == {"model": "m"}
    assert opts == TracestopOptions(policy="paper-count", observe=True)


def test_absent_means_defaults() -> None:
    assert pop_options({"model": "m"}) == TracestopOptions()


@pytest.mark.parametrize(
    "raw,words",
    [
        pytest.param({"polcy": "x"}, "unknown key 'polcy'", id="unknown-key"),
        pytest.param({"answer_format": "essay"}, "tracestop.answer_format", id="bad-format"),
        pytest.param({"observe": "maybe"}, "tracestop.observe", id="bad-bool"),
        pytest.param("default", "must be a JSON object", id="not-an-object"),
    ],
)
def test_errors_name_the_problem(raw: object, words: str) -> None:
    with pytest.raises(OptionsError, match=words) as e:
        pop_options({"tracestop": raw})
    assert isinstance(e.value, ConfigError)


def test_proxy_reads_the_user_presets_file(tmp_path, monkeypatch):
    from tracestop.errors import ConfigError
    from tracestop.proxy import config

    path = tmp_path / "presets.json"
    path.write_text('{"mine": {"math": "traces-count:k=2", "*": "none"}}')
    monkeypatch.setenv("TRACESTOP_PRESETS", str(path))
    config.presets.cache_clear()
    config.check_policy.cache_clear()
    try:
        assert config.check_policy("mine") == "mine"
        with pytest.raises(ConfigError, match="unknown policy 'yours'"):
            config.check_policy("yours")
    finally:
        config.presets.cache_clear()
        config.check_policy.cache_clear()
