"""BM25 on disk (SQLite FTS5) against the in-memory bm25s index: same ranking, same quality?

    python bench/lexical_quality.py                                  # squad2-dev and the bundled corpus
    python bench/lexical_quality.py --set news=/work/shared/data/news-dev

For every question of each set, BM25 alone ranks the chunks three ways: bm25s (what retrieval used
before), FTS5's own bm25() ordering, and the FTS5 index as used (FTS5's pool rescored with bm25s'
Lucene formula). Prints document-level hit@1 / hit@5 / MRR@10 against ``evidence_doc_ids``
(in-sample: nothing here is fitted), how often the top 90 chunk ids agree with bm25s exactly, the
largest score difference, and build / query times. Chunks come from the real loader and chunker.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path

from corpora import ROOT, machine, percentile

import assistant  # noqa: F401  (offline environment)
from assistant.chunking import chunk_document
from assistant.lexical import IndexedChunk, LexicalIndex, _match_expression, chunk_terms
from assistant.loading import iter_input_files, load_path
from assistant.settings import Settings
from assistant.text import terms

DEPTH = 90  # what retrieval asks BM25 for: candidates (30) x 3


def load_chunks(documents: Path, settings: Settings) -> list[IndexedChunk]:
    chunks = []
    root = documents if documents.is_dir() else documents.parent
    for file in iter_input_files(documents):
        for doc in load_path(file, root, settings.max_file_mb):
            if hasattr(doc, "articles"):
                for node in chunk_document(doc, doc.content_hash(), "bench", settings.chunk_size,
                                           settings.chunk_overlap):
                    chunks.append(IndexedChunk(node.node_id, node.text, dict(node.metadata)))
    return chunks


def _same_ranking(expected: list[tuple[str, float]], got: list[tuple[str, float]], tol: float = 1e-4) -> bool:
    """Same chunks with the same scores (within ``tol``: bm25s adds in float32), ties in any order;
    chunks tied with the last one may be cut anywhere."""
    if len(expected) != len(got):
        return False
    last = expected[-1][1] if expected else 0.0
    ours = dict(got)
    return all(abs(e[1] - g[1]) < tol for e, g in zip(expected, got)) and all(
        abs(ours.get(c, -1.0) - s) < tol for c, s in expected if s > last + tol)


def doc_metrics(rankings: list[list[str]], gold: list[set[str]]) -> str:
    hit1 = hit5 = mrr = 0.0
    for ranked, wanted in zip(rankings, gold):
        docs = list(dict.fromkeys(ranked))[:10]
        rank = next((i for i, d in enumerate(docs) if d in wanted), None)
        hit1 += rank == 0
        hit5 += rank is not None and rank < 5
        mrr += 1 / (rank + 1) if rank is not None else 0
    n = max(len(gold), 1)
    return f"hit@1 {hit1 / n:.3f}  hit@5 {hit5 / n:.3f}  MRR@10 {mrr / n:.3f}"


def compare(name: str, documents: Path, questions: Path) -> None:
    import bm25s

    settings = Settings()
    chunks = load_chunks(documents, settings)
    asked = [json.loads(line) for line in open(questions)]
    asked = [q for q in asked if q.get("evidence_doc_ids")]
    gold = [set(q["evidence_doc_ids"]) for q in asked]
    doc_of = {c.chunk_id: c.metadata["doc_id"] for c in chunks}

    started = time.perf_counter()
    tokens = [chunk_terms(c) for c in chunks]
    vocab = Counter(t for toks in tokens for t in set(toks))
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    bm25s_build = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        index = LexicalIndex(Path(tmp) / "lexical.sqlite3")
        index.add(chunks)
        fts_build = time.perf_counter() - started
        raw_db = sqlite3.connect(index.path)

        ref, raw, ours, agree, worst, times = [], [], [], 0, 0.0, []
        for q in asked:
            query = [t for t in terms(q["question"]) if t in vocab]
            if not query:
                ref.append([]), raw.append([]), ours.append([])
                agree += 1
                continue
            ids, scores = model.retrieve([query], k=min(DEPTH, len(chunks)), show_progress=False, n_threads=1)
            expected = [(chunks[int(i)].chunk_id, float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]
            ref.append([doc_of[c] for c, _ in expected])
            raw.append([doc_of[r[0]] for r in raw_db.execute(
                "SELECT c.chunk_id FROM fts JOIN chunks c ON c.rowid = fts.rowid WHERE fts MATCH ? "
                "ORDER BY fts.rank LIMIT ?", (_match_expression(query), DEPTH))])
            started = time.perf_counter()
            got = index.search(query, DEPTH)
            times.append((time.perf_counter() - started) * 1000)
            ours.append([c.metadata["doc_id"] for c, _ in got])
            # equal scores may come in another order (bm25s' top-k does not keep ties in any order)
            agree += _same_ranking(expected, [(c.chunk_id, s) for c, s in got])
            worst = max([worst] + [abs(a[1] - b[1]) for a, b in zip(expected, got)])
        index.close()
    print(f"\n{name}: {len(chunks)} chunks, {len(asked)} questions with evidence (in-sample, nothing fitted)")
    print(f"  bm25s (in memory)        {doc_metrics(ref, gold)}   build {bm25s_build:.2f} s")
    print(f"  FTS5 bm25() alone        {doc_metrics(raw, gold)}")
    print(f"  FTS5 pool + Lucene BM25  {doc_metrics(ours, gold)}   build {fts_build:.2f} s, "
          f"search p50 {percentile(times, 50):.1f} ms p95 {percentile(times, 95):.1f} ms")
    print(f"  top {DEPTH} identical to bm25s (ties in any order): {agree}/{len(asked)}; "
          f"largest score difference by rank {worst:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[],
                        help="name=FOLDER with documents.jsonl and questions.jsonl (repeatable)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    sets = [("squad2-dev", ROOT / "eval/squad2-dev/documents.jsonl", ROOT / "eval/squad2-dev/questions.jsonl"),
            ("corpus", ROOT / "corpus", ROOT / "eval/corpus/questions.jsonl")]
    for item in args.set:
        name, folder = item.split("=", 1)
        sets.append((name, Path(folder) / "documents.jsonl", Path(folder) / "questions.jsonl"))
    for name, documents, questions in sets:
        compare(name, documents, questions)


if __name__ == "__main__":
    main()
