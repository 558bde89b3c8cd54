"""End-of-thinking markers and answer cues per model family. Templates are data."""

from __future__ import annotations

from dataclasses import dataclass

from tracestop.errors import ConfigError

__all__ = ["TEMPLATES", "Template", "template_for"]


@dataclass(frozen=True, slots=True)
class Template:
    """How one model family marks its thinking and how to make it answer.

    ``open`` is the marker that may start the thinking (often already in the prompt),
    ``close`` the marker that ends it. ``answer_cue`` is appended after the truncated
    thinking to make the model write its answer; ``choice_cue`` and ``yesno_cue`` replace
    it for multiple-choice and yes/no questions.
    """

    family: str
    open: str
    close: str
    answer_cue: str
    choice_cue: str
    yesno_cue: str

    def forcing_suffix(self, answer_format: str = "math") -> str:
        """Text that closes the thinking and asks for the answer (``\\n</think>\\n\\n**Final Answer**\\n``)."""
        cue = {"choice": self.choice_cue, "yesno": self.yesno_cue}.get(answer_format, self.answer_cue)
        return f"\n{self.close}\n\n{cue}"


_THINK = {
    "open": "<think>",
    "close": "</think>",
    "answer_cue": "**Final Answer**\n",
    "choice_cue": "**Final Answer** (the letter of the correct option): ",
    "yesno_cue": "**Final Answer** (YES or NO): ",
}

TEMPLATES: dict[str, Template] = {
    "deepseek-r1": Template(family="deepseek-r1", **_THINK),
    "qwq": Template(family="qwq", **_THINK),
    "qwen3": Template(family="qwen3", **_THINK),
    "gemma-4": Template(
        family="gemma-4",
        open="<|channel>thought",
        close="<channel|>",
        answer_cue="Final answer: ",
        choice_cue="The answer is the letter ",
        yesno_cue="Answer (YES or NO): ",
    ),
}

# Substrings of a model name → family, checked in order.
_FAMILY_HINTS: tuple[tuple[str, str], ...] = (
    ("gemma", "gemma-4"),
    ("qwq", "qwq"),
    ("qwen3", "qwen3"),
    ("deepseek-r1", "deepseek-r1"),
    ("r1-distill", "deepseek-r1"),
)

#: every end-of-thinking marker tracestop knows
CLOSE_MARKERS: tuple[str, ...] = tuple(dict.fromkeys(t.close for t in TEMPLATES.values()))
#: every start-of-thinking marker tracestop knows
OPEN_MARKERS: tuple[str, ...] = tuple(dict.fromkeys(t.open for t in TEMPLATES.values()))


def thinking_start(raw: str, open_markers: tuple[str, ...] = OPEN_MARKERS) -> int:
    """Where the thinking starts in raw output: after a leading open marker (and the
    whitespace before it), or 0 when the output does not open with one."""
    stripped = raw.lstrip()
    for m in open_markers:
        if stripped.startswith(m):
            return len(raw) - len(stripped) + len(m)
    return 0


def template_for(model: str | None) -> Template:
    """The template of a family name (``"qwq"``) or of a model name (``"Qwen/QwQ-32B"``).

    Unknown models get the ``<think>…</think>`` template of the DeepSeek-R1 family.
    """
    if not model:
        return TEMPLATES["deepseek-r1"]
    if model in TEMPLATES:
        return TEMPLATES[model]
    low = model.lower()
    for hint, family in _FAMILY_HINTS:
        if hint in low:
            return TEMPLATES[family]
    if "/" not in model and "-" not in model:
        raise ConfigError(
            f"unknown template family {model!r}: use one of {', '.join(TEMPLATES)} or a model name"
        )
    return TEMPLATES["deepseek-r1"]
