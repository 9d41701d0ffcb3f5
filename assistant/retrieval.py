"""Retrieval: dense (MiniLM in Chroma) and BM25, fused (weighted by default, or reciprocal rank fusion).

BM25 comes from the store's lexical index on disk (assistant/lexical.py), which
ingest updates document by document and which catches up with other processes'
or replicas' ingests by the store's revision before each search. A search
returns everything it found as one :class:`Retrieval` value and leaves no state
behind, so searches and ingests need no lock between them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from assistant.contract import Filters, Meta, Passage, date_ordinal, ranked_doc_ids
from assistant.ownership import visibility_where
from assistant.store import Store
from assistant.text import terms

PUBLICATION_LAG_DAYS = 2
FUTURE_PENALTY = 0.2
RECENCY_BOOST = 0.5
RECENCY_HALF_LIFE_DAYS = 14
WEEK_BOOST = 0.5  # a dated question: an article of its week scores up to this share higher
WEEK_HALF_LIFE_DAYS = 7
RECENCY_WORDS = ("this week", "last week", "recently", "recent", "latest", "this month", "today",
                 "yesterday", "currently", "now", "new ", "this year", "so far")


@dataclass
class Retrieval:
    """What one search found: the ``top_k`` passages, the document ranking of all candidates, and
    the term weights of the BM25 index that this search used (nothing is kept between searches)."""

    passages: list[Passage]
    doc_ranking: list[str]
    idf: Callable[[str], float]


def chroma_where(filters: Filters) -> dict | None:
    """The date-range and owner parts of ``filters`` as a Chroma ``where`` (the source filter is
    applied after)."""
    items = []
    if filters.since:
        items.append({Meta.DATE_ORDINAL: {"$gte": filters.since_ordinal}})
    if filters.until:
        items.append({Meta.DATE_ORDINAL: {"$lte": filters.until_ordinal}})
    if filters.visible_to is not None:
        items.append(visibility_where(filters.visible_to))
    return None if not items else items[0] if len(items) == 1 else {"$and": items}


@dataclass(frozen=True)
class RetrievalOptions:
    """How a :class:`Retriever` searches (``Settings`` of the same names)."""

    top_k: int = 5
    candidates: int = 30
    hybrid: bool = True
    fusion: str = "weighted"
    bm25_weight: float = 0.45
    rrf_k: int = 60


class Retriever:
    """Hybrid retriever over one :class:`Store`; ``encoder`` embeds queries (the store's model)."""

    def __init__(self, store: Store, encoder, options: RetrievalOptions = RetrievalOptions()) -> None:
        self.store = store
        self.options = options
        self.encoder = encoder
        # BM25 runs beside the dense half (SQLite and ONNX Runtime both release the GIL).
        self._lexical_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bm25")

    def retrieve(self, query: str, top_k: int | None = None, filters: Filters | None = None) -> Retrieval:
        """The ``top_k`` best passages for ``query`` (best first), the ranking of documents over all
        candidates, and the term weights of the index this search used."""
        top_k = top_k or self.options.top_k
        self.store.sync_lexical()  # another process or replica may have ingested since
        ranked = self._search(query, filters or Filters(), top_k)
        return Retrieval(ranked[:top_k], ranked_doc_ids(ranked), self.store.lexical.weights(terms(query)))

    def lead(self, found: Retrieval, subject: str | None) -> Retrieval | None:
        """For a question about a whole document: that document's lead chunks, then its passages that
        ``found`` holds, in the document's order. The document is the first one ``found`` ranks when
        the question (or its conversation) names a ``subject`` and that document mentions it (else
        no passage: nothing visible is about it), or the only one it found; None when it found
        several and nothing says which."""
        if not found.passages:
            return found
        if not subject and len(found.doc_ranking) > 1:
            return None
        doc_id = found.passages[0].doc_id
        own = [p for p in found.passages if p.doc_id == doc_id]
        wanted = set(terms(subject or ""))
        if subject and not any(wanted & set(terms(f"{p.title}\n{p.text}")) for p in own):
            return Retrieval([], found.doc_ranking, found.idf)
        # The lead belongs to a document this search was allowed to see (filters, owner), so
        # reading it by its document id shows nothing the search could not.
        lead = [Passage.from_metadata(c.chunk_id, c.text, c.metadata)
                for c in self.store.lead_chunks(doc_id, like=own[0].chunk_id)]
        seen = {p.chunk_id for p in lead}
        own = sorted(lead + [p for p in own if p.chunk_id not in seen], key=lambda p: p.extra.get(Meta.CHUNK_INDEX) or 0)
        return Retrieval(own, found.doc_ranking, found.idf)

    def _search(self, question: str, filters: Filters, top_k: int) -> list[Passage]:
        """Every candidate passage (dense and BM25), fused and sorted best first."""
        candidates = max(self.options.candidates, top_k)
        fused: dict[str, Passage] = {}
        # The last complete state: chunks an ingest is still writing (not yet in the lexical index,
        # which takes them when the ingest is done) are left out of the dense half too.
        lexical = (self._lexical_thread.submit(self.store.lexical.search, terms(question), candidates * 3,
                                               visible_to=filters.visible_to) if self.options.hybrid else None)
        dense = self._dense(question, candidates, filters)
        known = self.store.lexical.known([p.chunk_id for p in dense])
        for rank, passage in enumerate(p for p in dense if p.chunk_id in known):
            passage.dense_rank = rank
            fused[passage.chunk_id] = passage
        if lexical is not None:
            found = lexical.result()
            hits = [(chunk, score) for chunk, score in found if filters.matches(chunk.metadata)][:candidates]
            for rank, (chunk, score) in enumerate(hits):
                passage = fused.get(chunk.chunk_id) or Passage.from_metadata(chunk.chunk_id, chunk.text, chunk.metadata)
                passage.bm25, passage.bm25_rank = score, rank
                fused[chunk.chunk_id] = passage
        options = self.options
        fuse(list(fused.values()), options.fusion, options.bm25_weight if options.hybrid else 0.0, options.rrf_k)
        if filters.as_of:
            apply_as_of(list(fused.values()), question, filters.as_of)
        return sorted(fused.values(), key=lambda p: -p.score)

    def _dense(self, question: str, k: int, filters: Filters) -> list[Passage]:
        vector = self.encoder.encode([question])[0]
        # Straight to the Chroma collection (not through LlamaIndex: `assistant ask` starts faster).
        result = self.store.query(query_embeddings=[vector.tolist()], n_results=k * (3 if filters.source else 1),
                                             where=chroma_where(filters), include=["documents", "metadatas", "distances"])
        passages = []
        for chunk_id, text, meta, distance in zip(result["ids"][0], result["documents"][0], result["metadatas"][0],
                                                  result["distances"][0]):
            meta = meta or {}
            if not filters.matches(meta):
                continue
            passage = Passage.from_metadata(chunk_id, text or "", meta)
            passage.dense = 1.0 - distance  # cosine space: distance = 1 - cosine
            passages.append(passage)
        return passages[:k]

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)


def fuse(passages: list[Passage], fusion: str, bm25_weight: float, rrf_k: int) -> None:
    """Set each passage's score from its dense and BM25 evidence.

    weighted (default): ``w * bm25 / max_bm25 + (1 - w) * cosine``; a passage that only BM25
    found gets the lowest cosine seen. On squad2-dev this beat reciprocal rank fusion
    (hit@5 0.991 / MRR@10 0.958 vs 0.973 / 0.917), because RRF throws away how far ahead
    the BM25 leader is.
    """
    if fusion == "rrf":
        for p in passages:
            p.score = sum(1.0 / (rrf_k + r + 1) for r in (p.dense_rank, p.bm25_rank) if r is not None)
        return
    top_bm25 = max((p.bm25 for p in passages), default=0.0) or 1.0
    dense_seen = [p.dense for p in passages if p.dense_rank is not None]
    floor = min(dense_seen, default=0.0)
    for p in passages:
        dense = p.dense if p.dense_rank is not None else floor
        p.score = bm25_weight * p.bm25 / top_bm25 + (1 - bm25_weight) * dense


def apply_as_of(passages: list[Passage], question: str, as_of: str) -> None:
    """Demote passages published after ``as_of`` (plus a publication lag); for "latest"-style
    questions, favour the newest articles published up to then."""
    cutoff = date_ordinal(as_of) + PUBLICATION_LAG_DAYS
    wants_recent = any(word in f" {question.lower()} " for word in RECENCY_WORDS)
    dated = [p for p in passages if p.extra.get(Meta.DATE_ORDINAL) is not None]
    for passage in dated:
        age = passage.extra["age_days"] = cutoff - passage.extra[Meta.DATE_ORDINAL]
        if passage.extra[Meta.DATE_ORDINAL] > cutoff:
            passage.score *= FUTURE_PENALTY
        else:  # the article of the question's week beats an older one about another event of the same kind
            passage.score *= 1 + WEEK_BOOST * 0.5 ** (age / WEEK_HALF_LIFE_DAYS)
    usable = [p.extra[Meta.DATE_ORDINAL] for p in dated if p.extra[Meta.DATE_ORDINAL] <= cutoff]
    if wants_recent and usable:
        newest = max(usable)
        for passage in dated:
            age = newest - passage.extra[Meta.DATE_ORDINAL]
            if age >= 0:
                passage.score *= 1 + RECENCY_BOOST * 0.5 ** (age / RECENCY_HALF_LIFE_DAYS)
