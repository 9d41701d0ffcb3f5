"""The eval's metrics: question files, the score of one answer, and the metrics of a run.

Definitions are in ``eval/README.md``. Nothing here asks a question: the harness
(:mod:`assistant.evaluation`) does, the gate (:mod:`assistant.gate`) compares
runs with a baseline, and :mod:`assistant.report` writes the report.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from assistant.contract import closest_quote, parse_day

MAX_ANSWER_WORDS = 60  # a correct answer is at most this long (the accuracy rule)
MRR_DEPTH = 10
MARKER = re.compile(r"\[\d+\]")
ARTICLES = re.compile(r"\b(a|an|the)\b")
ABSTAIN_TYPE = "unanswerable"
CURVE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class EvalError(ValueError):
    """The eval cannot run as asked (bad question file, empty document set); the message says why."""


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


def _question_lines(path: Path) -> list[str]:
    """The lines of a questions file (UTF-8, a byte-order mark allowed); EvalError names the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EvalError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); re-save the file "
                        "as UTF-8") from None


def load_questions(path: Path, limit: int | None = None) -> list[EvalQuestion]:
    """The questions of a JSONL file (the first ``limit``); raises :class:`EvalError` on bad lines."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"question file {path} not found")
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(_question_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
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
        for key in ("answers", "evidence_doc_ids"):
            if not isinstance(row.get(key) or [], list):
                raise EvalError(f"{where}: \"{key}\" must be a list of strings, like [\"...\"] "
                                f"(got {type(row[key]).__name__})")
        answers = [str(a) for a in row.get("answers") or [] if str(a).strip()]
        if not answers and row.get("answer") and row.get("type") != ABSTAIN_TYPE:
            answers = [str(row["answer"])]
        history = row.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, str) and h.strip() for h in history):
            raise EvalError(f"{where}: \"history\" must be a list of earlier questions")
        if row.get("question_date"):
            try:
                parse_day(str(row["question_date"]), "\"question_date\"")
            except ValueError as exc:
                raise EvalError(f"{where}: {exc}") from None
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
                 _failure(question, answered, correct, words, rank, _closest_holds(question, record)))


def _closest_holds(question: EvalQuestion, record: dict) -> bool:
    """Whether an abstention quoting the closest sentence (assistant/answering.py) quotes a gold answer."""
    quote = closest_quote(record["answer"]) if record["abstained"] else None
    return quote is not None and question.answerable and contains_answer(quote, question.answers)


def _failure(question: EvalQuestion, answered: bool, correct: bool, words: int, rank: int | None,
             closest_holds: bool = False) -> str | None:
    """Where a wrong answer went wrong, in the words the report uses."""
    if correct:
        return None
    if not question.answerable:
        return "answered an unanswerable question"
    if question.evidence_doc_ids and rank is None:
        return "retrieval missed the evidence"
    if not answered and closest_holds:
        return "abstained, quoting as the closest sentence one that holds the answer"
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


# ---------------------------------------------------------------- a run


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
