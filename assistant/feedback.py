"""Feedback on answers, and its way into the eval set.

A user rates an answer up or down, may add a comment or a corrected answer, and may flag it
(``wrong_citation``: a cited source does not say it; ``should_abstain``: the corpus does not hold
the answer). Each entry keeps the question, the earlier turns, the answer, its citations, the user
and the time, in the same SQLite file as the history. :func:`eval_questions` turns the down-voted
and flagged entries into lines of the eval question format, so ``assistant eval`` runs them and a
reviewer can copy them into ``eval/`` for the CI gate.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.history import Database, now

RATINGS = ("up", "down")
FLAGS = ("", "wrong_citation", "should_abstain")
NEEDS_REVIEW = "needs_review"
CORRECTED = "feedback"
UNANSWERABLE = "unanswerable"


@dataclass
class FeedbackEntry:
    """One piece of feedback; ``history`` holds the earlier (question, answer) turns."""

    id: int
    user: str
    created: str
    rating: str
    question: str
    answer: str
    citations: list[dict] = field(default_factory=list)
    history: list[list[str]] = field(default_factory=list)
    comment: str = ""
    correction: str = ""
    flag: str = ""
    conversation: str | None = None
    turn: int | None = None

    @property
    def exported(self) -> bool:
        """Down-voted or flagged: it becomes an eval question."""
        return self.rating == "down" or bool(self.flag)


def check_feedback(rating: str, flag: str = "", correction: str = "") -> tuple[str, str]:
    """The rating and flag, normalised; ``ValueError`` with one line when they are not usable."""
    rating, flag = (rating or "").strip().lower(), (flag or "").strip().lower()
    if rating not in RATINGS:
        raise ValueError(f"rating {rating!r} is not 'up' or 'down'")
    if flag not in FLAGS:
        raise ValueError(f"flag {flag!r} is not one of wrong_citation, should_abstain or empty")
    if flag == "should_abstain" and (correction or "").strip():
        raise ValueError("a corrected answer and 'should have said it is not in the corpus' contradict "
                         "each other; keep one of them")
    return rating, flag


class FeedbackStore:
    """Feedback entries in the shared :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, user: str, rating: str, question: str, answer: str, citations: list[dict],
            history: list[tuple[str, str]] | None = None, comment: str = "", correction: str = "",
            flag: str = "", conversation: str | None = None, turn: int | None = None) -> FeedbackEntry:
        """Store one piece of feedback by ``user`` about ``answer``; returns the stored entry."""
        rating, flag = check_feedback(rating, flag, correction)
        entry = FeedbackEntry(0, user, now(), rating, question, answer, list(citations),
                              [list(t) for t in history or []], (comment or "").strip(),
                              (correction or "").strip(), flag, conversation, turn)
        with self.db.connect() as db:
            cursor = db.execute(
                "INSERT INTO feedback (user, created, rating, comment, correction, flag, question, history, "
                "answer, citations, conversation, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.user, entry.created, entry.rating, entry.comment, entry.correction, entry.flag,
                 entry.question, json.dumps(entry.history, ensure_ascii=False), entry.answer,
                 json.dumps(entry.citations, ensure_ascii=False), conversation, turn))
        entry.id = int(cursor.lastrowid)
        return entry

    def update(self, entry_id: int, user: str, rating: str, comment: str = "", correction: str = "",
               flag: str = "") -> FeedbackEntry | None:
        """Replace the rating, comment, correction and flag of ``user``'s entry ``entry_id`` (a thumb
        given first, details added after); None when ``user`` has no such entry."""
        rating, flag = check_feedback(rating, flag, correction)
        with self.db.connect() as db:
            changed = db.execute("UPDATE feedback SET rating = ?, comment = ?, correction = ?, flag = ? "
                                 "WHERE id = ? AND user = ?", (rating, (comment or "").strip(),
                                                               (correction or "").strip(), flag, entry_id, user))
        if not changed.rowcount:
            return None
        return next(e for e in self.entries(user) if e.id == entry_id)

    def entries(self, user: str | None = None) -> list[FeedbackEntry]:
        """Every entry, oldest first; only ``user``'s when given."""
        query, args = "SELECT * FROM feedback", ()
        if user is not None:
            query, args = query + " WHERE user = ?", (user,)
        with self.db.connect() as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [FeedbackEntry(r["id"], r["user"], r["created"], r["rating"], r["question"], r["answer"],
                              json.loads(r["citations"]), json.loads(r["history"]), r["comment"],
                              r["correction"], r["flag"], r["conversation"], r["turn"]) for r in rows]

    def counts_by_day(self) -> list[dict]:
        """Per day (UTC): how many answers were rated up, down, and flagged."""
        days: dict[str, Counter] = {}
        for entry in self.entries():
            day = days.setdefault(entry.created[:10], Counter())
            day[entry.rating] += 1
            day["flagged"] += bool(entry.flag)
        return [{"day": d, "up": c["up"], "down": c["down"], "flagged": c["flagged"]} for d, c in sorted(days.items())]


def eval_question(entry: FeedbackEntry) -> dict | None:
    """The eval question line for a down-voted or flagged entry (None for the others).

    ``answers`` = [correction] and type ``feedback`` when corrected; [] and ``unanswerable`` for
    ``should_abstain``; else [] and ``needs_review`` (listed by ``assistant eval``, not scored).
    The cited documents are the evidence unless the citation was flagged as wrong.
    """
    if not entry.exported:
        return None
    key = f"{entry.id}|{entry.created}|{entry.user}|{entry.question}"
    evidence: list[str] = []
    if entry.flag != "wrong_citation":
        for citation in entry.citations:
            if citation.get("doc_id") and citation["doc_id"] not in evidence:
                evidence.append(citation["doc_id"])
    if entry.correction:
        answers, kind = [entry.correction], CORRECTED
    elif entry.flag == "should_abstain":
        answers, kind = [], UNANSWERABLE
    else:
        answers, kind = [], NEEDS_REVIEW
    return {"id": "fb-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10], "question": entry.question,
            "history": [turn[0] for turn in entry.history if turn and str(turn[0]).strip()],
            "answers": answers, "evidence_doc_ids": evidence, "type": kind}


def export_eval_questions(entries: list[FeedbackEntry], out: Path) -> int:
    """Write the eval questions of ``entries`` to ``out`` (JSON lines); returns how many."""
    lines = [json.dumps(q, ensure_ascii=False) for q in map(eval_question, entries) if q is not None]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def entry_line(entry: FeedbackEntry) -> str:
    """One line for ``assistant feedback list``."""
    bits = [entry.created, entry.user, entry.rating, entry.flag or "-", f"“{entry.question}”"]
    if entry.correction:
        bits.append(f"correction: {entry.correction}")
    if entry.comment:
        bits.append(f"comment: {entry.comment}")
    return "  ".join(bits)


def entry_json(entry: FeedbackEntry) -> dict:
    return asdict(entry)
