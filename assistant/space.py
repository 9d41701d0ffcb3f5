"""The team's Space: what a signed-in user may do, over one assistant.

:class:`TeamSpace` is the layer between the Gradio handlers and the assistant. Every method takes
the :class:`~assistant.users.User` the handler read from the request (never a name the client
sent) and acts within that user's rights: questions search the public documents and the user's own
uploads; history and feedback are the user's own; the library lists what the user may see;
removing needs ownership (or an admin); publishing needs an admin. A document a user may not touch
is "not found", the same as one that does not exist, so nothing leaks about other users' files.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from assistant.contract import Filters
from assistant.feedback import FeedbackStore
from assistant.history import Database, History
from assistant.library import DocumentInfo, list_documents, remove_documents
from assistant.ownership import UPLOAD_SUBDIR
from assistant.users import User

NOT_FOUND = "{doc_id}: not found (check the id in the document list)"


@dataclass
class ChatSession:
    """One browser tab's (or API client's) conversation: the stored conversation id, the turns the
    rewriter reads, and each answer's record (question, answer, citations, turn id) for feedback."""

    conversation: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)
    feedback: dict[int, int] = field(default_factory=dict)  # answer index -> feedback entry id


class TeamSpace:
    """Per-user history, feedback and documents over one assistant (``bot``)."""

    def __init__(self, bot, db: Database) -> None:
        self.bot = bot
        self.corpus_dir = Path(bot.settings.corpus_dir)
        self.history = History(db)
        self.feedback = FeedbackStore(db)

    # -- questions
    @staticmethod
    def filters(user: User, filters=None):
        """``filters`` limited to what ``user`` may see (public documents and their own uploads)."""
        if user.owner is None:
            return filters
        return replace(filters or Filters(), visible_to=user.owner)

    def remember(self, user: User, session: ChatSession, question: str, answer) -> ChatSession:
        """Keep a finished answer in ``user``'s history and in the session; returns the session."""
        citations = [asdict(c) for c in answer.citations]
        closest = asdict(answer.closest) if answer.closest else None
        corrections = [list(pair) for pair in answer.corrections]
        session.conversation, turn = self.history.add_turn(user.name, session.conversation, question,
                                                           answer.text, answer.abstained, citations, closest,
                                                           corrections)
        session.answers.append({"question": question, "answer": answer.text, "abstained": answer.abstained,
                                "citations": citations, "closest": closest, "corrections": corrections,
                                "history": list(session.turns), "turn": turn})
        session.turns.append((question, answer.text))
        return session

    def reopen(self, user: User, conversation: str) -> ChatSession | None:
        """A session continuing ``user``'s stored conversation, or None when it is not theirs."""
        found = self.history.open(user.name, conversation)
        if found is None:
            return None
        session = ChatSession(found.id)
        for turn in found.turns:
            session.answers.append({"question": turn.question, "answer": turn.answer, "abstained": turn.abstained,
                                    "citations": turn.citations, "closest": turn.closest,
                                    "corrections": turn.corrections,
                                    "history": list(session.turns), "turn": turn.id})
            session.turns.append((turn.question, turn.answer))
        return session

    def rate(self, user: User, session: ChatSession, rating: str, comment: str = "", flag: str = "",
             correction: str = "", index: int | None = None) -> str:
        """Store ``user``'s feedback on answer ``index`` of the session (default: the latest); feedback
        given again on the same answer in this session replaces the earlier one."""
        if not session.answers:
            return "There is no answer to give feedback on yet: ask a question first."
        index = len(session.answers) - 1 if index is None else index
        record = session.answers[index]
        entry = None
        if index in session.feedback:
            entry = self.feedback.update(session.feedback[index], user.name, rating, comment, correction, flag)
        if entry is None:
            entry = self.feedback.add(user.name, rating, record["question"], record["answer"], record["citations"],
                                      record["history"], comment, correction, flag, session.conversation,
                                      record["turn"])
            session.feedback[index] = entry.id
        thumb = {"up": "👍", "down": "👎"}[entry.rating]
        return (f"Thanks: {thumb} recorded for “{_short(record['question'])}”"
                + (", to be reviewed as an eval case." if entry.exported else "."))

    # -- documents
    def documents(self, user: User, search: str = "") -> list[DocumentInfo]:
        """The documents ``user`` may see (admins: all), whose id, title or source contains ``search``."""
        needle = (search or "").strip().lower()
        return [d for d in list_documents(self.bot.store) if self.may_see(user, d)
                and (not needle or needle in f"{d.doc_id}\n{d.title}\n{d.source}".lower())]

    @staticmethod
    def may_see(user: User, doc: DocumentInfo) -> bool:
        return doc.owner is None or user.admin or doc.owner == user.owner

    @staticmethod
    def may_remove(user: User, doc: DocumentInfo) -> bool:
        return user.admin or (doc.owner is not None and doc.owner == user.owner)

    def find(self, user: User, doc_id: str, test) -> DocumentInfo | None:
        doc = next((d for d in list_documents(self.bot.store) if d.doc_id == doc_id), None)
        return doc if doc is not None and test(user, doc) else None

    def upload_dir(self, user: User) -> Path:
        """Where ``user``'s uploads are saved: ``uploads/<owner>/`` (single-user: ``uploads/``)."""
        base = self.corpus_dir / UPLOAD_SUBDIR
        return base / user.owner if user.owner else base

    def remove(self, user: User, doc_id: str) -> str:
        """Remove a document ``user`` may remove: an upload with its file; a bundled one (admins)
        from the store only."""
        doc_id = (doc_id or "").strip()
        doc = self.find(user, doc_id, self.may_remove)
        if doc is None:
            return NOT_FOUND.format(doc_id=doc_id or "''")
        removal = remove_documents(self.bot.store, [doc.doc_id], self.corpus_dir)[0]
        if not removal.ok or "uploaded file" in removal.message:
            return removal.message
        return (f"{doc.doc_id}: removed from the store; its file is kept, so the next ingest of the corpus "
                "brings it back (delete the file to remove it for good)")

    def publish(self, user: User, doc_id: str) -> str:
        """Make a private upload visible to everyone (admins only): its file moves to ``uploads/``."""
        doc_id = (doc_id or "").strip()
        doc = self.find(user, doc_id, self.may_see) if user.admin else None
        if doc is None:
            return NOT_FOUND.format(doc_id=doc_id or "''")
        file = self._file(doc)
        if doc.owner is None or file is None:
            return f"{doc.doc_id}: already visible to everyone"
        target = self.corpus_dir / UPLOAD_SUBDIR / file.name
        if target.exists():
            return f"{doc.doc_id}: a public upload named {file.name} exists; remove or rename it first"
        shutil.move(str(file), str(target))
        self.bot.store.delete_document(doc.doc_id)
        report = self.bot.ingest([target], prune=False, progress=False)
        return f"{doc.doc_id}: published as {UPLOAD_SUBDIR}/{file.name} ({report.summary().splitlines()[0]})"

    def _file(self, doc: DocumentInfo) -> Path | None:
        """The uploaded file of ``doc`` (None for other documents and JSONL lines)."""
        path = (self.corpus_dir / doc.doc_id).resolve()
        uploads = (self.corpus_dir / UPLOAD_SUBDIR).resolve()
        return path if uploads in path.parents and path.is_file() else None


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
