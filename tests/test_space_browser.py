"""The signed-in app in a real headless Chromium, two users in two browser contexts: sign-in,
private uploads, the document library, history after a reload, sources per answer, feedback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from assistant.feedback import FeedbackStore
from assistant.history import Database
from tests.app_server import ROOT, running_app
from tests.test_browser import ANSWER_TIMEOUT_MS, CHROMIUM, LAUNCH_FLAGS, playwright

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install -y chromium"),
]

USERS = {"ASSISTANT_USERS": "alice:pw-alice,bob:pw-bob", "ASSISTANT_ADMINS": "alice"}
LIGHTHOUSE_DOC = "The Quillfeather lighthouse was repainted in 2021 with 340 litres of white paint.\n"
FERRY_DOC = "The Brannock ferry timetable changes on 3 March; the last boat leaves at 21:40.\n"
LIGHTHOUSE = "How many litres of paint did the Quillfeather lighthouse need?"
JOB = "What job did Netflix advertise for its machine learning platform?"
ACTORS = "What percentage of guild actors are paid less than $26,000 a year?"
SHOTS = os.environ.get("ASSISTANT_SCREENSHOT_DIR")  # set it to keep the screenshots (docs/*.png)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("space-browser")
    shutil.copytree(ROOT / "corpus", base / "corpus")
    with running_app(base / "corpus", base / "store", base / "app.log", **USERS) as url:
        yield url, base


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def pages(browser, app):
    """``open(name)``: a signed-in page of ``name`` in its own browser context (its own cookies)."""
    url, _ = app
    contexts = []
    elsewhere: list[str] = []  # requests of any page to a host other than the app

    def open_as(name: str, password: str | None = None, width: int = 1400):
        context = browser.new_context(viewport={"width": width, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.on("request", lambda r: elsewhere.append(r.url)
                if not r.url.startswith((url, "data:", "blob:")) else None)
        page.goto(url, wait_until="load")
        page.locator("input[type=password]").wait_for()
        page.locator("input[type=text]").fill(name)
        page.locator("input[type=password]").fill(password or f"pw-{name}")
        page.get_by_role("button", name="Login").click()
        if password is None:
            page.locator("#question textarea").wait_for(timeout=ANSWER_TIMEOUT_MS)
            page.wait_for_function("document.querySelector('#signed-in')?.innerText.includes('Signed in as')",
                                   timeout=ANSWER_TIMEOUT_MS)
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert elsewhere == [], f"a page reached outside the app: {elsewhere}"


def shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SHOTS:
        shutil.copy(tmp_path / name, Path(SHOTS) / name)


def bot_messages(page):
    return page.locator("#chatbot [data-testid=bot]")


def ask(page, question: str) -> str:
    before = bot_messages(page).count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot [data-testid=bot]').length > n"
        " && !document.querySelector('#chatbot .typing')", arg=before, timeout=ANSWER_TIMEOUT_MS)
    return bot_messages(page).last.locator(".msg").inner_text()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def upload(page, path: Path) -> str:
    open_tab(page, "Documents")
    page.locator("#upload-accordion input[type=file]").set_input_files(str(path))
    page.wait_for_function(f"document.querySelector('#upload-status')?.innerText.includes('{path.name}')",
                           timeout=ANSWER_TIMEOUT_MS)
    return page.locator("#upload-status").inner_text()


def library_text(page) -> str:
    open_tab(page, "Documents")
    return page.locator("#library").inner_text()


def test_sign_in_refuses_a_wrong_password_and_names_the_user(pages):
    wrong = pages("alice", password="pw-bob")
    wrong.get_by_text("Incorrect Credentials").wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert wrong.locator("#question").count() == 0
    page = pages("alice")
    assert "Signed in as alice (admin)" in page.locator("#signed-in").inner_text()
    assert "Signed in as bob:" in pages("bob").locator("#signed-in").inner_text()


def test_private_uploads_are_seen_by_their_owner_only(pages, tmp_path):
    alice, bob = pages("alice"), pages("bob")
    (tmp_path / "lighthouse.md").write_text(LIGHTHOUSE_DOC)
    assert "lighthouse.md: added, searchable now" in upload(alice, tmp_path / "lighthouse.md")
    page_text = library_text(alice)
    assert "uploads/alice/lighthouse.md" in page_text and "alice" in page_text
    assert "lighthouse" not in library_text(bob) and "netflix-ai-job-ad.md" in library_text(bob)

    assert "does not contain the answer" in ask(bob, LIGHTHOUSE)
    assert "340 litres" in ask(alice, LIGHTHOUSE)
    shot(alice, tmp_path, "library.png")


def test_library_search_and_remove_with_progress(pages, tmp_path):
    bob = pages("bob")
    (tmp_path / "ferry.md").write_text(FERRY_DOC)
    upload(bob, tmp_path / "ferry.md")
    bob.locator("#library-search textarea, #library-search input").first.fill("ferry")
    bob.wait_for_function("!(document.querySelector('#library')?.innerText || 'netflix-ai-job-ad.md').includes('netflix-ai-job-ad.md')",
                          timeout=ANSWER_TIMEOUT_MS)
    assert "uploads/bob/ferry.md" in library_text(bob)

    bob.locator("#library-doc input").click()
    bob.get_by_role("option", name="uploads/bob/ferry.md").click()
    bob.locator("#library-remove").click()
    bob.wait_for_function("document.querySelector('#library-status')?.innerText.includes('removed')",
                          timeout=ANSWER_TIMEOUT_MS)
    assert "uploads/bob/ferry.md: removed, with its uploaded file" in bob.locator("#library-status").inner_text()
    assert "ferry" not in library_text(bob)


def test_history_is_kept_across_a_reload_and_reopens_with_its_sources(pages, tmp_path):
    alice = pages("alice")
    ask(alice, JOB)
    assert "$900,000" in ask(alice, "How much does it pay?")
    alice.reload(wait_until="load")
    alice.locator("#question textarea").wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert bot_messages(alice).count() == 0

    open_tab(alice, "History")
    alice.locator("#history-list").get_by_text(JOB).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    alice.locator("#history-list").get_by_text(JOB).first.click()
    alice.locator("#history-open").click()
    alice.wait_for_function("document.querySelectorAll('#chatbot [data-testid=bot]').length == 2",
                            timeout=ANSWER_TIMEOUT_MS)
    assert "$900,000" in bot_messages(alice).last.inner_text()
    assert bot_messages(alice).last.locator(".answer-sources .src-mini").count() >= 1
    shot(alice, tmp_path, "history.png")

    alice.locator("#history-export").click()
    alice.locator("#history-file a").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert ".md" in alice.locator("#history-file").inner_text()
    # the reopened conversation goes on: a follow-up still knows what "it" is
    assert "$900,000" in ask(alice, "How much does it pay?")
    assert "does not contain" not in ask(pages("bob"), JOB)  # bob's own conversation is unaffected
    open_tab(pages("bob"), "History")


def test_each_answer_keeps_its_own_sources_and_markers_link_to_them(pages, tmp_path):
    alice = pages("alice")
    ask(alice, JOB)
    ask(alice, ACTORS)
    first, second = bot_messages(alice).nth(0), bot_messages(alice).nth(1)
    assert first.locator("#src-1-1").count() == 1 and second.locator("#src-2-1").count() == 1
    # each answer's own quotes (shown under it on a narrow screen; beside it, the panel shows them)
    assert "$300,000" in first.locator(".answer-sources").text_content()
    assert "87%" in second.locator(".answer-sources").text_content()

    first.locator("a.cite-marker").first.click()
    alice.wait_for_function("location.hash === '#src-1-1'", timeout=ANSWER_TIMEOUT_MS)
    first.locator(".msg").click()  # an earlier answer's sources come back in the panel
    open_tab(alice, "Sources")
    alice.wait_for_function("document.querySelector('#sources-panel mark') && document.querySelector("
                            "'#sources-panel mark').innerText.includes('product manager')", timeout=ANSWER_TIMEOUT_MS)

    narrow = pages("bob", width=390)
    ask(narrow, JOB)
    sources = bot_messages(narrow).last.locator(".answer-sources")
    assert sources.is_visible() and "“" in sources.inner_text()  # the quote sits under the answer
    box = narrow.locator("#question textarea").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    shot(narrow, tmp_path, "narrow.png")


def test_thumbs_and_details_become_one_feedback_entry(pages, app, tmp_path):
    _, base = app
    bob = pages("bob")
    ask(bob, JOB)
    bob.locator("#chatbot button[aria-label=Dislike]").last.click()
    bob.wait_for_function("document.querySelector('#feedback-status')?.innerText.includes('Thanks')",
                          timeout=ANSWER_TIMEOUT_MS)
    assert "👎 recorded" in bob.locator("#feedback-status").inner_text()

    bob.get_by_label("Wrong citation").check()  # a thumb down opened the form
    bob.locator("#feedback-comment textarea").fill("the second source is the right one")
    bob.locator("#feedback-send").click()
    bob.wait_for_function("document.querySelector('#feedback-status')?.innerText.includes('eval case')",
                          timeout=ANSWER_TIMEOUT_MS)
    shot(bob, tmp_path, "feedback.png")

    entries = FeedbackStore(Database(base / "store-history.sqlite3")).entries("bob")
    assert len(entries) == 1
    assert (entries[0].question, entries[0].rating, entries[0].flag, entries[0].comment) == (
        JOB, "down", "wrong_citation", "the second source is the right one")
    assert entries[0].citations and entries[0].citations[0]["doc_id"] == "netflix-ai-job-ad.md"
