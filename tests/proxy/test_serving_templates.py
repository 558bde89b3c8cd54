"""The chat templates the proxy writes for the completions answer path (``render_chat``)."""

from __future__ import annotations

from tracestop.templates import family_of, render_chat

CONVO = [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "What is 2 + 3?"},
         {"role": "assistant", "content": "<think>\nadd\n</think>\n\n5"},
         {"role": "user", "content": [{"type": "text", "text": "And 2 + 4?"}]}]


def test_qwen3_and_qwq_chatml_drop_past_thinking() -> None:
    want = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
            "<|im_start|>assistant\n5<|im_end|>\n<|im_start|>user\nAnd 2 + 4?<|im_end|>\n"
            "<|im_start|>assistant\n")
    assert render_chat("qwen3", CONVO) == want
    assert render_chat("qwq", CONVO) == want


def test_deepseek_r1_opens_the_thinking() -> None:
    got = render_chat("deepseek-r1", CONVO)
    assert got == ("Be brief.<\uff5cUser\uff5c>What is 2 + 3?<\uff5cAssistant\uff5c>5"
                   "<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>And 2 + 4?"
                   "<\uff5cAssistant\uff5c><think>\n")


def test_gemma4_turns_thinking_on() -> None:
    got = render_chat("gemma-4", [{"role": "user", "content": "Hi"}])
    assert got == "<|turn>system\n<|think|><turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n"


def test_what_cannot_be_written_is_none() -> None:
    assert render_chat("qwen3", [{"role": "tool", "content": "42"}]) is None
    assert render_chat("qwen3", [{"role": "assistant", "content": None,
                                  "tool_calls": [{"id": "1"}]}]) is None
    assert render_chat("qwen3", [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]) is None
    assert render_chat("llama", [{"role": "user", "content": "Hi"}]) is None


def test_family_of_model_names() -> None:
    assert family_of("Qwen/Qwen3-8B") == "qwen3"
    assert family_of("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B") == "deepseek-r1"
    assert family_of("google/gemma-4-27b-it") == "gemma-4"
    assert family_of("Qwen/QwQ-32B") == "qwq"
    assert family_of("meta-llama/Llama-3.1-8B") is None and family_of(None) is None
