"""Private uploads: the owner is recorded on every chunk and retrieval shows a user only public
passages and their own, in an embedded store and on a real Chroma server."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import replace

import pytest

from assistant.ownership import OWNER_KEY, PRIVATE_KEY, upload_owner
from assistant.pipeline import Assistant
from assistant.contract import Filters
from assistant.retrieval import Retriever
from assistant.settings import Settings
from tests.chroma_server import chroma_command, running_chroma
from tests.conftest import CORPUS, TEST_CHROMA_URL, drop_store

ALICE_DOC = "The Quillfeather lighthouse was repainted in 2021 with 340 litres of white paint.\n"
BOB_DOC = "The Brannock ferry timetable changes on 3 March; the last boat leaves at 21:40.\n"
PUBLIC_DOC = "The Port Ellery harbour festival opens on 14 May every year.\n"
LIGHTHOUSE = "How many litres of paint did the Quillfeather lighthouse need?"
FERRY = "When does the last Brannock ferry leave?"


def corpus_with_uploads(base):
    corpus = base / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "uploads" / "alice").mkdir(parents=True)
    (corpus / "uploads" / "bob").mkdir()
    (corpus / "uploads" / "alice" / "lighthouse.md").write_text(ALICE_DOC)
    (corpus / "uploads" / "bob" / "ferry.md").write_text(BOB_DOC)
    (corpus / "uploads" / "festival.md").write_text(PUBLIC_DOC)
    return corpus


def doc_ids(passages) -> set[str]:
    return {p.doc_id for p in passages}


def check_visibility(bot: Assistant) -> None:
    bot.ingest(progress=False)
    owners = {}
    for chunk in bot.store.chunks():
        owners[chunk.metadata["doc_id"]] = (chunk.metadata.get(OWNER_KEY), chunk.metadata.get(PRIVATE_KEY))
    assert owners["uploads/alice/lighthouse.md"] == ("alice", 1)
    assert owners["uploads/bob/ferry.md"] == ("bob", 1)
    assert owners["uploads/festival.md"] == (None, None) and owners["netflix-ai-job-ad.md"] == (None, None)

    for hybrid in (True, False):  # the where-clause alone (dense only), and with the BM25 half
        retriever = Retriever(bot.store, bot.retriever.encoder, replace(bot.retriever.options, hybrid=hybrid))
        for user, own, other in (("alice", "uploads/alice/lighthouse.md", "uploads/bob/ferry.md"),
                                 ("bob", "uploads/bob/ferry.md", "uploads/alice/lighthouse.md")):
            seen = set()
            for question in (LIGHTHOUSE, FERRY, "harbour festival", "Netflix job salary"):
                seen |= doc_ids(retriever.retrieve(question, 50, Filters(visible_to=user)).passages)
            assert own in seen and "uploads/festival.md" in seen and "netflix-ai-job-ad.md" in seen
            assert other not in seen, (user, hybrid)

    answer = bot.ask(LIGHTHOUSE, filters=Filters(visible_to="alice"))
    assert "340 litres" in answer.text and answer.citations[0].doc_id == "uploads/alice/lighthouse.md"
    refused = bot.ask(LIGHTHOUSE, filters=Filters(visible_to="bob"))
    assert "340" not in refused.text and all("alice" not in c.doc_id for c in refused.citations)
    # no owner rule (the CLI, eval): everything in the store is searchable
    assert "uploads/bob/ferry.md" in doc_ids(bot.retriever.retrieve(FERRY, 50).passages)


def test_private_uploads_are_seen_by_their_owner_only(tmp_path):
    corpus = corpus_with_uploads(tmp_path)
    bot = Assistant(Settings(corpus_dir=corpus, store_dir=tmp_path / "store"))
    check_visibility(bot)


@pytest.mark.slow
def test_private_uploads_are_seen_by_their_owner_only_on_a_chroma_server(tmp_path):
    corpus = corpus_with_uploads(tmp_path)
    if TEST_CHROMA_URL:
        url = TEST_CHROMA_URL
        context = None
    else:
        if chroma_command() is None:
            pytest.skip("the `chroma` command is missing")
        context = running_chroma(tmp_path / "chroma-data", tmp_path / "chroma.log")
        url = context.__enter__()
    try:
        bot = Assistant(Settings(corpus_dir=corpus, chroma_url=url, collection=f"own-{uuid.uuid4().hex[:12]}"))
        try:
            check_visibility(bot)
        finally:
            drop_store(bot)
    finally:
        if context is not None:
            context.__exit__(None, None, None)


def test_only_files_in_a_user_folder_of_the_corpus_uploads_have_an_owner(tmp_path):
    corpus = tmp_path / "corpus"
    assert upload_owner(corpus / "uploads" / "alice" / "a.md", corpus) == "alice"
    assert upload_owner(corpus / "uploads" / "alice" / "sub" / "a.md", corpus) == "alice"
    assert upload_owner(corpus / "uploads" / "a.md", corpus) is None
    assert upload_owner(corpus / "a.md", corpus) is None
    assert upload_owner(tmp_path / "elsewhere" / "uploads" / "alice" / "a.md", corpus) is None
    assert upload_owner(corpus / "uploads" / "alice" / "a.md", None) is None
