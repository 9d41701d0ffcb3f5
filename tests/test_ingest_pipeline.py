"""The ingest pipeline's speed parts: the prepared model, its cache, the reader thread, the batch size."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from assistant import embedding
from assistant.embedding import MiniLMEncoder, embedding_id, model_path, prepared_model
from assistant.ingest import fingerprint, ingest
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import drop_store, store_backend

TEXTS = ["The harbour opened in 1850.", "How many ships did the lighthouse keeper count?",
         "A much longer passage about tides, ferries and the old pier. " * 20, "x"]


def test_prepared_model_has_no_nan_guards_fuses_gelu_and_gives_the_same_vectors(tmp_path):
    onnx = pytest.importorskip("onnx")
    prepared = prepared_model(tmp_path)
    assert prepared.parent == tmp_path and prepared != model_path()
    ops = {node.op_type for node in onnx.load(str(prepared)).graph.node}
    assert "IsNaN" not in ops and "Where" in {n.op_type for n in onnx.load(str(model_path())).graph.node}
    assert "BiasGelu" in ops and "Erf" not in ops
    fast = MiniLMEncoder(cache_dir=tmp_path).encode(TEXTS)
    shipped = MiniLMEncoder(cache_dir=None).encode(TEXTS)
    assert np.allclose(fast, shipped, atol=1e-6)


def test_prepared_model_is_made_once_then_reused(tmp_path, monkeypatch):
    first = prepared_model(tmp_path)
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr(embedding, "_build_prepared", lambda *a: pytest.fail("rebuilt a cached model"))
    assert prepared_model(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name], "no scratch files are left behind"


def test_an_unwritable_cache_falls_back_to_the_packaged_model_or_the_temporary_folder(tmp_path, monkeypatch):
    from assistant.embedding import ModelMissingError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert prepared_model(blocker) == model_path(), "fp32: the packaged file gives the same vectors"
    scratch = tmp_path / "tmp"
    monkeypatch.setattr(embedding.tempfile, "gettempdir", lambda: str(scratch))
    int8 = prepared_model(blocker, quantize=True)
    assert int8.parent == scratch / "assistant-model" and "dynq8" in int8.name, "int8 has no packaged twin"
    scratch.rename(tmp_path / "moved")
    scratch.write_text("")  # the temporary folder is not writable either
    with pytest.raises(ModelMissingError, match="ASSISTANT_MODEL_CACHE_DIR"):
        prepared_model(blocker, quantize=True)


def test_quantised_vectors_are_close_but_named_apart_so_switching_re_embeds(tmp_path):
    assert embedding_id(True) != embedding_id(False)
    assert Settings().embed_quantize, "int8 activations are the default"
    assert fingerprint(Settings(embed_quantize=False)) != fingerprint(Settings())
    exact = MiniLMEncoder(cache_dir=tmp_path).encode(TEXTS)
    quantised = MiniLMEncoder(cache_dir=tmp_path, quantize=True).encode(TEXTS)
    cosines = (exact * quantised).sum(axis=1)
    assert cosines.min() > 0.95 and not np.allclose(exact, quantised, atol=1e-3)


def test_an_int8_vector_is_a_function_of_its_text_not_of_its_batch(tmp_path):
    encoder = MiniLMEncoder(cache_dir=tmp_path, quantize=True, batch_size=8)
    together = encoder.encode(TEXTS + ["A neighbour with many more words than the others, " * 10])
    alone = np.stack([encoder.encode([text])[0] for text in TEXTS])
    assert np.array_equal(together[:len(TEXTS)], alone)


def test_int8_callers_asking_for_different_batch_sizes_share_one_session(tmp_path):
    first = embedding.get_encoder(batch_size=8, cache_dir=tmp_path, quantize=True)
    assert embedding.get_encoder(batch_size=32, cache_dir=tmp_path, quantize=True) is first
    assert embedding.get_encoder(batch_size=32, cache_dir=tmp_path) is not first, "fp32 batches are real"


def test_ingest_batches_write_whole_documents_and_report_progress(settings):
    calls = []
    small = settings.with_overrides(ingest_batch_chunks=2)
    notes = small.corpus_dir
    for i in range(5):
        (notes / f"note-{i}.txt").write_text(f"Note {i}: the ferry left the pier at {i + 6} o'clock.")
    bot = Assistant(small)
    report = ingest([notes], bot.store, small, progress=lambda done, total, note: calls.append((done, total)))
    assert len(report.added) == 6
    assert calls[-1] == (6, 6) and len(calls) >= 3, "several writes, each after whole documents"
    assert all(d.complete for d in bot.store.documents().values())
    drop_store(bot)


def test_an_error_while_reading_stops_the_ingest_with_that_error(settings, monkeypatch):
    import assistant.ingest as ingest_module

    def broken(*args, **kwargs):
        raise RuntimeError("chunker exploded")

    monkeypatch.setattr(ingest_module, "chunk_document", broken)
    bot = Assistant(settings)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="chunker exploded"):
        bot.ingest(progress=False)
    assert threading.active_count() == before, "the reader thread is gone"
    assert bot.store.count() == 0
    drop_store(bot)


def test_a_document_above_the_size_limit_is_skipped_and_its_old_version_kept(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    article = corpus / "long.txt"
    article.write_text("The ferry timetable changes in October. " * 40)
    bot = Assistant(Settings(corpus_dir=corpus, max_document_chars=5000, **store_backend(tmp_path / "store")))
    bot.ingest(progress=False)
    article.write_text("The ferry timetable changes in October. " * 400)
    report = bot.ingest(progress=False)
    assert [p.path for p in report.failed] == ["long.txt"] and "5,000 limit" in report.failed[0].reason
    assert report.removed == [] and "long.txt" in bot.store.documents()
    drop_store(bot)
