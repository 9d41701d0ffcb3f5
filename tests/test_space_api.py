"""The named endpoints of the signed-in app (`python app.py` with ASSISTANT_USERS), through
gradio_client as two users: each acts as the signed-in user, and no user reaches another user's
documents, history or feedback, in an embedded store and on a real Chroma server."""

from __future__ import annotations

import shutil

import pytest
from gradio_client import Client, handle_file

from assistant.feedback import FeedbackStore
from assistant.history import Database, History
from tests.app_server import ROOT, running_app
from tests.chroma_server import chroma_command, running_chroma
from tests.conftest import TEST_CHROMA_URL

pytestmark = pytest.mark.slow

USERS = {"ASSISTANT_USERS": "alice:pw-alice,bob:pw-bob", "ASSISTANT_ADMINS": "alice"}
NOTE = "The Quillfeather lighthouse was repainted in 2021 with 340 litres of white paint.\n"
LIGHTHOUSE = "How many litres of paint did the Quillfeather lighthouse need?"
SALARY = "How much does the Netflix machine learning job pay?"
NOT_FOUND = "not found (check the id in the document list)"


def start(base, **env):
    shutil.copytree(ROOT / "corpus", base / "corpus")
    return running_app(base / "corpus", base / "store", base / "app.log", **USERS, **env)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("space-api")
    with start(base) as url:
        yield url, base


def sign_in(url: str, name: str) -> Client:
    """A new client is a new session of ``name`` (gradio_client keeps one session per Client)."""
    return Client(url, auth=(name, f"pw-{name}"), analytics_enabled=False, verbose=False, download_files=False)


def upload(client: Client, folder, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return client.predict(files=[handle_file(str(path))], api_name="/upload")


def documents(client: Client) -> dict[str, dict]:
    return {d["doc_id"]: d for d in client.predict(api_name="/documents")}


def test_every_endpoint_is_named_with_its_parameters(app):
    url, _ = app
    api = sign_in(url, "alice").view_api(print_info=False, return_format="dict")
    params = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in api["named_endpoints"].items()}
    assert params == {"/chat": ["message"], "/upload": ["files"], "/documents": [], "/remove": ["doc_id"],
                      "/feedback": ["rating", "comment", "flag", "correction"]}
    assert api["unnamed_endpoints"] == {}  # the page's own handlers are not callable by clients


def test_without_signing_in_or_with_a_wrong_password_nothing_is_reachable(app):
    url, _ = app
    with pytest.raises(Exception, match="credentials were not provided|login"):
        Client(url, analytics_enabled=False, verbose=False).predict(api_name="/documents")
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=("alice", "pw-bob"), analytics_enabled=False, verbose=False)


def test_the_server_log_has_line_progress_and_no_share_hint(app):
    _, base = app
    log = (base / "app.log").read_text()
    assert "ingest: 1/1 documents (6 chunks)\n" in log  # whole lines, as a Space's log shows them
    assert "share=True" not in log and "password sign-in, 2 account(s)" in log


def test_uploads_are_private_to_their_owner_in_documents_chat_and_remove(app, tmp_path):
    url, base = app
    alice, bob = sign_in(url, "alice"), sign_in(url, "bob")
    status = upload(alice, tmp_path, "lighthouse.md", NOTE)
    assert status.splitlines()[0] == "✓ lighthouse.md: added, searchable now"
    assert (base / "corpus" / "uploads" / "alice" / "lighthouse.md").is_file()

    mine, theirs = documents(alice), documents(bob)
    doc = mine["uploads/alice/lighthouse.md"]
    assert set(doc) == {"doc_id", "title", "source", "owner", "chunks", "pages", "origin", "updated"}
    assert (doc["owner"], doc["chunks"], doc["pages"]) == ("alice", 1, None) and doc["updated"].endswith("Z")
    assert mine["netflix-ai-job-ad.md"]["owner"] is None and "netflix-ai-job-ad.md" in theirs
    assert not any("alice" in d for d in theirs)

    answered = alice.predict(message=LIGHTHOUSE, api_name="/chat")
    assert "340 litres" in answered["answer"] and answered["citations"][0]["doc_id"] == "uploads/alice/lighthouse.md"
    refused = bob.predict(message=LIGHTHOUSE, api_name="/chat")
    assert "340" not in refused["answer"] and "340" not in refused["text"]
    assert all("alice" not in c["doc_id"] for c in refused["citations"])
    assert all("alice" not in d for d in refused["retrieved_doc_ids"])

    # bob cannot remove it, and cannot tell it from a document that does not exist
    assert bob.predict(doc_id="uploads/alice/lighthouse.md", api_name="/remove") == \
        f"uploads/alice/lighthouse.md: {NOT_FOUND}"
    assert bob.predict(doc_id="uploads/alice/nothing.md", api_name="/remove") == f"uploads/alice/nothing.md: {NOT_FOUND}"
    assert "uploads/alice/lighthouse.md" in documents(alice)

    assert alice.predict(doc_id="uploads/alice/lighthouse.md", api_name="/remove") == \
        "uploads/alice/lighthouse.md: removed, with its uploaded file"
    assert not (base / "corpus" / "uploads" / "alice" / "lighthouse.md").exists()
    assert "uploads/alice/lighthouse.md" not in documents(alice)
    assert "340" not in alice.predict(message=LIGHTHOUSE, api_name="/chat")["answer"]


def test_bundled_documents_are_removed_by_admins_only_and_their_file_is_kept(tmp_path_factory):
    base = tmp_path_factory.mktemp("space-api-admin")
    with start(base) as url:
        bob, alice = sign_in(url, "bob"), sign_in(url, "alice")
        assert bob.predict(doc_id="netflix-ai-job-ad.md", api_name="/remove") == f"netflix-ai-job-ad.md: {NOT_FOUND}"
        said = alice.predict(doc_id="netflix-ai-job-ad.md", api_name="/remove")
        assert said.startswith("netflix-ai-job-ad.md: removed from the store") and "next ingest" in said
        assert (base / "corpus" / "netflix-ai-job-ad.md").is_file()
        assert documents(bob) == {}


def test_chat_keeps_each_clients_conversation_and_history_per_user(app):
    url, base = app
    alice = sign_in(url, "alice")
    alice.predict(message="What job did Netflix advertise for its machine learning platform?", api_name="/chat")
    follow_up = alice.predict(message="How much does it pay?", api_name="/chat")
    assert "$900,000" in follow_up["answer"]
    bob = sign_in(url, "bob")
    bob.predict(message=SALARY, api_name="/chat")

    history = History(Database(base / "store-history.sqlite3"))
    alices = [history.open("alice", c.id) for c in history.list("alice")]
    conversation = next(c for c in alices if len(c.turns) == 2)
    assert [t.question for t in conversation.turns][1] == "How much does it pay?"
    assert conversation.turns[1].citations[0]["doc_id"] == "netflix-ai-job-ad.md"
    assert all(history.open("bob", c.id) is None for c in history.list("alice"))
    assert all(len(history.open("bob", c.id).turns) == 1 for c in history.list("bob"))


def test_feedback_is_about_the_latest_answer_of_the_session_and_kept_per_user(app):
    url, base = app
    alice, bob = sign_in(url, "alice"), sign_in(url, "bob")
    assert bob.predict(rating="down", comment="", api_name="/feedback").startswith("There is no answer")
    alice.predict(message=SALARY, api_name="/chat")
    said = alice.predict(rating="down", comment="too vague", flag="wrong_citation", correction="",
                         api_name="/feedback")
    assert said.startswith("Thanks: 👎 recorded") and "eval case" in said
    with pytest.raises(Exception, match="rating 'meh' is not 'up' or 'down'"):
        alice.predict(rating="meh", comment="", api_name="/feedback")

    store = FeedbackStore(Database(base / "store-history.sqlite3"))
    entry = [e for e in store.entries("alice") if e.comment == "too vague"][-1]
    assert (entry.question, entry.rating, entry.flag) == (SALARY, "down", "wrong_citation")
    assert entry.citations[0]["doc_id"] == "netflix-ai-job-ad.md" and "$900,000" in entry.answer
    assert store.entries("bob") == []


@pytest.mark.skipif(not TEST_CHROMA_URL and chroma_command() is None, reason="the `chroma` command is missing")
def test_privacy_holds_on_a_chroma_server(tmp_path_factory, tmp_path):
    base = tmp_path_factory.mktemp("space-api-chroma")
    if TEST_CHROMA_URL:
        server = None
        chroma = TEST_CHROMA_URL
    else:
        server = running_chroma(base / "chroma-data", base / "chroma.log")
        chroma = server.__enter__()
    try:
        with start(base, ASSISTANT_CHROMA_URL=chroma, ASSISTANT_COLLECTION=f"space-{base.name[-8:]}") as url:
            alice, bob = sign_in(url, "alice"), sign_in(url, "bob")
            assert upload(alice, tmp_path, "lighthouse.md", NOTE).startswith("✓ lighthouse.md: added")
            assert documents(alice)["uploads/alice/lighthouse.md"]["owner"] == "alice"
            assert "uploads/alice/lighthouse.md" not in documents(bob)
            assert "340" not in bob.predict(message=LIGHTHOUSE, api_name="/chat")["answer"]
            assert "340 litres" in alice.predict(message=LIGHTHOUSE, api_name="/chat")["answer"]
            assert bob.predict(doc_id="uploads/alice/lighthouse.md", api_name="/remove").endswith(NOT_FOUND)
    finally:
        if server is not None:
            server.__exit__(None, None, None)


HF_SPACE_ENV = {  # what a Space with `hf_oauth: true` sets; the provider is never contacted here
    "ASSISTANT_AUTH": "hf", "ASSISTANT_ADMINS": "alice", "SYSTEM": "spaces", "SPACE_ID": "team/assistant",
    "OAUTH_CLIENT_ID": "test-client", "OAUTH_CLIENT_SECRET": "test-secret", "OAUTH_SCOPES": "openid profile",
    "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}


def hf_session_cookie(username: str) -> str:
    """The session cookie Gradio sets after Hugging Face sign-in, signed as Gradio signs it (an
    injected profile: no network)."""
    import base64
    import hashlib
    import json
    import time

    from itsdangerous import TimestampSigner

    userinfo = {"name": username.title(), "preferred_username": username, "profile": "", "picture": ""}
    session = {"oauth_info": {"userinfo": userinfo, "access_token": "x", "expires_at": int(time.time()) + 3600}}
    secret = hashlib.sha256((HF_SPACE_ENV["OAUTH_CLIENT_SECRET"] + "-v4").encode()).hexdigest()
    signed = TimestampSigner(secret).sign(base64.b64encode(json.dumps(session).encode("utf-8")))
    return "session=" + signed.decode("utf-8")


def hf_client(url: str, username: str | None = None) -> Client:
    headers = {"Cookie": hf_session_cookie(username)} if username else None
    return Client(url, headers=headers, analytics_enabled=False, verbose=False, download_files=False)


def test_with_hugging_face_sign_in_the_user_is_the_oauth_profile(tmp_path_factory, tmp_path):
    base = tmp_path_factory.mktemp("space-api-hf")
    shutil.copytree(ROOT / "corpus", base / "corpus")
    with running_app(base / "corpus", base / "store", base / "app.log", **HF_SPACE_ENV) as url:
        anonymous = hf_client(url)
        for call in (dict(api_name="/documents"), dict(message=SALARY, api_name="/chat"),
                     dict(doc_id="netflix-ai-job-ad.md", api_name="/remove")):
            with pytest.raises(Exception, match="Please sign in with Hugging Face first"):
                anonymous.predict(**call)

        alice, bob = hf_client(url, "alice"), hf_client(url, "bob")
        assert upload(alice, tmp_path, "lighthouse.md", NOTE).startswith("✓ lighthouse.md: added")
        assert documents(alice)["uploads/alice/lighthouse.md"]["owner"] == "alice"
        assert "uploads/alice/lighthouse.md" not in documents(bob)
        assert "340" not in bob.predict(message=LIGHTHOUSE, api_name="/chat")["answer"]
        # alice is an admin by her Hugging Face name: she may remove a bundled document
        assert alice.predict(doc_id="netflix-ai-job-ad.md", api_name="/remove").startswith(
            "netflix-ai-job-ad.md: removed from the store")
