""""What is this article about?": a question about a whole document is answered with the lead of
the document meant (cited, verbatim), not refused for want of a sentence that repeats its words;
when several documents could be meant and nothing says which, the assistant asks which."""

from __future__ import annotations

import pytest

from assistant.chat import RuleRewriter
from assistant.contract import ABSTAIN_MESSAGE, Filters
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import CORPUS, drop_store, store_backend

ARTICLE = "netflix-ai-job-ad.md"
LEAD = "Netflix has placed an ad for a product manager of a machine learning platform"
FERRY = ("# Brannock ferry news\n\nBy the harbour desk\n\n"
         "The Brannock ferry will carry bicycles free of charge from 3 March. "
         "The harbour board approved the change on Tuesday after a year of complaints.\n\n"
         "Tickets for cars still cost 14 pounds each way.\n")
LIGHTHOUSE = ("The Quillfeather lighthouse was repainted in 2021 with 340 litres of white paint. "
              "Volunteers from the village did the work over six weekends.\n")


@pytest.mark.parametrize("question", ["What is this article about?", "Summarize the article.", "What's it about?",
                                      "Can you give me a short summary?", "What are the main points?", "tl;dr"])
def test_a_question_about_the_one_article_is_answered_with_its_lead(seeded_bot, question):
    answer = seeded_bot.ask(question)
    assert not answer.abstained and answer.text != ABSTAIN_MESSAGE, answer.text
    assert answer.text.startswith(LEAD) and answer.text.endswith("[1]")
    assert [c.doc_id for c in answer.citations] == [ARTICLE]
    assert all(part in c.passage for c in answer.citations for part in c.quote.split(" … "))


@pytest.mark.parametrize("question, overview", [
    ("What is this article about?", True), ("Summarise the ferry report", True), ("Give me an overview", True),
    ("What is the Netflix article about?", True), ("What is the Brannock ferry story about?", True),
    ("What is the strike about?", False), ("What does the AMPTP say about AI?", False),
    ("Who reported the job ad first?", False), ("What is the job about?", False),
])
def test_only_questions_about_a_whole_document_ask_for_its_lead(question, overview):
    assert RuleRewriter().rewrite(question, []).overview is overview


@pytest.fixture
def two_documents(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "ferry.md").write_text(FERRY)
    (corpus / "lighthouse.md").write_text(LIGHTHOUSE)
    bot = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "store")))
    bot.ingest(progress=False)
    yield bot
    drop_store(bot)


def test_the_lead_skips_headings_and_bylines_and_keeps_to_the_budget(two_documents):
    answer = two_documents.ask("Summarise the ferry article.")
    assert answer.text.startswith("The Brannock ferry will carry bicycles free of charge from 3 March. [1]")
    assert "approved the change on Tuesday" in answer.text  # a second lead sentence fits the 60 words
    assert "# Brannock" not in answer.text and "By the harbour desk" not in answer.text
    assert {c.doc_id for c in answer.citations} == {"ferry.md"}


def test_with_several_documents_and_nothing_to_say_which_it_asks_which(two_documents):
    answer = two_documents.ask("What is this article about?")
    assert answer.abstained and answer.citations == []
    assert answer.text.startswith("Which document should I summarise?") and ABSTAIN_MESSAGE not in answer.text
    assert "“" in answer.text  # names one of the documents as an example


def test_a_follow_up_summarises_the_document_of_the_conversation(two_documents):
    first = two_documents.ask("How much paint did the Quillfeather lighthouse need?")
    assert "340 litres" in first.text
    answer = two_documents.ask("Summarize it.", history=[(first.question, first.text)])
    assert not answer.abstained and {c.doc_id for c in answer.citations} == {"lighthouse.md"}
    assert answer.text.startswith("The Quillfeather lighthouse was repainted in 2021")


def test_another_users_private_upload_is_never_summarised(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "uploads" / "alice").mkdir(parents=True)
    (corpus / "uploads" / "alice" / "lighthouse.md").write_text(LIGHTHOUSE)
    (corpus / ARTICLE).write_text((CORPUS / ARTICLE).read_text())
    bot = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "store")))
    bot.ingest(progress=False)
    try:
        for question in ("Summarise the lighthouse article.", "What is this article about?"):
            answer = bot.ask(question, filters=Filters(visible_to="bob"))
            assert "Quillfeather" not in answer.text and all("alice" not in c.doc_id for c in answer.citations)
        own = bot.ask("Summarise the lighthouse article.", filters=Filters(visible_to="alice"))
        assert own.citations and own.citations[0].doc_id == "uploads/alice/lighthouse.md"
    finally:
        drop_store(bot)


def test_in_the_chat_an_upload_is_summarised_by_its_subject_and_a_bare_request_asks_which(bot, tmp_path):
    from html import unescape

    from assistant.ui import ChatApp

    bot.ingest(progress=False)
    note = tmp_path / "lighthouse.txt"
    note.write_text(LIGHTHOUSE)
    app = ChatApp(bot)
    status, _ = app.upload([str(note)])
    assert "lighthouse.txt: added" in status

    *_, (_, messages, sources, session) = app.respond("What is this article about?", [], None, 5)
    assert "Which document should I summarise?" in unescape(messages[-1]["content"])
    *_, (_, messages, sources, session) = app.respond("Summarise the Quillfeather lighthouse note", messages,
                                                     session, 5)
    shown = unescape(messages[-1]["content"].split('<div class="answer-sources">')[0])
    assert "The Quillfeather lighthouse was repainted in 2021" in shown and "[1]" in shown
    assert "uploads/lighthouse.txt" in sources


def test_with_an_llm_the_model_is_given_the_lead_and_its_checked_summary_is_the_answer(seeded_bot):
    from tests.fake_openai import FakeOpenAI, Reply

    with FakeOpenAI() as server:
        server.script(Reply("Netflix is advertising a machine learning product manager job paying $300,000 to "
                            "$900,000 a year while actors and writers strike [1]."))
        llm = Assistant(seeded_bot.settings.with_overrides(
            llm="openai", llm_base_url=server.base_url, llm_model="fake-model", llm_timeout=5.0,
            llm_backoff=0.01, llm_retries=1, llm_api_key="sk-test"))
        answer = llm.ask("What is this article about?")
        prompt = "\n".join(m["content"] for m in server.requests[-1]["messages"])
    assert LEAD in prompt.split("Question:")[0]  # the lead chunk is passage [1] of the prompt
    assert not answer.abstained and "$900,000" in answer.text and answer.citations[0].doc_id == ARTICLE


def test_a_question_after_the_summary_that_names_its_own_subject_is_answered_as_itself(seeded_bot):
    summary = seeded_bot.ask("What is this article about?")
    history = [(summary.question, summary.text)]
    answer = seeded_bot.ask("Who reported the job ad first?", history=history)
    assert any("first reported by The Intercept" in c.quote for c in answer.citations), answer.text
    # a definite reference with little else still leans on the conversation
    rewritten = RuleRewriter().rewrite("How much does the job pay?", history)
    assert rewritten.search != rewritten.question


def test_a_pdf_with_a_title_page_is_summarised_from_its_first_page_of_text(tmp_path):
    from tests.conftest import make_pdf

    corpus = tmp_path / "docs"
    corpus.mkdir()
    make_pdf(corpus / "club.pdf", [
        "Riverside Cycling Club\nAnnual Report 2023\nPrepared by the Committee",
        "The club grew to 214 members during the year.\nMost members ride on Sunday mornings along the river path.",
    ])
    (corpus / "ferry.md").write_text(FERRY)
    # top_k 1: the search finds the title page alone, as in a corpus where the report's other
    # pages rank below other documents' passages
    bot = Assistant(Settings(corpus_dir=corpus, top_k=1, **store_backend(tmp_path / "store")))
    bot.ingest(progress=False)
    try:
        answer = bot.ask("Summarise the Riverside Cycling Club annual report.")
        assert not answer.abstained, answer.text
        assert answer.text.startswith("The club grew to 214 members during the year. [1]")
        assert answer.citations[0].page == 2 and answer.citations[0].doc_id == "club.pdf"
    finally:
        drop_store(bot)
