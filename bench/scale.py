"""Scale: ask latency, cold open, ingest-to-visible and memory on a store of N synthetic chunks.

    python bench/scale.py --chunks 10000
    nice -n 10 python bench/scale.py --chunks 200000 --json     # builds /tmp/bench-scale-200000 once
    python bench/scale.py --chunks 100000 --chroma-url http://127.0.0.1:8000

The articles are synthetic, from a fixed seed: sentences of words drawn from a Zipfian vocabulary
(the 120 most frequent are English function words, the rest made-up words, some capitalised as
names), about CHUNK_WORDS words a chunk and CHUNKS_PER_ARTICLE chunks an article, with titles,
sources and dates. The chunks are written through the real :class:`Store` (Chroma and the lexical
index) by a separate build process, with vectors from a STAND-IN encoder (a hashed bag of words, 384
dimensions) instead of MiniLM, to skip hours of embedding; the chunker is skipped too (its cost and
the encoder's are in bench/ingest_speed.py). Questions are a few consecutive words of a sentence of
a stored chunk, sampled by the build, and are embedded with the real MiniLM encoder.

Measured (this process only asks, so its peak RSS is the asking process's):
- ask p50/p95: ``Assistant.ask`` over 200 questions, after a warm-up;
- open_s: a new `assistant ask --json` process until its answer is printed;
- add_doc_visible_s: one new article is ingested (real chunker and encoder) by a second process
  (`assistant ingest`) on a Chroma server, or by this process in a thread for an embedded store
  (an embedded Chroma store belongs to one process); from the start of that ingest until this
  running assistant ranks the article first for a question on it;
- rss_mb: peak resident memory of this process.
The last line with ``--json`` is one JSON object with those keys, ``chunks`` and ``encoder``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from corpora import log, machine, peak_rss_mb, percentile

SEED = 20261129
VOCABULARY = 60_000
ZIPF_SHIFT, ZIPF_EXPONENT = 2.7, 1.05  # Zipf-Mandelbrot: p(rank) ~ 1 / (rank + 2.7) ** 1.05
CHUNK_WORDS = 95  # about 128 cl100k tokens, the default chunk size
CHUNKS_PER_ARTICLE = 8
QUESTIONS = 200
VISIBLE_TIMEOUT_S = 120
BUILD_BATCH = 2000
DIMENSIONS = 384
SOURCES = ("Harbour Herald", "Valley Courier", "Metro Ledger", "Coast Times", "River Post")
FUNCTION_WORDS = """the of and to a in is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if so no will more
had can what about up out them than into some could only other its new time also two after may first
over these like did many then such most people made where years state city said because three while
between since before under both during each several year against off government those however until
among any later about around without another own early through including well over being four city""".split()


def vocabulary(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """(words by rank, cumulative probabilities) of the Zipfian vocabulary."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ar", "en", "or")]
    made_up: list[str] = []
    seen = set(FUNCTION_WORDS)
    while len(made_up) < VOCABULARY - len(FUNCTION_WORDS):
        word = "".join(rng.choice(syllables, size=int(rng.integers(2, 5))))
        if word not in seen:
            seen.add(word)
            made_up.append(word.capitalize() if rng.random() < 0.12 else word)
    words = FUNCTION_WORDS + made_up
    weights = 1.0 / (np.arange(len(words)) + ZIPF_SHIFT) ** ZIPF_EXPONENT
    return words, np.cumsum(weights / weights.sum())


class Writer:
    """Synthetic chunks (text and stand-in vector) of article ``n``, the same for every run."""

    def __init__(self) -> None:
        self.words, self.cumulative = vocabulary(np.random.default_rng(SEED))
        codes = np.random.default_rng(SEED + 1)
        self.dims = codes.integers(0, DIMENSIONS, size=len(self.words))
        self.signs = codes.choice([-1.0, 1.0], size=len(self.words))

    def sentence_ids(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return np.searchsorted(self.cumulative, rng.random(count)).clip(0, len(self.words) - 1)

    def text(self, ids: np.ndarray, rng: np.random.Generator) -> str:
        sentences, start = [], 0
        while start < len(ids):
            end = start + int(rng.integers(8, 22))
            words = [self.words[i] for i in ids[start:end]]
            sentences.append(words[0][:1].upper() + " ".join(words)[1:] + ".")
            start = end
        return " ".join(sentences)

    def stand_in_vector(self, ids: np.ndarray) -> list[float]:
        vector = np.zeros(DIMENSIONS)
        np.add.at(vector, self.dims[ids], self.signs[ids])
        return (vector / (np.linalg.norm(vector) or 1.0)).tolist()

    def article(self, n: int) -> tuple[dict, list[tuple[str, list[float]]]]:
        """(metadata of article ``n``, [(chunk text, stand-in vector)])."""
        rng = np.random.default_rng((SEED, n))
        day = date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 3650)))
        title = self.text(self.sentence_ids(rng, int(rng.integers(4, 9))), rng).rstrip(".")
        meta = {"doc_id": f"scale-{n:07d}", "title": title, "source": SOURCES[n % len(SOURCES)],
                "date": day.isoformat(), "url": "", "page": 0, "outlets": "", "origin": "bench-scale",
                "date_ordinal": day.toordinal()}
        chunks = []
        for _ in range(CHUNKS_PER_ARTICLE):
            ids = self.sentence_ids(rng, CHUNK_WORDS)
            chunks.append((self.text(ids, rng), self.stand_in_vector(ids)))
        return meta, chunks


def build(settings, chunks: int, questions_path: Path) -> None:
    """Write ``chunks`` synthetic chunks through the real Store (another process than the asker)."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    from assistant.pipeline import Assistant

    writer = Writer()
    store = Assistant(settings).store
    articles = -(-chunks // CHUNKS_PER_ARTICLE)
    have = {doc.doc_id for doc in store.manifest().values() if doc.complete}
    rng = np.random.default_rng(SEED + 2)
    sampled = set(rng.choice(articles, size=min(QUESTIONS + 10, articles), replace=False).tolist())
    questions, batch, started = [], [], time.perf_counter()
    for n in range(articles):
        meta, parts = writer.article(n)
        parts = parts[: chunks - n * CHUNKS_PER_ARTICLE]
        if n in sampled:
            questions.append({"question": question_from(parts[int(rng.integers(len(parts)))][0]),
                              "doc_id": meta["doc_id"]})
        if meta["doc_id"] in have:
            continue
        doc_hash = hashlib.sha256("".join(text for text, _ in parts).encode()).hexdigest()
        for position, (text, vector) in enumerate(parts):
            node = TextNode(id_=f"{meta['doc_id']}::{doc_hash[:12]}::0:{position}", text=text, embedding=vector,
                            metadata={**meta, "doc_hash": doc_hash, "chunk_index": position, "n_chunks": len(parts)})
            # ChromaVectorStore writes the source document's id as the doc_id metadata
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=meta["doc_id"])
            batch.append(node)
        if len(batch) >= BUILD_BATCH or n == articles - 1:
            store.add(batch)
            batch = []
            done = (n + 1) * CHUNKS_PER_ARTICLE
            log(f"build: {min(done, chunks):,}/{chunks:,} chunks, {time.perf_counter() - started:.0f} s")
    store.bump_revision()
    questions_path.write_text("".join(json.dumps(q) + "\n" for q in questions))


def question_from(text: str) -> str:
    """A question from a stored chunk: five consecutive words of its longest sentence."""
    sentence = max(text.split(". "), key=len).rstrip(".").split()
    start = len(sentence) // 3
    return "What about " + " ".join(sentence[start:start + 5]) + "?"


def new_article(path: Path, run: int) -> tuple[str, str]:
    """A one-article JSONL with words no stored chunk has; returns (doc id, a question about it)."""
    doc_id = f"scale-new-{run}"
    text = (f"The harbour board of Quorvane{run} approved the Zintaru bridge plan on Monday. "
            "Engineers said the span over the Velmora estuary would open in four years. "
            "Residents of Quorvane asked for a ferry until then.")
    path.write_text(json.dumps({"id": doc_id, "title": f"Quorvane{run} approves Zintaru bridge",
                                "source": SOURCES[0], "date": "2025-01-15", "text": text}) + "\n")
    return doc_id, f"When will the Zintaru bridge over the Velmora estuary in Quorvane{run} open?"


def add_doc_visible(bot, settings, doc_path: Path, doc_id: str, question: str) -> tuple[float | None, str]:
    """Seconds from the start of ingesting ``doc_path`` until ``bot`` ranks ``doc_id`` first for
    ``question``. On a Chroma server a second process (`assistant ingest`) ingests; an embedded
    Chroma store is one process's (its client keeps its own copy of the vector index), so there the
    running assistant's own process ingests, in a thread, as the chat's upload does."""
    import threading

    import assistant.ingest  # noqa: F401  (a running app that takes uploads has its ingest code loaded)

    started = time.perf_counter()
    if settings.chroma_url:
        worker = subprocess.Popen(cli("ingest", str(doc_path), "--quiet", "--no-prune", settings=settings),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        how, done = "a second process", lambda: worker.poll() is not None
    else:
        thread = threading.Thread(target=lambda: bot.ingest([doc_path], prune=False, progress=False))
        thread.start()
        how, done = "the same process, in a thread", lambda: not thread.is_alive()
    visible = None
    while visible is None and time.perf_counter() - started < VISIBLE_TIMEOUT_S:
        if bot.ask(question).doc_ranking[:1] == [doc_id]:
            visible = time.perf_counter() - started
        elif done() and visible is None and time.perf_counter() - started > VISIBLE_TIMEOUT_S / 2:
            break
        else:
            time.sleep(0.05)
    if settings.chroma_url:
        _, err = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"`assistant ingest` failed: {err.decode()[-500:]}")
    else:
        thread.join()
    return visible, how


def cli(*args: str, settings) -> list[str]:
    where = (["--chroma-url", settings.chroma_url, "--collection", settings.collection] if settings.chroma_url
             else ["--store", str(settings.store_dir)])
    return [sys.executable, "-m", "assistant.cli", *args, *where]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, required=True)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object with the figures")
    parser.add_argument("--chroma-url", help="a Chroma server (collection 'scale') instead of an embedded store")
    parser.add_argument("--store", type=Path, help="embedded store folder (default /tmp/bench-scale-N)")
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import assistant  # noqa: F401  (offline environment)
    from assistant.settings import Settings

    store_dir = args.store or Path(f"/tmp/bench-scale-{args.chunks}")
    # One collection that grows: --chunks 10000 then --chunks 100000 on the same --store adds the rest.
    settings = Settings(store_dir=store_dir / "chroma", chroma_url=args.chroma_url, collection="scale")
    questions_path = store_dir / (f"questions-{args.chroma_url.split('//')[-1].replace(':', '-')}.jsonl"
                                  if args.chroma_url else "questions.jsonl")
    if args.build:
        store_dir.mkdir(parents=True, exist_ok=True)
        build(settings, args.chunks, questions_path)
        return

    print(f"machine: {machine()}")
    print(f"store: {settings.chroma_url or settings.store_dir} (collection {settings.collection}); "
          "document vectors from a STAND-IN encoder (hashed bag of words), questions embedded with MiniLM")
    started = time.perf_counter()
    argv = [sys.executable, __file__, "--build", "--chunks", str(args.chunks), "--store", str(store_dir)]
    subprocess.run(argv + (["--chroma-url", args.chroma_url] if args.chroma_url else []), check=True)
    print(f"build (or reuse) in a separate process: {time.perf_counter() - started:.0f} s", flush=True)

    from assistant.pipeline import Assistant

    asked = [json.loads(line) for line in open(questions_path)]
    bot = Assistant(settings)
    chunks = bot.store.count()
    for q in asked[:5]:
        bot.ask(q["question"])  # warm-up: ONNX arenas, caches
    latencies, top = [], 0
    for q in asked[:QUESTIONS]:
        answer = bot.ask(q["question"])
        latencies.append(answer.latency_ms)
        top += answer.doc_ranking[:1] == [q["doc_id"]]
    n = len(latencies)
    print(f"chunks {chunks:,}; ask over {n} questions: p50 {percentile(latencies, 50):.0f} ms, "
          f"p95 {percentile(latencies, 95):.0f} ms; the sampled article ranked first for {top}/{n}")

    opened = time.perf_counter()
    proc = subprocess.Popen(cli("ask", asked[0]["question"], "--json", settings=settings),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    open_s = time.perf_counter() - opened
    proc.stdout.close()
    if proc.wait() != 0 or not line.startswith(b"{"):
        raise SystemExit(f"`assistant ask` failed (exit {proc.returncode})")
    print(f"open_s (new `assistant ask --json` process until its answer is printed): {open_s:.2f} s")

    run = int(time.time())
    doc_path = store_dir / f"new-{run}.jsonl"
    doc_id, question = new_article(doc_path, run)
    visible, how = add_doc_visible(bot, settings, doc_path, doc_id, question)
    print(f"add_doc_visible_s ({how} ingests one article until this assistant ranks it first): "
          + (f"{visible:.2f} s" if visible is not None else f"not visible after {VISIBLE_TIMEOUT_S} s"))
    bot.store.delete_document(doc_id)  # leave the store as built, for the next run
    bot.store.bump_revision()
    doc_path.unlink()

    rss = peak_rss_mb()
    print(f"peak RSS of this (asking) process: {rss:.0f} MB")
    if args.json:
        print(json.dumps({"chunks": chunks, "ask_p50_ms": round(percentile(latencies, 50), 1),
                          "ask_p95_ms": round(percentile(latencies, 95), 1), "open_s": round(open_s, 2),
                          "add_doc_visible_s": round(visible, 2) if visible is not None else None,
                          "rss_mb": round(rss), "encoder": "stand-in"}))


if __name__ == "__main__":
    main()
