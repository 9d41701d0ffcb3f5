"""Reliability: crash safety, concurrent ingest and questions, hostile or broken input, safe paths, no secrets.

The store is embedded, or a collection on the Chroma server named by ``ASSISTANT_TEST_CHROMA_URL``
(conftest), so these run in both modes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from assistant.ingest import ingest, root_prefix
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import CORPUS, ROOT, SQUAD, drop_store, make_pdf, store_backend

BAD_INPUTS = Path(__file__).parent / "bad_inputs"
SALARY_QUESTION = "How much does the Netflix machine learning job pay?"
SEED_QUESTIONS_FILE = ROOT / "eval" / "corpus" / "questions.jsonl"


def write_squad_docs(folder: Path, count: int, suffix: str = "") -> list[str]:
    """``count`` SQuAD paragraphs as text files (about one chunk each); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, line in enumerate(open(SQUAD / "documents.jsonl")):
        if i == count:
            break
        name = f"doc-{i:02d}.txt"
        (folder / name).write_text(json.loads(line)["text"] + suffix)
        names.append(name)
    return names


def store_args(settings: Settings) -> list[str]:
    if settings.chroma_url:
        return ["--chroma-url", settings.chroma_url, "--collection", settings.collection]
    return ["--store", str(settings.store_dir)]


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_", "HF_TOKEN"))}
    return {**env, **extra}


def snapshot(bot: Assistant) -> dict:
    """Everything in a store: id -> (text, metadata, vector)."""
    data = bot.store.collection.get(include=["documents", "metadatas", "embeddings"])
    return {i: (t, m, np.asarray(e)) for i, t, m, e in
            zip(data["ids"], data["documents"], data["metadatas"], data["embeddings"])}


def assert_same_store(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want), "chunk ids differ from an uninterrupted ingest"
    for chunk_id, (text, meta, vector) in want.items():
        g_text, g_meta, g_vector = got[chunk_id]
        assert g_text == text and g_meta == meta, chunk_id
        assert np.allclose(g_vector, vector, atol=1e-4), chunk_id
    # No duplicates (one chunk per document position) and no orphans (one hash per document).
    positions = Counter((m["doc_id"], m["chunk_index"]) for _, m, _ in got.values())
    assert max(positions.values()) == 1
    hashes = {}
    for _, meta, _ in got.values():
        hashes.setdefault(meta["doc_id"], set()).add(meta["doc_hash"])
    assert all(len(h) == 1 for h in hashes.values())


def ingest_and_kill(corpus: Path, settings: Settings, total_chunks: int, after_chunks: int) -> int:
    """Run `assistant ingest` in a subprocess and SIGKILL it once ``after_chunks`` are written."""
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "ingest", str(corpus), *store_args(settings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=corpus.parent,
                            env=clean_env(ASSISTANT_INGEST_BATCH_CHUNKS="3"))
    written, output = 0, b""
    deadline = time.monotonic() + 300
    try:
        while written < after_chunks:
            piece = os.read(proc.stderr.fileno(), 4096)  # the progress bar: "..., 6 chunks]"
            if not piece or time.monotonic() > deadline:
                break
            output += piece
            counts = [int(n) for n in re.findall(rb"(\d+) chunks", output)]
            written = max(counts, default=0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"ingest ended on its own:\n{output.decode(errors='replace')[-2000:]}"
    assert after_chunks <= written < total_chunks, "the kill must come part-way through the ingest"
    return written


@pytest.mark.slow
def test_ingest_killed_part_way_then_rerun_equals_an_uninterrupted_ingest(tmp_path):
    corpus = tmp_path / "corpus"
    write_squad_docs(corpus, 24)
    reference = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "reference")))
    reference.ingest([corpus], progress=False)
    want = snapshot(reference)
    assert len(want) >= 24

    crashed = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "crashed")))
    ingest_and_kill(corpus, crashed.settings, len(want), after_chunks=6)
    assert 0 < crashed.store.count() < len(want)

    report = crashed.ingest([corpus], progress=False)
    assert report.failed == [] and len(report.added) + len(report.unchanged) == 24
    assert report.unchanged, "documents finished before the kill are not embedded again"
    assert_same_store(snapshot(crashed), want)
    drop_store(reference)
    drop_store(crashed)


@pytest.mark.slow
def test_update_killed_part_way_then_rerun_leaves_no_stale_chunks(tmp_path):
    corpus = tmp_path / "corpus"
    write_squad_docs(corpus, 18)
    crashed = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "crashed")))
    crashed.ingest([corpus], progress=False)
    write_squad_docs(corpus, 18, suffix=" This paragraph was revised in the second edition.")
    reference = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "reference")))
    reference.ingest([corpus], progress=False)
    want = snapshot(reference)

    ingest_and_kill(corpus, crashed.settings, len(want), after_chunks=6)
    midway = crashed.store.documents()
    assert any(d.doc_hash != next(iter({m["doc_hash"] for _, m, _ in want.values()
                                        if m["doc_id"] == d.doc_id})) or not d.complete
               for d in midway.values()), "the kill must leave some documents at their old version"

    report = crashed.ingest([corpus], progress=False)
    assert report.failed == [] and report.removed == []
    assert_same_store(snapshot(crashed), want)
    drop_store(reference)
    drop_store(crashed)


@pytest.mark.slow
def test_questions_asked_during_an_ingest_get_the_single_user_answer_without_long_waits(bot, tmp_path):
    bot.ingest(progress=False)
    alone = bot.ask(SALARY_QUESTION)
    extra = tmp_path / "extra"
    write_squad_docs(extra, 16)
    errors: list[BaseException] = []

    def run_ingest():
        try:
            ingest([extra], bot.store, bot.settings.with_overrides(ingest_batch_chunks=2), progress=False)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    worker = threading.Thread(target=run_ingest)
    worker.start()
    during, waits = [], []
    while worker.is_alive():
        started = time.perf_counter()
        during.append(bot.ask(SALARY_QUESTION))
        waits.append(time.perf_counter() - started)
    worker.join(timeout=300)
    after = bot.ask(SALARY_QUESTION)

    assert not errors and not worker.is_alive()
    assert bot.store.count() > 3 and root_prefix(extra) + "doc-15.txt" in bot.store.documents()
    assert len(during) >= 2, "questions must actually overlap the ingest"
    for answer in during + [after]:
        assert (answer.text, [c.quote for c in answer.citations]) == (alone.text, [c.quote for c in alone.citations])
    print(f"\n{len(during)} answers during the ingest; slowest {max(waits):.2f} s, alone {alone.latency_ms:.0f} ms")
    assert max(waits) < 20, "an ingest must not block questions for long"


# ---------------------------------------------------------------- bad input


def encrypted_pdf(path: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(path.with_name("plain.pdf"), ["The secret harbour code is 7731."])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt("owner-password-only-the-author-knows")
    with open(path, "wb") as out:
        writer.write(out)
    plain.unlink()
    return path


def huge_text(path: Path, megabytes: int = 50) -> Path:
    line = "The tide tables for the northern pier are printed every spring by the harbour office. " * 12 + "\n"
    with open(path, "w") as out:
        for _ in range(megabytes * 1024 * 1024 // len(line) + 1):
            out.write(line)
    return path


def test_bad_input_corpus_gets_one_clear_line_each_and_loses_nothing_else(bot, corpus_dir):
    for item in BAD_INPUTS.iterdir():
        shutil.copy(item, corpus_dir / item.name)
    encrypted_pdf(corpus_dir / "encrypted.pdf")
    huge_text(corpus_dir / "huge-50mb.txt")

    started = time.perf_counter()
    report = bot.ingest(progress=False)
    took = time.perf_counter() - started

    reasons = {p.path: p.reason for p in report.failed}
    assert reasons.keys() == {"empty.txt", "binary.txt", "invalid-utf8.txt", "no-text.pdf", "truncated.pdf",
                              "encrypted.pdf", "huge-50mb.txt", "id-takeover.jsonl", "id-takeover.jsonl:3"}
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["invalid-utf8.txt"] and "offset" in reasons["invalid-utf8.txt"]
    assert "no extractable text" in reasons["no-text.pdf"]
    assert "not a valid PDF" in reasons["truncated.pdf"]
    assert "encrypted" in reasons["encrypted.pdf"]
    assert "characters of text, above the" in reasons["huge-50mb.txt"] and "ASSISTANT_MAX_DOCUMENT_CHARS" in reasons[
        "huge-50mb.txt"]
    assert reasons["id-takeover.jsonl"] == ("id 'netflix-ai-job-ad.md' is the id of the file netflix-ai-job-ad.md "
                                            "in the corpus; give it another id; skipped")
    assert '"text" string' in reasons["id-takeover.jsonl:3"]
    for reason in reasons.values():
        assert "\n" not in reason and reason.endswith("skipped") and "Traceback" not in reason
    assert took < 120, "a 50 MB file must be refused, not embedded"

    # Handled: the PDF with a broken xref table is repaired, HTML is read as its visible text, a title of
    # 140 emoji is cut for chunking, a name in Cyrillic is kept, terminal escapes are inert text.
    assert sorted(report.added) == ["broken-xref.pdf", "ferry-timetable", "long-emoji-title.md",
                                    "netflix-ai-job-ad.md", "prompt-injection.md", "scripts-and-styles.html",
                                    "targeted-injection.md", "terminal-escapes.md", "отчёт-о-маяке.md"]
    chunks = {c.metadata["doc_id"]: c.text for c in bot.store.chunks()}
    html = chunks["scripts-and-styles.html"]
    assert "42" not in html and "font-family" not in html and "sk-script-secret" not in html

    # Every good file is answerable afterwards, from its own document.
    for question, expected, doc_id in [
        (SALARY_QUESTION, "$900,000", "netflix-ai-job-ad.md"),
        ("What did the tide gauge at the pier record on 9 May?", "5.2 metres", "broken-xref.pdf"),
        ("How many new moorings did the harbour board approve?", "37 new moorings", "scripts-and-styles.html"),
        ("How much is the mooring fee in Lowmoor?", "14 euros", "long-emoji-title.md"),
        ("When does the Brannock ferry leave the harbour?", "7:40", "ferry-timetable"),
        ("When does the archive reading room close on Fridays?", "17:30", "terminal-escapes.md"),
        ("How much paint was used on the Quillfeather lighthouse?", "340 litres", "отчёт-о-маяке.md"),
    ]:
        answer = bot.ask(question)
        assert expected in answer.text and answer.citations[0].doc_id == doc_id, (question, answer.text)
        assert "42" not in answer.text and "5 dollars" not in answer.text


def seed_answers(tmp_path: Path, extra: Path | None = None) -> list[tuple]:
    """The seed-article eval questions asked as `assistant eval` asks them (follow-ups with their history)."""
    from assistant.evaluation import ask_all
    from assistant.metrics import load_questions

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    if extra:
        shutil.copy(extra, corpus)
    bot = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "store")))
    bot.ingest(progress=False)
    records, scores = ask_all(bot, load_questions(SEED_QUESTIONS_FILE, None), progress=False)
    drop_store(bot)
    return [(r["id"], r["answer"], r["abstained"], [(c["doc_id"], c["quote"]) for c in r["citations"]], s.confidence)
            for r, s in zip(records, scores)]


@pytest.fixture(scope="module")
def answers_without_injection(tmp_path_factory) -> list[tuple]:
    return seed_answers(tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize("name", ["prompt-injection.md", "targeted-injection.md"])
def test_a_prompt_injection_document_changes_no_other_answer(name, answers_without_injection, tmp_path):
    with_injection = seed_answers(tmp_path, BAD_INPUTS / name)
    assert len(with_injection) == len(answers_without_injection) == 40
    floor = Settings().closest_threshold
    for clean, injected in zip(answers_without_injection, with_injection):
        if clean[:4] != injected[:4] and clean[2] and injected[2]:
            # Another document moves every term's idf a little: a refusal whose P(answerable) sits at
            # the closest-sentence floor may change its wording, never into an answer or a citation.
            assert abs(clean[4] - floor) < 0.01 and abs(injected[4] - floor) < 0.01, (clean, injected)
            assert name not in injected[1]
            continue
        assert injected[:4] == clean[:4]
    assert all("42" not in answer for _, answer, *_ in with_injection)


# ---------------------------------------------------------------- paths and secrets


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(**env), timeout=300)


def test_store_that_is_a_file_or_a_foreign_folder_is_refused_and_left_untouched(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    result = cli("ask", SALARY_QUESTION, "--store", str(a_file), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --store {a_file} exists and is not a folder; choose another path"]
    assert a_file.read_text() == "keep me"

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "draft.md").write_text("draft")
    for foreign in (docs, shutil.copytree(CORPUS, tmp_path / "corpus")):
        before = sorted(p.name for p in foreign.iterdir())
        result = cli("ingest", "--store", str(foreign), cwd=tmp_path)
        assert result.returncode == 2 and "is a folder with other files but no Chroma store" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in foreign.iterdir()) == before, "nothing may be written into it"

    nested = a_file / "store"  # a path below a file
    result = cli("ingest", str(CORPUS), "--store", str(nested), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_api_key_never_appears_in_output_logs_or_reports(tmp_path, caplog):
    from tests.fake_openai import FakeOpenAI

    secret = f"sk-test-{uuid.uuid4().hex}"
    store = tmp_path / "store"
    outputs = []
    for args in (["config"], ["config", "--json"], ["ingest", str(CORPUS), "--store", str(store)],
                 ["ask", SALARY_QUESTION, "--store", str(store), "--json"],
                 ["eval", "--documents", str(CORPUS), "--questions", str(ROOT / "eval/corpus/questions.jsonl"),
                  "--limit", "2", "--out", str(tmp_path / "eval-out"), "--quiet"]):
        result = cli(*args, cwd=tmp_path, ASSISTANT_LLM_API_KEY=secret)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    assert '"llm_api_key": "***"' in outputs[1]
    outputs += [p.read_text(errors="replace") for p in (tmp_path / "eval-out").rglob("*") if p.is_file()]

    # The generative path, with every logger at DEBUG (HTTP clients log requests there).
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI() as server:
        bot = Assistant(Settings(store_dir=store, llm="openai", llm_base_url=server.base_url, llm_model="fake",
                                 llm_api_key=secret, llm_timeout=5.0, llm_retries=0))
        answer = bot.ask(SALARY_QUESTION)
        assert server.requests, "the fake endpoint must have been called"
    outputs += [caplog.text, json.dumps(answer.to_json()), repr(bot.settings), str(bot.settings.public_dict())]
    leaks = [text[max(0, text.find(secret) - 80):text.find(secret) + 80] for text in outputs if secret in text]
    assert leaks == []
