"""The regression gate: a run against a baseline file, metric by metric and question by question."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from assistant.metrics import EvalError, EvalRun

# Gated metrics: higher is better; the gate fires when one drops by more than its tolerance.
# Latency is measured and reported but never gated: a shared CPU makes it flake.
GATED = ("answer_accuracy", "token_f1", "answered_rate", "abstention_accuracy", "citation_accuracy",
         "hit@1", "hit@5", "mrr@10")
MIN_TOLERANCE = 0.01


def default_tolerance(metric: str, metrics: dict) -> float:
    """One question's worth of the metric, or one point (0.01), whichever is larger."""
    denominator = {
        "answer_accuracy": metrics.get("questions"),
        "token_f1": metrics.get("answerable"),
        "answered_rate": metrics.get("answerable"),
        "abstention_accuracy": metrics.get("unanswerable"),
        "citation_accuracy": metrics.get("answered_correctly"),
    }.get(metric, metrics.get("with_evidence"))
    one_question = 1.0 / denominator if denominator else MIN_TOLERANCE
    return round(max(MIN_TOLERANCE, one_question) + 5e-5, 4)


def make_baseline(run: EvalRun, previous: dict | None = None) -> dict:
    """The baseline file for ``run``.

    Tolerances edited by hand in ``previous`` (ones that differ from the default for its
    metrics) are kept; the others are recomputed, so they follow the size of the question set.
    A question set from outside the repository (e.g. ``../shared/data/news-dev``, whose text
    must not be copied into it) keeps per-question ids and verdicts only, no answer text.
    """
    with_text = inside_repository(run.questions_file)
    old = previous or {}
    old_tolerances = old.get("tolerances") or {}
    tolerances = {}
    for metric in GATED:
        kept = old_tolerances.get(metric)
        if kept is not None and kept != default_tolerance(metric, old.get("metrics") or {}):
            tolerances[metric] = kept
        else:
            tolerances[metric] = default_tolerance(metric, run.metrics)
    return {
        "name": run.name,
        "documents": run.documents,
        "questions_file": run.questions_file,
        "settings": run.settings,
        "metrics": run.metrics,
        "tolerances": {m: tolerances[m] for m in GATED if m in tolerances},
        "questions": {r["id"]: {"correct": s.correct, **({"answer": r["answer"]} if with_text else {})}
                      for r, s in zip(run.records, run.scores)},
    }


def inside_repository(questions_file: str) -> bool:
    """True when a run's question file (as displayed: relative to the working directory, the
    repository, when it lies inside it) is part of the repository."""
    return not Path(questions_file).is_absolute() and not questions_file.startswith("..")


def load_baseline(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"baseline {path} not found; create it with --update-baseline") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"baseline {path} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise EvalError(f"baseline {path} has no \"metrics\"; recreate it with --update-baseline")
    return data


@dataclass
class MetricCheck:
    metric: str
    baseline: float | None
    current: float | None
    tolerance: float

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return round(self.current - self.baseline, 4)

    @property
    def failed(self) -> bool:
        return self.delta is not None and -self.delta > self.tolerance + 1e-9


@dataclass
class Flip:
    id: str
    question: str
    was: str
    now: str


@dataclass
class Comparison:
    """A run against a baseline: the gated metrics and the questions that changed verdict."""

    path: str
    checks: list[MetricCheck]
    broke: list[Flip]
    fixed: list[Flip]
    missing: list[str]
    settings_changed: dict

    @property
    def failed(self) -> bool:
        return any(c.failed for c in self.checks)

    def lines(self) -> list[str]:
        """The gate's verdict as printed by ``assistant eval --baseline``."""
        verdict = "FAILED" if self.failed else "passed"
        out = [f"gate {verdict} against {self.path}"]
        for key, (old, new) in self.settings_changed.items():
            out.append(f"  note: setting {key} is {new!r} here, {old!r} in the baseline")
        if self.missing:
            out.append(f"  note: {len(self.missing)} baseline questions were not asked (--limit?); "
                       "metrics compare different sets")
        for c in self.checks:
            if c.delta is None:
                continue
            mark = "FAIL" if c.failed else "ok"
            out.append(f"  {c.metric:<20} {c.baseline:.4f} -> {c.current:.4f} ({c.delta:+.4f}, "
                       f"tolerance {c.tolerance:.4f})  {mark}")
        for title, flips in (("right -> wrong", self.broke), ("wrong -> right", self.fixed)):
            out.append(f"  {title}: {len(flips)}")
            for f in flips:
                out.append(f"    {f.id}: {f.question}")
                out.append(f"      was: {_short(f.was)}")
                out.append(f"      now: {_short(f.now)}")
        return out


def compare(run: EvalRun, baseline: dict, path: str = "baseline") -> Comparison:
    """Check ``run`` against ``baseline``: gated metrics and per-question flips."""
    tolerances = baseline.get("tolerances") or {}
    checks = [MetricCheck(m, baseline["metrics"].get(m), run.metrics.get(m),
                          float(tolerances.get(m, default_tolerance(m, baseline["metrics"]))))
              for m in GATED if m in tolerances or not tolerances]
    previous = baseline.get("questions") or {}
    broke, fixed = [], []
    for q, record, s in zip(run.questions, run.records, run.scores):
        before = previous.get(q.id)
        if before is None or bool(before.get("correct")) == s.correct:
            continue
        flip = Flip(q.id, q.question, str(before.get("answer", "")), record["answer"])
        (fixed if s.correct else broke).append(flip)
    asked = {q.id for q in run.questions}
    missing = [qid for qid in previous if qid not in asked]
    old_settings = baseline.get("settings") or {}
    changed = {k: (old_settings[k], v) for k, v in run.settings.items()
               if k in old_settings and old_settings[k] != v}
    return Comparison(path, checks, broke, fixed, missing, changed)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
