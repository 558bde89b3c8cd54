"""A tiny, randomly initialised Llama and a byte-level BPE trained on the fly: fully offline.

``TRACESTOP_TEST_DEVICE`` (default ``cpu``) puts the model on another torch device, e.g.
``TRACESTOP_TEST_DEVICE=cuda python -m pytest tests/adapters`` on a machine with a GPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
# TRACESTOP_TRACES, when set, is the only place looked at (set it to "" for the inline trace)
_TRACE_DIRS = (
    [os.environ["TRACESTOP_TRACES"]]
    if "TRACESTOP_TRACES" in os.environ
    else [str(_ROOT / "data" / "traces"), str(_ROOT.parent / "shared" / "data" / "traces")]
)
#: a short recorded trace that states its answer, then verifies it
RECORDED_ID = "tli:deepseek-r1-distill-qwen-1.5b:gsm8k:130"
RECORDED_FILE = "deepseek-r1-distill-qwen-1.5b__gsm8k.jsonl"

#: hand-written reasoning used when the recorded traces are not available
INLINE_TRACE = (
    "Okay, so I need to find how many apples Sam has left after giving some away. "
    "He starts with 12 apples.\n\n"
    "He gives 5 apples to Ana, so he has 12 - 5 = 7 apples left.\n\n"
    "So, the answer is 7.\n\n"
    "Wait, let me double-check that. 12 minus 5 is 7, which matches what I found before.\n\n"
    "Let me verify once more by adding back: 7 + 5 = 12, which is the number he started with.\n\n"
    "Hmm, I think that is right, but let me also consider whether he gave away anything else. "
    "The problem only mentions Ana, so nothing else changes the count.\n\n"
    "Therefore the final count stays the same and everything checks out nicely here.\n"
    "</think>\n\nSam has **7** apples left."
)
INLINE_QUESTION = "Sam has 12 apples and gives 5 to Ana. How many apples does Sam have left?"


def trace_dir() -> Path | None:
    for d in _TRACE_DIRS:
        if d and (Path(d) / RECORDED_FILE).is_file():
            return Path(d)
    return None


def recorded_trace() -> dict[str, str] | None:
    d = trace_dir()
    if d is None:
        return None
    with open(d / RECORDED_FILE, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["id"] == RECORDED_ID:
                return rec  # type: ignore[no-any-return]
    return None


def _corpus() -> list[str]:
    texts = [INLINE_TRACE, INLINE_QUESTION, "café naïve déjà vu, 3 × 4 = 12, √9 = 3, π ≈ 3.14"]
    d = trace_dir()
    if d is not None:
        with open(d / RECORDED_FILE, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= 150:
                    break
                rec = json.loads(line)
                texts += [rec["question"], rec["trace"]]
    return texts


@pytest.fixture(scope="session")
def tokenizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        special_tokens=["<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|eos|>")
    # like Qwen/DeepSeek: the thinking markers are added tokens, not special ones
    fast.add_tokens(["<think>", "</think>"])
    return fast


@pytest.fixture(scope="session")
def model(tokenizer):  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    # a 64-wide model is dominated by thread hand-offs: one thread is ~50x faster on 2 cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    m = transformers.LlamaForCausalLM(config).eval().to(os.environ.get("TRACESTOP_TEST_DEVICE") or "cpu")
    m.generation_config.eos_token_id = tokenizer.eos_token_id
    m.generation_config.pad_token_id = tokenizer.pad_token_id
    m.generation_config.do_sample = False
    yield m
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trace() -> dict[str, str]:
    """A trace that states its answer, then verifies it: recorded when available, else inline.

    ``text`` is the thinking, the end marker and the start of the answer part.
    """
    rec = recorded_trace()
    if rec is None:
        return {"question": INLINE_QUESTION, "text": INLINE_TRACE, "source": "inline"}
    thinking, _, answer = rec["trace"].partition("</think>")
    return {
        "question": rec["question"],
        "text": thinking + "</think>" + answer[:200],
        "source": rec["id"],
    }
