"""The chat in a real headless Chromium (Debian `chromium`, driven by Playwright), against `python app.py`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.app_server import ROOT, running_app
from tests.conftest import make_pdf

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed: "
                                 "pip install -e '.[test]'")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install -y chromium "
                       "chromium-driver (bash .ci/run does this)"),
]

LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]
XSS_DOC = ("The Port Ellery harbour festival opens on 14 May every year. Its mascot is a copper heron called "
           "<b>bold</b> Ellie <script>window.__xss=1</script> and she wears a blue scarf.\n")
UPLOAD_PAGES = ["Harbour notes from Brannock Island.",
                "The Quillfeather lighthouse was repainted in 2021 with 340 litres of white paint."]
ANSWER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    base = tmp_path_factory.mktemp("app-browser")
    shutil.copytree(ROOT / "corpus", base / "corpus")
    (base / "corpus" / "festival.txt").write_text(XSS_DOC)
    with running_app(base / "corpus", base / "store", base / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")  # an empty --user-data-dir
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=LAUNCH_FLAGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        yield context
        context.close()


@pytest.fixture
def page(browser_context, app_url):
    """A fresh chat session; fails the test if the page asks anything of a host other than the app."""
    page = browser_context.new_page()
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith((app_url, "data:", "blob:")) else None)
    page.goto(app_url, wait_until="load")
    page.locator("#question textarea").wait_for()
    yield page
    page.close()
    assert elsewhere == [], f"the page reached outside the app: {elsewhere}"


def bot_messages(page):
    return page.locator("#chatbot [data-testid=bot]")


def wait_for_answer(page, count_before: int) -> str:
    """Wait until a new answer has finished streaming; return its visible text."""
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot [data-testid=bot]').length > n"
        " && !document.querySelector('#chatbot .typing')", arg=count_before, timeout=ANSWER_TIMEOUT_MS)
    return bot_messages(page).last.inner_text()


def ask(page, question: str) -> str:
    before = bot_messages(page).count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    return wait_for_answer(page, before)


def test_example_question_streams_a_cited_answer_and_the_follow_up_uses_it(page, tmp_path):
    page.get_by_text("What job did Netflix advertise").first.click()  # an example question
    answer = wait_for_answer(page, 0)
    assert "product manager of a machine learning platform" in answer and "[1]" in answer

    panel = page.locator("#sources-panel")
    quote = panel.locator("mark").first.inner_text()
    assert quote and quote in answer  # the highlighted span is the quoted one
    assert "netflix-ai-job-ad.md" in panel.inner_text() and "DevStyleR" in panel.inner_text()

    follow_up = ask(page, "How much does it pay?")
    assert "$300,000" in follow_up and "$900,000" in follow_up and "[1]" in follow_up
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    assert (tmp_path / "chat.png").stat().st_size > 10_000
    if os.environ.get("ASSISTANT_SCREENSHOT_DIR"):  # docs/screenshot.png is made this way
        shutil.copy(tmp_path / "chat.png", Path(os.environ["ASSISTANT_SCREENSHOT_DIR"]) / "screenshot.png")


def test_without_sign_in_the_page_says_it_is_single_user(page):
    page.wait_for_function("document.querySelector('#signed-in')?.innerText.includes('Single-user mode')",
                           timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("input[type=password]").count() == 0


def test_off_corpus_question_is_shown_as_an_abstention(page):
    answer = ask(page, "What is the boiling point of tungsten?")
    assert "does not contain the answer" in answer
    assert bot_messages(page).last.locator(".abstained").count() == 1
    assert "No sources" in page.locator("#sources-panel").inner_text()


def test_a_refusal_that_is_not_sure_shows_the_closest_sentence_and_is_not_labelled_as_absent(page):
    answer = ask(page, "Which famous actors joined the strike?")
    assert "closest the articles come" in answer and "Tom Cruise" in answer
    assert "does not contain the answer" not in answer
    label = bot_messages(page).last.locator(".abstain-label").inner_text()
    assert label.lower() == "no cited answer"
    panel = page.locator("#sources-panel")
    assert "No sources cited" in panel.inner_text()
    assert "Tom Cruise and George Clooney" in panel.locator("mark").first.inner_text()


def test_a_misspelt_word_is_answered_and_the_answer_says_how_it_was_read(page):
    answer = ask(page, "Who reportd the job ad first?")
    assert "The Intercept" in answer and "[1]" in answer
    assert bot_messages(page).last.locator(".read-as").inner_text() == "Read “reportd” as “reported”."


def test_a_request_to_summarise_asks_which_document_then_gives_its_lead(page):
    which = ask(page, "What is this article about?")  # the corpus holds two documents here
    assert "Which document should I summarise?" in which and "does not contain" not in which
    assert bot_messages(page).last.locator(".abstained").count() == 1
    lead = ask(page, "Summarise the Netflix article")
    assert lead.startswith("Netflix has placed an ad for a product manager") and "[1]" in lead
    assert "Netflix has placed an ad" in page.locator("#sources-panel mark").first.inner_text()


def open_tab(page, name: str) -> None:
    """Show one of the side tabs (Sources, Documents, History, Settings)."""
    page.get_by_role("tab", name=name).click()


def test_uploaded_pdf_can_be_asked_about_at_once(page, tmp_path):
    open_tab(page, "Documents")
    program = tmp_path / "setup.exe"
    program.write_bytes(b"MZ\x90\x00")
    page.locator("#upload-accordion input[type=file]").set_input_files(str(program))
    page.get_by_text("Invalid file type: setup.exe").wait_for(timeout=ANSWER_TIMEOUT_MS)

    note = make_pdf(tmp_path / "lighthouse.pdf", UPLOAD_PAGES)
    page.locator("#upload-accordion input[type=file]").set_input_files(str(note))
    page.wait_for_function("document.querySelector('#upload-status').innerText.includes('searchable now')",
                           timeout=ANSWER_TIMEOUT_MS)
    assert "lighthouse.pdf: added" in page.locator("#upload-status").inner_text()

    answer = ask(page, "How many litres of paint were used on the Quillfeather lighthouse?")
    assert "340 litres" in answer and "[1]" in answer
    open_tab(page, "Sources")
    sources = page.locator("#sources-panel").inner_text()
    assert "uploads/lighthouse.pdf" in sources and "page 2" in sources
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)


def test_document_markup_is_shown_as_text_and_never_runs(page, tmp_path):
    answer = ask(page, "What is the mascot of the Port Ellery harbour festival?")
    assert "<b>bold</b>" in answer and "<script>window.__xss=1</script>" in answer

    panel = page.locator("#sources-panel")
    assert "<script>window.__xss=1</script>" in panel.locator("mark").last.inner_text()
    assert page.evaluate("typeof window.__xss") == "undefined"
    for area in ("#chatbot", "#sources-panel"):
        assert page.locator(f"{area} script").count() == 0
        assert page.locator(f"{area} b").count() == 0
    page.screenshot(path=str(tmp_path / "markup.png"), full_page=True)
