"""The eval harness: ask a question set through the assistant, score it, gate it on a baseline.

``assistant eval`` ingests a document set into a fresh store, asks every question
through :meth:`Assistant.ask` (the code path of ``assistant ask``), scores the
answers with the metrics defined in ``eval/README.md``, writes answers, metrics and
a report, and, given a baseline, fails when a gated metric dropped by more than its
tolerance. The report itself (markdown and plot) is built in :mod:`assistant.report`.
"""

from __future__ import annotations

import json
import re
import string
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.settings import Settings

MAX_ANSWER_WORDS = 60  # a correct answer is at most this long (the accuracy rule)
MRR_DEPTH = 10
MARKER = re.compile(r"\[\d+\]")
ARTICLES = re.compile(r"\b(a|an|the)\b")
ABSTAIN_TYPE = "unanswerable"

# Gated metrics: higher is better; the gate fires when one drops by more than its tolerance.
# Latency is measured and reported but never gated: a shared CPU makes it flake.
GATED = ("answer_accuracy", "token_f1", "answered_rate", "abstention_accuracy", "citation_accuracy",
         "hit@1", "hit@5", "mrr@10")
MIN_TOLERANCE = 0.01
CURVE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SETTINGS_SHOWN = ("top_k", "candidates", "hybrid", "chunk_size", "chunk_overlap", "abstain_threshold",
                  "max_answer_sentences", "max_answer_words", "llm")


class EvalError(ValueError):
    """The eval cannot run as asked (bad question file, empty document set); the message says why."""


# ---------------------------------------------------------------- questions


@dataclass
class EvalQuestion:
    """One line of a question file. ``history``: earlier user questions of the same conversation."""

    id: str
    question: str
    answers: list[str]
    evidence_doc_ids: list[str]
    type: str
    history: list[str] = field(default_factory=list)
    question_date: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return self.type != ABSTAIN_TYPE and bool(self.answers)


def load_questions(path: Path, limit: int | None = None) -> list[EvalQuestion]:
    """The questions of a JSONL file (the first ``limit``); raises :class:`EvalError` on bad lines."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"question file {path} not found")
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict) or not str(row.get("question") or "").strip():
            raise EvalError(f"{where}: needs a non-empty \"question\"")
        qid = str(row.get("id") or f"line-{number}")
        if qid in seen:
            raise EvalError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        answers = [str(a) for a in row.get("answers") or [] if str(a).strip()]
        if not answers and row.get("answer") and row.get("type") != ABSTAIN_TYPE:
            answers = [str(row["answer"])]
        history = row.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, str) and h.strip() for h in history):
            raise EvalError(f"{where}: \"history\" must be a list of earlier questions")
        known = {"id", "question", "answer", "answers", "evidence_doc_ids", "type", "history", "question_date"}
        out.append(EvalQuestion(
            id=qid, question=str(row["question"]), answers=answers,
            evidence_doc_ids=[str(d) for d in row.get("evidence_doc_ids") or []],
            type=str(row.get("type") or ("extractive" if answers else ABSTAIN_TYPE)),
            history=history, question_date=row.get("question_date") or None,
            extra={k: v for k, v in row.items() if k not in known},
        ))
        if limit and len(out) >= limit:
            break
    if not out:
        raise EvalError(f"{path} holds no questions")
    return out


# ---------------------------------------------------------------- metrics of one answer


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation (ASCII and Unicode) and articles, squeeze spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_text(answer: str) -> str:
    """The answer without its [n] citation markers."""
    return " ".join(MARKER.sub(" ", answer or "").split())


def contains_answer(text: str, golds: list[str]) -> bool:
    """True when a normalised gold answer occurs in the normalised text as whole words."""
    haystack = f" {normalize_answer(text)} "
    return any(f" {g} " in haystack for g in map(normalize_answer, golds) if g)


def token_f1(prediction: str, golds: list[str]) -> float:
    """SQuAD token F1 of ``prediction`` against the best of ``golds`` (0 when there are none)."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        truth = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(truth)).values())
        if common:
            precision, recall = common / len(pred), common / len(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def evidence_rank(retrieved: list[str], evidence: list[str]) -> int | None:
    """1-based rank of the first evidence document among the distinct retrieved doc ids, or None."""
    distinct = list(dict.fromkeys(retrieved))
    for rank, doc_id in enumerate(distinct, 1):
        if doc_id in evidence:
            return rank
    return None


@dataclass
class Score:
    """How one answer did (a line of details.jsonl)."""

    id: str
    type: str
    multi_turn: bool
    answerable: bool
    has_evidence: bool
    correct: bool
    answered: bool
    words: int
    f1: float | None
    citation_ok: bool | None
    rank: int | None
    confidence: float
    latency_ms: float
    failure: str | None
    citation_check: dict | None = None  # generated answers: CitationCheck.counts() (assistant/citations.py)


def score_answer(question: EvalQuestion, record: dict, confidence: float = 0.0) -> Score:
    """Score one ``ask --json`` record against its question (definitions: eval/README.md)."""
    answered = not record["abstained"]
    text = answer_text(record["answer"]) if answered else ""
    words = len(text.split())
    rank = evidence_rank(record.get("retrieved_doc_ids") or [], question.evidence_doc_ids)
    if question.answerable:
        correct = answered and words <= MAX_ANSWER_WORDS and contains_answer(text, question.answers)
        f1 = token_f1(text, question.answers) if answered else 0.0
        citation_ok = None
        if correct:
            citation_ok = any(c.get("doc_id") in question.evidence_doc_ids
                              or contains_answer(c.get("quote") or "", question.answers)
                              for c in record.get("citations") or [])
    else:
        correct, f1, citation_ok = not answered, None, None
    return Score(question.id, question.type, bool(question.history), question.answerable,
                 bool(question.evidence_doc_ids), correct, answered,
                 words, f1, citation_ok, rank, round(confidence, 4), round(record.get("latency_ms", 0.0), 1),
                 _failure(question, answered, correct, words, rank))


def _failure(question: EvalQuestion, answered: bool, correct: bool, words: int, rank: int | None) -> str | None:
    """Where a wrong answer went wrong, in the words the report uses."""
    if correct:
        return None
    if not question.answerable:
        return "answered an unanswerable question"
    if question.evidence_doc_ids and rank is None:
        return "retrieval missed the evidence"
    if not answered:
        return "abstained though the evidence was retrieved"
    if words > MAX_ANSWER_WORDS:
        return "answer longer than 60 words"
    return "answered with the wrong passage or sentence"


# ---------------------------------------------------------------- metrics of a run


def _mean(values: list) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


def aggregate(scores: list[Score]) -> dict:
    """The run's metrics (null where a metric has no questions to average over)."""
    answerable = [s for s in scores if s.answerable]
    unanswerable = [s for s in scores if not s.answerable]
    with_evidence = [s for s in answerable if s.has_evidence]
    correct_answers = [s for s in answerable if s.correct]
    latencies = [s.latency_ms for s in scores]
    return {
        "questions": len(scores),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "with_evidence": len(with_evidence),
        "answered_correctly": len(correct_answers),
        "answer_accuracy": _mean([s.correct for s in scores]),
        "token_f1": _mean([s.f1 for s in answerable]),
        "answered_rate": _mean([s.answered for s in answerable]),
        "abstention_accuracy": _mean([not s.answered for s in unanswerable]),
        "citation_accuracy": _mean([bool(s.citation_ok) for s in correct_answers]),
        "hit@1": _mean([s.rank == 1 for s in with_evidence]),
        "hit@5": _mean([s.rank is not None and s.rank <= 5 for s in with_evidence]),
        "mrr@10": _mean([1 / s.rank if s.rank and s.rank <= MRR_DEPTH else 0.0 for s in with_evidence]),
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p95_ms": _percentile(latencies, 0.95),
    }


def breakdown(scores: list[Score]) -> dict[str, dict]:
    """Metrics per question type, plus single- and multi-turn groups when both occur."""
    groups: dict[str, list[Score]] = {}
    for s in scores:
        groups.setdefault(s.type, []).append(s)
    if any(s.multi_turn for s in scores) and not all(s.multi_turn for s in scores):
        groups["(multi-turn)"] = [s for s in scores if s.multi_turn]
        groups["(single-turn)"] = [s for s in scores if not s.multi_turn]
    return {name: {key: value for key, value in aggregate(group).items()
                   if key in ("questions", "answer_accuracy", "token_f1", "answered_rate",
                              "abstention_accuracy", "hit@5", "latency_p50_ms")}
            for name, group in groups.items()}


def abstention_curve(scores: list[Score], configured: float) -> list[dict]:
    """Answered rate vs abstention over confidence thresholds (what each threshold would do).

    At threshold t a question counts as answered when its confidence is >= t (and, at or
    above the configured threshold, when it was answered at all). Whether such an answer is
    right is known only for t >= the configured threshold: below it, the extra answers were
    never composed, so precision and accuracy are null there.
    """
    if not any(s.confidence > 0 for s in scores):
        return []

    def answered_at(s: Score, t: float) -> bool:
        return s.confidence >= t and (s.answered or t < configured)

    rows = []
    answerable = [s for s in scores if s.answerable]
    unanswerable = [s for s in scores if not s.answerable]
    for t in sorted(set(CURVE_THRESHOLDS) | {round(configured, 4)}):
        known = t >= configured
        given = [s for s in scores if answered_at(s, t)]
        rows.append({
            "threshold": t,
            "answered_rate": _mean([answered_at(s, t) for s in answerable]),
            "abstain_rate": _mean([not answered_at(s, t) for s in scores]),
            "abstention_accuracy": _mean([not answered_at(s, t) for s in unanswerable]),
            "precision_answered": _mean([s.answerable and s.correct for s in given]) if known else None,
            "answer_accuracy": _mean([s.correct and answered_at(s, t) if s.answerable else not answered_at(s, t)
                                      for s in scores]) if known else None,
        })
    return rows


# ---------------------------------------------------------------- running


@dataclass
class EvalRun:
    """Everything one eval produced."""

    name: str
    documents: str
    questions_file: str
    settings: dict
    questions: list[EvalQuestion]
    records: list[dict]
    scores: list[Score]
    metrics: dict
    by_type: dict
    curve: list[dict]
    ingest_summary: str = ""
    seconds: float = 0.0

    def metrics_json(self) -> dict:
        return {"name": self.name, "documents": self.documents, "questions": self.questions_file,
                "settings": self.settings, "metrics": self.metrics, "by_type": self.by_type,
                "abstention_curve": self.curve, "seconds": round(self.seconds, 1)}


def ask_all(bot, questions: list[EvalQuestion], top_k: int | None = None,
            progress: bool = True, desc: str = "eval") -> tuple[list[dict], list[Score]]:
    """Ask every question through ``bot.ask`` (replaying its history first) and score the answers.

    Returns the ``ask --json`` records (plus ``"id"``) and their scores.
    """
    from tqdm import tqdm

    from assistant.retrieval import Filters

    turns_cache: dict[tuple, str] = {}
    records, scores = [], []
    for q in tqdm(questions, desc=desc, unit="q", disable=not progress, file=sys.stderr):
        filters = Filters(as_of=q.question_date)
        history: list[tuple[str, str]] = []
        for i, earlier in enumerate(q.history):
            key = (q.question_date, *q.history[: i + 1])
            if key not in turns_cache:
                turns_cache[key] = bot.ask(earlier, top_k=top_k, filters=filters, history=history or None).text
            history.append((earlier, turns_cache[key]))
        answer = bot.ask(q.question, top_k=top_k, filters=filters, history=history or None)
        record = {"id": q.id, **answer.to_json()}
        records.append(record)
        scores.append(score_answer(q, record, answer.confidence))
        if getattr(answer, "check", None) is not None:
            scores[-1].citation_check = answer.check.counts()
    return records, scores


def run_eval(settings: Settings, documents: Path, questions_file: Path, *, limit: int | None = None,
             top_k: int | None = None, name: str | None = None, fresh_store: bool = True,
             progress: bool = True) -> EvalRun:
    """Ingest ``documents`` (into a throw-away store when ``fresh_store``) and ask every question."""
    from assistant.pipeline import Assistant

    questions = load_questions(questions_file, limit)
    documents = Path(documents)
    if not documents.exists():
        raise EvalError(f"documents {documents} not found (a folder of articles or a .jsonl dump)")
    name = name or default_name(questions_file)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="assistant-eval-") as tmp:
        temp_collection = None
        if fresh_store and settings.chroma_url:
            temp_collection = f"eval-{uuid.uuid4().hex[:12]}"
            settings = settings.with_overrides(collection=temp_collection)
        elif fresh_store:
            settings = settings.with_overrides(store_dir=Path(tmp) / "store")
        bot = Assistant(settings)
        try:
            report = bot.ingest([documents], progress=progress)
            if bot.store.count() == 0:
                raise EvalError(f"nothing was ingested from {documents}:\n{report.summary()}")
            records, scores = ask_all(bot, questions, top_k, progress, desc=f"eval {name}")
        finally:
            if temp_collection:
                bot.store.client.delete_collection(temp_collection)
    shown = {k: v for k, v in settings.public_dict().items() if k in SETTINGS_SHOWN}
    if top_k:
        shown["top_k"] = top_k
    return EvalRun(name, _display(documents), _display(questions_file), shown, questions, records, scores,
                   aggregate(scores), breakdown(scores), abstention_curve(scores, settings.abstain_threshold),
                   report.summary(), time.perf_counter() - started)


def default_name(questions_file: Path) -> str:
    """The eval set's name: the question file's folder (eval/squad2-dev/questions.jsonl -> squad2-dev)."""
    path = Path(questions_file)
    return path.parent.name if path.stem == "questions" and path.parent.name else path.stem


def _display(path: Path) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def write_outputs(run: EvalRun, out: Path, comparison: "Comparison | None" = None) -> None:
    """answers.jsonl, details.jsonl, metrics.json, report.md and report.png under ``out``."""
    from assistant.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "answers.jsonl", "w", encoding="utf-8") as fh:
        for record in run.records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(out / "details.jsonl", "w", encoding="utf-8") as fh:
        for s in run.scores:
            fh.write(json.dumps(asdict(s), ensure_ascii=False) + "\n")
    (out / "metrics.json").write_text(json.dumps(run.metrics_json(), indent=2) + "\n", encoding="utf-8")
    write_report(run, out, comparison)


# ---------------------------------------------------------------- baseline gate


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
    """
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
        "questions": {r["id"]: {"correct": s.correct, "answer": r["answer"]}
                      for r, s in zip(run.records, run.scores)},
    }


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


# ---------------------------------------------------------------- the command


def eval_command(settings: Settings, documents: Path, questions_file: Path, *, out: Path | None = None,
                 fresh_store: bool = True, limit: int | None = None, top_k: int | None = None,
                 baseline: Path | None = None, update_baseline: bool = False, name: str | None = None,
                 progress: bool = True) -> int:
    """``assistant eval``: run, write the outputs, apply or update the baseline; the exit code."""
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1 (got {limit})")
    name = name or default_name(questions_file)
    baseline_path = Path(baseline) if baseline else Path("eval") / "baseline" / f"{name}.json"
    previous = None  # read before the run, so a missing baseline fails fast
    if baseline_path.is_file() and (baseline or update_baseline) or baseline and not update_baseline:
        previous = load_baseline(baseline_path)
    run = run_eval(settings, documents, questions_file, limit=limit, top_k=top_k, name=name,
                   fresh_store=fresh_store, progress=progress)
    out = Path(out) if out else Path("eval") / "out" / run.name
    comparison = compare(run, previous, _display(baseline_path)) if previous else None
    write_outputs(run, out, comparison)

    m = run.metrics
    print(f"{run.name}: {m['questions']} questions in {run.seconds:.0f} s; ingest: {run.ingest_summary.splitlines()[0]}")
    for key in ("answer_accuracy", "token_f1", "answered_rate", "abstention_accuracy", "citation_accuracy",
                "hit@1", "hit@5", "mrr@10", "latency_p50_ms", "latency_p95_ms"):
        value = m.get(key)
        print(f"  {key:<20} {'-' if value is None else value}")
    print(f"wrote {out}/answers.jsonl, metrics.json, report.md, report.png")
    if comparison:
        print("\n".join(comparison.lines()))
    if update_baseline:
        if limit:
            print("note: the baseline was made from a --limit run; CI compares full runs with it", file=sys.stderr)
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        data = make_baseline(run, previous)
        baseline_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"baseline written to {baseline_path} (review it with git diff)")
        return 0
    return 1 if comparison and comparison.failed else 0
