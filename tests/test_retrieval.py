"""Retrieval: hybrid search, user filters on metadata, and time-aware questions."""

from __future__ import annotations

import json

import pytest

from assistant.contract import Filters

ARTICLES = [
    {"id": "mayor-2023", "title": "Harbour town elects a mayor", "source": "Gazette", "published_at": "2023-03-01",
     "text": "Harbour town elected Ada Lovelace as mayor on Tuesday. She won 61% of the vote."},
    {"id": "mayor-2024", "title": "Harbour town elects a new mayor", "source": "Courier", "published_at": "2024-03-05",
     "text": "Harbour town elected Grace Hopper as mayor on Tuesday. She won 58% of the vote."},
    {"id": "bakery", "title": "Bakery opens", "source": "Gazette", "published_at": "2024-01-10",
     "text": "A bakery on Mill Street opened and sells 300 loaves of sourdough a day."},
]


@pytest.fixture
def dated_bot(bot, tmp_path):
    dump = tmp_path / "news.jsonl"
    dump.write_text("\n".join(json.dumps(a) for a in ARTICLES))
    bot.ingest([dump], progress=False)
    return bot


def test_exact_terms_win_through_bm25_even_when_embeddings_are_vague(dated_bot):
    passages = dated_bot.retriever.retrieve("sourdough loaves Mill Street", top_k=3).passages
    assert passages[0].doc_id == "bakery"
    assert passages[0].bm25 > 0 and passages[0].dense_rank is not None


def test_articles_published_after_the_question_date_are_demoted(dated_bot):
    question = "Who was elected as the new mayor of Harbour town?"
    assert dated_bot.ask(question).retrieved_doc_ids[0] == "mayor-2024"
    asked_2023 = dated_bot.ask(question, filters=Filters(as_of="2023-06-01"))
    assert asked_2023.retrieved_doc_ids[0] == "mayor-2023"
    assert "Ada Lovelace" in asked_2023.text


def test_latest_questions_prefer_the_newest_articles_up_to_the_question_date(dated_bot):
    question = "Who is the latest mayor elected in Harbour town?"
    assert dated_bot.ask(question).retrieved_doc_ids[0] == "mayor-2023"
    answer = dated_bot.ask(question, filters=Filters(as_of="2024-12-01"))
    assert answer.retrieved_doc_ids[0] == "mayor-2024"
    assert "Grace Hopper" in answer.text


def test_source_filter_keeps_only_that_outlet(dated_bot):
    answer = dated_bot.ask("Who was elected mayor?", filters=Filters(source="courier"))
    assert answer.retrieved_doc_ids == ["mayor-2024"]


def test_date_range_filters_use_publication_dates(dated_bot):
    since = dated_bot.retriever.retrieve("mayor elected", filters=Filters(since="2024-01-01")).passages
    assert {p.doc_id for p in since} <= {"mayor-2024", "bakery"}
    until = dated_bot.retriever.retrieve("mayor elected", filters=Filters(until="2023-12-31")).passages
    assert {p.doc_id for p in until} == {"mayor-2023"}


def test_bm25_index_follows_incremental_ingests(dated_bot, tmp_path):
    assert not dated_bot.retriever.retrieve("lighthouse keeper", top_k=1).passages[0].bm25
    note = dated_bot.settings.corpus_dir / "lighthouse.txt"
    note.write_text("The lighthouse keeper counted 412 ships in 1911.")
    dated_bot.ingest(progress=False)
    top = dated_bot.retriever.retrieve("lighthouse keeper", top_k=1).passages[0]
    assert top.doc_id == "lighthouse.txt" and top.bm25 > 0
