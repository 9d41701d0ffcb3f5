"""The question mix the answerer is fitted and measured on (used by bench/fit_answerer.py).

Every question set is asked of its own corpus (answerable, or SQuAD's adversarial unanswerables)
and of every other corpus (off-corpus: the right response is to abstain). Each ask goes through
:meth:`Assistant.ask` (history and ``question_date`` as the eval harness passes them); what the
answerer was handed (its query, the passages, the question terms' weights) is cached, so refitting
never re-runs retrieval.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

from assistant.contract import Filters, Passage
from assistant.features import UNSEEN_TERM
from assistant.metrics import load_questions
from assistant.text import terms

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT.parent / "shared" / "data" / "news-dev"
SETS = {  # name -> (documents, questions)
    "squad2-dev": (ROOT / "eval/squad2-dev/documents.jsonl", ROOT / "eval/squad2-dev/questions.jsonl"),
    "corpus": (ROOT / "corpus", ROOT / "eval/corpus/questions.jsonl"),
    "news-dev": (NEWS / "documents.jsonl", NEWS / "questions.jsonl"),
}


@dataclass
class Case:
    """One question asked of one corpus, with what the answerer saw."""

    set: str          # the question's own set
    corpus: str       # the corpus it was asked of
    id: str
    query: str        # the answerer's query (history folded in for follow-ups)
    question_date: str | None
    golds: list[str]  # empty when the right response is to abstain
    kind: str         # answerable | adversarial | off-corpus
    group: str        # fold key: the question's set and document (paragraphs of one document stay together)
    passages: list[Passage] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)  # idf of the query's terms in that corpus

    def idf(self, term: str) -> float:
        return self.weights.get(term, 0.0)


def available_sets() -> dict[str, tuple[Path, Path]]:
    """The sets whose files exist here (news-dev only where ../shared/data/news-dev does)."""
    return {name: paths for name, paths in SETS.items() if paths[0].exists() and paths[1].exists()}


def ask_cases(bot, corpus: str, sets: dict[str, tuple[Path, Path]]) -> list[Case]:
    """Ask every question of every set of ``bot``'s corpus (named ``corpus``) and record the inputs."""
    seen: list[tuple] = []
    original = bot.answerer.respond

    def capture(query, passages, evidence, stream=True):
        weights = {t: evidence.idf(t) for t in set(terms(query.answer)) | {UNSEEN_TERM}}
        seen.append((query.answer, [_copy(p) for p in passages], weights))
        return original(query, passages, evidence, stream)

    bot.answerer.respond = capture
    cases: list[Case] = []
    try:
        for name, (_, questions_file) in sets.items():
            for q in load_questions(questions_file):
                history: list[tuple[str, str]] = []
                filters = Filters(as_of=q.question_date)
                for earlier in q.history:
                    history.append((earlier, bot.ask(earlier, filters=filters, history=history or None).text))
                seen.clear()
                bot.ask(q.question, filters=filters, history=history or None)
                query, passages, weights = seen[-1] if seen else (q.question, [], {})
                own = name == corpus
                kind = ("answerable" if q.answerable else "adversarial") if own else "off-corpus"
                doc = (q.evidence_doc_ids or q.extra.get("related_doc_ids") or [q.id])[0]
                cases.append(Case(name, corpus, q.id, query, q.question_date,
                                  q.answers if own and q.answerable else [], kind,
                                  f"{name}/{doc}", passages, weights))
    finally:
        bot.answerer.respond = original
    return cases


def _copy(passage: Passage) -> Passage:
    return Passage(**{**passage.__dict__, "extra": dict(passage.extra)})


def load(path: Path) -> list[Case]:
    return pickle.loads(Path(path).read_bytes())


def save(cases: list[Case], path: Path) -> None:
    Path(path).write_bytes(pickle.dumps(cases))
