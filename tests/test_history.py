"""Conversations and feedback per user in one SQLite file; feedback exported as eval questions."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.feedback import FeedbackStore, eval_question
from assistant.history import Database, History
from tests.conftest import CORPUS, ROOT

NETFLIX = "netflix-ai-job-ad.md"
CITATION = {"n": 1, "doc_id": NETFLIX, "title": "Netflix advertises an AI job", "source": "DevStyleR",
            "page": None, "quote": "The salary range is $300,000 to $900,000.", "score": 0.9,
            "passage": "Netflix ... The salary range is $300,000 to $900,000. ...", "url": "", "date": "2023-07-27"}


@pytest.fixture
def db(tmp_path) -> Database:
    return Database(tmp_path / "store-history.sqlite3")


def test_a_conversation_is_kept_with_its_turns_and_sources_and_reopens(db):
    history = History(db)
    conversation, _ = history.add_turn("alice", None, "What job did Netflix advertise?", "A product manager [1].",
                                       False, [CITATION])
    same, _ = history.add_turn("alice", conversation, "How much does it pay?", "$300,000 to $900,000 [1].",
                               False, [CITATION])
    assert same == conversation

    reopened = History(Database(db.path)).open("alice", conversation)  # a new process would see the same
    assert reopened.title == "What job did Netflix advertise?"
    assert [t.question for t in reopened.turns] == ["What job did Netflix advertise?", "How much does it pay?"]
    assert reopened.turns[1].citations == [CITATION] and reopened.turns[1].abstained is False
    assert [c.id for c in history.list("alice")] == [conversation]


def test_a_user_sees_only_their_own_conversations(db):
    history = History(db)
    alices, _ = history.add_turn("alice", None, "Alice's question", "answer", False, [])
    assert history.list("bob") == []
    assert history.open("bob", alices) is None and history.export_markdown("bob", alices) is None
    assert history.delete("bob", alices) is False and history.open("alice", alices) is not None
    # bob cannot append to alice's conversation either: his turn starts a conversation of his own
    bobs, _ = history.add_turn("bob", alices, "Bob's question", "answer", False, [])
    assert bobs != alices and [t.question for t in history.open("alice", alices).turns] == ["Alice's question"]


def test_delete_removes_the_conversation_and_its_turns(db):
    history = History(db)
    conversation, _ = history.add_turn("alice", None, "q", "a", False, [CITATION])
    assert history.delete("alice", conversation) is True
    assert history.open("alice", conversation) is None and history.list("alice") == []
    with sqlite3.connect(db.path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0


def test_export_is_markdown_with_each_answer_and_its_citations(db):
    history = History(db)
    conversation, _ = history.add_turn("alice", None, "How much does it pay?", "$300,000 to $900,000 [1].",
                                       False, [CITATION])
    markdown = history.export_markdown("alice", conversation)
    assert markdown.startswith("# How much does it pay?\n")
    assert "## 1. How much does it pay?\n\n$300,000 to $900,000 [1]." in markdown
    assert ("- [1] Netflix advertises an AI job (DevStyleR, netflix-ai-job-ad.md, 2023-07-27): "
            "“The salary range is $300,000 to $900,000.”") in markdown


def test_the_file_is_in_wal_mode_and_takes_writes_from_several_threads(db):
    with sqlite3.connect(db.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    history = History(db)
    errors = []

    def write(user):
        try:
            for i in range(20):
                history.add_turn(user, None, f"q{i}", "a", False, [])
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"user{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and all(len(history.list(f"user{n}")) == 20 for n in range(4))


def test_an_unusable_history_file_is_one_clear_line(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="set ASSISTANT_HISTORY_DB to a writable file"):
        Database(tmp_path / "a-file" / "history.sqlite3")


# ---------------------------------------------------------------- feedback


def add(store: FeedbackStore, **kwargs):
    values = dict(user="alice", rating="down", question="How much does it pay?", answer="$5 [1].",
                  citations=[CITATION], history=[("What job did Netflix advertise?", "A product manager [1].")])
    return store.add(**{**values, **kwargs})


def test_feedback_keeps_question_history_answer_citations_user_and_time(db):
    store = FeedbackStore(db)
    entry = add(store, comment="the pay is wrong", flag="wrong_citation")
    stored = FeedbackStore(Database(db.path)).entries()[0]
    assert stored == entry
    assert (stored.user, stored.rating, stored.flag, stored.comment) == ("alice", "down", "wrong_citation",
                                                                        "the pay is wrong")
    assert stored.history == [["What job did Netflix advertise?", "A product manager [1]."]]
    assert stored.citations == [CITATION] and stored.created[:2] == "20" and stored.created.endswith("+00:00")
    assert FeedbackStore(db).entries("bob") == []


@pytest.mark.parametrize("kwargs, says", [
    ({"rating": "meh"}, "rating 'meh' is not 'up' or 'down'"),
    ({"flag": "rude"}, "flag 'rude' is not one of"),
    ({"flag": "should_abstain", "correction": "$900,000"}, "contradict"),
])
def test_unusable_feedback_is_refused_with_one_line(db, kwargs, says):
    with pytest.raises(ValueError, match=says):
        add(FeedbackStore(db), **kwargs)
    assert FeedbackStore(db).entries() == []


def test_down_votes_and_flags_become_eval_questions_of_the_documented_types(db):
    store = FeedbackStore(db)
    corrected = eval_question(add(store, correction="$300,000 to $900,000"))
    assert corrected["id"].startswith("fb-") and len(corrected["id"]) == 13
    assert {k: v for k, v in corrected.items() if k != "id"} == {
        "question": "How much does it pay?", "history": ["What job did Netflix advertise?"],
        "answers": ["$300,000 to $900,000"], "evidence_doc_ids": [NETFLIX], "type": "feedback"}
    abstain = eval_question(add(store, rating="up", flag="should_abstain"))
    assert (abstain["answers"], abstain["type"], abstain["evidence_doc_ids"]) == ([], "unanswerable", [NETFLIX])
    review = eval_question(add(store, flag="wrong_citation"))
    assert (review["answers"], review["type"], review["evidence_doc_ids"]) == ([], "needs_review", [])
    assert eval_question(add(store, rating="up")) is None  # a plain thumbs-up is not an eval case
    assert len({corrected["id"], abstain["id"], review["id"]}) == 3


# ---------------------------------------------------------------- the CLI and the eval harness


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.slow
def test_exported_feedback_runs_in_assistant_eval_and_needs_review_is_listed_not_scored(tmp_path):
    store_dir = tmp_path / "store"
    feedback = FeedbackStore(Database(tmp_path / "store-history.sqlite3"))
    add(feedback, question="How much does the Netflix machine learning job pay?", history=[],
        correction="$300,000 to $900,000")
    add(feedback, question="What is the boiling point of tungsten?", history=[], flag="should_abstain",
        citations=[])
    add(feedback, question="Which outlet reported the job?", history=[], comment="check this")
    add(feedback, rating="up", question="not exported", history=[])

    listed = cli("feedback", "list", "--store", str(store_dir), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 4 and "(needs_review)" in listed.stdout
    counts = cli("feedback", "counts", "--store", str(store_dir), "--json", cwd=tmp_path)
    day = json.loads(counts.stdout.splitlines()[-1])
    assert (day["up"], day["down"], day["flagged"]) == (1, 3, 1)

    out = tmp_path / "feedback.jsonl"
    exported = cli("feedback", "export", "--store", str(store_dir), "--out", str(out), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "wrote 3 eval question(s)" in exported.stdout
    types = [json.loads(line)["type"] for line in out.read_text().splitlines()]
    assert types == ["feedback", "unanswerable", "needs_review"]

    ran = cli("eval", "--quiet", "--documents", str(CORPUS), "--questions", str(out), "--out",
              str(tmp_path / "eval"), cwd=ROOT)
    assert ran.returncode == 0, ran.stderr
    assert "1 question(s) of type needs_review are listed, not scored" in ran.stdout
    assert "Which outlet reported the job?" in ran.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert (metrics["questions"], metrics["answerable"], metrics["unanswerable"]) == (2, 1, 1)
    assert metrics["answer_accuracy"] == 1.0  # the corrected answer is what the assistant says, and it abstains


def test_feedback_commands_without_a_history_file_say_where_they_looked(tmp_path):
    result = cli("feedback", "list", "--store", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"no history file at {tmp_path / 'nowhere-history.sqlite3'}" in result.stderr
    assert not (tmp_path / "nowhere-history.sqlite3").exists()
    missing_out = cli("feedback", "export", "--store", str(tmp_path / "s"), cwd=tmp_path)
    assert missing_out.returncode == 2 and "needs --out FILE" in missing_out.stderr
