"""tracestop: stop reasoning models once they have their answer.

Tag each step of a chain of thought as it streams, track the candidate answers, and stop
when the model has moved from constructive work to confirming an answer it already has::

    from tracestop import Monitor

    m = Monitor("default", question=question)
    for delta in stream:
        if m.feed(delta).stop:
            break
    print(m.report()["reason"])
"""

from __future__ import annotations

from tracestop._types import Action, Candidate, Decision, Role, Step, StepType, Tag, TaggedStep
from tracestop.answers import (
    AnswerReader,
    AnswerState,
    AnswerTracker,
    equivalent,
    extract_candidate,
    infer_format,
)
from tracestop.errors import (
    ConfigError,
    DataError,
    StateError,
    TraceFormatError,
    TracestopError,
    UpstreamError,
)
from tracestop.evaluate.data import Trace, load_traces
from tracestop.evaluate.oracle import Oracle
from tracestop.evaluate.replay import Outcome, TraceResult, replay, replay_many
from tracestop.monitor import Monitor, MonitorConfig, warm_up
from tracestop.policies import (
    PRESETS,
    AllOf,
    AnyOf,
    Budget,
    Confident,
    Consistency,
    Never,
    Policy,
    TracesCount,
    TracesShift,
    TraceState,
    parse_policy,
)
from tracestop.segment import Segmenter, SegmenterConfig, ThinkingSplitter, segment, split_thinking
from tracestop.tag.base import TagContext, Tagger
from tracestop.templates import TEMPLATES, Template, template_for

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - sorted case-insensitively (tests/test_public_api.py)
    "Action",
    "AllOf",
    "AnswerReader",
    "AnswerState",
    "AnswerTracker",
    "AnyOf",
    "Budget",
    "Candidate",
    "Confident",
    "ConfigError",
    "Consistency",
    "DataError",
    "Decision",
    "equivalent",
    "extract_candidate",
    "infer_format",
    "load_traces",
    "Monitor",
    "MonitorConfig",
    "Never",
    "Oracle",
    "Outcome",
    "parse_policy",
    "Policy",
    "PRESETS",
    "replay",
    "replay_many",
    "Role",
    "segment",
    "Segmenter",
    "SegmenterConfig",
    "split_thinking",
    "StateError",
    "Step",
    "StepType",
    "Tag",
    "TagContext",
    "TaggedStep",
    "Tagger",
    "Template",
    "template_for",
    "TEMPLATES",
    "ThinkingSplitter",
    "Trace",
    "TraceFormatError",
    "TraceResult",
    "TracesCount",
    "TracesShift",
    "TraceState",
    "TracestopError",
    "UpstreamError",
    "warm_up",
]
