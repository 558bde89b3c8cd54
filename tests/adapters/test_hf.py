"""The Hugging Face adapter on a tiny random Llama (CPU, offline).

A random model writes gibberish, so a scripted logits processor makes it write a chosen text:
a recorded trace that states its answer and then verifies it. The Monitor sees real
reasoning and stops; the adapter must halt generation, force the cue and get an answer.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tracestop.adapters.hf import (
    ForceEndOfThinking,
    IncrementalDecoder,
    TracestopCriteria,
    generate_with_tracestop,
    skipped_token_ids,
)
from tracestop.errors import ConfigError
from tracestop.monitor import Monitor
from tracestop.tag.rules import RuleTagger

pytestmark = pytest.mark.hf

PROMPT = "Question: how much?\n<think>\n"
CUE = "\n</think>\n\n**Final Answer**\n"


class Script(transformers.LogitsProcessor):
    """Forces ``ids`` (one token a step; one list per batch row), then EOS."""

    def __init__(self, ids: Sequence[int] | Sequence[Sequence[int]], eos: int) -> None:
        rows = ids if ids and isinstance(ids[0], (list, tuple)) else [ids]
        self.rows = [list(r) for r in rows]  # type: ignore[arg-type]
        self.eos = eos
        self.calls = 0

    def __call__(self, input_ids, scores):  # type: ignore[no-untyped-def]
        out = torch.full_like(scores, float("-inf"))
        for r in range(scores.shape[0]):
            ids = self.rows[r % len(self.rows)]
            out[r, ids[self.calls] if self.calls < len(ids) else self.eos] = 0.0
        self.calls += 1
        return out


def encode(tokenizer, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    return list(tokenizer.encode(text, add_special_tokens=False))


def run(model, tokenizer, trace, policy, **kw):  # type: ignore[no-untyped-def]
    script = encode(tokenizer, trace["text"])
    kw.setdefault(
        "answer_generate_kwargs",
        {"logits_processor": [Script(encode(tokenizer, " 30"), tokenizer.eos_token_id)]},
    )
    result = generate_with_tracestop(
        model,
        tokenizer,
        PROMPT,
        policy=policy,
        question=trace["question"],
        tagger=RuleTagger(),
        max_new_tokens=len(script) + 20,
        answer_max_tokens=8,
        logits_processor=[Script(script, tokenizer.eos_token_id)],
        **kw,
    )
    return result, script


# --- stopping live ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["traces-count:k=1", "budget:tokens=40"])
def test_stop_forces_cue_and_answer(model, tokenizer, trace, policy) -> None:  # type: ignore[no-untyped-def]
    r, script = run(model, tokenizer, trace, policy)
    assert r.stopped, r.report
    # generation halted early: fewer new tokens than the scripted text
    assert len(r.generated_ids) < len(script)
    assert r.report["generation"]["generated_tokens"] == len(r.generated_ids)
    # the kept thinking is a prefix of what the model wrote, ending at the stop step
    assert trace["text"].startswith(r.thinking)
    assert 0 < len(r.thinking) < trace["text"].index("</think>")
    # thinking kept + forcing cue + the answer the model wrote after it
    assert r.text == r.thinking + CUE + r.answer
    assert r.answer == " 30"
    assert tokenizer.decode(r.output_ids, skip_special_tokens=True) == r.text
    assert r.sequences[0, r.prompt_length :].tolist() == r.output_ids
    assert r.answer_ids[: len(encode(tokenizer, " 30"))] == encode(tokenizer, " 30")
    # the model's own tokens are kept for the thinking (no re-tokenization of the prefix)
    n = len(r.output_ids) - len(r.answer_ids)
    assert r.output_ids[: n // 2] == r.generated_ids[: n // 2]


def test_report_matches_offline_monitor(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    r, _ = run(model, tokenizer, trace, "traces-count:k=1")
    rep, gen = r.report, r.report["generation"]
    offline = Monitor("traces-count:k=1", question=trace["question"], tagger=RuleTagger())
    offline.feed(trace["text"])
    offline.end()
    assert offline.stopped
    assert rep["stopped"] is True
    assert rep["step"] == offline.report()["step"]
    assert rep["reason"] == offline.report()["reason"]
    assert rep["policy"] == "traces-count:k=1,types=verification+meta_cognition"
    assert rep["answer"] == offline.answer.current
    assert r.thinking == offline.truncated_thinking
    assert rep["token_counter"].startswith("hf tokenizer")
    assert len(rep["steps"]) == rep["step"]
    # token accounting against the max_new_tokens budget
    assert gen["max_new_tokens"] == len(encode(tokenizer, trace["text"])) + 20
    assert gen["thinking_tokens_saved"] == gen["max_new_tokens"] - gen["generated_tokens"] > 0
    assert gen["saved_fraction"] == round(gen["thinking_tokens_saved"] / gen["max_new_tokens"], 4)
    assert gen["thinking_tokens_used"] == len(r.output_ids) - len(r.answer_ids)
    assert gen["forcing_tokens"] == len(encode(tokenizer, CUE))
    assert gen["answer_tokens"] == len(encode(tokenizer, " 30"))
    assert gen["budget_exhausted"] is False


def test_answer_pass_runs_the_model_freely(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    r, _ = run(model, tokenizer, trace, "budget:tokens=40", answer_generate_kwargs={})
    assert r.stopped
    assert 1 <= len(r.answer_ids) <= 8
    assert r.text == r.thinking + CUE + r.answer


def test_choice_question_gets_the_letter_cue(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    r, _ = run(model, tokenizer, trace, "budget:tokens=40", answer_format="choice")
    assert r.stopped
    assert "</think>\n\n**Final Answer** (the letter of the correct option): " in r.text


# --- no stop: untouched ----------------------------------------------------------------------


def test_no_stop_returns_generation_untouched(model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    enc = tokenizer(PROMPT, return_tensors="pt").to(model.device)
    plain = model.generate(**enc, max_new_tokens=24, pad_token_id=tokenizer.eos_token_id)
    r = generate_with_tracestop(
        model, tokenizer, PROMPT, policy="default", max_new_tokens=24, tagger=RuleTagger()
    )
    assert not r.stopped
    assert torch.equal(r.sequences, plain)
    new = plain[0, enc["input_ids"].shape[1] :].tolist()
    assert r.output_ids == r.generated_ids == new
    assert r.text == tokenizer.decode(new, skip_special_tokens=True)
    assert r.answer_ids == []
    gen = r.report["generation"]
    assert r.report["stopped"] is False and gen["thinking_tokens_saved"] == 0
    assert gen["generated_tokens"] <= 24


def test_policy_none_keeps_the_scripted_trace(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    r, script = run(model, tokenizer, trace, "none")
    assert not r.stopped
    assert r.generated_ids[: len(script)] == script
    assert r.text == trace["text"]
    thinking, _, answer = trace["text"].partition("</think>")
    assert r.thinking == thinking and r.answer == answer


def test_observe_mode_records_the_stop_but_does_not_act(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    m = Monitor("traces-count:k=1", question=trace["question"], tagger=RuleTagger(), observe=True)
    r, _ = run(model, tokenizer, trace, "ignored", monitor=m)
    assert not r.stopped and r.text == trace["text"]
    assert r.report["observe"] is True
    assert r.report["step"] is not None and r.report["reason"].startswith("stopped after step")


# --- batches ---------------------------------------------------------------------------------


def test_generate_wrapper_rejects_batches(model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ConfigError, match="batch size 1"):
        generate_with_tracestop(model, tokenizer, ids, max_new_tokens=4)


def test_criteria_one_monitor_per_row(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    stop_text = encode(tokenizer, trace["text"])
    plain_text = encode(tokenizer, "Just a note with no steps at all. " * 60)[: len(stop_text)]
    prompt = torch.tensor([encode(tokenizer, PROMPT)] * 2, device=model.device)
    monitors = [
        Monitor("traces-count:k=1", question=trace["question"], tagger=RuleTagger()),
        Monitor("traces-count:k=1", tagger=RuleTagger()),
    ]
    crit = TracestopCriteria(tokenizer, monitors, prompt_length=prompt.shape[1])
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=len(stop_text) + 5,
        logits_processor=[Script([stop_text, plain_text], tokenizer.eos_token_id)],
        stopping_criteria=transformers.StoppingCriteriaList([crit]),
        pad_token_id=tokenizer.eos_token_id,
    )
    crit.end()
    assert monitors[0].stopped and not monitors[1].stopped
    new0 = out[0, prompt.shape[1] :].tolist()
    eos = tokenizer.eos_token_id
    n0 = len([t for t in new0 if t != eos])
    assert n0 < len(stop_text)  # row 0 ended early and was padded
    assert crit.text(1) == tokenizer.decode(plain_text)  # row 1 ran to its end
    assert trace["text"].startswith(crit.text(0))


def test_criteria_rejects_a_batch_of_the_wrong_size(tokenizer) -> None:  # type: ignore[no-untyped-def]
    crit = TracestopCriteria(tokenizer, Monitor("none", tagger=RuleTagger()))
    with pytest.raises(ConfigError, match="one Monitor per row"):
        crit(torch.zeros((2, 5), dtype=torch.long), None)


# --- incremental decoding --------------------------------------------------------------------

MULTIBYTE = "Let x = 5 → x² = 25 🙂 naïve 数学 ok\n\nThen the sum ∑ of 🧮 is 7, fine.\n\n"


def test_decoder_never_emits_partial_characters(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = encode(tokenizer, MULTIBYTE)
    # the emoji/CJK are split over byte tokens that decode to U+FFFD on their own
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)
    dec = IncrementalDecoder(tokenizer, skipped_token_ids(tokenizer))
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == tokenizer.decode(ids) == MULTIBYTE


def test_decoder_skips_eos_but_keeps_thinking_markers(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = encode(tokenizer, "a</think>b") + [tokenizer.eos_token_id]
    dec = IncrementalDecoder(tokenizer, skipped_token_ids(tokenizer))
    assert "".join(dec.push(i) for i in ids) + dec.flush() == "a</think>b"


def test_decoder_flush_releases_an_unfinished_character(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = encode(tokenizer, "x🙂")
    dec = IncrementalDecoder(tokenizer)
    text = "".join(dec.push(i) for i in ids[:-1])
    assert text == "x"
    assert dec.flush().startswith("\ufffd")


def test_decoder_uses_decode_stream_and_agrees_with_the_window(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """The DecodeStream path (fast tokenizers) and the windowed fallback give the same deltas,
    token for token, including after a flush."""
    import random

    fast = IncrementalDecoder(tokenizer, skipped_token_ids(tokenizer))
    assert fast._stream is not None  # the tiny test tokenizer is a fast one
    slow = IncrementalDecoder(tokenizer, skipped_token_ids(tokenizer), windowed=True)
    ids = encode(tokenizer, MULTIBYTE * 3)
    rng = random.Random(0)
    ids += [rng.randrange(tokenizer.vocab_size) for _ in range(300)]
    for i, tok in enumerate(ids):
        assert fast.push(tok) == slow.push(tok), i
        if i == 150:
            assert fast.flush() == slow.flush()
    assert fast.flush() == slow.flush()


def test_criteria_feeds_monitor_the_exact_text(model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    script = encode(tokenizer, MULTIBYTE + "</think>done")
    m = Monitor("none", tagger=RuleTagger())
    prompt = torch.tensor([encode(tokenizer, PROMPT)], device=model.device)
    crit = TracestopCriteria(tokenizer, m)  # prompt length inferred at the first call
    model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=len(script) + 3,
        logits_processor=[Script(script, tokenizer.eos_token_id)],
        stopping_criteria=transformers.StoppingCriteriaList([crit]),
        pad_token_id=tokenizer.eos_token_id,
    )
    crit.end()
    assert crit.prompt_length == prompt.shape[1]
    assert crit.text(0) == MULTIBYTE + "</think>done"
    assert m.thinking_text == MULTIBYTE and m.answer_text == "done"
    assert [s.step.text for s in m.steps] == [
        "Let x = 5 → x² = 25 🙂 naïve 数学 ok",
        "Then the sum ∑ of 🧮 is 7, fine.",
    ]


# --- forcing in place (engines that cannot restart) ------------------------------------------


def test_force_end_of_thinking_in_place(model, tokenizer, trace) -> None:  # type: ignore[no-untyped-def]
    script = encode(tokenizer, trace["text"])
    m = Monitor("traces-count:k=1", question=trace["question"], tagger=RuleTagger())
    prompt = torch.tensor([encode(tokenizer, PROMPT)], device=model.device)
    crit = TracestopCriteria(tokenizer, m, prompt_length=prompt.shape[1], stop_generation=False)
    force = ForceEndOfThinking.for_criteria(tokenizer, crit)
    n_cue = len(force.forced_ids)
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=len(script) + n_cue + 2,
        logits_processor=[Script(script, tokenizer.eos_token_id), force],
        stopping_criteria=transformers.StoppingCriteriaList([crit]),
        pad_token_id=tokenizer.eos_token_id,
    )
    assert m.stopped and force.armed and force.done
    new = out[0, prompt.shape[1] :].tolist()
    # the cue comes right after the token at which the Monitor stopped
    at = len(crit.offsets[0])  # tokens fed up to the stop: the criteria stops feeding there
    assert new[at : at + n_cue] == force.forced_ids
    assert new[:at] == script[:at]
    assert tokenizer.decode(new).startswith(tokenizer.decode(script[:at]) + CUE)


def test_force_end_of_thinking_masks_all_but_the_forced_token() -> None:
    f = ForceEndOfThinking([3, 1])
    scores = torch.zeros((1, 6))
    ids = torch.zeros((1, 2), dtype=torch.long)
    assert torch.equal(f(ids, scores), scores)  # not armed: untouched
    f.arm()
    first, second, third = f(ids, scores), f(ids, scores), f(ids, scores)
    assert first.argmax().item() == 3 and torch.isinf(first).sum().item() == 5
    assert second.argmax().item() == 1
    assert torch.equal(third, scores) and f.done
    with pytest.raises(ConfigError, match="batch size 1"):
        ForceEndOfThinking([1]).__call__(torch.zeros((2, 2), dtype=torch.long), torch.zeros((2, 6)))


# --- optional dependency ---------------------------------------------------------------------


def test_import_without_torch_names_the_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "tracestop.adapters.hf")
    with pytest.raises(ImportError, match=r"pip install 'tracestop\[hf\]'"):
        importlib.import_module("tracestop.adapters.hf")
