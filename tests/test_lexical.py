"""The lexical index on disk (SQLite FTS5): BM25 as bm25s scores it, updates by document, sync by ids."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

import assistant  # noqa: F401  (offline environment)
from assistant import lexical
from assistant.chunking import chunk_document
from assistant.lexical import IndexedChunk, LexicalIndex, chunk_terms, index_path
from assistant.loading import load_path
from assistant.settings import Settings
from assistant.text import terms
from tests.conftest import drop_store

ROOT = Path(__file__).resolve().parent.parent
SQUAD_DOCS = ROOT / "eval" / "squad2-dev" / "documents.jsonl"


def chunk(chunk_id: str, text: str, doc_id: str = "", doc_hash: str = "h1", title: str = "") -> IndexedChunk:
    return IndexedChunk(chunk_id, text, {"doc_id": doc_id or chunk_id.split("::")[0], "doc_hash": doc_hash,
                                         "title": title, "origin": "test", "n_chunks": 1})


@pytest.fixture(scope="module")
def squad_chunks() -> list[IndexedChunk]:
    """The chunks of the first 120 squad2-dev documents, from the real loader and chunker."""
    settings = Settings()
    out = []
    for doc in list(load_path(SQUAD_DOCS, SQUAD_DOCS.parent, settings.max_file_mb))[:120]:
        for node in chunk_document(doc, doc.content_hash(), "test", settings.chunk_size, settings.chunk_overlap):
            out.append(IndexedChunk(node.node_id, node.text, dict(node.metadata)))
    return out


def test_scores_match_bm25s_on_squad_chunks(tmp_path, squad_chunks):
    import bm25s

    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add(squad_chunks)
    tokens = [chunk_terms(c) for c in squad_chunks]
    vocab = Counter(t for toks in tokens for t in set(toks))
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    questions = [json.loads(line)["question"] for line in open(SQUAD_DOCS.parent / "questions.jsonl")][:60]
    compared = 0
    for question in questions:
        query = [t for t in terms(question) if t in vocab]
        if not query:
            continue
        ids, scores = model.retrieve([query], k=10, show_progress=False, n_threads=1)
        expected = [float(s) for s in scores[0] if s > 0]
        got = index.search(query, 10)
        assert [round(s, 3) for _, s in got] == [round(s, 3) for s in expected], question
        top = squad_chunks[int(ids[0][0])].chunk_id
        assert got[0][0].chunk_id == top or abs(got[0][1] - got[1][1]) < 1e-4, question
        compared += 1
    assert compared > 40


def test_index_persists_and_reopens_without_rebuilding(tmp_path, squad_chunks):
    path = tmp_path / "lexical.sqlite3"
    first = LexicalIndex(path)
    first.add(squad_chunks)
    before = first.search(terms("BSkyB interactive service"), 3)
    first.close()
    again = LexicalIndex(path)
    assert again.size == len(squad_chunks)
    assert [(c.chunk_id, s) for c, s in again.search(terms("BSkyB interactive service"), 3)] == \
        [(c.chunk_id, s) for c, s in before]
    assert before[0][0].text and before[0][0].metadata["doc_id"]


def test_removing_a_document_drops_its_terms_and_counts(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk("a::1", "The lighthouse keeper counted ships."), chunk("b::1", "A keeper of bees."),
               chunk("b::2", "Bees make honey in summer.", doc_id="b")])
    assert index.doc_freq("keeper") == 2 and index.size == 3
    assert index.remove_document("b") == 2
    assert index.size == 1 and index.doc_freq("keeper") == 1 and index.doc_freq("honey") == 0
    assert [c.chunk_id for c, _ in index.search(["honey", "keeper"], 5)] == ["a::1"]


def test_new_version_of_a_document_replaces_the_old_one_only_when_asked(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk("doc::old::0", "Old text about tides.", doc_id="doc", doc_hash="old")])
    index.add([chunk("doc::new::0", "New text about harbours.", doc_id="doc", doc_hash="new")])
    assert index.size == 2  # written first, so a crash never leaves the document missing
    assert index.remove_document("doc", keep_hash="new") == 1
    assert [c.chunk_id for c, _ in index.search(terms("tides harbours"), 5)] == ["doc::new::0"]
    assert index.documents() == [("doc", "new", "test", 1, 1)]


def test_adding_a_chunk_again_replaces_it(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk("a::1", "apples")])
    index.add([chunk("a::1", "pears")])
    assert index.size == 1 and index.doc_freq("appl") == 0 and index.doc_freq("pear") == 1


def test_terms_with_punctuation_and_quotes_match_as_whole_terms(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk("a::1", "Inflation reached 3.5% in the U.S. while O'Neil's \"plan\" cost $1,200."),
               chunk("b::1", "Five percent, says the plan.")])
    for question in ("3.5%", "U.S.", "O'Neil", "$1,200"):
        hits = index.search(terms(question), 5)
        assert hits and hits[0][0].chunk_id == "a::1", question
    assert index.search(['"plan', "AND", "NEAR("], 5) == []  # FTS5 syntax in a term is just text


def test_idf_is_high_for_rare_terms_and_positive_for_common_ones(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk(f"d{i}::0", f"common words here {'zebra' if i == 0 else ''}") for i in range(20)])
    assert index.idf("zebra") > index.idf("common") > 0
    assert index.idf("unseen") > index.idf("zebra")


def test_a_private_upload_is_searched_only_for_its_owner(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    private = chunk("uploads/ana/plan.md::0", "The glacier plan of Ana.")
    private.metadata.update(owner="ana", private=1)
    index.add([private, chunk("news::0", "A public glacier report.")])
    found = lambda user: [c.chunk_id for c, _ in index.search(["glacier"], 5, visible_to=user)]
    assert found("ana") == ["uploads/ana/plan.md::0", "news::0"]
    assert found("bo") == ["news::0"]
    assert len(index.search(["glacier"], 5)) == 2  # no user given: the CLI and eval see everything


def test_second_process_sees_writes_of_the_first(tmp_path):
    path = tmp_path / "lexical.sqlite3"
    reader = LexicalIndex(path)
    writer = LexicalIndex(path)
    writer.add([chunk("late::0", "A late report on glaciers.")])
    assert [c.chunk_id for c, _ in reader.search(["glacier"], 3)] == ["late::0"]


def test_index_path_is_beside_an_embedded_store_and_per_server_otherwise(tmp_path):
    assert index_path(tmp_path / "s", None, "articles", tmp_path / "c") == tmp_path / "s" / "lexical.sqlite3"
    a = index_path(None, "http://127.0.0.1:8000", "articles", tmp_path / "c")
    b = index_path(None, "http://127.0.0.1:8001", "articles", tmp_path / "c")
    assert a != b and a.parent == tmp_path / "c"


def test_an_older_layout_is_replaced_and_refilled_by_sync(tmp_path):
    path = tmp_path / "lexical.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE chunks (x)")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    index = LexicalIndex(path)
    assert index.size == 0 and index.revision == ""


def test_an_index_whose_terms_were_made_by_other_rules_is_refilled_by_sync(bot, tmp_path, monkeypatch):
    # A version of the code that made terms another way (say, split "non-Islamic" in two) left its
    # index behind: searching it with terms made by today's rules would quietly miss chunks.
    bot.ingest(progress=False)
    path = tmp_path / "replica.sqlite3"
    LexicalIndex(path).sync(bot.store)
    monkeypatch.setattr(lexical, "terms", lambda text: terms(text.replace("-", " ")))
    index = LexicalIndex(path)
    assert index.size == 0 and index.revision == ""
    assert index.sync(bot.store) == (bot.store.count(), 0)
    assert LexicalIndex(path).size == bot.store.count(), "the same rules again: kept"


def test_sync_reads_only_what_changed_in_the_store(bot, tmp_path):
    bot.ingest(progress=False)
    index = LexicalIndex(tmp_path / "replica.sqlite3")
    assert index.sync(bot.store) == (bot.store.count(), 0)
    assert index.sync(bot.store) == (0, 0)  # same revision: not even the ids are read

    note = bot.settings.corpus_dir / "lighthouse.txt"
    note.write_text("The lighthouse keeper counted 412 ships in 1911.")
    bot.ingest(progress=False)
    assert index.sync(bot.store) == (1, 0)
    assert index.search(terms("lighthouse keeper"), 1)[0][0].metadata["doc_id"] == "lighthouse.txt"

    note.unlink()
    bot.ingest(progress=False)
    assert index.sync(bot.store) == (0, 1)
    assert index.size == bot.store.count()


def test_a_long_ingest_writes_the_index_as_it_goes_and_replicas_see_it_once_complete(settings, tmp_path, monkeypatch):
    import assistant.store
    from assistant.pipeline import Assistant

    monkeypatch.setattr(assistant.store, "LEXICAL_FLUSH_CHUNKS", 2)  # archive-sized, in miniature
    bot = Assistant(settings.model_copy(update={"ingest_batch_chunks": 1}))
    docs = tmp_path / "docs"
    docs.mkdir()
    for n, place in enumerate(["Quorvane", "Zintaru", "Velmora", "Ostrand", "Kelvath"]):
        (docs / f"{place.lower()}.txt").write_text(f"The harbour of {place} opened in {1900 + n}.")
    replica = LexicalIndex(tmp_path / "replica.sqlite3")
    replica.sync(bot.store)
    before = replica.size

    seen = []
    add = bot.store.add

    def recording_add(nodes):
        add(nodes)
        seen.append((bot.store.lexical.size, replica.sync(bot.store)))

    monkeypatch.setattr(bot.store, "add", recording_add)
    try:
        bot.ingest([docs], prune=False, progress=False)
        sizes = [size for size, _ in seen]
        assert len(sizes) == 5 and sizes[-1] < before + 5 and max(sizes) > before  # written early, not all held
        assert all(synced == (0, 0) for _, synced in seen)  # mid-ingest, a replica keeps the last complete state
        assert bot.store.lexical.size == bot.store.count() and bot.store.lexical.revision == bot.store.revision()
        assert replica.sync(bot.store) == (5, 0)
        assert replica.search(terms("harbour Velmora"), 1)[0][0].metadata["doc_id"].endswith("velmora.txt")
    finally:
        drop_store(bot)
