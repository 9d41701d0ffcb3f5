"""The shape of the question path: one orchestrator, answerers behind one method, stateless retrieval,
and the small pure functions on that path (fusion, the as-of arithmetic, trimming, dates, chunk ids)."""

from __future__ import annotations

from datetime import date

import pytest

from assistant import pipeline
from assistant.answering import _trim
from assistant.chunking import chunk_document
from assistant.contract import (ABSTAIN_MESSAGE, Answer, Citation, FilterError, Filters, Passage, normalise_date,
                                sentence_updates)
from assistant.loading import load_path
from assistant.pipeline import Assistant
from assistant.retrieval import (FUTURE_PENALTY, RECENCY_BOOST, RECENCY_HALF_LIFE_DAYS, WEEK_BOOST, WEEK_HALF_LIFE_DAYS,
                                 RetrievalOptions, Retriever, apply_as_of, fuse)
from assistant.text import split_sentences
from tests.conftest import CORPUS, make_pdf
from tests.fake_openai import FakeOpenAI

FIRST_TURN = "What job did Netflix advertise for its machine learning platform?"
FOLLOW_UP = "How much does it pay?"


# ---------------------------------------------------------------- a third answerer


class FirstSentence:
    """A trivial answerer: the first sentence of the best passage, cited (what a new contributor writes)."""

    def respond(self, query, passages, evidence, stream=True):
        if not passages:
            yield ABSTAIN_MESSAGE, Answer(query.question, ABSTAIN_MESSAGE, True)
            return
        best = passages[0]
        start, end = split_sentences(best.text)[0]
        quote = best.text[start:end]
        yield from sentence_updates(Answer(query.question, f"{quote} [1]", False,
                                           [Citation.of(1, best, quote, best.score)], passages))


def test_a_third_answerer_is_one_class_and_one_registry_line(seeded_bot, monkeypatch):
    monkeypatch.setitem(pipeline.ANSWERERS, "first-sentence", lambda settings: FirstSentence())
    bot = Assistant(seeded_bot.settings.model_copy(update={"llm": "first-sentence"}))

    asked = bot.ask(FIRST_TURN)
    *growing, (final_text, streamed) = bot.stream(FIRST_TURN)

    passage = bot.retriever.retrieve(FIRST_TURN).passages[0]
    first_sentence = passage.text[slice(*split_sentences(passage.text)[0])]
    assert asked.text == f"{first_sentence} [1]" and not asked.abstained
    assert asked.citations[0].doc_id == "netflix-ai-job-ad.md" and asked.citations[0].quote == first_sentence
    assert asked.retrieved_doc_ids[0] == "netflix-ai-job-ad.md" and asked.latency_ms > 0, "the pipeline fills these"
    assert streamed.text == final_text == asked.text and all(answer is None for _, answer in growing)


# ---------------------------------------------------------------- follow-ups are rewritten once, the same way


def test_the_llm_fallback_answers_a_follow_up_exactly_as_the_extractive_path_does(seeded_bot):
    down = FakeOpenAI()
    url = down.base_url
    down._server.server_close()  # connections are refused: the condense step fails, then the answer falls back
    llm = Assistant(seeded_bot.settings.with_overrides(llm="openai", llm_base_url=url, llm_retries=0,
                                                       llm_model="fake"))
    first = seeded_bot.ask(FIRST_TURN)
    history = [(FIRST_TURN, first.text)]

    extractive = seeded_bot.ask(FOLLOW_UP, history=history)
    fallback = llm.ask(FOLLOW_UP, history=history)

    note, _, text = fallback.text.partition("\n\n")
    assert note.startswith(f"Note: the LLM endpoint {url} is not reachable")
    assert text == extractive.text and "$900,000" in text
    assert [c.public() for c in fallback.citations] == [c.public() for c in extractive.citations]
    assert fallback.retrieved_doc_ids == extractive.retrieved_doc_ids


# ---------------------------------------------------------------- retrieval keeps no state between searches


def test_each_search_carries_the_term_weights_of_the_index_it_used(bot):  # its own store: it ingests
    bot.ingest(progress=False)
    before = bot.retriever.retrieve("lighthouse keeper")
    note = bot.settings.corpus_dir / "lighthouse.txt"
    note.write_text("The lighthouse keeper counted 412 ships in 1911. The lighthouse stood on the cape.")
    bot.ingest(progress=False)
    after = bot.retriever.retrieve("lighthouse keeper")

    assert after.passages[0].doc_id == "lighthouse.txt"
    assert after.idf("lighthous") < before.idf("lighthous"), "a term that is now in the corpus weighs less"
    assert before.idf("lighthous") == before.idf("lighthous"), "an earlier search's weights did not move"
    assert "lighthouse.txt" not in before.doc_ranking and after.doc_ranking[0] == "lighthouse.txt"


def test_without_hybrid_only_dense_similarity_ranks(seeded_bot):
    dense_only = Retriever(seeded_bot.store, seeded_bot.retriever.encoder, RetrievalOptions(hybrid=False))
    found = dense_only.retrieve("How much does the machine learning job pay?", top_k=4)

    assert len(found.passages) == 4
    assert all(p.bm25_rank is None and p.bm25 == 0.0 for p in found.passages)
    assert [p.score for p in found.passages] == [p.dense for p in found.passages]
    assert [p.dense_rank for p in found.passages] == [0, 1, 2, 3]


# ---------------------------------------------------------------- fusion and the as-of arithmetic


def _passage(name: str, dense_rank=None, bm25_rank=None, dense=0.0, bm25=0.0, ordinal=None) -> Passage:
    return Passage(name, name, "text", dense=dense, bm25=bm25, dense_rank=dense_rank, bm25_rank=bm25_rank,
                   extra={"date_ordinal": ordinal})


def test_reciprocal_rank_fusion_adds_one_over_k_plus_rank_per_retriever():
    both = _passage("both", dense_rank=1, bm25_rank=0)
    dense = _passage("dense", dense_rank=0)
    lexical = _passage("lexical", bm25_rank=1)
    fuse([both, dense, lexical], "rrf", bm25_weight=0.45, rrf_k=60)

    assert both.score == pytest.approx(1 / 62 + 1 / 61)
    assert dense.score == pytest.approx(1 / 61)
    assert lexical.score == pytest.approx(1 / 62)


def test_weighted_fusion_scales_bm25_by_the_leader_and_gives_bm25_only_hits_the_lowest_cosine():
    a = _passage("a", dense_rank=0, bm25_rank=1, dense=0.8, bm25=5.0)
    b = _passage("b", dense_rank=1, dense=0.6)
    c = _passage("c", bm25_rank=0, bm25=10.0)
    fuse([a, b, c], "weighted", bm25_weight=0.5, rrf_k=60)

    assert a.score == pytest.approx(0.5 * 0.5 + 0.5 * 0.8)
    assert b.score == pytest.approx(0.5 * 0.6)
    assert c.score == pytest.approx(0.5 * 1.0 + 0.5 * 0.6)


def test_as_of_demotes_later_articles_favours_the_questions_week_and_the_newest_for_latest_questions():
    as_of = "2024-05-31"
    asked = date(2024, 5, 31).toordinal()
    newest = _passage("newest", ordinal=asked + 2)  # within the 2-day publication lag: allowed
    older = _passage("older", ordinal=asked + 2 - 14)  # two week half-lives, one recency half-life older
    future = _passage("future", ordinal=asked + 3)  # after the lag: demoted
    undated = _passage("undated")
    for p in (newest, older, future, undated):
        p.score = 1.0

    apply_as_of([newest, older, future, undated], "Who is the latest mayor?", as_of)

    assert newest.score == pytest.approx((1 + WEEK_BOOST) * (1 + RECENCY_BOOST))
    assert older.score == pytest.approx((1 + WEEK_BOOST * 0.25) * (1 + RECENCY_BOOST * 0.5))
    assert WEEK_HALF_LIFE_DAYS == 7 and RECENCY_HALF_LIFE_DAYS == 14  # the half-lives the figures above use
    assert future.score == pytest.approx(FUTURE_PENALTY), "a demoted article gets no week or recency boost"
    assert undated.score == 1.0

    plain = [_passage("week", ordinal=asked), _passage("future", ordinal=asked + 30)]
    for p in plain:
        p.score = 1.0
    apply_as_of(plain, "Who was elected mayor?", as_of)
    assert [p.score for p in plain] == [pytest.approx(1 + WEEK_BOOST * 0.5 ** (2 / 7)),
                                        pytest.approx(FUTURE_PENALTY)], "the week's boost only, no recency boost"


# ---------------------------------------------------------------- trimming, dates, filters


def test_trim_keeps_short_sentences_and_cuts_long_ones_to_the_window_densest_in_question_terms():
    assert _trim("  A short sentence.  ", 10, "anything") == "A short sentence."
    sentence = "One two three four five six seven eight nine ten: the job salary pays $900,000 a year."
    assert _trim(sentence, 3, "What salary does the job pay?") == "job salary pays", "the window densest in terms"
    assert _trim(sentence, 4, "What salary does the job pay?") == "the job salary pays", "the first of equals"
    assert _trim(sentence, 3, "Which number?") == "One two three", "no question term: the first window"


@pytest.mark.parametrize("raw, iso", [
    ("2024-05-31", "2024-05-31"),
    ("2024-05-31T23:10:00Z", "2024-05-31"),
    ("2024/05/31", "2024-05-31"),
    ("31 May 2024", "2024-05-31"),
    ("May 31, 2024", "2024-05-31"),
    ("31 May 2024", "2024-05-31"),
    ("20240531", "2024-05-31"),
    ("  ", ""),
    ("sometime in spring", "sometime in spring"),
])
def test_dates_are_normalised_to_iso_or_kept_as_written(raw, iso):
    assert normalise_date(raw) == iso


def test_filters_are_validated_once_with_the_field_and_the_fix_named():
    with pytest.raises(FilterError, match=r"'since' date 'last tuesday' is not a date like 2024-05-31"):
        Filters(since="last tuesday")
    with pytest.raises(FilterError, match="'as-of'"):
        Filters(as_of="2024-13-01")
    dated = Filters(since="2024-01-01", until="2024-12-31")
    assert dated.matches({"date_ordinal": date(2024, 6, 1).toordinal()})
    assert not dated.matches({"date_ordinal": date(2023, 12, 31).toordinal()})
    assert not dated.matches({}), "an undated chunk is outside any date range"


# ---------------------------------------------------------------- chunk ids did not change


def test_chunk_ids_and_links_are_those_existing_stores_hold():
    """Literal ids and links made by the code before the splitter assigned ids itself: a store built
    then re-ingests as unchanged instead of re-embedding."""
    doc = next(load_path(CORPUS / "netflix-ai-job-ad.md", CORPUS, 64))
    nodes = chunk_document(doc, "0123456789abcdef" * 4, "corpus", 128, 16)

    ids = [f"netflix-ai-job-ad.md::0123456789ab::0:{i}" for i in range(6)]
    assert [n.node_id for n in nodes] == ids
    assert [n.prev_node.node_id if n.prev_node else None for n in nodes] == [None] + ids[:-1]
    assert [n.next_node.node_id if n.next_node else None for n in nodes] == ids[1:] + [None]
    assert all(n.metadata["chunk_index"] == i and n.metadata["n_chunks"] == 6 for i, n in enumerate(nodes))


def test_pages_of_a_pdf_are_numbered_in_their_ids_and_linked_only_within_a_page(tmp_path):
    path = make_pdf(tmp_path / "report.pdf", ["First page. " * 80, "Second page. " * 80])
    doc = next(load_path(path, tmp_path, 64))
    nodes = chunk_document(doc, "f" * 64, "pdfs", 64, 8)
    pages = {n.metadata["page"] for n in nodes}
    assert pages == {1, 2}
    for page in pages:
        on_page = [n for n in nodes if n.metadata["page"] == page]
        assert [n.node_id for n in on_page] == [f"report.pdf::ffffffffffff::{page}:{i}" for i in range(len(on_page))]
        assert on_page[0].prev_node is None and on_page[-1].next_node is None
        assert all(n.next_node.node_id == m.node_id for n, m in zip(on_page, on_page[1:]))

