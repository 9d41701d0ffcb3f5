"""Each user's conversations, kept in one SQLite file beside the store (or ``ASSISTANT_HISTORY_DB``).

The file is opened in WAL mode with a busy timeout, so several app replicas can share it on one
volume. Every read and write names the user, and a conversation of another user is reported as
not found: a user sees, reopens, exports and deletes only their own conversations. A turn keeps
the answer with its citations (quotes and passages), so a reopened conversation shows the sources
of every answer again.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from assistant.contract import read_as

BUSY_TIMEOUT_S = 10.0
TITLE_CHARS = 80

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (user, updated);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    question TEXT NOT NULL, answer TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation, id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, created TEXT NOT NULL,
    rating TEXT NOT NULL, comment TEXT NOT NULL, correction TEXT NOT NULL, flag TEXT NOT NULL,
    question TEXT NOT NULL, history TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL,
    conversation TEXT, turn INTEGER);
CREATE INDEX IF NOT EXISTS feedback_by_user ON feedback (user, created);
"""


def now() -> str:
    """The current time as ISO 8601 UTC (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Database:
    """The SQLite file shared by history and feedback; one short connection per operation."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError(f"cannot use {self.path} for history and feedback ({exc}); "
                             "set ASSISTANT_HISTORY_DB to a writable file") from None
        except OSError as exc:
            raise ValueError(f"cannot create {self.path.parent} ({exc.strerror or exc}); "
                             "set ASSISTANT_HISTORY_DB to a writable file") from None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()


@dataclass
class Turn:
    """One question and its answer: ``answer`` is the answer text, ``citations`` full citation dicts,
    ``closest`` the dict of the sentence a refusal quoted as the closest (``Answer.closest``) or None,
    ``corrections`` the [word asked, word read] pairs of the question's misspelt words (``Answer.corrections``)."""

    id: int
    question: str
    answer: str
    abstained: bool
    citations: list[dict] = field(default_factory=list)
    created: str = ""
    closest: dict | None = None
    corrections: list[list[str]] = field(default_factory=list)


@dataclass
class Conversation:
    """A conversation of one user; ``turns`` is empty in a listing."""

    id: str
    title: str
    created: str
    updated: str
    turns: list[Turn] = field(default_factory=list)


class History:
    """Per-user conversations in a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, user: str, first_question: str) -> str:
        """A new conversation of ``user``, titled after its first question; returns its id."""
        conversation = uuid.uuid4().hex[:16]
        title = " ".join(first_question.split())
        title = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"
        stamp = now()
        with self.db.connect() as db:
            db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", (conversation, user, title, stamp, stamp))
        return conversation

    def add_turn(self, user: str, conversation: str | None, question: str, answer: str, abstained: bool,
                 citations: list[dict], closest: dict | None = None,
                 corrections: list[list[str]] | None = None) -> tuple[str, int]:
        """Append a turn to ``user``'s conversation (a new one when ``conversation`` is None or not
        theirs); returns (conversation id, turn id)."""
        if conversation is None or not self._owns(user, conversation):
            conversation = self.start(user, question)
        payload = json.dumps({"answer": answer, "abstained": bool(abstained), "citations": citations,
                              "closest": closest, "corrections": corrections or []}, ensure_ascii=False)
        stamp = now()
        with self.db.connect() as db:
            cursor = db.execute("INSERT INTO turns (conversation, question, answer, created) VALUES (?, ?, ?, ?)",
                                (conversation, question, payload, stamp))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (stamp, conversation))
        return conversation, int(cursor.lastrowid)

    def list(self, user: str) -> list[Conversation]:
        """``user``'s conversations, most recently updated first (without their turns)."""
        with self.db.connect() as db:
            rows = db.execute("SELECT id, title, created, updated FROM conversations WHERE user = ? "
                              "ORDER BY updated DESC, rowid DESC", (user,)).fetchall()
        return [Conversation(r["id"], r["title"], r["created"], r["updated"]) for r in rows]

    def open(self, user: str, conversation: str) -> Conversation | None:
        """``user``'s conversation with its turns, or None (also when it belongs to someone else)."""
        with self.db.connect() as db:
            row = db.execute("SELECT id, title, created, updated FROM conversations WHERE id = ? AND user = ?",
                             (conversation, user)).fetchone()
            if row is None:
                return None
            turns = db.execute("SELECT id, question, answer, created FROM turns WHERE conversation = ? "
                               "ORDER BY id", (conversation,)).fetchall()
        found = Conversation(row["id"], row["title"], row["created"], row["updated"])
        for t in turns:
            data = json.loads(t["answer"])
            found.turns.append(Turn(t["id"], t["question"], data.get("answer", ""), bool(data.get("abstained")),
                                    list(data.get("citations") or []), t["created"], data.get("closest"),
                                    list(data.get("corrections") or [])))
        return found

    def delete(self, user: str, conversation: str) -> bool:
        """Delete ``user``'s conversation; False when they have none with that id."""
        with self.db.connect() as db:
            deleted = db.execute("DELETE FROM conversations WHERE id = ? AND user = ?", (conversation, user)).rowcount
        return bool(deleted)

    def export_markdown(self, user: str, conversation: str) -> str | None:
        """``user``'s conversation as Markdown: each question, its answer and its numbered sources
        with their quotes; None when not found."""
        found = self.open(user, conversation)
        return None if found is None else conversation_markdown(found)

    def _owns(self, user: str, conversation: str) -> bool:
        with self.db.connect() as db:
            return db.execute("SELECT 1 FROM conversations WHERE id = ? AND user = ?",
                              (conversation, user)).fetchone() is not None


def conversation_markdown(conversation: Conversation) -> str:
    """A conversation as Markdown with its citations (title, document, page, quote)."""
    lines = [f"# {conversation.title}", "", f"_Started {conversation.created}, last turn {conversation.updated}_"]
    for number, turn in enumerate(conversation.turns, 1):
        lines += ["", f"## {number}. {turn.question}", "", turn.answer]
        if turn.corrections:
            lines += ["", f"_{read_as(tuple(map(tuple, turn.corrections)))}_"]
        if turn.citations:
            lines += ["", "Sources:", ""]
            for c in turn.citations:
                where = ", ".join(str(x) for x in (c.get("source"), c.get("doc_id"),
                                                   f"page {c['page']}" if c.get("page") else "", c.get("date")) if x)
                lines.append(f"- [{c.get('n')}] {c.get('title') or c.get('doc_id')} ({where}): “{c.get('quote', '')}”")
    return "\n".join(lines) + "\n"
