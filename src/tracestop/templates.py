"""End-of-thinking markers and answer cues per model family. Templates are data."""

from __future__ import annotations

from dataclasses import dataclass

from tracestop.errors import ConfigError

__all__ = ["TEMPLATES", "Template", "family_of", "render_chat", "template_for"]


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


def family_of(name: str | None) -> str | None:
    """The family a family name or a model name names (``"Qwen/Qwen3-8B"`` → ``"qwen3"``);
    ``None`` when it names none (then its chat template is not known)."""
    if not name:
        return None
    if name in TEMPLATES:
        return name
    low = name.lower()
    for hint, family in _FAMILY_HINTS:
        if hint in low:
            return family
    return None


# --- chat templates: the prompt a family's chat template makes of a conversation ------------
#
# Used to force an answer after a stop through ``/v1/completions`` on any OpenAI-compatible
# server: the proxy writes the prompt itself, so the truncated thinking is kept whatever the
# server's chat template does with an assistant message. The beginning-of-sequence token is
# left out (the server's tokenizer adds it to a completions prompt).

_CHATML = {"system": "<|im_start|>system\n{}<|im_end|>\n",
           "user": "<|im_start|>user\n{}<|im_end|>\n",
           "assistant": "<|im_start|>assistant\n{}<|im_end|>\n"}
_CHAT_FORMATS: dict[str, tuple[dict[str, str], str]] = {
    # role formats, then the generation prompt
    "qwen3": (_CHATML, "<|im_start|>assistant\n"),
    "qwq": (_CHATML, "<|im_start|>assistant\n"),
    "deepseek-r1": ({"system": "{}", "user": "<\uff5cUser\uff5c>{}",
                     "assistant": "<\uff5cAssistant\uff5c>{}<\uff5cend\u2581of\u2581sentence\uff5c>"},
                    "<\uff5cAssistant\uff5c><think>\n"),
    # Gemma 4: thinking is switched on by <|think|> in the system turn
    "gemma-4": ({"system": "<|turn>system\n<|think|>{}<turn|>\n",
                 "user": "<|turn>user\n{}<turn|>\n",
                 "assistant": "<|turn>model\n{}<turn|>\n"},
                "<|turn>model\n"),
}


def _text(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if not (isinstance(p, dict) and p.get("type", "text") == "text"
                    and isinstance(p.get("text"), str)):
                return None  # an image, audio, …: not text this renderer can write
            parts.append(p["text"])
        return "".join(parts)
    return None


def render_chat(family: str, messages: object) -> str | None:
    """The prompt ``family``'s chat template makes of ``messages``, ending with the generation
    prompt; ``None`` when it cannot be written here (an unknown family, a tool message or
    tool calls, content that is not text). Past assistant turns lose their thinking, as the
    families' own templates do."""
    fmt = _CHAT_FORMATS.get(family)
    if fmt is None or not isinstance(messages, list):
        return None
    roles, generation = fmt
    template = TEMPLATES[family]
    out: list[str] = []
    if family == "gemma-4" and not any(isinstance(m, dict) and m.get("role") == "system"
                                       for m in messages):
        out.append(roles["system"].format(""))
    for m in messages:
        if not isinstance(m, dict) or m.get("tool_calls"):
            return None
        role = "system" if m.get("role") == "developer" else m.get("role")
        text = _text(m.get("content"))
        if role not in roles or text is None:
            return None
        if role == "assistant" and template.close in text:
            text = text.split(template.close, 1)[1].lstrip("\n")
        out.append(roles[str(role)].format(text))
    return "".join(out) + generation


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
