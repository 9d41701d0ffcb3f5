"""Ingest that never loses or mixes up a document: ids unique across input roots, JSONL ids that
cannot take over another document, pruning scoped to the root ingested, titles that cannot break
chunking, writes within the client's batch limit, and migration of old ids without re-embedding.

Each case is a real folder ingested into a real store, mostly by `assistant ingest` in a subprocess.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.ingest import ingest, root_prefix
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import CORPUS, drop_store, store_backend
from tests.test_reliability import SALARY_QUESTION, cli, store_args

HARBOUR = "The harbour of Lowmoor charges a mooring fee of 14 euros per night for small boats."
BAKERY = "The bakery on Quay Street sells rye bread baked in a wood-fired oven since 1911."


def ask_json(question: str, settings: Settings, cwd: Path) -> dict:
    result = cli("ask", question, "--json", *store_args(settings), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def workdir(tmp_path: Path, settings: Settings):
    """A folder with the bundled corpus as corpus/, and the test's store settings."""
    yield tmp_path
    bot = Assistant(settings)
    drop_store(bot)


def test_same_file_name_in_two_folders_gives_two_documents_and_each_answers(workdir, settings):
    a, b = workdir / "team-a", workdir / "team-b"
    a.mkdir(), b.mkdir()
    (a / "notes.md").write_text(f"# Harbour notes\n\n{HARBOUR}\n")
    (b / "notes.md").write_text(f"# Bakery notes\n\n{BAKERY}\n")
    store = store_args(settings)
    for folder in (a, b):
        result = cli("ingest", str(folder), *store, "--quiet", cwd=workdir)
        assert result.returncode == 0 and "files added 1, updated 0" in result.stdout, result.stdout + result.stderr

    docs = Assistant(settings).store.documents()
    assert set(docs) == {root_prefix(a) + "notes.md", root_prefix(b) + "notes.md"}
    assert root_prefix(a).startswith("team-a-") and len(root_prefix(a)) == len("team-a-") + 7
    harbour = ask_json("How much is the mooring fee in Lowmoor?", settings, workdir)
    bakery = ask_json("Since when does the Quay Street bakery bake rye bread?", settings, workdir)
    assert "14 euros" in harbour["answer"] and harbour["citations"][0]["doc_id"] == root_prefix(a) + "notes.md"
    assert "1911" in bakery["answer"] and bakery["citations"][0]["doc_id"] == root_prefix(b) + "notes.md"


def test_a_folder_holding_a_bundled_file_name_cannot_replace_the_bundled_document(workdir, settings, corpus_dir):
    store = store_args(settings)
    assert cli("ingest", *store, "--quiet", cwd=workdir).returncode == 0  # the bundled corpus
    fake = workdir / "downloads"
    fake.mkdir()
    (fake / "netflix-ai-job-ad.md").write_text("# Netflix AI job\n\nThe machine learning job pays exactly 5 dollars.\n")
    result = cli("ingest", str(fake), *store, "--quiet", cwd=workdir)
    assert "files added 1, updated 0" in result.stdout

    answer = ask_json(SALARY_QUESTION, settings, workdir)
    assert "$900,000" in answer["answer"]
    assert any(c["doc_id"] == "netflix-ai-job-ad.md" and "$900,000" in c["quote"] for c in answer["citations"])
    assert set(Assistant(settings).store.documents()) == {"netflix-ai-job-ad.md",
                                                          root_prefix(fake) + "netflix-ai-job-ad.md"}


def test_pruning_is_scoped_to_the_root_that_was_ingested(workdir, settings, corpus_dir):
    store = store_args(settings)
    other = workdir / "other"
    other.mkdir()
    (other / "harbour.md").write_text(HARBOUR)
    (other / "bakery.md").write_text(BAKERY)
    for args in ((), (str(other),)):
        assert cli("ingest", *args, *store, "--quiet", cwd=workdir).returncode == 0
    (other / "bakery.md").unlink()
    result = cli("ingest", str(other), *store, "--quiet", cwd=workdir)
    assert "removed 1" in result.stdout
    assert set(Assistant(settings).store.documents()) == {"netflix-ai-job-ad.md", root_prefix(other) + "harbour.md"}

    # Ingesting one file never prunes its folder; the corpus ingest never prunes another root.
    (other / "bakery.md").write_text(BAKERY)
    for args in ((str(other / "bakery.md"),), ()):
        result = cli("ingest", *args, *store, "--quiet", cwd=workdir)
        assert "removed 0" in result.stdout, result.stdout
    assert root_prefix(other) + "bakery.md" in Assistant(settings).store.documents()


def test_a_jsonl_id_owned_by_another_source_is_refused_with_one_line(workdir, settings, corpus_dir):
    store = store_args(settings)
    assert cli("ingest", *store, "--quiet", cwd=workdir).returncode == 0
    dump = workdir / "dump.jsonl"
    dump.write_text("\n".join(json.dumps(r) for r in [
        {"id": "netflix-ai-job-ad.md", "title": "Netflix AI job", "text": "The job pays exactly 5 dollars."},
        {"id": "harbour", "title": "Harbour", "text": HARBOUR},
    ]) + "\n")
    result = cli("ingest", str(dump), *store, "--quiet", cwd=workdir)
    assert result.returncode == 0
    refused = [line for line in result.stdout.splitlines() if line.endswith("skipped")]
    assert refused == ["dump.jsonl: id 'netflix-ai-job-ad.md' already belongs to a document from "
                       f"{corpus_dir.resolve()}; give it another id; skipped"]

    second = workdir / "later.jsonl"
    second.write_text(json.dumps({"id": "harbour", "text": BAKERY}) + "\n")
    result = cli("ingest", str(second), *store, "--quiet", cwd=workdir)
    assert "already belongs to a document from" in result.stdout and "failed 1" in result.stdout

    # Re-ingesting the corpus does not skip the real file, and the dump keeps its own line.
    result = cli("ingest", *store, "--quiet", cwd=workdir)
    assert "unchanged 1" in result.stdout and "removed 0" in result.stdout
    assert "$900,000" in ask_json(SALARY_QUESTION, settings, workdir)["answer"]
    assert "14 euros" in ask_json("How much is the mooring fee in Lowmoor?", settings, workdir)["answer"]


def test_a_jsonl_line_cannot_take_the_id_of_a_corpus_file_in_the_same_ingest(bot, corpus_dir):
    (corpus_dir / "a-dump.jsonl").write_text(json.dumps({"id": "netflix-ai-job-ad.md", "text": "Pays 5 dollars."}) + "\n")
    report = bot.ingest(progress=False)
    assert [str(p) for p in report.failed] == [
        "a-dump.jsonl: id 'netflix-ai-job-ad.md' is the id of the file netflix-ai-job-ad.md in the corpus; "
        "give it another id; skipped"]
    assert "$900,000" in bot.ask(SALARY_QUESTION).text


def test_a_title_of_140_emoji_is_cut_for_chunking_and_kept_whole_for_display(workdir, settings, corpus_dir):
    title = "🚢" * 140
    (corpus_dir / "long-title.md").write_text(f"---\ntitle: {title}\n---\n{HARBOUR}\n")
    (corpus_dir / "plain.md").write_text(BAKERY)
    result = cli("ingest", *store_args(settings), "--quiet", "--chunk-size", "128", cwd=workdir)
    assert result.returncode == 0 and "files added 3" in result.stdout, result.stdout + result.stderr

    answer = ask_json("How much is the mooring fee in Lowmoor?", settings, workdir)
    assert answer["citations"][0]["title"] == title
    chunks = [c for c in Assistant(settings).store.chunks() if c.metadata["doc_id"] == "long-title.md"]
    from assistant.chunking import count_tokens

    assert all(count_tokens(f"title: {c.metadata['title']}") <= 32 for c in chunks)
    assert all(c.metadata["title_full"] == title for c in chunks)


def test_ordinary_titles_keep_their_content_hash_and_chunk_ids(settings):
    """The ids the previous version wrote for the bundled article with fp32 vectors (its default):
    with embed_quantize false such a store stays unchanged; the int8 default names its chunks apart,
    so upgrading re-embeds instead of mixing the two kinds of vector."""
    exact = Assistant(settings.with_overrides(embed_quantize=False))
    exact.ingest(progress=False)
    chunks = exact.store.chunks()
    assert sorted(c.chunk_id for c in chunks) == [f"netflix-ai-job-ad.md::aafce02bbf85::0:{i}" for i in range(6)]
    assert all("title_full" not in c.metadata for c in chunks)
    drop_store(exact)
    default = Assistant(settings)
    default.ingest(progress=False)
    assert all("::aafce02bbf85::" not in c.chunk_id for c in default.store.chunks())
    drop_store(default)


@pytest.mark.slow
def test_a_document_of_more_chunks_than_one_chroma_write_takes_is_stored_whole(tmp_path, monkeypatch):
    import assistant.ingest as ingest_module

    class StandIn:  # the real encoder would take minutes for 6,000 chunks; the store path is real
        def encode(self, texts):
            return np.tile(np.eye(1, 384, dtype=np.float32), (len(texts), 1))

    monkeypatch.setattr(ingest_module, "encoder_for", lambda settings: StandIn())
    folder = tmp_path / "big"
    folder.mkdir()
    sentence = "Tide table entry {} lists the high water time for the northern pier. "
    (folder / "tides.txt").write_text("".join(sentence.format(i) for i in range(9000)))
    bot = Assistant(Settings(chunk_size=32, chunk_overlap=0, **store_backend(tmp_path / "store")))
    limit = bot.store.max_batch()
    report = ingest([folder], bot.store, bot.settings, progress=False)
    assert not report.failed and report.chunks_added > limit, (report.chunks_added, limit)
    stored = bot.store.documents()[root_prefix(folder) + "tides.txt"]
    assert stored.complete and stored.chunks == report.chunks_added
    drop_store(bot)


def test_an_old_store_with_unprefixed_ids_is_migrated_without_re_embedding(tmp_path, monkeypatch):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "harbour.md").write_text(HARBOUR)
    (notes / "bakery.md").write_text(BAKERY)
    bot = Assistant(Settings(corpus_dir=tmp_path / "corpus", **store_backend(tmp_path / "store")))
    # What the previous version wrote for `assistant ingest notes`: ids relative to the folder.
    ingest([notes], bot.store, bot.settings, progress=False, bundled=notes)
    before = bot.store.collection.get(include=["embeddings"])
    assert sorted(bot.store.documents()) == ["bakery.md", "harbour.md"]

    import assistant.ingest as ingest_module

    def no_encoder(settings):
        raise AssertionError("unchanged text must not be embedded again")

    monkeypatch.setattr(ingest_module, "encoder_for", lambda settings: type("E", (), {"encode": no_encoder})())
    report = bot.ingest([notes], progress=False)
    prefix = root_prefix(notes)
    assert sorted(bot.store.documents()) == [prefix + "bakery.md", prefix + "harbour.md"]
    assert report.chunks_copied == report.chunks_added == 2 and sorted(report.removed) == ["bakery.md", "harbour.md"]
    after = bot.store.collection.get(include=["embeddings"])
    old = {i.split("::", 1)[1]: e for i, e in zip(before["ids"], before["embeddings"])}
    new = {i.split("::", 1)[1]: e for i, e in zip(after["ids"], after["embeddings"])}
    assert old.keys() == new.keys() and all(np.allclose(old[k], new[k]) for k in old)
    drop_store(bot)
