"""The page's handlers act as the user of the request: history, library, feedback and publishing,
over a real store (in-process; the endpoints are tested over HTTP in test_space_api.py)."""

from __future__ import annotations

import re

import pytest

from assistant.handlers import SpaceHandlers
from assistant.ui import ChatApp
from assistant.users import auth_config
from tests.test_users import FakeProfile, FakeRequest

NOTE = "The Quillfeather lighthouse was repainted in 2021 with 340 litres of white paint.\n"
LIGHTHOUSE = "How many litres of paint did the Quillfeather lighthouse need?"


@pytest.fixture
def handlers(bot):
    bot.ingest(progress=False)
    return SpaceHandlers(ChatApp(bot), auth_config(None, "alice:a,bob:b", "alice"))


def listed(panel: str) -> list[str]:
    return re.findall(r'data-doc="([^"]+)"', panel)


def ask(handlers, request, question, session=None):
    *_, (_, messages, sources, session) = handlers.respond(question, [], session, 5, "", "", "", request, None)
    return messages, sources, session


def test_a_refusal_quoting_the_closest_sentence_shows_its_passage_live_and_when_reopened(handlers):
    alice = FakeRequest("alice")
    messages, sources, session = ask(handlers, alice, "Which famous actors joined the strike?")
    assert "No cited answer" in messages[-1]["content"]
    for panel in (sources, handlers.on_open(session.conversation, alice, None)[1]):
        assert "No sources cited" in panel and "<mark>The writers went on strike in May" in panel


def test_how_a_misspelt_word_was_read_is_shown_under_the_answer_live_reopened_and_exported(handlers):
    alice = FakeRequest("alice")
    messages, _, session = ask(handlers, alice, "Who reportd the job ad first?")
    said = "Read “reportd” as “reported”."
    assert said in messages[-1]["content"] and "The Intercept" in messages[-1]["content"]
    reopened = handlers.on_open(session.conversation, alice, None)[0]
    assert said in reopened[-1]["content"]
    file, _ = handlers.on_export(session.conversation, alice, None)
    assert f"_{said}_" in open(file["value"]).read()
    messages, _, _ = ask(handlers, alice, "Who reported the job ad first?")
    assert "Read “" not in messages[-1]["content"], "a question spelt right says nothing of the kind"


def test_a_conversation_reopens_for_its_owner_only(handlers):
    alice, bob = FakeRequest("alice"), FakeRequest("bob")
    _, _, session = ask(handlers, alice, "What job did Netflix advertise for its machine learning platform?")
    _, _, session = ask(handlers, alice, "How much does it pay?", session)
    conversation = session.conversation

    messages, sources, reopened, status = handlers.on_open(conversation, alice, None)
    assert status.startswith("Reopened: 2 turn(s)") and reopened.turns == session.turns
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert 'href="#src-2-1"' in messages[3]["content"] and "<mark>" in sources

    for handler in (handlers.on_open, handlers.on_export, handlers.on_delete):
        assert "Choose one of your conversations first." in handler(conversation, bob, None)
    assert handlers.space.history.open("alice", conversation) is not None
    file, status = handlers.on_export(conversation, alice, None)
    assert status.startswith("Exported") and open(file["value"]).read().startswith("# What job did Netflix")
    choices, said = handlers.on_delete(conversation, alice, None)
    assert said == "Deleted." and choices["choices"] == []


def test_thumbs_then_details_make_one_feedback_entry_of_the_clicked_answer(handlers):
    class Like:
        def __init__(self, index, liked):
            self.index, self.liked = index, liked

    alice = FakeRequest("alice")
    _, _, session = ask(handlers, alice, "What job did Netflix advertise for its machine learning platform?")
    _, _, session = ask(handlers, alice, "How much does it pay?", session)
    assert handlers.on_like(session, Like(0, False), alice, None)[0] == "Feedback is for answers only."
    status, session, selected, about, rating, box = handlers.on_like(session, Like(1, False), alice, None)
    assert rating == "down" and box["open"] is True  # the form opens for details
    assert selected == 0 and "What job did Netflix" in about and status.startswith("Thanks: 👎")
    handlers.on_feedback("down", "wrong_citation", "", "quotes the wrong line", selected, session, alice, None)

    entries = handlers.space.feedback.entries("alice")
    assert len(entries) == 1
    assert (entries[0].question, entries[0].flag, entries[0].comment) == (
        "What job did Netflix advertise for its machine learning platform?", "wrong_citation", "quotes the wrong line")
    said, _ = handlers.on_feedback("down", "should_abstain", "$5", "", None, session, alice, None)
    assert said.startswith("✗") and "contradict" in said


def test_the_library_lists_what_the_user_may_see_and_admins_publish(handlers, tmp_path):
    alice, bob = FakeRequest("alice"), FakeRequest("bob")
    note = tmp_path / "lighthouse.md"
    note.write_text(NOTE)
    status, panel, choices, _ = handlers.on_upload([str(note)], "", bob, None)
    assert "lighthouse.md: added" in status
    assert listed(panel) == ["netflix-ai-job-ad.md", "uploads/bob/lighthouse.md"]
    assert "owner: bob" in panel and "everyone" in panel and "1 chunk ·" in panel
    assert choices["choices"] == ["uploads/bob/lighthouse.md"]  # bob may remove his own upload only
    assert listed(handlers.on_library("lighthouse", bob, None)[0]) == ["uploads/bob/lighthouse.md"]
    assert listed(handlers.on_library("", FakeRequest("carol-unknown"), None)[0]) == []

    assert handlers.space.publish(handlers.user(bob, None), "uploads/bob/lighthouse.md").endswith(
        "not found (check the id in the document list)")
    said, panel, _ = handlers.on_publish("uploads/bob/lighthouse.md", "", alice, None, progress=lambda *a, **k: None)
    assert said.startswith("uploads/bob/lighthouse.md: published as uploads/lighthouse.md")
    assert listed(handlers.on_library("", FakeRequest("bob"), None)[0]) == ["netflix-ai-job-ad.md", "uploads/lighthouse.md"]
    answer, *_ = ask(handlers, alice, LIGHTHOUSE)
    assert "340 litres" in answer[-1]["content"]


def test_hf_handlers_take_the_user_from_the_injected_profile_and_refuse_without_one(bot):
    handlers = SpaceHandlers(ChatApp(bot), auth_config("hf", None, ""))
    assert handlers.on_load(FakeRequest("mallory"), None)[0].startswith("Not signed in")
    assert handlers.on_load(None, FakeProfile("carol"))[0].startswith("Signed in as **carol**")
    messages, sources, _ = ask(handlers, FakeRequest("mallory"), "anything")
    assert messages == [] and "Please sign in with Hugging Face first" in sources
