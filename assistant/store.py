"""The vector store: a Chroma collection (embedded or a Chroma server) behind
LlamaIndex's ``ChromaVectorStore``.

The store is its own manifest: every chunk carries its document's id, content
hash and chunk count, so the set of complete documents can be read back from
Chroma itself. That keeps one source of truth in both embedded and server mode
and lets an interrupted ingest be finished without duplicates or orphans.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings

from assistant.contract import Meta
from assistant.embedding import ChromaEmbeddingFunction, encoder_for, preload_encoder
from assistant.lexical import IndexedChunk, LexicalIndex, index_path
from assistant.settings import Settings

GET_PAGE = 5000
LEXICAL_CHECK_S = 1.0  # a process looks at the collection's revision at most this often (two requests)


class StoreError(RuntimeError):
    """The store cannot be opened or reached; the message says what to do."""


@dataclass
class StoredDocument:
    """What the store holds for one document id."""

    doc_id: str
    doc_hash: str
    origin: str
    chunks: int
    expected_chunks: int
    hashes: set[str]

    @property
    def complete(self) -> bool:
        return len(self.hashes) == 1 and self.chunks == self.expected_chunks


@dataclass
class StoredChunk:
    """A chunk as read back from the store (for BM25 and answer extraction)."""

    chunk_id: str
    text: str
    metadata: dict


CHROMA_FILE = "chroma.sqlite3"


def _server_address(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of ``http(s)://host[:port]``; raises :class:`StoreError` for anything else."""
    from urllib.parse import urlparse

    parsed = urlparse(url if "://" in url else f"http://{url}")
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port == -1 or " " in url:
        raise StoreError(f"--chroma-url {url!r} is not a Chroma server address like http://127.0.0.1:8000")
    return parsed.hostname, port or (443 if parsed.scheme == "https" else 8000), parsed.scheme == "https"


def _check_store_dir(store_dir: Path) -> None:
    """Refuse a --store that would write into something that is not a store folder."""
    if store_dir.exists() and not store_dir.is_dir():
        raise StoreError(f"--store {store_dir} exists and is not a folder; choose another path")
    if store_dir.is_dir() and not (store_dir / CHROMA_FILE).exists() and any(store_dir.iterdir()):
        raise StoreError(f"--store {store_dir} is a folder with other files but no Chroma store; "
                         "choose an empty or new folder")


def _client(settings: Settings):
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        host, port, ssl = _server_address(settings.chroma_url)
        try:
            return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings)
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_url} ({exc}); start it with "
                "`chroma run --path DIR --host 127.0.0.1 --port 8000` or unset ASSISTANT_CHROMA_URL"
            ) from None
    store_dir = Path(settings.store_dir).expanduser()
    _check_store_dir(store_dir)
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(store_dir), settings=chroma_settings)
    except OSError as exc:
        raise StoreError(f"cannot use {store_dir} as the store folder ({exc.strerror or exc}); "
                         "choose another --store") from None


class Store:
    """One Chroma collection of chunks, with the manifest queries ingest needs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = _client(settings)
        preload_encoder(settings)
        try:
            self.collection = self.client.get_or_create_collection(
                settings.collection,
                embedding_function=ChromaEmbeddingFunction(loader=lambda: encoder_for(settings)),
                configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:
            where = settings.chroma_url or settings.store_dir
            raise StoreError(f"cannot open the Chroma collection at {where} ({exc})") from None
        path = index_path(settings.store_dir, settings.chroma_url, settings.collection, settings.lexical_dir)
        try:
            self.lexical = LexicalIndex(path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the lexical index {path} ({exc}); "
                             "set ASSISTANT_LEXICAL_DIR to a writable folder") from None
        self._checked = float("-inf")
        self.sync_lexical(force=True)

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.store_dir)

    @property
    def vector_store(self):
        """LlamaIndex's view of the collection, for writing nodes (imported only by ingest)."""
        from llama_index.vector_stores.chroma import ChromaVectorStore

        if getattr(self, "_vector_store", None) is None:
            self._vector_store = ChromaVectorStore(chroma_collection=self.collection)
        return self._vector_store

    def count(self) -> int:
        return self.collection.count()

    def revision(self) -> str:
        """Changes whenever an ingest changed the collection (cache key for BM25)."""
        collection = self.client.get_collection(self.settings.collection)
        metadata = collection.metadata or {}
        return f"{metadata.get('revision', '')}:{collection.count()}"

    def bump_revision(self) -> None:
        """Mark the collection changed (other processes and replicas resync their lexical index)."""
        with self._in_step():
            self.collection.modify(metadata={"revision": uuid.uuid4().hex})

    def sync_lexical(self, force: bool = False) -> None:
        """Bring the lexical index in step with the collection (nothing to do when the revision is
        the one it last matched; otherwise one pass over the chunk ids plus the changed chunks).

        Unless ``force``, at most once a second."""
        now = time.monotonic()
        if not force and now - self._checked < LEXICAL_CHECK_S:
            return
        self._checked = now
        self.lexical.sync(self)

    def _get_all(self, include: list[str], where: dict | None = None) -> dict:
        result = {"ids": [], "metadatas": [], "documents": []}
        offset = 0
        while True:
            page = self.collection.get(include=include, where=where, limit=GET_PAGE, offset=offset)
            result["ids"].extend(page["ids"])
            for key in ("metadatas", "documents"):
                if key in include:
                    result[key].extend(page[key])
            if len(page["ids"]) < GET_PAGE:
                return result
            offset += GET_PAGE

    def documents(self) -> dict[str, StoredDocument]:
        """Every document in the store with its hash, origin and chunk counts (the manifest, read
        from the lexical index once it matches the collection: no pass over every chunk)."""
        self.sync_lexical(force=True)
        docs: dict[str, StoredDocument] = {}
        for doc_id, doc_hash, origin, chunks, expected in self.lexical.documents():
            entry = docs.get(doc_id)
            if entry is None:
                entry = docs[doc_id] = StoredDocument(doc_id, doc_hash, origin, 0, expected, set())
            entry.chunks += chunks
            entry.hashes.add(doc_hash)
        return docs

    def chunks(self) -> list[StoredChunk]:
        """All chunks with their text and metadata."""
        data = self._get_all(["documents", "metadatas"])
        return [StoredChunk(i, t or "", m or {}) for i, t, m in
                zip(data["ids"], data["documents"], data["metadatas"])]

    def chunk_ids(self) -> list[str]:
        """Every chunk id in the collection (no text, no metadata: what a lexical sync compares)."""
        return self._get_all([])["ids"]

    def chunks_by_id(self, ids) -> list[StoredChunk]:
        """The chunks with these ids (those still there), with text and metadata."""
        data = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        return [StoredChunk(i, t or "", m or {}) for i, t, m in
                zip(data["ids"], data["documents"], data["metadatas"])]

    def add(self, nodes) -> None:
        """Upsert embedded nodes (ids are deterministic, so repeating is harmless)."""
        if nodes:
            with self._in_step():
                self.vector_store.add(nodes)  # Chroma first: a crash in between changes its count,
                self.lexical.add(IndexedChunk(n.node_id, n.get_content(), n.metadata) for n in nodes)  # so a resync

    def delete_document(self, doc_id: str, keep_hash: str | None = None) -> None:
        """Remove a document's chunks (all, or all but those of ``keep_hash``): from the lexical
        index first, so that a crash in between leaves only chunks that the next ingest removes."""
        with self._in_step():
            self.lexical.remove_document(doc_id, keep_hash)
            if keep_hash is None:
                self.collection.delete(where={Meta.DOC_ID: doc_id})
            else:
                self.collection.delete(where={"$and": [{Meta.DOC_ID: doc_id}, {Meta.DOC_HASH: {"$ne": keep_hash}}]})

    @contextmanager
    def _in_step(self):
        """Around a write to both halves: when the index matched the collection before, and holds as
        many chunks after, it still matches (no resync of this process's own writes, here or in
        other processes sharing an embedded store's index)."""
        matched = self.lexical.revision == self.revision()
        yield
        if matched and self.lexical.size == self.collection.count():
            self.lexical.mark_synced(self.revision())
