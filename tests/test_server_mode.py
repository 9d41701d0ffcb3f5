"""Server mode: the assistant against a real Chroma server (`chroma run`), through the CLI and in-process.

The server is the one ``ASSISTANT_TEST_CHROMA_URL`` names (``.ci/run`` starts it and also runs
the foundation tests against it), or one these tests start on a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import chromadb
import pytest

from assistant.evaluation import run_eval
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.chroma_server import chroma_command, free_port, running_chroma
from tests.conftest import CORPUS, ROOT, TEST_CHROMA_URL

SALARY_QUESTION = "How much does the Netflix machine learning job pay?"


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory) -> str:
    if TEST_CHROMA_URL:
        yield TEST_CHROMA_URL
        return
    if chroma_command() is None:
        pytest.skip("the `chroma` command is missing")
    base = tmp_path_factory.mktemp("chroma-server")
    with running_chroma(base / "data", base / "chroma.log") as url:
        yield url


def server(url: str):
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return chromadb.HttpClient(host=parsed.hostname, port=parsed.port)


def collection_names(url: str) -> set[str]:
    return {c.name for c in server(url).list_collections()}


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**environment, **(env or {})}, timeout=300)


def test_cli_ingests_asks_and_syncs_incrementally_through_the_server(chroma_url, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    collection = f"cli-{uuid.uuid4().hex[:12]}"
    # The environment variable alone switches to the server: no local store is created.
    env = {"ASSISTANT_CHROMA_URL": chroma_url, "ASSISTANT_COLLECTION": collection}
    first = cli("ingest", str(corpus), "--quiet", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "files added 1" in first.stdout
    assert not (tmp_path / ".store").exists()
    assert collection in collection_names(chroma_url)

    asked = cli("ask", SALARY_QUESTION, "--json", cwd=tmp_path, env=env)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert "$900,000" in answer["answer"] and answer["citations"][0]["doc_id"] == "netflix-ai-job-ad.md"

    again = cli("ingest", str(corpus), "--quiet", "--chroma-url", chroma_url, "--collection", collection, cwd=tmp_path)
    assert "unchanged 1" in again.stdout and "chunks written 0" in again.stdout

    article = corpus / "netflix-ai-job-ad.md"
    article.write_text(article.read_text().replace("$900,000", "$950,000"))
    edited = cli("ingest", str(corpus), "--quiet", cwd=tmp_path, env=env)
    assert "updated 1" in edited.stdout
    texts = server(chroma_url).get_collection(collection).get(include=["documents"])["documents"]
    assert any("$950,000" in t for t in texts) and not any("$900,000" in t for t in texts)
    server(chroma_url).delete_collection(collection)


def test_an_assistant_sees_documents_another_process_ingested_into_the_server(chroma_url, tmp_path):
    collection = f"shared-{uuid.uuid4().hex[:12]}"
    settings = Settings(chroma_url=chroma_url, collection=collection, corpus_dir=tmp_path / "corpus")
    shutil.copytree(CORPUS, tmp_path / "corpus")
    bot = Assistant(settings)
    bot.ingest(progress=False)
    question = "How many ships did the lighthouse keeper count in 1911?"
    assert bot.ask(question).abstained

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "harbour.txt").write_text("The lighthouse keeper counted 412 ships in 1911 from the harbour tower.")
    other = cli("ingest", str(notes), "--quiet", "--chroma-url", chroma_url, "--collection", collection, cwd=tmp_path)
    assert other.returncode == 0, other.stderr

    answer = bot.ask(question)  # same process as before: it must notice the other process's ingest
    assert not answer.abstained and "412" in answer.text
    # a folder outside the corpus gets its name and a short hash of its path as prefix (INTERFACES.md)
    assert re.fullmatch(r"notes-[0-9a-f]{6}/harbour\.txt", answer.citations[0].doc_id)
    assert bot.ask(SALARY_QUESTION).citations[0].doc_id == "netflix-ai-job-ad.md"
    bot.store.client.delete_collection(collection)


def test_eval_runs_against_the_server_in_a_throwaway_collection(chroma_url):
    before = collection_names(chroma_url)
    run = run_eval(Settings(chroma_url=chroma_url), CORPUS, ROOT / "eval" / "corpus" / "questions.jsonl",
                   limit=4, progress=False)
    assert len(run.records) == 4
    assert any(not r["abstained"] and r["citations"] for r in run.records)
    assert collection_names(chroma_url) == before, "the eval's collection must be deleted afterwards"


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    result = cli("ask", SALARY_QUESTION, "--chroma-url", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot reach the Chroma server at http://127.0.0.1:")
    assert "chroma run" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8000", "http://", "http://127.0.0.1:notaport"])
def test_a_malformed_server_address_is_refused(url):
    from assistant.store import StoreError

    with pytest.raises(StoreError, match="not a Chroma server address"):
        Assistant(Settings(chroma_url=url))


# ---------------------------------------------------------------- many users, one app, one server

SESSION_TURNS = ["What job did Netflix advertise for its machine learning platform?", "How much does it pay?",
                 "What percentage of actors in the guild are paid less than $26,000 a year?"]
SESSIONS = 20


@pytest.mark.slow
def test_twenty_concurrent_chat_sessions_get_the_single_user_answers(chroma_url, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    from tests.app_server import running_app

    shutil.copytree(CORPUS, tmp_path / "corpus")
    collection = f"app-{uuid.uuid4().hex[:12]}"

    def conversation(url: str) -> list[tuple[dict, float]]:
        client = Client(url, analytics_enabled=False, verbose=False, download_files=False)  # one session
        turns = []
        for message in SESSION_TURNS:
            started = time.perf_counter()
            result = client.predict(message=message, api_name="/chat")
            turns.append((result, time.perf_counter() - started))
        return turns

    with running_app(tmp_path / "corpus", tmp_path / "store", tmp_path / "app.log",
                     ASSISTANT_CHROMA_URL=chroma_url, ASSISTANT_COLLECTION=collection) as url:
        alone = [result for result, _ in conversation(url)]
        with ThreadPoolExecutor(SESSIONS) as pool:
            futures = [pool.submit(conversation, url) for _ in range(SESSIONS)]
            outcomes = [f.exception() or f.result() for f in futures]
    server(chroma_url).delete_collection(collection)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    assert "$900,000" in alone[1]["answer"] and "87%" in alone[2]["answer"]
    latencies = sorted(seconds for turns in outcomes for _, seconds in turns)
    for turns in outcomes:
        assert [(r["answer"], r["citations"]) for r, _ in turns] == [(r["answer"], r["citations"]) for r in alone]
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95) - 1]
    print(f"\n{SESSIONS} sessions x {len(SESSION_TURNS)} turns: {len(latencies)} requests, 0 errors; "
          f"latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s")
