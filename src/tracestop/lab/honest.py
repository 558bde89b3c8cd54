"""Honest cross-validation of the step tagger: what a user gets on traces it has not seen.

    python -m tracestop.lab.honest [--scheme problem|family] [--folds 5] [--json]
    python -m tracestop.lab.honest --states [--scheme problem|family]   # states-answer only
    python -m tracestop.lab.honest --states --errors N   # its out-of-fold errors by cause
    python -m tracestop.lab.honest --states --credited   # a head told the tracker's credit
    python -m tracestop.lab.honest --tagger linear --embed   # with the offline encoder, per fold

- **Data**: every hand-labelled step, the shared labels (``data/labels/reasontype-dev.jsonl``)
  and the repository's ``labels/*.jsonl`` (mid-trace sets included), pooled.
- **Folds**: ``problem`` (default): k folds grouped by *problem* (benchmark and question id,
  across models), so no question is in both a training and a test fold. ``family``:
  leave-one-model-family-out (Gemma, R1-distill Qwen, R1-distill Llama, QwQ), the training
  set also stripped of the test family's problems: no model family and no problem is seen.
- **Features as at run time**: training steps carry the run-time ``states_answer`` flag (the
  ``AnswerReader.states_answer`` verdict: an explicit statement found by
  ``tracestop.answers.extract_candidate`` with the options of the prompt the model saw), never
  the gold flag, and the run-time question (the prompt for multiple choice); the previous type
  is the gold one (teacher forcing; the test side is not).
- **Test**: each labelled trace is fed whole from step 0 to a ``Monitor`` (policy ``none``,
  built as ``tracestop.evaluate.replay.prepare`` builds it, cut-off traces included) that uses
  the fold's tagger: the previous type is the tagger's own prediction and ``states_answer``
  the reader's verdict. The labelled steps are scored: type and role accuracy, and
  states-answer P / R / F1 of the Monitor's candidates (``candidates_by_step``: a step states
  an answer when the Monitor yields a candidate credited to it).
- Rows per source (model × benchmark) and overall; the rules tagger runs through the same
  Monitors as the baseline.
- ``--states``: states-answer detection alone (``states_cv``): the tracker (a candidate
  credited to the step), the states-answer head (``tracestop.tag.states``; fit per fold on
  the training traces' rows, its threshold by an inner CV grouped by problem) and their OR,
  P / R / F1 per source and per answer format. Each labelled trace is fed whole from step 0
  to a Monitor with the rules tagger (no label seen) whose head records its run-time context
  (``states_rows``): the step text, the question's facts, the previous step's text and the
  reader's picture; never a gold flag.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tracestop._types import StepType
from tracestop.lab.labels import Example, load_extra_labels, load_labels
from tracestop.lab.quality import binary_metrics, group_folds
from tracestop.tag.base import Tagger
from tracestop.tag.states import StatesContext, StatesHead, StatesVerdict, StatesWeights, features

__all__ = [
    "FAMILIES",
    "family_of",
    "honest_cv",
    "load_runtime_examples",
    "problem_of",
    "runtime_examples",
    "source_of",
]

Scheme = Literal["problem", "family"]

#: Model families (substring of the model name → family), first match wins.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("gemma", "gemma"),
    ("distill-llama", "r1-llama"),
    ("distill-qwen", "r1-qwen"),
    ("qwq", "qwq"),
)


def family_of(trace_id: str) -> str:
    """The model family of a trace id (``src:model:bench:qid``)."""
    model = trace_id.split(":")[1] if ":" in trace_id else trace_id
    for key, fam in FAMILIES:
        if key in model:
            return fam
    return model


def problem_of(trace_id: str) -> str:
    """The problem of a trace id: its benchmark and question id, without the model.
    (``mmlu-pro-matched`` controls share the ``mmlu-pro`` question.)"""
    parts = trace_id.split(":")
    if len(parts) < 4:
        return trace_id
    return parts[2].removesuffix("-matched") + ":" + ":".join(parts[3:])


def source_of(trace_id: str) -> str:
    """model × benchmark."""
    parts = trace_id.split(":")
    return ":".join(parts[1:3]) if len(parts) >= 3 else trace_id


def _runtime_question(trace: Any, fmt: str) -> str:
    prompt = trace.meta.get("prompt")
    return prompt if fmt == "choice" and isinstance(prompt, str) and prompt else str(trace.question)


def runtime_examples(examples: Sequence[Example], traces: dict[str, Any]) -> list[Example]:
    """``examples`` with the run-time context: ``states_answer`` = the answer reader's flag
    (the gold flag moves to ``sa_label``) and the question the Monitor is given."""
    from tracestop.answers import extract_candidate, infer_format
    from tracestop.answers.question import QuestionFacts
    facts: dict[str, tuple[str, str, dict[str, str]]] = {}
    out: list[Example] = []

    def strong(text: str, fmt: str, options: dict[str, str]) -> bool:
        found = extract_candidate(text, fmt, options)  # type: ignore[arg-type]
        return found is not None and found[1] != "conclusion"

    for ex in examples:
        t = traces.get(ex.trace_id)
        if t is None:
            continue
        if ex.trace_id not in facts:
            f = infer_format(t.question, t.benchmark)
            q = _runtime_question(t, f)
            facts[ex.trace_id] = (f, q, dict(QuestionFacts.read(q, f).options))
        fmt, q, options = facts[ex.trace_id]
        ctx = replace(ex.context, states_answer=strong(ex.text, fmt, options), question=q)
        out.append(replace(ex, context=ctx, sa_label=ex.gold_states_answer))
    return out


def load_runtime_examples(data: Path | str, extra: Path | str | None
                          ) -> tuple[list[Example], dict[str, Any]]:
    """Every hand-labelled step (the shared labels, plus ``extra/*.jsonl``) with the run-time
    context (``runtime_examples``), and the labelled traces by id."""
    from tracestop.evaluate.data import load_traces

    data = Path(data)
    tdir = data / "traces"
    shared = load_labels(data / "labels" / "reasontype-dev.jsonl", tdir)
    examples = list(shared)
    if extra is not None:
        examples += load_extra_labels(extra, tdir, {ex.trace_id for ex in shared})
    ids = {ex.trace_id for ex in examples}
    traces = {t.id: t for t in load_traces(data, require_gold=False).traces if t.id in ids}
    return runtime_examples(examples, traces), traces


def monitor_predictions(tagger: Tagger, trace: Any) -> tuple[list[StepType], set[int]]:
    """Each step's type and the steps credited with a candidate, ``trace`` fed whole from
    step 0 to a Monitor with ``tagger`` (as ``tracestop.evaluate.replay.prepare``)."""
    from tracestop.answers import infer_format
    from tracestop.evaluate.replay import out_of_fold_scorer
    from tracestop.monitor import Monitor, MonitorConfig
    from tracestop.policies import Never, candidates_by_step
    from tracestop.tokens import counter_for

    fmt = infer_format(trace.question, trace.benchmark)
    config = MonitorConfig()
    if trace.split == "dev":
        config = replace(config, answer_scorer=out_of_fold_scorer(trace.question))
    m = Monitor(Never(), tagger=tagger, question=_runtime_question(trace, fmt),
                answer_format=fmt, model=trace.model, count_tokens=counter_for(trace.model),
                config=config)
    m.feed(trace.trace)
    m.end()
    return [r.tagged.tag.type for r in m.records], set(candidates_by_step(m.records))


def _folds(trace_ids: Sequence[str], scheme: Scheme, folds: int, seed: int
           ) -> list[tuple[str, set[str], set[str]]]:
    """(name, test traces, train traces) per fold."""
    ids = list(dict.fromkeys(trace_ids))
    out: list[tuple[str, set[str], set[str]]] = []
    if scheme == "problem":
        fold = group_folds([problem_of(t) for t in ids], folds, seed)
        for k in range(folds):
            test = {t for t, f in zip(ids, fold, strict=True) if f == k}
            out.append((f"problems {k}", test, set(ids) - test))
        return out
    for fam in sorted({family_of(t) for t in ids}):
        test = {t for t in ids if family_of(t) == fam}
        probs = {problem_of(t) for t in test}
        train = {t for t in ids if family_of(t) != fam and problem_of(t) not in probs}
        out.append((f"family {fam}", test, train))
    return out


def _row(gold_t: list[str], pred_t: list[str], gold_sa: list[bool], pred_sa: list[bool]
         ) -> dict[str, Any]:
    n = len(gold_t)
    role = [StepType(x).role for x in gold_t]
    prole = [StepType(x).role for x in pred_t]
    sa = binary_metrics(gold_sa, pred_sa)
    return {
        "n": n,
        "type_acc": sum(a == b for a, b in zip(gold_t, pred_t, strict=True)) / n if n else 0.0,
        "role_acc": sum(a == b for a, b in zip(role, prole, strict=True)) / n if n else 0.0,
        "sa_f1": sa["f1"], "sa_precision": sa["precision"], "sa_recall": sa["recall"],
        "sa_support": sa["support"],
    }


def honest_cv(data: Path | str, extra: Path | str | None, scheme: Scheme = "problem",
              folds: int = 5, seed: int = 0, taggers: Sequence[str] = ("rules", "linear"),
              fit_kwargs: dict[str, Any] | None = None, log: Any = None,
              embed: bool | None = None,
              augment: Callable[[Tagger, set[str]], list[Example]] | None = None
              ) -> dict[str, Any]:
    """Honest CV (module docstring). Returns per tagger: ``overall`` and ``sources`` rows
    (n, type_acc, role_acc, sa_f1 / precision / recall / support) and the ``folds``.

    ``embed`` (default ``tracestop.lab.train.USE_EMBED``): the linear tagger with the offline
    encoder, built per fold from the dev traces outside the test fold's problems (and, by
    family, outside its family), as ``scripts/build_embed.py`` builds it from all of them.
    ``augment(tagger, test)``: extra training steps made with the fold's fitted linear tagger
    (self-training: ``scripts/tagger_cv_fast.py --self-train``), added before a second fit; it
    must keep away from the ``test`` traces' problems (and, by family, their family)."""
    from tracestop.evaluate.data import load_traces
    from tracestop.lab.train import DEFAULT_C, USE_EMBED, build_embedding, embed_texts, fit
    from tracestop.tag.linear import LinearTagger
    from tracestop.tag.rules import RuleTagger

    examples, traces = load_runtime_examples(data, extra)
    by_trace: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_trace[ex.trace_id].append(ex)
    plan = _folds([ex.trace_id for ex in examples], scheme, folds, seed)
    use_embed = USE_EMBED if embed is None else embed
    report: dict[str, Any] = {"scheme": scheme, "folds": [p[0] for p in plan], "seed": seed,
                              "n_steps": len(examples), "n_traces": len(by_trace),
                              "embed": use_embed, "taggers": {}}
    dev = (load_traces(Path(data), split="dev", require_gold=False).traces
           if use_embed and "linear" in taggers else [])
    for name in taggers:
        rows: dict[str, list[Any]] = defaultdict(lambda: [[], [], [], []])
        for fold_name, test, train in plan:
            if name == "rules":
                model: Tagger = RuleTagger()
            else:
                tr = [ex for ex in examples if ex.trace_id in train]
                emb = None
                if use_embed:
                    probs = {problem_of(t) for t in test}
                    fams = {family_of(t) for t in test} if scheme == "family" else set()
                    emb = build_embedding(embed_texts(dev, lambda t, p=probs, f=fams, x=test: (
                        t in x or problem_of(t) in p or family_of(t) in f)))
                model = LinearTagger(weights=fit(tr, c=DEFAULT_C, seed=seed, embed=emb,
                                                 **(fit_kwargs or {})))
                if augment is not None:
                    model = LinearTagger(weights=fit(tr + augment(model, test), c=DEFAULT_C,
                                                     seed=seed, embed=emb, **(fit_kwargs or {})))
            for tid in sorted(test):
                types, stated = monitor_predictions(model, traces[tid])
                for ex in by_trace[tid]:
                    if ex.context.index >= len(types):
                        continue
                    for key in ("all", source_of(tid)):
                        r = rows[key]
                        r[0].append(ex.label.value)
                        r[1].append(types[ex.context.index].value)
                        r[2].append(ex.gold_states_answer)
                        r[3].append(ex.context.index in stated)
            if log is not None:
                log(f"{name}: {fold_name} done ({len(test)} test traces, {len(train)} train)")
        report["taggers"][name] = {k: _row(*v) for k, v in sorted(rows.items())}
    return report


# --- states-answer detection: the tracker, the head, their OR ---------------------------------

#: One labelled step as the states-answer head sees it at run time: trace id, step text, the
#: head's context, the gold flag, the tracker's flag (a candidate credited to the step).
StatesRow = tuple[str, str, StatesContext, bool, bool]


def states_rows(examples: Sequence[Example], traces: dict[str, Any], tagger: Tagger | None = None
                ) -> list[StatesRow]:
    """Every labelled step with its run-time states-answer context: each trace fed whole from
    step 0 to a Monitor (as ``monitor_predictions``; ``tagger``: the rules tagger by default,
    which saw no label) whose states-answer head records what it is given."""
    from tracestop.answers import infer_format
    from tracestop.evaluate.replay import out_of_fold_scorer
    from tracestop.monitor import Monitor, MonitorConfig
    from tracestop.policies import Never, candidates_by_step
    from tracestop.tag.rules import RuleTagger
    from tracestop.tokens import counter_for

    class Recorder(StatesHead):
        def __init__(self) -> None:
            self.seen: list[tuple[str, StatesContext]] = []

        def read(self, text: str, ctx: StatesContext) -> StatesVerdict:
            self.seen.append((text, ctx))
            return StatesVerdict(False, 0.0, "")

    by_trace: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_trace[ex.trace_id].append(ex)
    out: list[StatesRow] = []
    for tid in sorted(by_trace):
        trace = traces.get(tid)
        if trace is None:
            continue
        fmt = infer_format(trace.question, trace.benchmark)
        config = MonitorConfig()
        if trace.split == "dev":
            config = replace(config, answer_scorer=out_of_fold_scorer(trace.question))
        m = Monitor(Never(), tagger=tagger or RuleTagger(), question=_runtime_question(trace, fmt),
                    answer_format=fmt, model=trace.model, count_tokens=counter_for(trace.model),
                    config=config)
        rec = Recorder()
        m.states_head = rec
        m.feed(trace.trace)
        m.end()
        _ = m.states  # the head reads its steps when they are first asked for
        stated = candidates_by_step(m.records)
        for ex in by_trace[tid]:
            i = ex.context.index
            if i < len(rec.seen):
                text, ctx = rec.seen[i]
                out.append((tid, text, ctx, ex.gold_states_answer, i in stated))
    return out


def _design(rows: Sequence[tuple[str, StatesContext]], vocab: dict[str, int]) -> Any:
    from scipy.sparse import csr_matrix

    indptr, cols = [0], []
    for text, ctx in rows:
        cols += sorted({vocab[n] for n in features(text, ctx) if n in vocab})
        indptr.append(len(cols))
    return csr_matrix((np.ones(len(cols)), np.array(cols, dtype=np.int64), np.array(indptr)),
                      shape=(len(rows), len(vocab)))


def _fit_lr(x: Any, y: Sequence[bool], c: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=2000, solver="liblinear", fit_intercept=False)
    lr.fit(x, np.asarray(y, dtype=int))
    return lr.coef_[0].astype(np.float64), 0.0


#: inverse L2 strength of the head (0.3 / 1 / 3 within 0.005 F1 in the problem-fold CV)
STATES_C = 0.3
#: thresholds tried by the inner cross-validation (the F1-best on held-out training problems)
STATES_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.2, 0.81, 0.05))
#: a format's own threshold once the inner CV has this many of its positive steps
STATES_PER_FORMAT = 0
#: the head's vocabulary: features seen in at least this many training steps (5 until feature
#: version 4: 3 gave +0.005 head F1 over seeds 0-2 of the problem folds, 2 the same with a
#: file 1.6x as large)
STATES_MIN_COUNT = 3


def fit_states(rows: Sequence[StatesRow], c: float = STATES_C, seed: int = 0,
               inner_folds: int = 3, min_count: int = STATES_MIN_COUNT,
               per_format: int = STATES_PER_FORMAT) -> StatesWeights:
    """The states-answer head fit on ``rows`` (L2 logistic regression, features seen at
    least ``min_count`` times; ``bias`` is a feature) with the decision threshold that gives
    the best F1 in an inner cross-validation grouped by problem (``inner_folds``; 0: 0.5), and
    per answer format with at least ``per_format`` positive steps its own F1-best threshold
    (0: one threshold)."""
    def vocab_of(part: Sequence[StatesRow]) -> dict[str, int]:
        count: dict[str, int] = defaultdict(int)
        for r in part:
            for n in set(features(r[1], r[2])):
                count[n] += 1
        names = sorted(n for n, k in count.items() if k >= min_count or n == "bias")
        return {n: i for i, n in enumerate(names)}

    def fit_on(part: Sequence[StatesRow]) -> StatesWeights:
        vocab = vocab_of(part)
        coef, b = _fit_lr(_design([(r[1], r[2]) for r in part], vocab), [r[3] for r in part], c)
        return StatesWeights(vocab, coef, b, 0.5, tuple(vocab))

    threshold = 0.5
    by_format: dict[str, float] = {}
    groups = [problem_of(r[0]) for r in rows]
    if inner_folds >= 2 and len(set(groups)) >= inner_folds:
        fold = group_folds(groups, inner_folds, seed)
        probs = np.zeros(len(rows))
        for k in range(inner_folds):
            w = fit_on([r for r, f in zip(rows, fold, strict=True) if f != k])
            head = StatesHead(w)
            for j, (r, f) in enumerate(zip(rows, fold, strict=True)):
                if f == k:
                    probs[j] = head.probability(r[1], r[2])
        gold = np.array([r[3] for r in rows])

        def best(sel: np.ndarray) -> float:
            g = list(gold[sel])
            return max(STATES_THRESHOLDS, key=lambda t: (
                binary_metrics(g, list(probs[sel] >= t))["f1"], -abs(t - 0.5)))

        threshold = best(np.ones(len(rows), dtype=bool))
        if per_format:
            fmts = np.array([r[2].answer_format for r in rows])
            for f in sorted(set(fmts)):
                sel = fmts == f
                if gold[sel].sum() >= per_format:
                    by_format[str(f)] = float(best(sel))
    w = fit_on(rows)
    return replace(w, threshold=float(threshold), thresholds=by_format)


def save_states(path: Path | str, weights: StatesWeights, meta: dict[str, Any] | None = None
                ) -> Path:
    """Write the head's ``.npz`` (deflated, fixed timestamps: same arrays → same bytes)."""
    import json

    from tracestop.lab.train import write_npz

    return write_npz(path, {**weights.arrays(),
                            "meta": np.asarray(json.dumps(meta or {}, sort_keys=True))})


def states_cv(data: Path | str, extra: Path | str | None, scheme: Scheme = "problem",
              folds: int = 5, seed: int = 0, log: Any = None,
              rows: Sequence[StatesRow] | None = None, credited: bool = False) -> dict[str, Any]:
    """Honest CV of states-answer detection: per source and overall, P / R / F1 of the
    tracker (the Monitor's candidates), the head (fit on the other folds' rows, threshold by
    inner CV) and their OR. ``rows``: precomputed ``states_rows`` (tests). ``credited``: the
    head also reads whether the tracker credited a candidate to the step
    (``StatesContext.credited``), which is known one step late (a head that gives each
    verdict once the next step is read; the shipped head does not)."""
    if rows is None:
        examples, traces = load_runtime_examples(data, extra)
        rows = states_rows(examples, traces)
    if credited:
        rows = [(t, x, replace(c, credited=trk), g, trk) for t, x, c, g, trk in rows]
    plan, thresholds, oof = _states_oof(rows, scheme, folds, seed, log)
    acc: dict[str, list[list[bool]]] = defaultdict(lambda: [[], [], [], []])
    for r, po in zip(rows, oof, strict=True):
        if po is None:
            continue
        h = po[1]
        for key in ("all", f"{r[2].answer_format} (format)", source_of(r[0])):
            a = acc[key]
            a[0].append(r[3])
            a[1].append(r[4])
            a[2].append(h)
            a[3].append(h or r[4])
    out: dict[str, Any] = {"scheme": scheme, "folds": [p[0] for p in plan], "seed": seed,
                           "thresholds": thresholds, "n_steps": len(rows), "rows": {},
                           "credited": credited}
    for key, (gold, trk, hd, both) in sorted(acc.items()):
        out["rows"][key] = {"n": len(gold), "support": sum(gold),
                            "tracker": binary_metrics(gold, trk),
                            "head": binary_metrics(gold, hd),
                            "or": binary_metrics(gold, both)}
    return out


def _states_oof(rows: Sequence[StatesRow], scheme: Scheme, folds: int, seed: int, log: Any = None
                ) -> tuple[list[tuple[str, set[str], set[str]]], list[float],
                           list[tuple[float, bool] | None]]:
    """The folds, each fold's head threshold, and per row its out-of-fold (p, flag) (None:
    the row is in no test fold)."""
    plan = _folds([r[0] for r in rows], scheme, folds, seed)
    thresholds = []
    oof: list[tuple[float, bool] | None] = [None] * len(rows)
    for fold_name, test, train in plan:
        tr = [r for r in rows if r[0] in train]
        head = StatesHead(fit_states(tr, seed=seed))
        thresholds.append(head.weights.threshold)
        for j, r in enumerate(rows):
            if r[0] in test:
                p = head.probability(r[1], r[2])
                oof[j] = (p, p >= head.weights.threshold_for(r[2].answer_format))
        if log is not None:
            log(f"states: {fold_name} done ({len(test)} test traces, {len(train)} train)")
    return plan, thresholds, oof


#: the causes of ``states_cause``, in the order they are tested: the first that holds
_CAUSES = (
    ("u:cand_source_last", "a source's answer"),
    ("u:cand_if_last", "a supposition (if / would)"),
    ("u:cand_question_last", "a candidate in a question"),
    ("u:cand_current", "the current candidate again"),
    ("u:cand_hedge_last", "a hedged candidate"),
    ("u:cand_negative_last", "a candidate with a negation"),
    ("u:cand_decisive_last", "a decisive candidate (so, must be)"),
)


def states_cause(text: str, ctx: StatesContext) -> str:
    """How a step puts its candidate, read off the head's features (the error table's groups):
    no candidate in the last sentence (one earlier in the tail or none), else the first of
    ``_CAUSES`` that holds, else a plain candidate."""
    f = set(features(text, ctx))
    if "u:cand_last" not in f:
        return ("no candidate in the last sentence, one earlier in the tail" if "u:cand_tail" in f
                else "no candidate in the step's tail")
    return next((c for n, c in _CAUSES if n in f), "a plain candidate")


def states_errors(data: Path | str, extra: Path | str | None, scheme: Scheme = "problem",
                  folds: int = 5, seed: int = 0, examples: int = 0, log: Any = None,
                  rows: Sequence[StatesRow] | None = None) -> str:
    """The head's out-of-fold errors (the folds of ``states_cv``) grouped by answer format and
    cause (``states_cause``), each count with how many the tracker credits one step late (a
    miss) or never credits (a false flag), then ``examples`` errors per format and kind with
    the step, the end of the previous step, gold and p."""
    import random

    if rows is None:
        ex, traces = load_runtime_examples(data, extra)
        rows = states_rows(ex, traces)
    _, _, oof = _states_oof(rows, scheme, folds, seed, log)
    count: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    errors: dict[tuple[str, str], list[int]] = defaultdict(list)
    for j, (r, po) in enumerate(zip(rows, oof, strict=True)):
        if po is None or po[1] == r[3]:
            continue
        kind = "miss" if r[3] else "false flag"
        fmt = r[2].answer_format
        c = count[(fmt, kind, states_cause(r[1], r[2]))]
        c[0] += 1
        c[1] += (r[4] and not r[2].stated) if r[3] else not r[4]
        errors[(fmt, kind)].append(j)
    out = [(f"states-answer head, out-of-fold errors, scheme={scheme} (seed {seed}), "
           f"{len(rows)} steps"), "",
           ("| format | error | cause | steps | tracker: credits one step late (miss) / "
           "never credits (false flag) |"), "|---|---|---|---|---|"]
    for (fmt, kind, cause), (n, t) in sorted(count.items(), key=lambda kv: (
            kv[0][0], kv[0][1], -kv[1][0])):
        out.append(f"| {fmt} | {kind} | {cause} | {n} | {t} |")
    rng = random.Random(seed)
    for (fmt, kind), js in sorted(errors.items()):
        for j in sorted(rng.sample(js, min(examples, len(js)))):
            r = rows[j]
            po = oof[j]
            assert po is not None
            text = " / ".join(r[1].strip().splitlines())
            prev = " / ".join(r[2].previous.strip().splitlines())
            out += ["", (f"{fmt} {kind}: {r[0]} step {r[2].index}, p {po[0]:.2f}, gold "
                    f"{r[3]}, tracker {r[4]}, cause: {states_cause(r[1], r[2])}"),
                    f"  previous: …{prev[-200:]}",
                    f"  step: {text if len(text) <= 500 else text[:150] + ' … ' + text[-340:]}"]
    return "\n".join(out)


def format_states(report: dict[str, Any]) -> str:
    """A markdown table of ``states_cv``: P / R / F1 of tracker, head and OR per source."""
    title = (f"states-answer CV, scheme={report['scheme']} ({len(report['folds'])} folds, seed "
             f"{report['seed']}), {report['n_steps']} steps"
             + ("; the head reads the tracker's credit (one step late)"
                if report.get("credited") else "") + "; head thresholds "
             + ", ".join(f"{t:.2f}" for t in report["thresholds"]))
    head = "| source | steps | gold + | tracker F1 (P/R) | head F1 (P/R) | OR F1 (P/R) |"
    out = [title, "", head, "|---|---|---|---|---|---|"]
    rows = report["rows"]
    keys = sorted(k for k in rows if k != "all" and "(format)" not in k)
    keys += sorted(k for k in rows if "(format)" in k) + ["all"]
    for k in keys:
        r = rows[k]
        cells = [f"**{k}**" if k == "all" else k, str(r["n"]), str(r["support"])]
        for name in ("tracker", "head", "or"):
            m = r[name]
            cells.append(f"{m['f1']:.3f} ({m['precision']:.2f}/{m['recall']:.2f})")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def format_report(report: dict[str, Any]) -> str:
    """A markdown table: one row per source, type / role accuracy and states-answer F1 per
    tagger."""
    names = list(report["taggers"])
    head = "| source | steps | " + " | ".join(
        f"{n} type | {n} role | {n} SA F1 (P/R)" for n in names) + " |"
    title = (f"honest CV, scheme={report['scheme']} ({len(report['folds'])} folds, seed "
             f"{report['seed']}), {report['n_steps']} steps / {report['n_traces']} traces")
    out = [title, "", head, "|" + "---|" * (2 + 3 * len(names))]
    first = report["taggers"][names[0]]
    keys = [k for k in first if k != "all"] + ["all"]
    for k in keys:
        cells = [f"**{k}**" if k == "all" else k, str(first[k]["n"])]
        for n in names:
            r = report["taggers"][n][k]
            sa = (f"{r['sa_f1']:.3f} ({r['sa_precision']:.2f}/{r['sa_recall']:.2f}, "
                  f"{r['sa_support']})" if r["sa_support"] else "–")
            cells += [f"{r['type_acc']:.3f}", f"{r['role_acc']:.3f}", sa]
        out.append("| " + " | ".join(cells) + " |")
    if len(keys) > 2:
        for n in names:
            src = [report["taggers"][n][k] for k in keys if k != "all"]
            out.append(f"\n{n}: macro over {len(src)} sources: type "
                       f"{np.mean([r['type_acc'] for r in src]):.3f}, role "
                       f"{np.mean([r['role_acc'] for r in src]):.3f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m tracestop.lab.honest [--scheme problem|family] [--tagger ...] [--json]``."""
    import argparse
    import json
    import os
    import sys

    root = Path(__file__).resolve().parents[3]
    ap = argparse.ArgumentParser(description="honest cross-validation of the step tagger")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("TRACESTOP_DATA", root / ".." / "shared" / "data")))
    ap.add_argument("--extra", type=Path, default=root / "labels")
    ap.add_argument("--no-extra", action="store_true")
    ap.add_argument("--scheme", choices=("problem", "family"), default="problem")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tagger", action="append", choices=("rules", "linear"))
    ap.add_argument("--states", action="store_true",
                    help="states-answer detection only: tracker, head and their OR")
    ap.add_argument("--credited", action="store_true",
                    help="with --states: the head also reads the tracker's credit of the step, "
                         "known one step late (not what the shipped head does)")
    ap.add_argument("--errors", type=int, metavar="N", default=None,
                    help="with --states: the head's out-of-fold errors by format and cause, "
                         "and N examples per format and kind")
    ap.add_argument("--embed", action=argparse.BooleanOptionalAction, default=None,
                    help="the linear tagger with (--embed) or without (--no-embed) the offline "
                         "encoder, built per fold (default: tracestop.lab.train.USE_EMBED, off; "
                         "docs/tagger.md, \"Offline encoder\")")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.states and a.errors is not None:
        print(states_errors(a.data, None if a.no_extra else a.extra, a.scheme, a.folds, a.seed,
                            a.errors, log=lambda s: print(s, file=sys.stderr, flush=True)))
        return 0
    if a.states:
        sr = states_cv(a.data, None if a.no_extra else a.extra, a.scheme, a.folds, a.seed,
                       log=lambda s: print(s, file=sys.stderr, flush=True), credited=a.credited)
        print(json.dumps(sr, indent=1) if a.json else format_states(sr))
        return 0
    report = honest_cv(a.data, None if a.no_extra else a.extra, a.scheme, a.folds, a.seed,
                       a.tagger or ("rules", "linear"),
                       log=lambda s: print(s, file=sys.stderr, flush=True),
                       embed=a.embed)
    print(json.dumps(report, indent=1) if a.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
