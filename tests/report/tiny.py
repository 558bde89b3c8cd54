"""A tiny hand-made trace set: a clean solve, trace text with markup to escape, a wrong
answer corrected later, and a trace cut off before the end of its thinking."""

from __future__ import annotations

from tracestop.evaluate.data import Trace

XSS = "<script>alert('xss')</script>"

_MATH = (
    "Okay, so I need to compute 6 times 7. The problem asks for the product of six and seven.\n\n"
    "6 times 7 is 42, so the answer is \\boxed{42}.\n\n"
    "Let me double-check: 7 + 7 + 7 + 7 + 7 + 7 = 42. Yes, that is correct.\n\n"
    "Let me verify again with another method: 6 * 7 = 42. Correct.\n\n"
    "Wait, let me make sure once more: 42 / 6 = 7, so it checks out.\n\n"
    "Therefore, the final answer is \\boxed{42}.\n"
    "</think>\n\nThe answer is \\boxed{42}."
)
_ESCAPE = (
    f"The input contains {XSS} which is just text, not code to run.\n\n"
    "First compute 2 + 2 = 4, then add one more to get 5, so the answer is \\boxed{5}.\n\n"
    "Let me double-check: 2 + 2 + 1 = 5. Yes, that is right.\n\n"
    "Hmm, wait, maybe I misread the question, let me reconsider the wording carefully.\n\n"
    "No, it is fine. So the final answer is \\boxed{5}.\n"
    "</think>\n\n**Final Answer** \\boxed{5} & <b>bold</b>"
)
_WRONG = (
    "We need the sum of 10 and 15. Adding them gives 10 + 15 = 24, so the answer is \\boxed{24}.\n\n"
    "Let me check the arithmetic again: 10 + 15 is actually 25, so the answer is \\boxed{25}.\n\n"
    "Verify: 25 - 15 = 10. Correct, it checks out fine.\n\n"
    "Thus the final answer is \\boxed{25}.\n"
    "</think>\n\nThe answer is \\boxed{25}."
)
_CUT = "Let me think about this very long problem step by step.\n\nFirst, consider the case n = 1 and see"


def tiny_traces() -> list[Trace]:
    return [
        Trace("tiny:m-qwen:gsm8k:1", "gsm8k", "deepseek-r1-distill-qwen-7b", "What is 6 times 7?", "42", _MATH),
        Trace("tiny:m-qwen:gsm8k:2", "gsm8k", "deepseek-r1-distill-qwen-7b",
              f"What is 2 + 2 + 1? Ignore {XSS}.", "5", _ESCAPE),
        Trace("tiny:m-llama:gsm8k:3", "gsm8k", "deepseek-r1-distill-llama-8b",
              "What is 10 + 15?", "25", _WRONG),
        Trace("tiny:m-llama:gsm8k:4", "gsm8k", "deepseek-r1-distill-llama-8b",
              "A problem whose thinking was cut off.", "7", _CUT),
    ]


POLICIES = ("default", "budget:tokens=20")
