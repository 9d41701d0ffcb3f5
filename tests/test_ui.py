"""The chat app's handlers and rendering, without a server: uploads, escaping, streaming, multi-turn."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from html import unescape

import pytest

from assistant.contract import ABSTAIN_MESSAGE, CLOSEST_MESSAGE, Answer, Citation, Passage
from assistant.ui import ChatApp, answer_payload, highlight, render_answer, render_sources, render_turn, render_user
from assistant.uploads import UploadError, safe_upload_name, save_uploads

MARKUP = "The mascot is <b>bold</b> Ellie <script>window.__xss=1</script> ${alert(1)} {{7*7}} [x](javascript:1)"


# ---------------------------------------------------------------- upload names


@pytest.mark.parametrize("name, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/evil.txt", "evil.txt"),
    ("..\\..\\windows\\evil.md", "evil.md"),
    ("/abs/path/notes.jsonl", "notes.jsonl"),
    ("my report (final).PDF", "my report (final).pdf"),
    ("a?b*c.md", "a_b_c.md"),
    ("a..b.txt", "a_b.txt"),
    ("README.md", "upload-README.md"),
])
def test_upload_names_keep_only_a_safe_basename(name, expected):
    assert safe_upload_name(name) == expected


@pytest.mark.parametrize("name", ["", "..", "../", ".bashrc.txt", "uploads/.hidden.md", "x/.."])
def test_hidden_and_empty_upload_names_are_refused(name):
    with pytest.raises(UploadError):
        safe_upload_name(name)


def test_unsupported_upload_type_is_refused_with_the_allowed_types():
    with pytest.raises(UploadError, match=r"'\.exe' is not supported.*\.pdf"):
        safe_upload_name("setup.exe")


def test_uploads_are_saved_inside_the_uploads_folder_only(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = incoming / "note.txt"
    good.write_text("A small note about lighthouses.")
    hidden = incoming / ".secret.txt"
    hidden.write_text("x")
    binary = incoming / "tool.exe"
    binary.write_bytes(b"MZ")
    corpus = tmp_path / "corpus"

    saved, problems = save_uploads([good, hidden, binary], corpus, max_mb=1)

    assert [s.path for s in saved] == [(corpus / "uploads" / "note.txt").resolve()]
    assert saved[0].path.read_text() == "A small note about lighthouses."
    assert len(problems) == 2 and "hidden" in problems[0] and ".exe" in problems[1]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "incoming" not in p.parts) == [
        ".upload-names.json", "note.txt"]


def test_uploads_over_the_size_limit_are_refused_with_the_limit(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000)  # 5 kB

    saved, problems = save_uploads([big], tmp_path / "corpus", max_mb=0.001)

    assert saved == []
    assert problems and "over the 0.001 MB upload limit" in problems[0]
    assert not (tmp_path / "corpus" / "uploads" / "big.txt").exists()


# ---------------------------------------------------------------- rendering


def _no_live_markup(rendered: str) -> None:
    assert "<script" not in rendered and "<b>" not in rendered
    assert "${" not in rendered and "{{" not in rendered and "](" not in rendered


def test_answers_and_questions_render_document_markup_as_text():
    rendered = render_answer(MARKUP + " [1]")
    _no_live_markup(rendered)
    assert "&lt;script&gt;" in rendered and "&lt;b&gt;bold&lt;/b&gt;" in rendered
    assert '<span class="cite-marker">[1]</span>' in rendered
    _no_live_markup(render_user(MARKUP))


def test_abstentions_and_errors_render_differently_from_answers():
    assert 'class="msg answer"' in render_answer("Paid $300,000. [1]")
    abstained = render_answer("The corpus does not contain the answer to this question.", abstained=True)
    assert 'class="msg abstained"' in abstained and "msg answer" not in abstained
    assert "answer-error" in render_answer("Please type a question.", error=True)


def test_only_the_plain_refusal_is_labelled_as_no_answer_in_the_corpus():
    plain = Answer("q", ABSTAIN_MESSAGE, True)
    passage = Passage("a.md::1", "a.md", "The strike grew. Tom Cruise joined. It went on.", "Article")
    closest = Answer("q", f"{CLOSEST_MESSAGE}\n“Tom Cruise joined.” — Article (a.md)", True,
                     closest=Citation.of(0, passage, "Tom Cruise joined.", 0.2))
    assert "No answer in the corpus" in render_answer(plain.text, abstained=True)
    assert "does not contain" in render_sources(plain)
    shown = render_answer(closest.text, abstained=True)
    assert "No cited answer" in shown and "No answer in the corpus" not in shown and "Tom Cruise joined." in shown
    panel = render_sources(closest)
    assert "does not contain" not in panel and "No sources cited" in panel
    assert "The strike grew. <mark>Tom Cruise joined.</mark> It went on." in panel and "[1]" not in panel
    assert "No sources" in render_sources(Answer("q", "Which document should I summarise? ...", True))
    assert "cite-marker" not in render_answer(f"{CLOSEST_MESSAGE}\n“Sales rose.” — Top 10 [2024] (a.md)",
                                              abstained=True), "a refusal cites nothing"


def test_a_turn_says_how_its_misspelt_words_were_read_and_the_api_text_does_too():
    passage = Passage("a.md::1", "a.md", "The Intercept reported it first.", "Article")
    answer = Answer("Who reportd <it>?", "The Intercept reported it first. [1]", False,
                    [Citation.of(1, passage, "The Intercept reported it first.", 0.9)],
                    corrections=(("reportd", "reported"), ("<it>", "it")))
    record = {"question": answer.question, "answer": answer.text, "abstained": False,
              "citations": [asdict(c) for c in answer.citations], "corrections": [["reportd", "reported"], ["<it>", "it"]]}
    shown = render_turn(record, 1)
    assert '<div class="read-as">Read “reportd” as “reported”, “&lt;it&gt;” as “it”.</div>' in shown
    assert "read-as" not in render_turn({**record, "corrections": []}, 1)
    assert "(Read “reportd” as “reported”, “<it>” as “it”.)" in answer_payload(answer)["text"]
    assert "corrections" not in answer_payload(answer), "the ask --json object is unchanged"


def test_highlight_marks_each_quoted_part_inside_the_escaped_passage():
    passage = "First <i>sentence</i>. The mascot is <b>bold</b> Ellie. Last one."
    out = highlight(passage, "First <i>sentence</i>. … The mascot is <b>bold</b> Ellie.")
    assert re.findall(r"<mark>(.*?)</mark>", out) == [
        "First &lt;i&gt;sentence&lt;/i&gt;.", "The mascot is &lt;b&gt;bold&lt;/b&gt; Ellie."]
    assert out.endswith(" Last one.")


def test_sources_panel_lists_title_file_page_date_and_the_highlighted_quote():
    citation = Citation(n=1, doc_id="uploads/festival.pdf", title="Festival <i>guide</i>", source="Gazette",
                        page=3, quote="The mascot is <b>bold</b> Ellie", score=0.9, date="2024-05-01",
                        url="javascript:alert(1)", passage=MARKUP)
    panel = render_sources(Answer("q", "The mascot is <b>bold</b> Ellie [1]", False, [citation]))
    _no_live_markup(panel)
    for text in ("Festival &lt;i&gt;guide&lt;/i&gt;", "Gazette", "uploads/festival.pdf", "page 3", "2024-05-01",
                 "<mark>The mascot is &lt;b&gt;bold&lt;/b&gt; Ellie</mark>"):
        assert text in panel
    assert "href" not in panel  # only http(s) URLs become links
    assert "No sources" in render_sources(Answer("q", "The corpus does not contain ...", True))


# ---------------------------------------------------------------- handlers over a real store


def test_respond_streams_then_shows_sources_and_remembers_the_turn(seeded_bot):
    app = ChatApp(seeded_bot)
    steps = list(app.respond("What job did Netflix advertise for its machine learning platform?", [], None, 5))

    first_box, first_messages, _, _ = steps[0]
    assert first_box == "" and first_messages[-1]["role"] == "assistant" and "typing" in first_messages[-1]["content"]
    _, messages, sources, session = steps[-1]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "[1]" in messages[-1]["content"] and "typing" not in messages[-1]["content"]
    assert "<mark>" in sources and "netflix-ai-job-ad.md" in sources
    question = "What job did Netflix advertise for its machine learning platform?"
    turns = session.turns
    assert turns == [(question, seeded_bot.ask(question).text)] and "$900,000" in turns[0][1]
    # the answer keeps its own sources under it: [1] links to its card, with the quote
    assert '<a class="cite-marker" href="#src-1-1">[1]</a>' in messages[-1]["content"]
    assert 'id="src-1-1"' in messages[-1]["content"] and "netflix-ai-job-ad.md" in messages[-1]["content"]
    assert session.answers[0]["citations"][0]["doc_id"] == "netflix-ai-job-ad.md"


def test_the_same_follow_up_is_answered_about_the_previous_turn(seeded_bot):
    app = ChatApp(seeded_bot)
    for first, expected, other in [
        ("What job did Netflix advertise for its machine learning platform?", "$900,000", "$650,000"),
        ("What job is Netflix's game studio looking to hire for?", "$650,000", "$900,000"),
    ]:
        *_, (_, messages, _, session) = app.respond(first, [], None, 5)
        *_, (_, messages, _, session) = app.respond("How much does it pay?", messages, session, 5)
        shown = unescape(messages[-1]["content"].split('<div class="answer-sources">')[0])
        assert expected in shown and other not in shown
        assert len(session.turns) == 2


def test_empty_question_gets_a_clear_message_not_a_traceback(seeded_bot):
    *_, (_, messages, _, session) = ChatApp(seeded_bot).respond("\x00\x01", [], None, 5)
    assert "answer-error" in messages[-1]["content"] and "question is empty" in messages[-1]["content"]
    assert session.turns == []


def test_too_long_questions_are_refused_without_naming_operator_settings(seeded_bot):
    *_, (_, messages, _, _) = ChatApp(seeded_bot).respond("why " * 2000, [], None, 5)
    assert "the limit is 4,000" in messages[-1]["content"] and "ASSISTANT" not in messages[-1]["content"]


def test_uploaded_file_is_searchable_at_once(bot, tmp_path):
    bot.ingest(progress=False)
    note = tmp_path / "lighthouse.txt"
    note.write_text("The Quillfeather lighthouse on Brannock Island was repainted in 2021 by six volunteers, "
                    "who used 340 litres of white paint.")
    app = ChatApp(bot)
    calls = []

    status, _ = app.upload([str(note)], progress=lambda frac, desc="": calls.append(frac))

    assert "lighthouse.txt: added, searchable now" in status
    assert (bot.settings.corpus_dir / "uploads" / "lighthouse.txt").exists()
    assert calls and calls[-1] == 1.0
    answer = bot.ask("How many litres of paint were used on the Quillfeather lighthouse?")
    assert not answer.abstained and "340 litres" in answer.text
    assert answer.citations[0].doc_id == "uploads/lighthouse.txt"


def test_refused_upload_says_why_and_ingests_nothing(bot, tmp_path):
    bad = tmp_path / "payload.exe"
    bad.write_bytes(b"MZ\x90")
    status, _ = ChatApp(bot).upload([str(bad)])
    assert "✗" in status and "not supported" in status
    assert bot.store.count() == 0


# ---------------------------------------------------------------- app.py and the Hugging Face Space

ROOT = Path(__file__).resolve().parent.parent


def test_app_finds_the_corpus_next_to_itself_unless_told_otherwise(tmp_path, monkeypatch):
    import app

    monkeypatch.chdir(tmp_path)
    for name in ("ASSISTANT_CORPUS_DIR", "ASSISTANT_STORE_DIR", "ASSISTANT_HOST", "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = app.app_settings()
    assert settings.corpus_dir == ROOT / "corpus" and settings.store_dir == ROOT / ".store"
    assert settings.host == "127.0.0.1" and settings.port == 7860

    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # what a Space sets
    settings = app.app_settings()
    assert settings.store_dir == tmp_path / "store" and settings.corpus_dir == ROOT / "corpus"
    assert settings.host == "0.0.0.0"


def test_space_requirements_are_the_package_dependencies():
    tomllib = pytest.importorskip("tomllib")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert sorted(requirements) == sorted(dependencies)


def test_readme_front_matter_configures_the_gradio_space():
    front = (ROOT / "README.md").read_text().split("---\n")[1]
    fields = dict(line.split(":", 1) for line in front.strip().splitlines())
    fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    assert fields["python_version"].startswith("3.")
    gradio_pin = next(r for r in (ROOT / "requirements.txt").read_text().splitlines() if r.startswith("gradio=="))
    assert gradio_pin == f"gradio=={fields['sdk_version']}"
    # Hugging Face sign-in (ASSISTANT_AUTH=hf), restricted to the team's organisation
    assert fields["hf_oauth"] == "true" and fields["hf_oauth_authorized_org"]


def test_settings_filters_become_retrieval_filters_and_bad_dates_get_a_clear_message():
    from assistant.pipeline import QuestionError
    from assistant.ui import make_filters

    assert make_filters("", " ", "") is None
    filters = make_filters("Guardian", "2023-01-01", "")
    assert (filters.source, filters.since, filters.until) == ("Guardian", "2023-01-01", None)
    with pytest.raises(QuestionError, match="2024-05-31"):
        make_filters("", "last tuesday", "")


# ---------------------------------------------------------------- first-run polish


def test_the_settings_panel_shows_no_server_paths(seeded_bot):
    text = ChatApp(seeded_bot).backend_text()
    assert str(seeded_bot.settings.corpus_dir) not in text and str(seeded_bot.settings.store_dir) not in text
    assert "chunks" in text and "extractive" in text


def test_upload_refusals_do_not_name_operator_settings(bot, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("word " * 5000)
    app = ChatApp(bot)
    app.settings = app.settings.with_overrides(upload_max_mb=0.001)
    status, _ = app.upload([str(big)])
    assert "over the 0.001 MB upload limit" in status and "ASSISTANT" not in status


def test_help_shows_no_raw_markup():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "assistant.cli", "--help"], capture_output=True, text=True).stdout
    assert "The assistant command:" in out and "``" not in out


def test_the_examples_make_sense_on_an_empty_chat():
    from assistant.settings import Settings

    assert all(len(q.split()) >= 6 for q in Settings().chat_examples)  # no bare follow-up like "How much does it pay?"


def test_every_example_is_answered_over_the_bundled_article(seeded_bot):
    from assistant.settings import Settings

    for question in Settings().chat_examples:
        answer = seeded_bot.ask(question)
        assert not answer.abstained and answer.citations, question
