"""Incremental ingestion: make the store match the input, touching only what changed.

For every document we compare a content hash with the one stored in Chroma:
unchanged documents cost one hash, changed ones get their new chunks written
before the old ones are deleted (so a crash never leaves a document missing),
and documents that disappeared from an input are pruned.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from llama_index.core.schema import MetadataMode

from assistant.chunking import chunk_document
from assistant.embedding import get_encoder
from assistant.loading import LoadedDocument, LoadProblem, iter_input_files, load_path
from assistant.settings import Settings
from assistant.store import Store

WRITE_BATCH_CHUNKS = 256
EMBEDDING_ID = "all-MiniLM-L6-v2-int8@8199be6f"

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
    return f"{EMBEDDING_ID}|{settings.chunk_size}|{settings.chunk_overlap}|v1"


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


def ingest(paths: Iterable[Path], store: Store, settings: Settings, prune: bool = True,
           progress: bool | ProgressCallback = True) -> IngestReport:
    """Bring ``store`` in line with the files and JSONL dumps under ``paths``."""
    started = time.perf_counter()
    report = IngestReport()
    stored = store.documents()
    print_fn = fingerprint(settings)

    pending: list[tuple[LoadedDocument, str, str]] = []
    seen: dict[str, set[str]] = {}
    for origin, item in _load_inputs(paths, settings, report):
        seen_here = seen.setdefault(origin, set())
        if isinstance(item, LoadProblem):
            report.failed.append(item)
            seen_here.add(item.path)  # keep what we had of a file that now fails to load
            continue
        if item.doc_id in seen_here:
            report.failed.append(LoadProblem(item.doc_id, "duplicate document id in this input; skipped"))
            continue
        seen_here.add(item.doc_id)
        report.warnings += [f"{item.doc_id}: {w}" for w in item.warnings]
        doc_hash = item.content_hash(print_fn)
        previous = stored.get(item.doc_id)
        if previous and previous.complete and previous.doc_hash == doc_hash:
            report.unchanged.append(item.doc_id)
            continue
        (report.updated if previous else report.added).append(item.doc_id)
        pending.append((item, doc_hash, origin))

    _write(pending, store, settings, report, progress)

    if prune:
        for doc in stored.values():
            if doc.origin in seen and doc.doc_id not in seen[doc.origin]:
                store.delete_document(doc.doc_id)
                report.removed.append(doc.doc_id)

    if report.changed:
        store.bump_revision()
    report.chunks_total = store.count()
    report.seconds = time.perf_counter() - started
    return report


def _write(pending, store: Store, settings: Settings, report: IngestReport, progress) -> None:
    """Chunk, embed and upsert documents in batches; then drop their stale chunks."""
    if not pending:
        return
    encoder = get_encoder(settings.embed_batch_size, settings.embed_threads)
    bar = _progress_bar(progress, len(pending))
    done = 0
    batch_nodes, batch_docs = [], []
    for index, (doc, doc_hash, origin) in enumerate(pending):
        nodes = chunk_document(doc, doc_hash, origin, settings.chunk_size, settings.chunk_overlap)
        batch_nodes += nodes
        batch_docs.append((doc.doc_id, doc_hash))
        if len(batch_nodes) >= WRITE_BATCH_CHUNKS or index == len(pending) - 1:
            texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in batch_nodes]
            for node, vector in zip(batch_nodes, encoder.encode(texts)):
                node.embedding = vector.tolist()
            store.add(batch_nodes)
            for doc_id, keep in batch_docs:
                store.delete_document(doc_id, keep_hash=keep)
            report.chunks_added += len(batch_nodes)
            done += len(batch_docs)
            bar(done, len(pending), f"{report.chunks_added} chunks")
            batch_nodes, batch_docs = [], []
    bar(None, None, "")


def _progress_bar(progress, total: int):
    """A callback (done, total, note); tqdm on stderr when ``progress`` is True."""
    if callable(progress):
        return lambda done, total_, note: done is not None and progress(done, total_, note)
    if not progress:
        return lambda *_: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="doc", desc="ingest", file=sys.stderr, dynamic_ncols=True)

    def update(done, total_, note):
        if done is None:
            bar.close()
            return
        bar.n = done
        bar.set_postfix_str(note, refresh=False)
        bar.refresh()

    return update


