"""Uploads through the chat's handler (ChatApp.upload) with real files: names that keep their letters,
no upload overwriting another, failed files removed, per-upload caps, progress."""

from __future__ import annotations

import html
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from assistant.pipeline import Assistant
from assistant.ui import ChatApp
from tests.conftest import drop_store, make_pdf

LIGHTHOUSE = "The Quillfeather lighthouse on Brannock Island was repainted in 2021 with 340 litres of white paint."
FERRY = "The Brannock ferry leaves the harbour at 7:40 every weekday and takes 55 minutes to the mainland."


def upload(app: ChatApp, tmp_path: Path, files: dict[str, str | bytes]) -> list[str]:
    """Upload ``files`` (name -> content) as the browser would: temp files under their own names."""
    incoming = tmp_path / f"incoming-{len(list(tmp_path.glob('incoming-*')))}"
    incoming.mkdir()
    paths = []
    for name, content in files.items():
        path = incoming / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        paths.append(str(path))
    status, _ = app.upload(paths)
    return [html.unescape(line) for line in status.split("  \n") if not line.startswith("<small>")]


@pytest.fixture
def app(bot: Assistant) -> ChatApp:
    return ChatApp(bot)


def uploads_of(bot: Assistant) -> list[str]:
    folder = bot.settings.corpus_dir / "uploads"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_names_in_other_scripts_and_with_brackets_stay_apart(app, bot, tmp_path):
    lines = upload(app, tmp_path, {"отчёт.md": LIGHTHOUSE, "обзор.md": FERRY,
                                   "Report (1).md": "The archive opens at nine.", "Report [1].md": "The archive closes at five."})
    assert all(line.startswith("✓") for line in lines), lines
    assert uploads_of(bot) == ["Report (1).md", "Report [1].md", "обзор.md", "отчёт.md"]
    assert sorted(bot.store.documents()) == ["uploads/Report (1).md", "uploads/Report [1].md",
                                             "uploads/обзор.md", "uploads/отчёт.md"]
    assert bot.ask("When does the Brannock ferry leave?").citations[0].doc_id == "uploads/обзор.md"
    assert bot.ask("How much paint was used on the Quillfeather lighthouse?").citations[0].doc_id == "uploads/отчёт.md"


def test_two_names_saved_alike_never_overwrite_each_other(app, bot, tmp_path):
    upload(app, tmp_path, {"harbour?notes.md": LIGHTHOUSE})
    lines = upload(app, tmp_path, {"harbour*notes.md": FERRY})
    assert lines == ["✓ harbour*notes.md: added, saved as harbour_notes (2).md, searchable now"]
    assert uploads_of(bot) == ["harbour_notes (2).md", "harbour_notes.md"]
    assert "340 litres" in bot.ask("How much paint was used on the Quillfeather lighthouse?").text
    assert "7:40" in bot.ask("When does the Brannock ferry leave?").text


def test_an_upload_of_the_same_name_replaces_it_and_an_identical_one_changes_nothing(app, bot, tmp_path):
    upload(app, tmp_path, {"notes.md": LIGHTHOUSE})
    assert upload(app, tmp_path, {"notes.md": LIGHTHOUSE}) == ["✓ notes.md: unchanged, searchable now"]
    assert upload(app, tmp_path, {"notes.md": FERRY}) == ["✓ notes.md: updated, searchable now"]
    assert uploads_of(bot) == ["notes.md"] and list(bot.store.documents()) == ["uploads/notes.md"]
    assert bot.ask("How much paint was used on the Quillfeather lighthouse?").abstained
    # Two files of one name in one upload: the second does not replace the first.
    first, second = tmp_path / "a" / "memo.md", tmp_path / "b" / "memo.md"
    for path, text in ((first, LIGHTHOUSE), (second, FERRY)):
        path.parent.mkdir()
        path.write_text(text)
    status, _ = app.upload([str(first), str(second)])
    assert uploads_of(bot) == ["memo (2).md", "memo.md", "notes.md"], status


def test_a_file_that_fails_to_load_is_removed_with_its_reason(app, bot, tmp_path):
    lines = upload(app, tmp_path, {"broken.pdf": b"%PDF-1.4 this is not really a pdf", "good.md": LIGHTHOUSE})
    assert lines[0].startswith("✗ uploads/broken.pdf: not a valid PDF") and lines[0].endswith("(the file was removed)")
    assert lines[1] == "✓ good.md: added, searchable now"
    assert uploads_of(bot) == ["good.md"]
    status, _ = app.upload([])
    lines = upload(app, tmp_path, {"ferry.md": FERRY})
    assert lines == ["✓ ferry.md: added, searchable now"]
    assert "failed 0" in bot.ingest(progress=False).summary(), "a refused upload must not fail later ingests"


def test_a_broken_new_version_puts_the_previous_one_back(app, bot, tmp_path):
    upload(app, tmp_path, {"guide.txt": LIGHTHOUSE})
    lines = upload(app, tmp_path, {"guide.txt": b"\x00\x01binary"})
    assert lines[0].startswith("✗ uploads/guide.txt: binary file")
    assert (bot.settings.corpus_dir / "uploads" / "guide.txt").read_text() == LIGHTHOUSE
    assert "340 litres" in bot.ask("How much paint was used on the Quillfeather lighthouse?").text


def test_a_jsonl_upload_whose_lines_all_fail_is_removed(app, bot, tmp_path):
    lines = upload(app, tmp_path, {"dump.jsonl": '{"id": "x"}\nnot json\n'})
    assert lines == ['✗ uploads/dump.jsonl:1: line needs a JSON object with a "text" string; skipped '
                     "(the file was removed)"]
    assert uploads_of(bot) == []


@pytest.mark.parametrize("cap, files, reason", [
    ("upload_max_pdf_pages", {"long.pdf": None}, "PDF has 6 pages, above the 5-page limit per upload"),
    ("upload_max_documents", {"many.jsonl": "\n".join(json.dumps({"id": f"d{i}", "text": FERRY}) for i in range(6))},
     "6 documents, above the 5-document limit per upload"),
    ("upload_max_chunks", {"long.md": " ".join([LIGHTHOUSE, FERRY] * 20)}, "chunks, above the 5-chunk limit per upload"),
])
def test_each_per_upload_cap_refuses_with_one_line_and_removes_the_file(cap, files, reason, tmp_path):
    from assistant.settings import Settings
    from tests.conftest import store_backend

    bot = Assistant(Settings(corpus_dir=tmp_path / "corpus", **{cap: 5}, **store_backend(tmp_path / "store")))
    if "long.pdf" in files:
        files = {"long.pdf": make_pdf(tmp_path / "long.pdf", [f"Page {i} of the ferry timetable." for i in range(6)])
                 .read_bytes()}
    lines = upload(ChatApp(bot), tmp_path, files)
    assert len(lines) == 1 and lines[0].startswith("✗ ") and reason in lines[0], lines
    assert uploads_of(bot) == [] and bot.store.count() == 0
    drop_store(bot)


def test_a_title_of_140_emoji_does_not_break_this_or_later_uploads(app, bot, tmp_path):
    lines = upload(app, tmp_path, {"emoji.md": f"---\ntitle: {'🚢' * 140}\n---\n{LIGHTHOUSE}\n"})
    assert lines == ["✓ emoji.md: added, searchable now"]
    assert upload(app, tmp_path, {"ferry.md": FERRY}) == ["✓ ferry.md: added, searchable now"]


def test_the_upload_reports_its_progress(app, bot, tmp_path):
    note = tmp_path / "many.jsonl"
    note.write_text("\n".join(json.dumps({"id": f"n{i}", "text": f"Note {i}: {FERRY}"}) for i in range(12)))
    calls = []
    status, _ = app.upload([str(note)], progress=lambda frac, desc="": calls.append((frac, desc)))
    assert "many.jsonl: 12 documents ingested, searchable now" in status
    assert calls[0] == (0.0, "Reading 1 file(s)") and calls[-1][0] == 1.0 and "12/12 documents" in calls[-1][1]


def test_questions_are_answered_from_the_last_complete_state_while_an_upload_ingests(tmp_path):
    from assistant.settings import Settings
    from tests.conftest import CORPUS, store_backend
    from tests.test_reliability import SALARY_QUESTION

    corpus = shutil.copytree(CORPUS, tmp_path / "corpus")
    bot = Assistant(Settings(corpus_dir=corpus, ingest_batch_chunks=4, **store_backend(tmp_path / "store")))
    bot.ingest(progress=False)
    app = ChatApp(bot)
    alone = app.chat_api(SALARY_QUESTION, "alone")
    dump = tmp_path / "incoming" / "ferries.jsonl"
    dump.parent.mkdir()
    dump.write_text("\n".join(json.dumps({"id": f"ferry-{i}", "text": f"Ferry {i}: {FERRY}"}) for i in range(40)))
    writing = threading.Event()
    status = []
    worker = threading.Thread(target=lambda: status.append(app.upload(
        [str(dump)], progress=lambda frac, desc="": frac > 0 and writing.set())[0]))
    worker.start()
    writing.wait(timeout=300)
    answered_during = []
    while worker.is_alive():
        answer = app.chat_api(SALARY_QUESTION, f"during-{len(answered_during)}-{time.perf_counter()}")
        stored = sum(doc_id.startswith("ferry-") for doc_id in bot.store.documents())
        if 0 < stored < 40:  # answered while the upload was part-way: no lock held across its ingest
            answered_during.append(answer)
    worker.join()
    assert answered_during, "questions must be answered while the upload ingests"
    for answer in answered_during:
        assert (answer["answer"], answer["citations"]) == (alone["answer"], alone["citations"])
    assert "40 documents ingested" in status[0]
    after = app.chat_api("When does the Brannock ferry leave the harbour?", "after")
    assert "7:40" in after["answer"] and after["citations"][0]["doc_id"].startswith("ferry-")
    drop_store(bot)
