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
from dataclasses import dataclass, field
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings

from assistant.contract import Meta, chunk_owner
from assistant.embedding import ChromaEmbeddingFunction, encoder_for, preload_encoder
from assistant.lexical import IndexedChunk, LexicalIndex, index_path
from assistant.settings import Settings

GET_PAGE = 5000
FALLBACK_MAX_BATCH = 5000
LEXICAL_CHECK_S = 1.0  # a process looks at the collection's revision at most this often (two requests)
# An ingest's chunks wait in memory for the lexical index until the ingest completes; past this many
# they are written early, so an archive-sized ingest holds a bounded number of chunks, not all of them.
LEXICAL_FLUSH_CHUNKS = 20_000


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
    title: str = ""
    source: str = ""
    pages: set[int] = field(default_factory=set)
    updated: str = ""
    owner: str | None = None  # a private upload's owner (assistant/ownership.py); None: everyone sees it
    date: str = ""  # the article's date

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
LEAD_CHUNKS = 2  # a document's lead, for "What is this article about?": past a title page or a heading block


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


def check_store_dir(store_dir: Path) -> None:
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
    check_store_dir(store_dir)
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot use {store_dir} as the store folder ({exc.strerror or exc}); "
                         "choose another --store") from None
    try:
        return chromadb.PersistentClient(path=str(store_dir), settings=chroma_settings)
    except Exception as exc:  # chromadb raises InternalError (or a Rust panic) for a damaged file
        raise StoreError(damaged_message(store_dir, exc)) from None


def damaged_message(where, exc: BaseException) -> str:
    """One line for a store Chroma cannot read or write."""
    detail = " ".join(str(exc).split())[:200]
    if "readonly" in detail or "read-only" in detail or "Permission denied" in detail:
        return (f"the store at {where} is read-only ({detail}); make it writable, or copy it and pass "
                "--store COPY")
    return (f"the store at {where} cannot be read ({detail}): it is damaged or not a Chroma store; move "
            "it away and run `assistant ingest` again, or pass another --store")


class Store:
    """One Chroma collection of chunks, with the manifest queries ingest needs."""

    def __init__(self, settings: Settings, preload: bool = True) -> None:
        """Open (or create) the collection; ``preload`` starts loading the encoder meanwhile."""
        self.settings = settings
        self.client = _client(settings)
        if preload:
            preload_encoder(settings)
        self._connect(self._open_collection(create=True))
        self._open_lexical()

    def _open_collection(self, create: bool):
        settings = self.settings
        function = ChromaEmbeddingFunction(loader=lambda: encoder_for(settings))
        try:
            if not create:
                return self.client.get_collection(settings.collection, embedding_function=function)
            return self.client.get_or_create_collection(
                settings.collection, embedding_function=function, configuration={"hnsw": {"space": "cosine"}})
        except Exception as exc:
            if not create and "does not exist" in str(exc):
                raise StoreError(f"the collection {settings.collection!r} no longer exists at {self.location}; "
                                 "ingest again (`assistant ingest`) to re-create it") from None
            if settings.chroma_url:
                raise StoreError(f"cannot open the Chroma collection at {self.location} ({exc})") from None
            raise StoreError(damaged_message(self.location, exc)) from None

    def _open_lexical(self) -> None:
        settings = self.settings
        path = index_path(settings.store_dir, settings.chroma_url, settings.collection, settings.lexical_dir)
        try:
            self.lexical = LexicalIndex(path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the lexical index {path} ({exc}); "
                             "set ASSISTANT_LEXICAL_DIR to a writable folder") from None
        self._checked = float("-inf")
        self._pending: list[tuple[str, object]] = []  # writes the lexical index takes at bump_revision
        self.sync_lexical(force=True)

    def _connect(self, collection) -> None:
        self.collection = collection
        self._vector_store = None

    def refresh(self, create: bool = False):
        """The collection as it is now: reconnects when it was deleted and re-created (on a server,
        by another process), so a running app follows it instead of failing every question."""
        current = self._open_collection(create)
        if current.id != self.collection.id:
            self._connect(current)
        return current

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.store_dir)

    def query(self, **kwargs) -> dict:
        """A Chroma vector query (``collection.query`` arguments); follows a re-created collection."""
        try:
            return self.collection.query(**kwargs)
        except Exception as exc:
            if "does not exist" not in str(exc):
                raise
            self.refresh()  # StoreError when the collection is gone for good
            return self.collection.query(**kwargs)

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
        """Changes when an ingest that changed the collection is complete (cache key for BM25): an
        ingest still writing leaves it alone, so questions keep the last complete state."""
        collection = self.refresh()
        return f"{collection.id}:{(collection.metadata or {}).get('revision', '')}"

    def bump_revision(self) -> None:
        """Mark the collection changed once an ingest is complete: the lexical index takes this
        process's writes in one go, then other processes and replicas resync theirs."""
        with self._in_step():
            self._write_pending()
            self.collection.modify(metadata={"revision": uuid.uuid4().hex})

    def _write_pending(self) -> None:
        """This process's writes to the collection, in order, into the lexical index."""
        pending, self._pending = self._pending, []
        for kind, payload in pending:
            if kind == "add":
                self.lexical.add(payload)
            else:
                self.lexical.remove_document(*payload)

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
        """Every document in the store with its hash, origin, chunk counts, title, source, pages and
        date (one pass over every chunk's metadata: for listing; ingest reads :meth:`manifest`)."""
        self.refresh(create=True)
        docs: dict[str, StoredDocument] = {}
        for meta in self._get_all(["metadatas"])["metadatas"]:
            doc_id = meta.get(Meta.DOC_ID, "")
            entry = docs.get(doc_id)
            if entry is None:
                entry = docs[doc_id] = StoredDocument(
                    doc_id, meta.get(Meta.DOC_HASH, ""), meta.get(Meta.ORIGIN, ""), 0,
                    int(meta.get(Meta.N_CHUNKS, 0)), set(), str(meta.get(Meta.TITLE_FULL) or meta.get(Meta.TITLE) or ""),
                    str(meta.get(Meta.SOURCE) or ""),
                )
                entry.owner = chunk_owner(meta)
                entry.date = str(meta.get(Meta.DATE) or "")
            entry.chunks += 1
            entry.hashes.add(meta.get(Meta.DOC_HASH, ""))
            if meta.get(Meta.PAGE):
                entry.pages.add(int(meta[Meta.PAGE]))
            entry.updated = max(entry.updated, str(meta.get(Meta.UPDATED) or ""))
        return docs

    def manifest(self) -> dict[str, StoredDocument]:
        """Every document with its hash, origin and chunk counts (what ingest compares), read from
        the lexical index once it matches the collection: no pass over every chunk. After an
        ingest that stopped part-way (the collection holds chunks the index does not take until an
        ingest completes), the pass over the collection's metadata instead."""
        self.refresh(create=True)
        self.sync_lexical(force=True)
        if self.lexical.size != self.count():
            return self.documents()
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

    def lead_chunks(self, doc_id: str, like: str = "", count: int = LEAD_CHUNKS) -> list[StoredChunk]:
        """The first ``count`` chunks of document ``doc_id`` (its lead), in order. While an ingest
        replaces the document two versions may be there: the one of chunk id ``like`` if it is."""
        data = self.collection.get(where={"$and": [{Meta.DOC_ID: doc_id}, {Meta.CHUNK_INDEX: {"$lt": count}}]},
                                   include=["documents", "metadatas"])
        chunks = [StoredChunk(i, t or "", m or {}) for i, t, m in
                  zip(data["ids"], data["documents"], data["metadatas"])]
        def version(chunk_id: str) -> str:  # "doc::hash12::page:n" -> "doc::hash12"
            return chunk_id.rsplit("::", 1)[0]

        versions = {version(c.chunk_id) for c in chunks}
        keep = version(like) if version(like) in versions else min(versions, default="")
        return sorted((c for c in chunks if version(c.chunk_id) == keep),
                      key=lambda c: int(c.metadata.get(Meta.CHUNK_INDEX) or 0))

    def chunks_by_id(self, ids) -> list[StoredChunk]:
        """The chunks with these ids (those still there), with text and metadata."""
        data = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        return [StoredChunk(i, t or "", m or {}) for i, t, m in
                zip(data["ids"], data["documents"], data["metadatas"])]

    def max_batch(self) -> int:
        """The most records one write may carry (the client's limit, embedded or server)."""
        try:
            return max(1, int(self.client.get_max_batch_size()))
        except Exception:  # an old server without the call: Chroma's smallest default
            return FALLBACK_MAX_BATCH

    def add(self, nodes) -> None:
        """Upsert embedded nodes in writes of at most :meth:`max_batch` records (ids are
        deterministic, so repeating is harmless). The lexical index gets them at
        :meth:`bump_revision`, once the ingest is complete: other processes keep the last complete
        state. Past ``LEXICAL_FLUSH_CHUNKS`` waiting chunks this process writes them early (its own
        searches then see them, as its dense half already does), so memory stays bounded."""
        size = self.max_batch()
        for start in range(0, len(nodes), size):
            batch = nodes[start:start + size]
            self.vector_store.add(batch)
            self._pending.append(("add", [IndexedChunk(n.node_id, n.get_content(), n.metadata) for n in batch]))
        if sum(len(chunks) for kind, chunks in self._pending if kind == "add") >= LEXICAL_FLUSH_CHUNKS:
            with self._in_step():  # the revision stays: other processes resync at bump_revision
                self._write_pending()

    def vectors(self, chunk_ids: list[str]) -> dict[str, list[float]]:
        """The stored vectors of these chunks (those that exist), to copy under new ids."""
        found: dict[str, list[float]] = {}
        size = self.max_batch()
        for start in range(0, len(chunk_ids), size):
            page = self.collection.get(ids=chunk_ids[start:start + size], include=["embeddings"])
            found.update((i, list(map(float, e))) for i, e in zip(page["ids"], page["embeddings"]))
        return found

    def delete_document(self, doc_id: str, keep_hash: str | None = None) -> None:
        """Remove a document's chunks (all, or all but those of ``keep_hash``); from the lexical
        index at :meth:`bump_revision` (until then a search still finds them there)."""
        if keep_hash is None:
            self.collection.delete(where={Meta.DOC_ID: doc_id})
        else:
            self.collection.delete(where={"$and": [{Meta.DOC_ID: doc_id}, {Meta.DOC_HASH: {"$ne": keep_hash}}]})
        self._pending.append(("remove", (doc_id, keep_hash)))

    @contextmanager
    def _in_step(self):
        """Around a write to both halves: when the index matched the collection before, and holds as
        many chunks after, it still matches (no resync of this process's own writes, here or in
        other processes sharing an embedded store's index)."""
        matched = self.lexical.revision == self.revision()
        yield
        if matched and self.lexical.size == self.collection.count():
            self.lexical.mark_synced(self.revision())
