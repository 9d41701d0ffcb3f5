"""The spelling stage: a misspelt question word is read as the corpus word it meant, and nothing else is.

A word no chunk holds makes a question look like one about another subject, so before this stage
"Who reportd the job ad first?" was told the corpus does not hold the answer.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import assistant  # noqa: F401  (offline environment)
from assistant.contract import Filters, Meta, Query
from assistant.lexical import IndexedChunk, LexicalIndex
from assistant.pipeline import Assistant
from assistant.settings import Settings
from assistant.spelling import Speller, one_edit_away
from assistant.text import terms
from tests.conftest import drop_store, store_backend

REPORT = ("After continued turmoil, a university committee in 1967 issued what became known as the "
          "Kalven Report. The report declared that the university must stay neutral on social and "
          "political action.")


def query(text: str) -> Query:
    return Query(text, text, text)


def chunk(chunk_id: str, text: str, owner: str | None = None) -> IndexedChunk:
    metadata = {"doc_id": chunk_id.split("::")[0], "doc_hash": "h", "title": "", "origin": "test", "n_chunks": 1}
    if owner:
        metadata.update({Meta.OWNER: owner, Meta.PRIVATE: 1})
    return IndexedChunk(chunk_id, text, metadata)


@pytest.fixture
def index(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk("report::0", REPORT), chunk("weather::0", "Heavy rain fell on the coast on Monday.")])
    return index


def test_a_misspelt_word_of_the_article_is_read_as_written_there_and_the_question_answered(seeded_bot):
    answer = seeded_bot.ask("Who reportd the job ad first?")
    assert answer.corrections == (("reportd", "reported"),)
    assert not answer.abstained and "The Intercept" in answer.text and answer.citations
    answer = seeded_bot.ask("How much does the Netflx machine lerning job pay?")
    assert answer.corrections == (("Netflx", "Netflix"), ("lerning", "learning"))
    assert "$900,000" in answer.text and answer.citations


def test_the_cli_says_how_it_read_a_misspelt_word(seeded_bot):
    if seeded_bot.settings.chroma_url:
        pytest.skip("the CLI test reads the embedded store")
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "ask", "Who reportd the job ad first?",
                          "--store", str(seeded_bot.settings.store_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "(Read “reportd” as “reported”.)" in out.stdout and "The Intercept" in out.stdout


def test_words_general_english_knows_and_questions_spelt_right_are_left_alone(seeded_bot):
    # "famous" is in no chunk of the article, but it is an English word, not a typo of one there.
    assert seeded_bot.ask("Which famous actors joined the strike?").corrections == ()
    assert seeded_bot.ask("Who reported the job ad first?").corrections == ()
    # Off the article's subject: still refused, nothing bent into the article's words.
    for question in ("Who is the CEO of Netflix?", "What was the box office of Oppenheimer?"):
        answer = seeded_bot.ask(question)
        assert answer.abstained and answer.corrections == ()


def test_a_typo_is_read_only_where_a_chunk_holds_the_word_beside_the_question_s_other_words(index):
    speller = Speller(index)
    read = speller.correct(query("What did the Kelven Report say about political action?"))
    assert read.corrections == (("Kelven", "Kalven"),)
    assert read.search == read.answer == "What did the Kalven Report say about political action?"
    # No chunk holds "Kalven" beside "weather" or "forecast": a name of another subject stays itself.
    assert speller.correct(query("What was the Kelven weather forecast?")).corrections == ()
    # A question of one word has nothing to vouch for the reading.
    assert speller.correct(query("Kelven?")).corrections == ()


def test_only_chunks_the_asker_may_see_vouch_for_a_reading(tmp_path):
    index = LexicalIndex(tmp_path / "lexical.sqlite3")
    index.add([chunk("private::0", REPORT, owner="alice")])
    speller = Speller(index)
    asked = query("What did the Kelven Report say about political action?")
    assert speller.correct(asked, visible_to="bob").corrections == ()
    assert speller.correct(asked, visible_to="alice").corrections == (("Kelven", "Kalven"),)


def test_one_edit_away_is_a_deletion_insertion_substitution_or_transposition():
    near = one_edit_away("kalven")
    assert {"kalen", "kalvesn", "kelven", "aklven"} <= near and "kalven" not in near
    assert "kelvin" not in near  # two edits


def test_the_setting_turns_the_stage_off(tmp_path, corpus_dir):
    bot = Assistant(Settings(corpus_dir=corpus_dir, spelling=False, **store_backend(tmp_path / "store")))
    try:
        bot.ingest(progress=False)
        answer = bot.ask("Who reportd the job ad first?", filters=Filters())
        assert answer.corrections == () and answer.abstained
    finally:
        drop_store(bot)


def test_spellings_that_differ_only_in_form_give_the_same_terms():
    # A phone's curly apostrophe, an accent, a British spelling: matched on both sides alike.
    assert terms("Netflix’s salary") == terms("Netflix's salary") == terms("Netflix salary")
    assert terms("weren’t it’s") == terms("weren't it's") == []
    assert terms("Copa América") == terms("Copa America")
    assert terms("non-Islamic world") != terms("Islamic world")  # a hyphenated word stays one term
    assert terms("harmonised organisation centre colour analysed") == terms("harmonized organization center color analyzed")
