"""The lexical (BM25) index: SQLite FTS5 on disk, updated document by document.

Each chunk is stored once as a row (its text, metadata and stemmed terms from
:func:`assistant.text.terms`) and indexed by FTS5 over those terms, so adding or
removing a document touches only its own rows, and opening the index reads
nothing but a few counters.

Ranking is the BM25 of bm25s (Lucene variant, k1 1.5, b 0.75), which is what the
answerer and the fusion weights were tuned on: FTS5's own ``bm25()`` (k1 1.2,
a clamped idf) picks a pool of candidates, which are then scored exactly with
the Lucene formula from the index's counters. On squad2-dev and the bundled
corpus the top 90 agree with an in-memory bm25s index (tests/test_lexical.py,
bench/lexical_quality.py).

Keeping in step with the vector store: :meth:`LexicalIndex.sync` compares the
store's chunk ids with its own and reads only the chunks it lacks (and drops
those the store no longer has). It runs when the store's revision differs from
the one the index last matched, so another process's or replica's ingest shows
up at the next question. Embedded stores keep the index beside the Chroma
files; on a Chroma server each app replica keeps its own copy (see
:func:`index_path`).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

from assistant.contract import chunk_owner
from assistant.text import terms

SCHEMA_VERSION = 3  # 2: the owner column (private uploads); 3: terms fold accents, curly apostrophes, British spellings
# What assistant.text.terms makes of words that exercise each of its rules: an index whose terms were
# made by other rules (an older or newer version of this code) is rebuilt by sync, never searched with
# question terms made another way.
TERMS_PROBE = ("Netflix’s Writers' STRIKES don't café Möngke centre harmonised colour analysed non-Islamic "
               "machine-learning 1,500 $300,000 2024 U.S. e-mail the of and")
INDEX_FILE = "lexical.sqlite3"
K1, B = 1.5, 0.75  # bm25s defaults ("lucene"), as the fusion weights were chosen with them
IDF_PRIOR_CHUNKS = 100
POOL_MIN, POOL_FACTOR = 200, 4  # FTS5 candidates rescored per search: max(POOL_MIN, POOL_FACTOR * k)
CACHE_MB = 64  # SQLite page cache per connection (memory-mapped reads on top)
SYNC_FETCH = 500  # chunks read from the store per request while syncing
# Stemmed terms keep these characters ("u.s", "3.5%", "o'neil"); FTS5 splits only on spaces.
_TOKENIZER = "unicode61 remove_diacritics 0 separators ' ' tokenchars '''’.,%-$£€_'"


@dataclass
class IndexedChunk:
    """A chunk as the lexical index holds it (also what the store hands it)."""

    chunk_id: str
    text: str
    metadata: dict


class ChunkSource(Protocol):
    """What :meth:`LexicalIndex.sync` needs from the vector store."""

    def revision(self) -> str: ...

    def chunk_ids(self) -> list[str]: ...

    def chunks_by_id(self, ids: Sequence[str]) -> list[IndexedChunk]: ...


def index_path(store_dir: Path | None, chroma_url: str | None, collection: str, replica_dir: Path) -> Path:
    """Where the index lives: beside an embedded store, or per replica in ``replica_dir`` for a
    Chroma server (one file per server address and collection)."""
    if not chroma_url:
        suffix = "" if collection == "articles" else f"-{collection}"
        return Path(store_dir).expanduser() / INDEX_FILE.replace(".", f"{suffix}.", 1)
    key = hashlib.sha256(f"{chroma_url.rstrip('/')}|{collection}".encode()).hexdigest()[:16]
    return Path(replica_dir).expanduser() / f"{collection}-{key}.sqlite3"


def chunk_terms(chunk: IndexedChunk) -> list[str]:
    """The terms BM25 sees for a chunk: its title and its text."""
    return terms(f"{chunk.metadata.get('title', '')}\n{chunk.text}")


def _match_expression(query_terms: Iterable[str]) -> str:
    """Any of the terms; a repeated term stays repeated (it counts twice in BM25, as in bm25s)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in query_terms)


class LexicalIndex:
    """BM25 over the chunks of one collection, in one SQLite file (WAL: readers never wait)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # one writer per process (SQLite makes processes take turns)
        self._local = threading.local()  # readers: one connection per thread, never waiting for a writer
        self._readers: list[sqlite3.Connection] = []
        self._db = self._connect()
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            self._create()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{CACHE_MB * 1024}")
        db.execute(f"PRAGMA mmap_size={CACHE_MB * 4 << 20}")
        return db

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (a search sees one consistent snapshot)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            with self._lock:
                self._readers.append(db)
        return db

    def _create(self) -> None:
        """Create the tables, in one write transaction (another process opening the file waits)."""
        rules = " ".join(terms(TERMS_PROBE))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION) or (version and self._stored("rules") != rules):
                # An older layout, or terms made by other rules: start again (sync refills it).
                for table in ("vocab", "fts", "chunks", "state"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in (
                    """CREATE TABLE IF NOT EXISTS chunks (
                        rowid INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL,
                        doc_hash TEXT NOT NULL, origin TEXT NOT NULL, n_chunks INTEGER NOT NULL,
                        length INTEGER NOT NULL, terms TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL,
                        owner TEXT)""",
                    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id)",
                    f"""CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
                        terms, content='chunks', content_rowid='rowid', tokenize="{_TOKENIZER}")""",
                    "CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab(fts, 'row')",
                    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                    "INSERT OR IGNORE INTO state VALUES ('chunks', '0'), ('terms', '0'), ('revision', '')",
                    f"PRAGMA user_version = {SCHEMA_VERSION}"):
                db.execute(statement)
            db.execute("INSERT OR REPLACE INTO state VALUES ('rules', ?)", (rules,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _stored(self, key: str) -> str | None:
        """A value of the state table, or None when there is none (or no table)."""
        try:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    class _Transaction:
        def __init__(self, index: "LexicalIndex") -> None:
            self.index = index

        def __enter__(self):
            self.index._lock.acquire()
            self.index._db.execute("BEGIN IMMEDIATE")
            return self.index._db

        def __exit__(self, kind, *_):
            try:
                self.index._db.execute("ROLLBACK" if kind else "COMMIT")
            finally:
                self.index._lock.release()

    def _write(self) -> "_Transaction":
        """One write transaction (other processes wait for it, readers see it whole)."""
        return LexicalIndex._Transaction(self)

    def _state(self, key: str, db: sqlite3.Connection | None = None) -> str:
        return (db or self._reader()).execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0]

    def _bump(self, db, chunks: int, length: int) -> None:
        db.execute("UPDATE state SET value = CAST(value AS INTEGER) + ? WHERE key = 'chunks'", (chunks,))
        db.execute("UPDATE state SET value = CAST(value AS INTEGER) + ? WHERE key = 'terms'", (length,))
        db.execute("UPDATE state SET value = '' WHERE key = 'revision'")

    # -- writing ---------------------------------------------------------------------------

    def add(self, chunks: Iterable[IndexedChunk]) -> int:
        """Index ``chunks`` (a chunk id already present is replaced); returns how many."""
        rows = []
        for chunk in chunks:
            toks = chunk_terms(chunk)
            meta = {k: v for k, v in chunk.metadata.items() if not k.startswith("_")}  # not LlamaIndex's copy
            rows.append((chunk.chunk_id, str(meta.get("doc_id", "")), str(meta.get("doc_hash", "")),
                         str(meta.get("origin", "")), int(meta.get("n_chunks", 0) or 0), len(toks),
                         " ".join(toks), chunk.text, json.dumps(meta, ensure_ascii=False), chunk_owner(meta)))
        if not rows:
            return 0
        with self._write() as db:
            self._remove_where(db, f"chunk_id IN ({','.join('?' * len(rows))})", [r[0] for r in rows])
            for row in rows:
                cursor = db.execute(
                    "INSERT INTO chunks(chunk_id, doc_id, doc_hash, origin, n_chunks, length, terms, text, "
                    "metadata, owner) VALUES (?,?,?,?,?,?,?,?,?,?)", row)
                db.execute("INSERT INTO fts(rowid, terms) VALUES (?, ?)", (cursor.lastrowid, row[6]))
            self._bump(db, len(rows), sum(r[5] for r in rows))
        return len(rows)

    def remove(self, chunk_ids: Sequence[str]) -> int:
        """Drop these chunks; returns how many were there."""
        removed = 0
        for start in range(0, len(chunk_ids), SYNC_FETCH):
            part = list(chunk_ids[start:start + SYNC_FETCH])
            with self._write() as db:
                removed += self._remove_where(db, f"chunk_id IN ({','.join('?' * len(part))})", part)
        return removed

    def remove_document(self, doc_id: str, keep_hash: str | None = None) -> int:
        """Drop a document's chunks (all, or all but those of ``keep_hash``)."""
        with self._write() as db:
            if keep_hash is None:
                return self._remove_where(db, "doc_id = ?", [doc_id])
            return self._remove_where(db, "doc_id = ? AND doc_hash != ?", [doc_id, keep_hash])

    def _remove_where(self, db, where: str, args: list) -> int:
        rows = db.execute(f"SELECT rowid, terms, length FROM chunks WHERE {where}", args).fetchall()
        for rowid, toks, _ in rows:
            db.execute("INSERT INTO fts(fts, rowid, terms) VALUES ('delete', ?, ?)", (rowid, toks))
        if rows:
            db.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in rows])
            self._bump(db, -len(rows), -sum(r[2] for r in rows))
        return len(rows)

    # -- keeping in step with the store ----------------------------------------------------

    @property
    def revision(self) -> str:
        """The store revision this index last matched ('' when unknown or changed since)."""
        return self._state("revision")

    def mark_synced(self, revision: str) -> None:
        with self._write() as db:
            db.execute("UPDATE state SET value = ? WHERE key = 'revision'", (revision,))

    def sync(self, source: ChunkSource) -> tuple[int, int]:
        """Match the chunks of ``source``: read those missing here, drop those gone there.

        Costs one pass over the store's chunk ids plus the changed chunks; does nothing when the
        store's revision is the one last matched. Returns (added, removed).
        """
        revision = source.revision()
        if revision == self.revision:
            return 0, 0
        theirs = set(source.chunk_ids())
        ours = {row[0] for row in self._reader().execute("SELECT chunk_id FROM chunks")}
        gone = sorted(ours - theirs)
        removed = self.remove(gone)
        missing = sorted(theirs - ours)
        added = 0
        for start in range(0, len(missing), SYNC_FETCH):
            added += self.add(source.chunks_by_id(missing[start:start + SYNC_FETCH]))
        if source.revision() == revision:  # nothing changed underneath while we read
            self.mark_synced(revision)
        return added, removed

    # -- reading ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of chunks indexed."""
        return int(self._state("chunks"))

    def doc_freq(self, term: str, db: sqlite3.Connection | None = None) -> int:
        """How many chunks contain ``term``."""
        row = (db or self._reader()).execute("SELECT doc FROM vocab WHERE term = ?", (term,)).fetchone()
        return row[0] if row else 0

    def idf(self, term: str) -> float:
        """Term weight for answer scoring. ``IDF_PRIOR_CHUNKS`` imaginary chunks without the term
        keep weights meaningful in a tiny corpus (in one article every term is "common")."""
        return _prior_idf(self.doc_freq(term), self.size)

    def weights(self, query_terms: Iterable[str]) -> Callable[[str], float]:
        """Term weights (:meth:`idf`) as the index stands now: ``query_terms`` are read at once, any
        other term when first asked, at the same corpus size; later ingests do not move them."""
        db = self._reader()
        size = int(self._state("chunks", db))
        cache = {t: _prior_idf(self.doc_freq(t, db), size) for t in set(query_terms)}

        def idf(term: str) -> float:
            if term not in cache:
                cache[term] = _prior_idf(self.doc_freq(term), size)
            return cache[term]

        return idf

    def search(self, query_terms: list[str], k: int, visible_to: str | None = None) -> list[tuple[IndexedChunk, float]]:
        """The ``k`` best chunks for ``query_terms`` by BM25 (bm25s' Lucene scores), best first; with
        ``visible_to``, only chunks everyone sees and that user's private ones."""
        if not query_terms or k <= 0:
            return []
        db = self._reader()
        db.execute("BEGIN")
        try:
            n, total = int(self._state("chunks", db)), int(self._state("terms", db))
            if not n:
                return []
            pool = max(POOL_MIN, POOL_FACTOR * k)
            owner, args = ("", []) if visible_to is None else (" AND (c.owner IS NULL OR c.owner = ?)", [visible_to])
            rows = db.execute(
                "SELECT c.rowid, c.length, c.terms FROM fts JOIN chunks c ON c.rowid = fts.rowid "
                f"WHERE fts MATCH ?{owner} ORDER BY fts.rank LIMIT ?",
                [_match_expression(query_terms), *args, pool]).fetchall()
            idf = {t: _lucene_idf(self.doc_freq(t, db), n) for t in set(query_terms)}
            best = _rescore(rows, query_terms, idf, total / n if total else 1.0)[:k]
            found = {row[0]: row[1:] for row in db.execute(
                f"SELECT rowid, chunk_id, text, metadata FROM chunks WHERE rowid IN ({','.join('?' * len(best))})",
                [rowid for _, rowid in best])}
        finally:
            db.execute("COMMIT")
        return [(IndexedChunk(found[rowid][0], found[rowid][1], json.loads(found[rowid][2])), -score)
                for score, rowid in best]

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self._reader().execute("SELECT chunk_id FROM chunks ORDER BY rowid")]
        return [r[0] for r in self._reader().execute(
            "SELECT chunk_id FROM chunks WHERE doc_id = ? ORDER BY rowid", (doc_id,))]

    def term_counts(self, candidates: Iterable[str]) -> dict[str, int]:
        """How many chunks hold each of ``candidates`` that any chunk holds."""
        wanted, found = list(candidates), {}
        db = self._reader()
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            found.update(db.execute(f"SELECT term, doc FROM vocab WHERE term IN ({','.join('?' * len(part))})", part))
        return found

    def texts_with(self, term: str, others: set[str], need: int, visible_to: str | None = None,
                   limit: int = 200) -> list[str]:
        """The title and text of each chunk that holds ``term`` and at least ``need`` of ``others``
        (among the first ``limit`` chunks holding ``term``; with ``visible_to``, only chunks that
        user may see)."""
        owner, args = ("", []) if visible_to is None else (" AND (c.owner IS NULL OR c.owner = ?)", [visible_to])
        rows = self._reader().execute(
            "SELECT c.terms, c.text, c.metadata FROM fts JOIN chunks c ON c.rowid = fts.rowid "
            f"WHERE fts MATCH ?{owner} LIMIT ?", [_match_expression([term]), *args, limit])
        return [f"{json.loads(metadata).get('title', '')}\n{text}" for held, text, metadata in rows
                if len(others & set(held.split())) >= need]

    def known(self, chunk_ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids the index holds."""
        ids = list(chunk_ids)
        if not ids:
            return set()
        return {r[0] for r in self._reader().execute(
            f"SELECT chunk_id FROM chunks WHERE chunk_id IN ({','.join('?' * len(ids))})", ids)}

    def documents(self) -> list[tuple[str, str, str, int, int]]:
        """(doc_id, doc_hash, origin, chunks, expected chunks) per document and content hash."""
        return self._reader().execute(
            "SELECT doc_id, doc_hash, origin, COUNT(*), MAX(n_chunks) FROM chunks "
            "GROUP BY doc_id, doc_hash ORDER BY doc_id").fetchall()

    def close(self) -> None:
        with self._lock:
            for db in [self._db, *self._readers]:
                db.close()


def _rescore(rows, query_terms: list[str], idf: dict[str, float], avg_length: float) -> list[tuple[float, int]]:
    """(-score, rowid) of FTS5's pool rows by the Lucene BM25 of bm25s, best first (ties: oldest row
    first); a query term given twice counts twice, as in bm25s."""
    wanted = set(query_terms)
    scored = []
    for rowid, length, toks in rows:
        counts = Counter(t for t in toks.split(" ") if t in wanted)
        norm = K1 * (1 - B + B * length / avg_length)
        score = sum(idf[t] * counts[t] / (norm + counts[t]) for t in query_terms if counts[t])
        if score > 0:
            scored.append((-score, rowid))
    return sorted(scored)


def _prior_idf(df: int, n: int) -> float:
    return math.log(1 + (max(n, 1) + IDF_PRIOR_CHUNKS - df + 0.5) / (df + 0.5))


def _lucene_idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))
