"""Incremental ingestion: make the store match the input, touching only what changed.

For every document we compare a content hash with the one stored in Chroma:
unchanged documents cost one hash, changed ones get their new chunks written
before the old ones are deleted (so a crash never leaves a document missing),
and documents that disappeared from an input are pruned.

Reading and chunking run in a background thread while the main thread embeds
and writes, with a small queue of batches between them (bounded memory).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from llama_index.core.schema import MetadataMode

from assistant.chunking import chunk_document
from assistant.embedding import embedding_id, encoder_for
from assistant.loading import LoadedDocument, LoadProblem, iter_input_files, load_path
from assistant.settings import Settings
from assistant.store import Store, StoredDocument

QUEUE_BATCHES = 2
_DONE = object()

ProgressCallback = Callable[[int, int, str], None]


@dataclass
class IngestReport:
    """What an ingest did, for the summary line and for callers."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[LoadProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_total: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        rate = f", {self.chunks_added / self.seconds:.1f} chunks/s" if self.chunks_added and self.seconds else ""
        lines = [
            f"files added {len(self.added)}, updated {len(self.updated)}, unchanged "
            f"{len(self.unchanged)}, removed {len(self.removed)}, failed {len(self.failed)}; "
            f"chunks written {self.chunks_added}, in store {self.chunks_total} "
            f"({self.seconds:.1f} s{rate})"
        ]
        lines += [f"skipped {problem}" for problem in self.failed]
        lines += [f"warning {warning}" for warning in self.warnings]
        return "\n".join(lines)


def fingerprint(settings: Settings) -> str:
    """Everything besides the text that changes a document's chunks or vectors."""
    return f"{embedding_id(settings.embed_quantize)}|{settings.chunk_size}|{settings.chunk_overlap}|v1"


def _load_inputs(paths: Iterable[Path], settings: Settings, report: IngestReport):
    """Yield (origin, LoadedDocument | LoadProblem) for every input path."""
    for path in paths:
        path = Path(path)
        if not path.exists():
            report.failed.append(LoadProblem(str(path), "path not found; check the spelling"))
            continue
        origin = str(path.resolve())
        root = path if path.is_dir() else path.parent
        for file in iter_input_files(path):
            for item in load_path(file, root, settings.max_file_mb):
                yield origin, item


@dataclass
class _Batch:
    """Chunks of whole documents, ready to embed; ``stale`` documents had older chunks."""

    nodes: list
    docs: int
    stale: list[tuple[str, str]]


class _Reader(threading.Thread):
    """Loads, compares and chunks documents; puts :class:`_Batch` es on ``out``."""

    def __init__(self, paths, settings: Settings, stored: dict[str, StoredDocument],
                 report: IngestReport, out: queue.Queue, shard: tuple[int, int] | None = None) -> None:
        super().__init__(name="ingest-reader", daemon=True)
        self.paths, self.settings, self.stored, self.report, self.out = paths, settings, stored, report, out
        self.shard = shard  # (i, n): only documents whose id hashes to i of n (parallel ingest)
        self.seen: dict[str, set[str]] = {}
        self.pending = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self._read()
            self._put(_DONE)
        except BaseException as exc:  # handed to the main thread, which raises it
            self._put(exc)

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read(self) -> None:
        settings, report = self.settings, self.report
        print_fn = fingerprint(settings)
        batch = _Batch([], 0, [])
        for origin, item in _load_inputs(self.paths, settings, report):
            if self.stop.is_set():
                return
            seen_here = self.seen.setdefault(origin, set())
            if isinstance(item, LoadProblem):
                report.failed.append(item)
                seen_here.add(item.path)  # keep what we had of a file that now fails to load
                continue
            if item.doc_id in seen_here:
                report.failed.append(LoadProblem(item.doc_id, "duplicate document id in this input; skipped"))
                continue
            seen_here.add(item.doc_id)
            if self.shard and not in_shard(item.doc_id, self.shard):
                continue
            size = sum(len(article.text) for article in item.articles)
            if size > settings.max_document_chars:
                report.failed.append(LoadProblem(item.doc_id, (
                    f"{size:,} characters of text, above the {settings.max_document_chars:,} limit "
                    "(split the file or raise ASSISTANT_MAX_DOCUMENT_CHARS); skipped")))
                continue
            report.warnings += [f"{item.doc_id}: {w}" for w in item.warnings]
            doc_hash = item.content_hash(print_fn)
            previous = self.stored.get(item.doc_id)
            if previous and previous.complete and previous.doc_hash == doc_hash:
                report.unchanged.append(item.doc_id)
                continue
            (report.updated if previous else report.added).append(item.doc_id)
            batch.nodes += chunk_document(item, doc_hash, origin, settings.chunk_size, settings.chunk_overlap)
            batch.docs += 1
            if previous:
                batch.stale.append((item.doc_id, doc_hash))
            self.pending += 1
            if len(batch.nodes) >= settings.ingest_batch_chunks:
                self._put(batch)
                batch = _Batch([], 0, [])
        if batch.docs:
            self._put(batch)


def in_shard(doc_id: str, shard: tuple[int, int]) -> bool:
    """Whether ``doc_id`` belongs to part ``shard[0]`` of ``shard[1]`` (stable across processes)."""
    return zlib.crc32(doc_id.encode()) % shard[1] == shard[0]


def ingest(paths: Iterable[Path], store: Store, settings: Settings, prune: bool = True,
           progress: bool | ProgressCallback = True, workers: int = 1) -> IngestReport:
    """Bring ``store`` in line with the files and JSONL dumps under ``paths``.

    ``progress``: True for a bar on stderr, False for none, or a callback
    ``(documents done, documents to write so far, note)``. ``workers`` > 1: documents are read,
    chunked and embedded by that many processes (one encoder each); this process alone writes.
    """
    started = time.perf_counter()
    report = IngestReport()
    stored = store.documents()
    if workers > 1:
        from assistant.ingest_workers import WorkerPool

        reader = WorkerPool(list(paths), settings, stored, report, workers)
        encoder = None
        batches = reader.out
    else:
        encoder = encoder_for(settings)
        batches = queue.Queue(maxsize=QUEUE_BATCHES)
        reader = _Reader(list(paths), settings, stored, report, batches)
    bar = _progress_bar(progress)
    done = 0
    reader.start()
    try:
        while True:
            batch = batches.get()
            if batch is _DONE:
                break
            if isinstance(batch, BaseException):
                raise batch
            _write(batch, encoder, store)
            report.chunks_added += len(batch.nodes)
            done += batch.docs
            bar(done, reader.pending, f"{report.chunks_added} chunks")
    finally:
        reader.stop.set()
        reader.join()
        bar(None, None, "")

    if prune:
        for doc in stored.values():
            if doc.origin in reader.seen and doc.doc_id not in reader.seen[doc.origin]:
                store.delete_document(doc.doc_id)
                report.removed.append(doc.doc_id)

    if report.changed:
        store.bump_revision()
    report.chunks_total = store.count()
    report.seconds = time.perf_counter() - started
    return report


def embed_batch(batch: _Batch, encoder) -> None:
    """Set every node's vector (the text with its title, as the encoder sees it)."""
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in batch.nodes]
    for node, vector in zip(batch.nodes, encoder.encode(texts)):
        node.embedding = vector.tolist()


def _write(batch: _Batch, encoder, store: Store) -> None:
    """Embed (unless a worker did) and upsert a batch of whole documents; then drop their stale chunks."""
    if encoder is not None:
        embed_batch(batch, encoder)
    store.add(batch.nodes)
    for doc_id, keep in batch.stale:
        store.delete_document(doc_id, keep_hash=keep)


def _progress_bar(progress):
    """A callback (done, total, note); tqdm on stderr when ``progress`` is True."""
    if callable(progress):
        return lambda done, total, note: done is not None and progress(done, total, note)
    if not progress:
        return lambda *_: None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="doc", desc="ingest", file=sys.stderr, dynamic_ncols=True)

    def update(done, total, note):
        if done is None:
            bar.close()
            return
        bar.total, bar.n = total, done
        bar.set_postfix_str(note, refresh=False)
        bar.refresh()

    return update
