"""Inputs that always get one clear line and a non-zero exit, through `assistant` in a subprocess;
`assistant documents` and `assistant remove`; eval files with file:line; a re-created collection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.evaluation import EvalError, load_questions
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import CORPUS, ROOT, drop_store, store_backend
from tests.test_reliability import SALARY_QUESTION, cli, clean_env, store_args

HARBOUR = "The harbour of Lowmoor charges a mooring fee of 14 euros per night for small boats."


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_asking_with_no_store_and_no_corpus_says_so_and_creates_nothing(tmp_path):
    line = one_error_line(cli("ask", "What does the job pay?", cwd=tmp_path))
    assert line == ("error: nothing to ask about: no store at .store and no corpus folder corpus to ingest; "
                    "run `assistant ingest FOLDER` first, or pass --store")
    assert list(tmp_path.iterdir()) == []
    assert "no store at .store" in one_error_line(cli("documents", cwd=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_to_start_with_an_empty_store_and_nothing_to_ingest(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "empty.txt").write_text("")
    result = cli("serve", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "empty.txt: empty file; skipped" in result.stderr  # the ingest's own summary, then:
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: nothing to ask about: no document could be ingested from corpus")


@pytest.mark.parametrize("args, message", [
    (["--top-k", "0"], "--top-k must be between 1 and 50 (got 0)"),
    (["--top-k", "-1"], "--top-k must be between 1 and 50 (got -1)"),
    (["--top-k", "51"], "--top-k must be between 1 and 50 (got 51)"),
    (["--as-of", "9999-12-31"], "--as-of '9999-12-31' is out of range (the latest date accepted is 9998-12-31)"),
    (["--since", "2024-13-01"], "--since '2024-13-01' is not a date like 2024-05-31"),
])
def test_bad_values_are_one_line_before_anything_is_opened(args, message, tmp_path):
    assert one_error_line(cli("ask", SALARY_QUESTION, *args, cwd=tmp_path)) == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_a_corrupted_store_is_one_line(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "chroma.sqlite3").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    for command in (["ask", SALARY_QUESTION], ["ingest", str(CORPUS)], ["documents"]):
        line = one_error_line(cli(*command, "--store", str(store), cwd=tmp_path))
        assert f"the store at {store} cannot be read" in line and "move it away" in line


def test_a_read_only_store_is_one_line(tmp_path):
    store = tmp_path / "store"
    assert cli("ingest", str(CORPUS), "--store", str(store), "--quiet", cwd=tmp_path).returncode == 0
    script = f'mount --bind "{store}" "{store}" && mount -o remount,bind,ro "{store}" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a read-only folder here (needs unshare -m)")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "assistant.cli",
                             "ask", SALARY_QUESTION, "--store", str(store)],
                            cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=300)
    assert f"the store at {store} is read-only" in one_error_line(result)


def test_documents_lists_the_store_and_remove_deletes_documents(tmp_path):
    corpus = shutil.copytree(CORPUS, tmp_path / "corpus")
    (corpus / "uploads").mkdir()
    (corpus / "uploads" / "harbour.md").write_text(f"# Harbour fees\n\n{HARBOUR}\n")
    other = tmp_path / "scans"
    other.mkdir()
    from tests.conftest import make_pdf

    make_pdf(other / "tides.pdf", ["High water at 6:12.", "Low water at 12:30."])
    settings = Settings(corpus_dir=corpus, **store_backend(tmp_path / "store"))
    store = store_args(settings)
    assert cli("ingest", *store, "--quiet", cwd=tmp_path).returncode == 0
    assert cli("ingest", str(other), *store, "--quiet", cwd=tmp_path).returncode == 0

    result = cli("documents", "--json", *store, cwd=tmp_path)
    docs = json.loads(result.stdout)
    assert [d["doc_id"] for d in docs] == ["netflix-ai-job-ad.md", f"scans-{docs[1]['doc_id'][6:12]}/tides.pdf",
                                           "uploads/harbour.md"]
    for doc in docs:
        assert list(doc) == ["doc_id", "title", "source", "owner", "chunks", "pages", "origin", "updated"]
        assert doc["owner"] is None and doc["chunks"] >= 1 and doc["updated"].endswith("Z")
    netflix, tides, harbour = docs
    assert netflix["title"].startswith("Netflix advertises an AI job") and netflix["source"] == "DevStyleR"
    assert netflix["pages"] is None and tides["pages"] == 2 and netflix["origin"] == str(corpus.resolve())
    assert harbour["origin"] == str((corpus / "uploads").resolve()) and harbour["title"] == "Harbour fees"
    plain = cli("documents", *store, cwd=tmp_path)
    assert plain.stdout.splitlines()[0].startswith("netflix-ai-job-ad.md  (6 chunks, updated ")
    assert len(plain.stdout.splitlines()) == 3

    result = cli("remove", "uploads/harbour.md", "netflix-ai-job-ad.md", *store, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.splitlines() == [
        "uploads/harbour.md: removed, with its uploaded file",
        f"netflix-ai-job-ad.md: removed (6 chunks); its file in {corpus.resolve()} is kept, so the next ingest "
        "of that folder brings it back"]
    assert not (corpus / "uploads" / "harbour.md").exists() and (corpus / "netflix-ai-job-ad.md").exists()
    assert [d["doc_id"] for d in json.loads(cli("documents", "--json", *store, cwd=tmp_path).stdout)] == [tides["doc_id"]]
    missing = cli("remove", "no-such-doc", *store, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip() == (
        "no-such-doc: not found (`assistant documents` lists the ids)")
    drop_store(Assistant(settings))


def test_document_text_is_printed_without_terminal_control_sequences(tmp_path):
    dump = tmp_path / "dump.jsonl"
    dump.write_text(json.dumps({"id": "esc", "title": "Fees\x1b]0;pwned\x07 \x1b[2J\x9b31m",
                                "source": "Gazette\x1b[31m", "text": HARBOUR.replace("14 euros", "14\x1b[5m euros")}))
    store = tmp_path / "store"
    assert cli("ingest", str(dump), "--store", str(store), "--quiet", cwd=tmp_path).returncode == 0
    for command in (["ask", "How much is the mooring fee in Lowmoor?"], ["documents"]):
        result = cli(*command, "--store", str(store), cwd=tmp_path)
        assert result.returncode == 0 and "Fees" in result.stdout
        assert not any(ch in result.stdout for ch in "\x1b\x07\x9b"), repr(result.stdout)


def test_eval_question_file_problems_name_the_file_and_line(tmp_path):
    questions = tmp_path / "questions.jsonl"
    good = {"id": "q1", "question": "What does the job pay?", "answers": ["$900,000"]}
    cases = [
        ({"id": "q2", "question": "When?", "question_date": "2024-02-30"}, "\"question_date\" '2024-02-30' is not a date"),
        ({"id": "q2", "question": "When?", "question_date": "9999-12-31"}, "is out of range"),
        ({"id": "q2", "question": "When?", "answers": "$900,000"}, "\"answers\" must be a list of strings"),
        ({"id": "q2", "question": "When?", "evidence_doc_ids": "a.md"}, "\"evidence_doc_ids\" must be a list"),
    ]
    for row, message in cases:
        questions.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(EvalError, match=f"^{questions}:2: .*{message[:20]}"):
            load_questions(questions)
    questions.write_bytes(b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\n")
    assert [q.answers for q in load_questions(questions)] == [["$900,000"]]
    questions.write_bytes(json.dumps(good).encode() + b"\n{\"question\": \"caf\xe9\"}\n")
    with pytest.raises(EvalError, match=f"^{questions}:2: not valid UTF-8"):
        load_questions(questions)

    # Through the CLI: refused before anything is ingested, one line with file:line.
    questions.write_text(json.dumps(good) + "\n" + json.dumps(cases[0][0]) + "\n")
    result = cli("eval", "--documents", str(CORPUS), "--questions", str(questions), "--out", str(tmp_path / "out"),
                 "--quiet", cwd=tmp_path)
    assert one_error_line(result).startswith(f"error: {questions}:2: \"question_date\"")


def test_a_running_assistant_follows_a_collection_deleted_and_re_created_on_the_server(tmp_path):
    from tests.chroma_server import chroma_command, running_chroma

    if chroma_command() is None:
        pytest.skip("the chroma CLI is missing")
    corpus = shutil.copytree(CORPUS, tmp_path / "corpus")
    with running_chroma(tmp_path / "chroma", tmp_path / "chroma.log") as url:
        settings = Settings(corpus_dir=corpus, chroma_url=url, collection="articles")
        app = Assistant(settings)
        app.ingest(progress=False)
        assert "$900,000" in app.ask(SALARY_QUESTION).text

        admin = Assistant(settings)
        admin.store.client.delete_collection("articles")
        from assistant.store import StoreError

        with pytest.raises(StoreError, match="the collection 'articles' no longer exists"):
            app.ask(SALARY_QUESTION)
        Assistant(settings).ingest(progress=False)  # another process re-creates and fills it
        assert "$900,000" in app.ask(SALARY_QUESTION).text


def test_a_reader_that_stops_early_is_not_an_error(seeded_bot):
    # `assistant ask ... --explain | head -1`: the pipe closes while the answer is still printed.
    settings = seeded_bot.settings
    if settings.chroma_url:
        pytest.skip("the CLI test reads an embedded store")
    run = subprocess.Popen([sys.executable, "-m", "assistant.cli", "ask", SALARY_QUESTION, "--explain",
                            "--store", str(settings.store_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           bufsize=0)
    run.stdout.read(1)  # the first byte, then hang up
    run.stdout.close()
    stderr = run.stderr.read().decode()
    assert run.wait(timeout=120) == 0, stderr
    assert "bug" not in stderr and "Traceback" not in stderr, stderr
