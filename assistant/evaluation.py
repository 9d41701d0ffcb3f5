"""The eval harness: ask a question set through the assistant, score it, gate it on a baseline.

``assistant eval`` ingests a document set into a fresh store, asks every question
through :meth:`Assistant.ask` (the code path of ``assistant ask``), scores the
answers with the metrics of :mod:`assistant.metrics` (defined in ``eval/README.md``),
writes answers, metrics and a report (:mod:`assistant.report`), and, given a
baseline, fails when a gated metric dropped by more than its tolerance
(:mod:`assistant.gate`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from assistant.contract import Filters
from assistant.gate import Comparison, compare, load_baseline, make_baseline
from assistant.metrics import (EvalError, EvalQuestion, EvalRun, Score, abstention_curve, aggregate, breakdown,
                               load_questions, score_answer)
from assistant.pipeline import Assistant
from assistant.report import write_report
from assistant.settings import Settings

# Questions from user feedback without a corrected answer: listed for a reviewer, never scored.
REVIEW_TYPE = "needs_review"
SHOWN_INGEST_PROBLEMS = 3  # skipped documents and warnings named under the ingest line
SETTINGS_SHOWN = ("top_k", "candidates", "hybrid", "chunk_size", "chunk_overlap", "abstain_threshold",
                  "closest_threshold", "max_answer_sentences", "max_answer_words", "llm")


def ask_all(bot, questions: list[EvalQuestion], top_k: int | None = None,
            progress: bool = True, desc: str = "eval") -> tuple[list[dict], list[Score]]:
    """Ask every question through ``bot.ask`` (replaying its history first) and score the answers.

    Returns the ``ask --json`` records (plus ``"id"``) and their scores.
    """
    from tqdm import tqdm

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
    questions = [q for q in load_questions(questions_file, limit) if q.type != REVIEW_TYPE]
    if not questions:
        raise EvalError(f"{questions_file} holds no question to score (only {REVIEW_TYPE} ones)")
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
            # ids relative to the documents folder, unprefixed (the baselines name them so)
            report = bot.ingest([documents], progress=progress,
                                bundled=documents if documents.is_dir() else documents.parent)
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


def write_outputs(run: EvalRun, out: Path, comparison: Comparison | None = None) -> None:
    """answers.jsonl, details.jsonl, metrics.json, report.md and report.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "answers.jsonl", "w", encoding="utf-8") as fh:
        for record in run.records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(out / "details.jsonl", "w", encoding="utf-8") as fh:
        for s in run.scores:
            fh.write(json.dumps(asdict(s), ensure_ascii=False) + "\n")
    (out / "metrics.json").write_text(json.dumps(run.metrics_json(), indent=2) + "\n", encoding="utf-8")
    write_report(run, out, comparison)


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
    review = [q for q in load_questions(questions_file, limit) if q.type == REVIEW_TYPE]
    if review:
        print(f"{len(review)} question(s) of type {REVIEW_TYPE} are listed, not scored (give them "
              "answers or type unanswerable to score them):")
        for q in review:
            print(f"  {q.id}: {q.question}")
        if len(review) == len(load_questions(questions_file, limit)):
            return 0
    previous = None  # read before the run, so a missing baseline fails fast
    if baseline_path.is_file() and (baseline or update_baseline) or baseline and not update_baseline:
        previous = load_baseline(baseline_path)
    run = run_eval(settings, documents, questions_file, limit=limit, top_k=top_k, name=name,
                   fresh_store=fresh_store, progress=progress)
    out = Path(out) if out else Path("eval") / "out" / run.name
    comparison = compare(run, previous, _display(baseline_path)) if previous else None
    write_outputs(run, out, comparison)

    m = run.metrics
    ingest_lines = run.ingest_summary.splitlines() or [""]
    print(f"{run.name}: {m['questions']} questions in {run.seconds:.0f} s; ingest: {ingest_lines[0]}")
    for line in ingest_lines[1:1 + SHOWN_INGEST_PROBLEMS]:  # why a document was skipped, or a warning
        print(f"  {line}")
    if len(ingest_lines) > 1 + SHOWN_INGEST_PROBLEMS:
        print(f"  ... and {len(ingest_lines) - 1 - SHOWN_INGEST_PROBLEMS} more (`assistant ingest` lists them all)")
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
