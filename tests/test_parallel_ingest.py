"""`assistant ingest --workers N`: the same store as a serial ingest, incremental and pruning as before.

Runs against an embedded store, and against the test Chroma server when ASSISTANT_TEST_CHROMA_URL is
set (.ci/run does that for a second run).
"""

from __future__ import annotations

import subprocess
import sys

from assistant.ingest import in_shard
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import drop_store, store_backend


def test_documents_split_over_workers_by_a_stable_hash_of_their_id():
    ids = [f"doc-{i}.md" for i in range(200)]
    parts = [[d for d in ids if in_shard(d, (i, 3))] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(len(p) > 40 for p in parts)


def test_two_workers_write_what_one_writes_and_stay_incremental(tmp_path, corpus_dir):
    for n, topic in enumerate(("lighthouses", "glaciers", "harbours", "orchards")):
        (corpus_dir / f"note-{n}.md").write_text(f"# Notes on {topic}\n\nThe survey counted {n + 3} {topic} in 1911.")
    serial = Assistant(Settings(corpus_dir=corpus_dir, **store_backend(tmp_path / "serial")))
    parallel = Assistant(Settings(corpus_dir=corpus_dir, ingest_workers=2, **store_backend(tmp_path / "parallel")))
    try:
        one = serial.ingest(progress=False)
        two = parallel.ingest(progress=False)
        assert sorted(two.added) == sorted(one.added) and two.chunks_added == one.chunks_added > 0
        assert sorted(parallel.store.chunk_ids()) == sorted(serial.store.chunk_ids())

        gone = "note-2.md"
        (corpus_dir / gone).unlink()
        again = parallel.ingest(progress=False)
        assert again.removed == [gone] and not again.added and again.chunks_added == 0
        assert sorted(again.unchanged) == sorted(set(one.added) - {gone})
        answer = parallel.ask("What annual salary does Netflix offer for the machine learning platform product manager?")
        assert not answer.abstained and "$900,000" in answer.text
    finally:
        drop_store(serial)
        drop_store(parallel)


def test_cli_ingest_with_workers_prints_the_summary(tmp_path, corpus_dir):
    where = store_backend(tmp_path / "store")
    flags = (["--chroma-url", where["chroma_url"], "--collection", where["collection"]] if "chroma_url" in where
             else ["--store", str(where["store_dir"])])
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(corpus_dir), "--workers", "2",
                          "--quiet", *flags], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "files added 1," in run.stdout and "failed 0" in run.stdout
    bot = Assistant(Settings(**where))
    drop_store(bot)
