"""Hugging Face ``generate`` adapter: stop the thinking live, then make the model answer.

Two pieces, in the shape of transformers' own hooks:

- ``TracestopCriteria`` is a ``StoppingCriteria``. At every step it decodes the new tokens
  incrementally (only text that is complete: a character split over several byte tokens is
  held back until its last byte arrives), feeds the text to a ``Monitor`` per batch row and
  ends a row when its Monitor says STOP.
- ``generate_with_tracestop`` runs ``model.generate`` with that criterion and, on STOP,
  rebuilds ``prompt + truncated thinking + forcing cue`` (the family's end-of-thinking marker
  and answer cue), then generates a short answer from it. It returns an ``HFResult`` whose
  ``report`` is the Monitor's ``tracestop`` object plus token accounting.

``ForceEndOfThinking`` is a ``LogitsProcessor`` for engines that cannot restart a request:
once armed it forces the end marker and cue token by token, then lets the model go on.

Needs the ``hf`` extra: ``pip install 'tracestop[hf]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import torch
    from transformers import LogitsProcessor, StoppingCriteria, StoppingCriteriaList
except ImportError as e:  # pragma: no cover - exercised by a test that hides torch
    raise ImportError(
        "tracestop.adapters.hf needs torch and transformers: pip install 'tracestop[hf]'"
    ) from e

from tracestop.answers import AnswerFormat
from tracestop.errors import ConfigError
from tracestop.monitor import Monitor
from tracestop.policies import Policy
from tracestop.tag.base import Tagger
from tracestop.templates import CLOSE_MARKERS, OPEN_MARKERS, template_for, thinking_start

__all__ = [
    "ForceEndOfThinking",
    "HFResult",
    "HFTokenCounter",
    "IncrementalDecoder",
    "TracestopCriteria",
    "generate_with_tracestop",
]

_DECODE = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}


class HFTokenCounter:
    """Counts tokens with the model's own tokenizer (no special tokens added)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.name = (
            f"hf tokenizer ({getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__})"
        )

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))


def skipped_token_ids(tokenizer: Any) -> frozenset[int]:
    """Special tokens (EOS, padding, ...) that carry no text, except thinking markers.

    ``<think>``/``</think>`` are special tokens in some tokenizers; the Monitor must see them.
    """
    vocab = tokenizer.get_vocab()
    markers = {vocab[m] for m in (*OPEN_MARKERS, *CLOSE_MARKERS) if m in vocab}
    return frozenset(int(i) for i in tokenizer.all_special_ids) - markers


class IncrementalDecoder:
    """Turns token ids, one at a time, into text deltas that are final.

    With a fast tokenizer (a ``tokenizers`` backend) each ``push`` is one step of
    ``tokenizers.decoders.DecodeStream``, which holds back a character until all its bytes
    have arrived. Otherwise (``windowed=True``, or a tokenizer without that backend) each push
    decodes a short window: the tokens of the last emitted delta (context, so tokenizers that
    depend on the previous token, such as SentencePiece's leading spaces, decode right) and
    the tokens since; text ending in U+FFFD (a partial character) is held back. Either way the
    concatenated deltas equal ``decode(all ids)``.
    """

    def __init__(self, tokenizer: Any, skip_ids: frozenset[int] = frozenset(), *,
                 windowed: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_ids
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # tokens up to here have been emitted
        self._backend: Any = None if windowed else _backend(tokenizer)
        self._stream: Any = None
        if self._backend is not None:
            from tokenizers.decoders import DecodeStream

            self._stream = DecodeStream(skip_special_tokens=False)

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, **_DECODE)) if ids else ""

    def push(self, token_id: int) -> str:
        """Add one token; returns the text it completes ("" while a character is partial)."""
        if token_id in self._skip:
            return ""
        self._ids.append(token_id)
        if self._stream is not None:
            chunk = self._stream.step(self._backend, token_id)
            if not chunk:
                return ""
            self._prefix, self._read = self._read, len(self._ids)
            return str(chunk)
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return now[len(before) :]

    def flush(self) -> str:
        """Emit whatever is held back (partial characters come out as U+FFFD)."""
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        if self._stream is not None:
            from tokenizers.decoders import DecodeStream

            # a fresh stream, primed with the tokens so far (context for the next token)
            self._stream = DecodeStream(self._ids[-8:], skip_special_tokens=False)
        return now[len(before) :] if len(now) > len(before) else ""


def _backend(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind a fast tokenizer, or None."""
    try:
        from tokenizers import Tokenizer
        from tokenizers.decoders import DecodeStream  # noqa: F401  (tokenizers >= 0.21)
    except ImportError:
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend if isinstance(backend, Tokenizer) else None


class TracestopCriteria(StoppingCriteria):
    """Feeds the generated text to one ``Monitor`` per batch row; a row stops on STOP.

    Example::

        monitor = Monitor("traces-count:k=2", question=q, model="deepseek-r1")
        crit = TracestopCriteria(tokenizer, monitor, prompt_length=ids.shape[1])
        out = model.generate(ids, stopping_criteria=StoppingCriteriaList([crit]))
        crit.end()
        tail = monitor.truncated_thinking + monitor.forcing_suffix  # then generate the answer

    **Parameters:**

    * **tokenizer** - the model's tokenizer (decodes the new tokens).
    * **monitors** - a ``Monitor`` (batch size 1) or one per batch row, in row order.
    * **prompt_length** - tokens of the (padded) prompt; inferred at the first call as
      ``sequence length - 1`` when ``None`` (one token per step; pass it for assisted decoding).
    * **stop_generation** - ``False`` only feeds the Monitors and never ends a row (for use
      with ``ForceEndOfThinking``).
    """

    def __init__(
        self,
        tokenizer: Any,
        monitors: Monitor | Sequence[Monitor],
        *,
        prompt_length: int | None = None,
        stop_generation: bool = True,
    ) -> None:
        self.monitors: list[Monitor] = (
            [monitors] if isinstance(monitors, Monitor) else list(monitors)
        )
        if not self.monitors:
            raise ConfigError("TracestopCriteria needs at least one Monitor (one per batch row)")
        if prompt_length is not None and prompt_length < 0:
            raise ConfigError(f"prompt_length must be >= 0, got {prompt_length}")
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop_generation = stop_generation
        skip = skipped_token_ids(tokenizer)
        self._decoders = [IncrementalDecoder(tokenizer, skip) for _ in self.monitors]
        self._pieces: list[list[str]] = [[] for _ in self.monitors]
        self._chars = [0 for _ in self.monitors]
        # offsets[row][i]: characters of text released after the row's first i + 1 new tokens
        self.offsets: list[list[int]] = [[] for _ in self.monitors]
        self._done = [False for _ in self.monitors]
        self._seen = 0  # new tokens already decoded (same for every row)
        self._ended = False

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        rows, length = input_ids.shape
        if rows != len(self.monitors):
            raise ConfigError(
                f"TracestopCriteria has {len(self.monitors)} Monitor(s) but the batch has {rows} "
                "rows: pass one Monitor per row"
            )
        if self.prompt_length is None:
            self.prompt_length = length - 1
        start = self.prompt_length + self._seen
        new = input_ids[:, start:].tolist() if length > start else [[] for _ in range(rows)]
        self._seen = max(self._seen, length - self.prompt_length)
        for r, ids in enumerate(new):
            if self._done[r]:
                continue
            for tok in ids:
                self._feed(r, self._decoders[r].push(int(tok)))
                if self._done[r]:
                    break
        flags = self._done if self.stop_generation else [False] * rows
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    def _feed(self, row: int, text: str) -> None:
        if text:
            self._pieces[row].append(text)
            self._chars[row] += len(text)
            self.monitors[row].feed(text)
            self._done[row] = self.monitors[row].stopped
        self.offsets[row].append(self._chars[row])

    def end(self) -> None:
        """Generation is over: flush held-back text and ``end()`` every Monitor."""
        if self._ended:
            return
        self._ended = True
        for r, m in enumerate(self.monitors):
            if not self._done[r]:
                text = self._decoders[r].flush()
                if text:
                    self._pieces[r].append(text)
                    self._chars[r] += len(text)
                    m.feed(text)
            m.end()

    def text(self, row: int = 0) -> str:
        """The text of a row's new tokens, as fed to its Monitor."""
        return "".join(self._pieces[row])


class ForceEndOfThinking(LogitsProcessor):
    """Once armed, forces ``forced_ids`` (end marker + answer cue), one token a step.

    For engines that cannot restart a request: the thinking written past the stop stays in
    the output, but the model is made to close it and answer. Batch size 1.

    **Parameters:**

    * **forced_ids** - the token ids to force, e.g. ``tokenizer.encode(m.forcing_suffix,
      add_special_tokens=False)``.
    * **when** - checked before every step while unarmed; arms the processor when it returns
      True (e.g. ``lambda: monitor.stopped`` with a ``TracestopCriteria(stop_generation=False)``).
    """

    def __init__(
        self, forced_ids: Sequence[int], *, when: Callable[[], bool] | None = None
    ) -> None:
        if not forced_ids:
            raise ConfigError("ForceEndOfThinking needs at least one token id to force")
        self.forced_ids = [int(i) for i in forced_ids]
        self.when = when
        self.armed = False
        self.position = 0  # forced tokens already emitted

    @classmethod
    def for_criteria(cls, tokenizer: Any, criteria: TracestopCriteria) -> ForceEndOfThinking:
        """Forces the Monitor's forcing suffix as soon as the criteria's (only) Monitor stops."""
        if len(criteria.monitors) != 1:
            raise ConfigError("ForceEndOfThinking supports batch size 1 (one Monitor)")
        m = criteria.monitors[0]
        return cls(
            tokenizer.encode(m.forcing_suffix, add_special_tokens=False), when=lambda: m.stopped
        )

    def arm(self) -> None:
        self.armed = True

    @property
    def done(self) -> bool:
        return self.position >= len(self.forced_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != 1:
            raise ConfigError(f"ForceEndOfThinking supports batch size 1, got {input_ids.shape[0]}")
        if not self.armed and self.when is not None and self.when():
            self.armed = True
        if not self.armed or self.done:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.forced_ids[self.position]] = 0.0
        self.position += 1
        return forced  # type: ignore[return-value]


@dataclass
class HFResult:
    """What ``generate_with_tracestop`` returns.

    ``text`` is everything after the prompt: the thinking kept, the forcing cue and the answer
    when stopped, the untouched generation otherwise; ``output_ids`` are its token ids.
    ``generated_ids`` are the tokens of the first pass as generated (past the stop step too).
    """

    text: str
    thinking: str
    answer: str
    stopped: bool
    report: dict[str, Any]
    sequences: torch.Tensor  # (1, prompt + output) ids
    prompt_length: int
    output_ids: list[int]
    generated_ids: list[int]
    answer_ids: list[int] = field(default_factory=list)
    monitor: Monitor | None = field(default=None, repr=False)


def _as_ids(tokenizer: Any, prompt: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(prompt, str):
        enc = tokenizer(prompt, return_tensors="pt")
        return enc["input_ids"], enc.get("attention_mask")
    ids = prompt if isinstance(prompt, torch.Tensor) else torch.tensor(prompt, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    return ids, None


def _family(model: Any, model_family: str | None) -> str | None:
    if model_family is not None:
        template_for(model_family)  # unknown family: a ConfigError now, not after generating
        return model_family
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    try:
        template_for(name)
    except ConfigError:
        return None
    return name or None


def _sequences(out: Any) -> torch.Tensor:
    return out.sequences if hasattr(out, "sequences") else out  # type: ignore[no-any-return]


def generate_with_tracestop(
    model: Any,
    tokenizer: Any,
    prompt: str | torch.Tensor | Sequence[int],
    *,
    policy: Policy | str = "default",
    question: str = "",
    max_new_tokens: int = 4096,
    answer_max_tokens: int = 256,
    model_family: str | None = None,
    tagger: Tagger | str | None = None,
    answer_format: AnswerFormat | None = None,
    monitor: Monitor | None = None,
    answer_generate_kwargs: Mapping[str, Any] | None = None,
    **generate_kwargs: Any,
) -> HFResult:
    """Generate with live early stopping; on STOP, force the answer from the truncated thinking.

    One prompt at a time (batch size 1). When the Monitor never says STOP the generation is
    returned untouched.

    Args:
        model: a causal LM with ``generate``.
        tokenizer: its tokenizer.
        prompt: prompt text (tokenized as is: apply the chat template first) or prompt ids.
        policy: a ``Policy``, a spec string or a preset name.
        question: the problem text (answer format, tagger context).
        max_new_tokens: the thinking budget of the first pass.
        answer_max_tokens: new tokens allowed for the forced answer.
        model_family: template family (``"qwq"``, ``"gemma-4"``, ...) or model name; taken from
            ``model.config`` when ``None``.
        tagger, answer_format: passed to the ``Monitor``.
        monitor: a ready ``Monitor`` (then ``policy``, ``question``, ``tagger``,
            ``answer_format`` and ``model_family`` are not used).
        answer_generate_kwargs: ``generate`` keyword arguments for the answer pass; the
            first pass's ``generate_kwargs`` when ``None``.
        **generate_kwargs: passed to ``model.generate`` (``do_sample``, ``temperature``, ...).

    Example::

        r = generate_with_tracestop(model, tok, prompt, policy="traces-count:k=2",
                                    question=q, max_new_tokens=8192)
        print(r.answer, r.report["reason"], r.report["generation"]["thinking_tokens_saved"])
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if answer_max_tokens < 1:
        raise ConfigError(f"answer_max_tokens must be >= 1, got {answer_max_tokens}")
    for key in ("input_ids", "max_length", "max_new_tokens"):
        if key in generate_kwargs:
            raise ConfigError(
                f"generate_with_tracestop sets {key} itself: pass the prompt and max_new_tokens"
            )
    ids, mask = _as_ids(tokenizer, prompt)
    mask = generate_kwargs.pop("attention_mask", mask)
    if ids.shape[0] != 1:
        raise ConfigError(
            f"generate_with_tracestop takes one prompt (batch size 1), got {ids.shape[0]}: call it "
            "per prompt, or use TracestopCriteria with one Monitor per row"
        )
    device = getattr(model, "device", ids.device)
    ids = ids.to(device)
    mask = torch.ones_like(ids) if mask is None else mask.to(device)
    if monitor is None:
        monitor = Monitor(
            policy,
            tagger=tagger,
            question=question,
            answer_format=answer_format,
            model=_family(model, model_family),
            count_tokens=HFTokenCounter(tokenizer),
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        generate_kwargs.setdefault("pad_token_id", pad)
    answer_kwargs = dict(
        generate_kwargs if answer_generate_kwargs is None else answer_generate_kwargs
    )
    if pad is not None:
        answer_kwargs.setdefault("pad_token_id", pad)

    prompt_length = ids.shape[1]
    crit = TracestopCriteria(tokenizer, monitor, prompt_length=prompt_length)
    user_criteria = generate_kwargs.pop("stopping_criteria", None) or []
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        stopping_criteria=StoppingCriteriaList([*user_criteria, crit]),
        **generate_kwargs,
    )
    crit.end()
    seq = _sequences(out)
    generated = [int(t) for t in seq[0, prompt_length:].tolist()]
    skip = skipped_token_ids(tokenizer)
    n_real = sum(1 for t in generated if t not in skip)
    raw = crit.text(0)

    gen_report: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "generated_tokens": n_real,
        "budget_exhausted": len(generated) >= max_new_tokens and not monitor.stopped,
    }
    if not monitor.stopped:
        gen_report.update(
            thinking_tokens_used=n_real,
            thinking_tokens_saved=0,
            saved_fraction=0.0,
            answer_tokens=0,
        )
        return HFResult(
            text=raw,
            thinking=monitor.thinking_text,
            answer=monitor.answer_text,
            stopped=False,
            report={**monitor.report(), "generation": gen_report},
            sequences=seq,
            prompt_length=prompt_length,
            output_ids=generated,
            generated_ids=generated,
            monitor=monitor,
        )

    # Keep the model's own tokens up to the last token boundary inside the kept thinking,
    # re-tokenize the rest of it plus the cue.
    kept = monitor.truncated_thinking
    start = thinking_start(raw)
    end = start + len(kept)
    if raw[start:end] == kept:
        n_kept, chars = _kept_tokens(crit.offsets[0], end)
        tail = raw[chars:end]
    else:  # pragma: no cover - the Monitor saw exactly ``raw``; kept safe all the same
        n_kept, chars, end = 0, 0, start + len(kept)
        tail = raw[:start] + kept
    suffix = monitor.forcing_suffix
    kept_ids = generated[:n_kept]
    tail_ids = [int(t) for t in tokenizer.encode(tail + suffix, add_special_tokens=False)]
    head = torch.tensor([kept_ids + tail_ids], dtype=ids.dtype, device=ids.device)
    ids2 = torch.cat([seq[:, :prompt_length], head], dim=1)
    mask2 = torch.cat([mask, torch.ones_like(head)], dim=1)
    out2 = model.generate(
        input_ids=ids2, attention_mask=mask2, max_new_tokens=answer_max_tokens, **answer_kwargs
    )
    seq2 = _sequences(out2)
    answer_ids = [int(t) for t in seq2[0, ids2.shape[1] :].tolist()]
    answer = str(tokenizer.decode([t for t in answer_ids if t not in skip], **_DECODE))
    monitor.feed_answer(answer)
    monitor.end()

    used = len(kept_ids) + len(tail_ids)
    saved = max(0, max_new_tokens - n_real)
    gen_report.update(
        thinking_tokens_used=used,
        thinking_tokens_saved=saved,
        saved_fraction=round(saved / max_new_tokens, 4),
        forcing_tokens=len(tokenizer.encode(suffix, add_special_tokens=False)),
        answer_tokens=sum(1 for t in answer_ids if t not in skip),
    )
    return HFResult(
        text=raw[:end] + suffix + answer,
        thinking=kept,
        answer=answer,
        stopped=True,
        report={**monitor.report(), "generation": gen_report},
        sequences=seq2,
        prompt_length=prompt_length,
        output_ids=kept_ids + tail_ids + answer_ids,
        generated_ids=generated,
        answer_ids=answer_ids,
        monitor=monitor,
    )


def _kept_tokens(offsets: Sequence[int], end: int) -> tuple[int, int]:
    """The fewest leading tokens whose text is the longest prefix of ``raw[:end]``, and its length."""
    n, chars = 0, 0
    for i, c in enumerate(offsets):
        if c > end:
            break
        if c > chars:
            n, chars = i + 1, c
    return n, chars
