"""Incremental ingestion: make the store match the input, touching only what changed.

For every document we compare a content hash with the one stored in Chroma:
unchanged documents cost one hash, changed ones get their new chunks written
before the old ones are deleted (so a crash never leaves a document missing),
and documents that disappeared from a folder or dump read whole are pruned
(nothing outside it). Files of the bundled corpus keep their relative path as
id; files under any other root get the root's name and a short hash of its path
as a prefix, so two folders that both hold ``notes.md`` never share an id.

Reading and chunking run in a background thread while the main thread embeds
and writes, with a small queue of batches between them (bounded memory).
"""

from __future__ import annotations

import hashlib
import queue
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from llama_index.core.schema import MetadataMode

from assistant.chunking import chunk_document
from assistant.embedding import embedding_id, encoder_for
from assistant.loading import JSONL_SUFFIXES, LoadedDocument, LoadProblem, iter_input_files, load_path
from assistant.ownership import UPLOAD_SUBDIR, mark_owner, upload_owner
from assistant.settings import Settings
from assistant.contract import Meta
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
    loaded: dict[str, int] = field(default_factory=dict)  # input file -> documents it gave
    chunks_added: int = 0
    chunks_copied: int = 0  # of chunks_added: vectors reused from the same text under an older id
    chunks_total: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        rate = f", {self.chunks_added / self.seconds:.1f} chunks/s" if self.chunks_added and self.seconds else ""
        rate += f", {self.chunks_copied} vectors reused" if self.chunks_copied else ""
        lines = [
            f"files added {len(self.added)}, updated {len(self.updated)}, unchanged "
            f"{len(self.unchanged)}, removed {len(self.removed)}, failed {len(self.failed)}; "
            f"chunks written {self.chunks_added}, in store {self.chunks_total} "
            f"({self.seconds:.1f} s{rate})"
        ]
        lines += [str(problem) for problem in self.failed]  # each reason ends with "; skipped"
        lines += [f"warning {warning}" for warning in self.warnings]
        return "\n".join(lines)


def fingerprint(settings: Settings) -> str:
    """Everything besides the text that changes a document's chunks or vectors."""
    return f"{embedding_id(settings.embed_quantize)}|{settings.chunk_size}|{settings.chunk_overlap}|v1"


@dataclass
class IngestLimits:
    """Caps for one input file (an upload): documents, chunks and PDF pages. ``None``: no cap."""

    max_documents: int | None = None
    max_chunks: int | None = None
    max_pdf_pages: int | None = None


def root_prefix(root: Path) -> str:
    """The id prefix of files under an input root other than the bundled corpus: its folder name and
    a short hash of its resolved path (``notes-3fa2c1/``), so two roots never share an id."""
    resolved = root.resolve()
    digest = hashlib.sha1(str(resolved).encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{resolved.name or 'root'}-{digest}/"


def _id_root(path: Path, bundled: Path | None) -> tuple[Path, str]:
    """(folder ids are relative to, id prefix) for an input path; the bundled corpus has no prefix."""
    resolved = path.resolve()
    if bundled is not None:
        home = Path(bundled).resolve()
        if resolved == home or home in resolved.parents:
            return home, ""
    root = resolved if resolved.is_dir() else resolved.parent
    return root, root_prefix(root)


def _origin(file: Path, root: Path, prefix: str) -> str:
    """Where a document came from: its JSONL dump, the upload area, or the input root."""
    if file.suffix.lower() in JSONL_SUFFIXES:
        return str(file)
    if not prefix and file.relative_to(root).parts[0] == UPLOAD_SUBDIR:
        return str(root / UPLOAD_SUBDIR)
    return str(root)


def _inside(origin: str, scope: str) -> bool:
    return origin == scope or origin.startswith(scope.rstrip("/") + "/")


@dataclass
class _Batch:
    """Chunks of whole documents, ready to embed; ``stale`` documents had older chunks;
    ``copies`` maps a new chunk id to the chunk of the same document under its unprefixed id."""

    nodes: list
    docs: int
    stale: list[tuple[str, str]]
    copies: dict[str, str] = field(default_factory=dict)


class _Reader(threading.Thread):
    """Loads, compares and chunks documents; puts :class:`_Batch` es on ``out``."""

    def __init__(self, paths, settings: Settings, stored: dict[str, StoredDocument],
                 report: IngestReport, out: queue.Queue, bundled: Path | None,
                 limits: IngestLimits | None, shard: tuple[int, int] | None = None) -> None:
        super().__init__(name="ingest-reader", daemon=True)
        self.paths, self.settings, self.stored, self.report, self.out = paths, settings, stored, report, out
        self.bundled, self.limits = bundled, limits or IngestLimits()
        self.shard = shard  # (i, n): only documents whose id hashes to i of n (parallel ingest)
        self.by_hash = {doc.doc_hash: doc for doc in stored.values() if doc.complete}
        self.owner: dict[str, str] = {}  # doc id -> the file it was loaded from in this run
        self.kept: set[str] = set()  # ids loaded now, or whose file failed to load (kept as they were)
        self.scopes: list[str] = []  # folders and dumps read whole: pruning stays inside them
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

    def _files(self):
        """(file, root, prefix) for every input file; missing paths are reported."""
        for path in self.paths:
            path = Path(path)
            if not path.exists():
                self.report.failed.append(LoadProblem(str(path), "path not found; check the spelling"))
                continue
            root, prefix = _id_root(path, self.bundled)
            if path.is_dir() or path.suffix.lower() in JSONL_SUFFIXES:
                self.scopes.append(str(path.resolve()))
            for file in iter_input_files(path):
                yield file.resolve(), root, prefix

    def _read(self) -> None:
        batch = _Batch([], 0, [])
        for file, root, prefix in self._files():
            for item in self._load_file(file, root, prefix):
                if self.stop.is_set():
                    return
                self._add(item, _origin(file, root, prefix), str(file), file.relative_to(root).as_posix(), batch)
                if len(batch.nodes) >= self.settings.ingest_batch_chunks:
                    self._put(batch)
                    batch = _Batch([], 0, [])
        if batch.docs:
            self._put(batch)

    def _load_file(self, file: Path, root: Path, prefix: str):
        """The loaded items of one file, with :class:`IngestLimits` applied to the file as a whole."""
        settings, limits = self.settings, self.limits
        items = load_path(file, root, settings.max_file_mb, prefix, limits.max_pdf_pages)
        if limits.max_documents is None and limits.max_chunks is None:
            yield from items
            return
        items = list(items)
        docs = [i for i in items if isinstance(i, LoadedDocument)]
        name = prefix + file.relative_to(root).as_posix()
        if limits.max_documents is not None and len(docs) > limits.max_documents:
            yield LoadProblem(name, f"{len(docs):,} documents, above the {limits.max_documents:,}-document "
                                    "limit per upload (split the file); skipped")
            return
        if limits.max_chunks is not None:
            chunks = sum(len(chunk_document(d, "", "", settings.chunk_size, settings.chunk_overlap)) for d in docs)
            if chunks > limits.max_chunks:
                yield LoadProblem(name, f"{chunks:,} chunks, above the {limits.max_chunks:,}-chunk limit "
                                        "per upload (split the file); skipped")
                return
        yield from items

    def _claimed(self, item: LoadedDocument, source: str, doc_hash: str) -> str | None:
        """Why ``item`` may not take its id (a JSONL line whose id another source owns), else None.
        A source that no longer exists (a dump that was moved) owns nothing, and the same content
        under the same id is no takeover."""
        doc_id = item.doc_id
        if doc_id in self.owner:
            owner = self.owner[doc_id]
            return "duplicate document id in this input" if owner == source else \
                f"id {doc_id!r} already belongs to {owner}"
        if not source.endswith(tuple(JSONL_SUFFIXES)):
            return None  # a file's id is its path: it always belongs to that file
        previous = self.stored.get(doc_id)
        dump = Path(source)
        if previous and previous.origin != source and not _inside(source, previous.origin) \
                and previous.doc_hash != doc_hash and Path(previous.origin).exists():
            return f"id {doc_id!r} already belongs to a document from {previous.origin}"
        if self.bundled is not None and (Path(self.bundled) / doc_id).is_file() \
                and (Path(self.bundled) / doc_id).resolve() != dump:
            return f"id {doc_id!r} is the id of the file {doc_id} in the corpus"
        return None

    def _add(self, item, origin: str, source: str, name: str, batch: _Batch) -> None:
        settings, report = self.settings, self.report
        if isinstance(item, LoadProblem):
            report.failed.append(item)
            self.kept.add(item.path)  # keep what we had of a file that now fails to load
            return
        doc_hash = item.content_hash(fingerprint(settings))
        clash = self._claimed(item, source, doc_hash)
        if clash:
            report.failed.append(LoadProblem(name, f"{clash}; give it another id; skipped"))
            return
        self.owner[item.doc_id] = source
        self.kept.add(item.doc_id)
        if self.shard and not in_shard(item.doc_id, self.shard):
            return  # another worker's document
        report.loaded[source] = report.loaded.get(source, 0) + 1
        size = sum(len(article.text) for article in item.articles)
        if size > settings.max_document_chars:
            report.failed.append(LoadProblem(item.doc_id, (
                f"{size:,} characters of text, above the {settings.max_document_chars:,} limit "
                "(split the file or raise ASSISTANT_MAX_DOCUMENT_CHARS); skipped")))
            return
        report.warnings += [f"{item.doc_id}: {w}" for w in item.warnings]
        previous = self.stored.get(item.doc_id)
        if previous and previous.complete and previous.doc_hash == doc_hash:
            report.unchanged.append(item.doc_id)
            return
        (report.updated if previous else report.added).append(item.doc_id)
        nodes = chunk_document(item, doc_hash, origin, settings.chunk_size, settings.chunk_overlap)
        _stamp(nodes, source)
        mark_owner(nodes, upload_owner(Path(source), self.bundled))  # a private upload's owner
        twin = self.by_hash.get(doc_hash)
        if twin is not None and item.doc_id.endswith("/" + twin.doc_id):
            # the same document stored under its id from before root prefixes: reuse its vectors
            for node in nodes:
                batch.copies[node.id_] = twin.doc_id + node.id_[len(item.doc_id):]
        batch.nodes += nodes
        batch.docs += 1
        if previous:
            batch.stale.append((item.doc_id, doc_hash))
        self.pending += 1


def _stamp(nodes, source: str) -> None:
    """Record when the document's file last changed (the ``updated`` of ``assistant documents``)."""
    try:
        changed = datetime.fromtimestamp(Path(source).stat().st_mtime, timezone.utc)
    except OSError:
        changed = datetime.now(timezone.utc)
    for node in nodes:
        node.metadata[Meta.UPDATED] = changed.strftime("%Y-%m-%dT%H:%M:%SZ")
        for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            keys.append(Meta.UPDATED)


def in_shard(doc_id: str, shard: tuple[int, int]) -> bool:
    """Whether ``doc_id`` belongs to part ``shard[0]`` of ``shard[1]`` (stable across processes)."""
    return zlib.crc32(doc_id.encode()) % shard[1] == shard[0]


def ingest(paths: Iterable[Path], store: Store, settings: Settings, prune: bool = True,
           progress: bool | ProgressCallback = True, bundled: Path | None = None,
           limits: IngestLimits | None = None, pool: Callable | None = None) -> IngestReport:
    """Bring ``store`` in line with the files and JSONL dumps under ``paths``.

    ``bundled``: the corpus folder, whose files keep their relative path as id (files under other
    roots get :func:`root_prefix`). ``prune``: drop documents that disappeared from a folder or dump
    that was read whole (never anything outside it). ``limits``: caps per input file (uploads).
    ``progress``: True for a bar on stderr, False for none, or a callback
    ``(documents done, documents to write so far, note)``. ``pool``: a parallel reader in place of
    the reader thread (``functools.partial(WorkerPool, workers=N)`` of assistant/ingest_workers.py:
    documents read, chunked and embedded by N processes, one encoder each); this process alone writes.
    """
    started = time.perf_counter()
    report = IngestReport()
    stored = store.manifest()
    if pool is not None:
        reader = pool(list(paths), settings, stored, report, bundled=bundled, limits=limits)
        encoder = None
        batches = reader.out
    else:
        encoder = encoder_for(settings)
        batches = queue.Queue(maxsize=QUEUE_BATCHES)
        reader = _Reader(list(paths), settings, stored, report, batches, bundled, limits)
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
            report.chunks_copied += _write(batch, encoder, store)
            report.chunks_added += len(batch.nodes)
            done += batch.docs
            bar(done, reader.pending, f"{report.chunks_added} chunks")
    finally:
        reader.stop.set()
        reader.join()
        bar(None, None, "")

    if prune:
        for doc in stored.values():
            if doc.doc_id not in reader.kept and any(_inside(doc.origin, s) for s in reader.scopes):
                store.delete_document(doc.doc_id)
                report.removed.append(doc.doc_id)

    if report.changed:
        store.bump_revision()
    report.chunks_total = store.count()
    report.seconds = time.perf_counter() - started
    return report


def embed_batch(batch: _Batch, encoder) -> None:
    """Set the vector of every node that has none (the text with its title, as the encoder sees it)."""
    todo = [node for node in batch.nodes if node.embedding is None]
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in todo]
    for node, vector in zip(todo, encoder.encode(texts) if texts else []):
        node.embedding = vector.tolist()


def _write(batch: _Batch, encoder, store: Store) -> int:
    """Embed (unless a worker did) and upsert a batch of whole documents; then drop their stale
    chunks. Returns how many vectors were copied rather than computed."""
    wanted = [batch.copies[n.id_] for n in batch.nodes if n.id_ in batch.copies and n.embedding is None]
    copied = store.vectors(wanted) if wanted else {}
    reused = 0
    for node in batch.nodes:
        vector = copied.get(batch.copies.get(node.id_, "")) if node.embedding is None else None
        if vector is not None:
            node.embedding = vector
            reused += 1
    if encoder is not None:
        embed_batch(batch, encoder)
    store.add(batch.nodes)
    for doc_id, keep in batch.stale:
        store.delete_document(doc_id, keep_hash=keep)
    return reused


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
