"""Ingest throughput: our pipeline against the plain LlamaIndex path, in the same run, on the same chunks.

    python bench/ingest_speed.py                 # ~300 chunks of ~256 tokens, both paths, ratio
    python bench/ingest_speed.py --sweep         # also the encoder alone: model variant, batch, threads
    python bench/ingest_speed.py --exact         # also our pipeline with exact fp32 (ASSISTANT_EMBED_QUANTIZE=false)
    python bench/ingest_speed.py --workers 2     # also our pipeline with `assistant ingest --workers 2`

Ours: ``assistant.ingest.ingest`` into a fresh embedded Chroma store (load, hash, chunk in a reader
thread, embed with the prepared model and int8 activations, the default, in length-sorted batches,
write). Plain LlamaIndex:
``VectorStoreIndex.from_documents`` with ``MiniLMEmbedding`` (the same all-MiniLM-L6-v2 weights, run
from the packaged file) and the same ``SentenceSplitter`` into a ``ChromaVectorStore``. Both are timed
from reading the JSONL to the last write; "cpu" is process CPU time (all threads), which is less
affected by other load on a shared machine than wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from corpora import log, long_articles, machine

import assistant  # noqa: F401  (offline environment)
from assistant.settings import Settings

MINILM_GFLOP_PER_256 = 5.7  # 6 layers x 256 tokens x ~21 MFLOP/token (+ attention)


def measured_peak_gflops(size: int = 2048, rounds: int = 5) -> float:
    """This CPU's fp32 matrix-multiply rate on all cores (numpy's BLAS, best of ``rounds``): the peak
    the encoder's rate is stated against (MiniLM is mostly MatMul)."""
    import numpy as np

    a, b = np.random.default_rng(0).standard_normal((2, size, size), dtype=np.float32)
    a @ b  # warm up the BLAS threads
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def run_ours(jsonl: Path, base: Path, chunking: dict, workers: int = 1, **overrides) -> dict:
    from functools import partial

    from assistant.ingest import ingest
    from assistant.ingest_workers import WorkerPool
    from assistant.store import Store

    settings = Settings(store_dir=base / f"ours-{time.monotonic_ns()}", **chunking, **overrides)
    store = Store(settings)  # opens the store and loads (or prepares) the model, outside the timing
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_before = before.ru_utime + before.ru_stime
    wall, cpu = time.perf_counter(), time.process_time()
    pool = partial(WorkerPool, workers=workers) if workers > 1 else None
    report = ingest([jsonl], store, settings, progress=False, pool=pool)
    # with workers the embedding runs in child processes: their CPU time is added once they ended
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu + (children.ru_utime + children.ru_stime - children_before if workers > 1 else 0)
    return {"chunks": report.chunks_added, "wall": time.perf_counter() - wall, "cpu": cpu}


def run_llamaindex(jsonl: Path, base: Path, chunking: dict) -> dict:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.text import token_encoder
    from llama_embedding import MiniLMEmbedding

    from assistant.embedding import ChromaEmbeddingFunction

    client = chromadb.PersistentClient(path=str(base / f"plain-{time.monotonic_ns()}"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    embed_model = MiniLMEmbedding()
    collection = client.create_collection("plain", embedding_function=ChromaEmbeddingFunction(embed_model._encoder),
                                          configuration={"hnsw": {"space": "cosine"}})
    embed_model.get_text_embedding("warm up")
    wall, cpu = time.perf_counter(), time.process_time()
    documents = [Document(id_=r["id"], text=r["text"], metadata={"title": r.get("title", "")})
                 for r in map(json.loads, open(jsonl))]
    VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=ChromaVectorStore(collection)),
        embed_model=embed_model, transformations=[SentenceSplitter(  # LlamaIndex's own ids: the plain path
            chunk_size=chunking["chunk_size"], chunk_overlap=chunking["chunk_overlap"],
            tokenizer=lambda text: token_encoder().encode(text, disallowed_special=()))])
    return {"chunks": collection.count(), "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def chunk_stats(jsonl: Path, chunking: dict) -> tuple[int, float, float]:
    """(chunks, mean cl100k tokens, mean MiniLM word pieces) of our chunking of ``jsonl``."""
    from llama_index.core.schema import MetadataMode

    from assistant.chunking import chunk_document, count_tokens
    from assistant.embedding import get_encoder
    from assistant.loading import load_path

    encoder, texts = get_encoder(), []
    for doc in load_path(jsonl, jsonl.parent, 1000):
        for node in chunk_document(doc, "x" * 64, "bench", chunking["chunk_size"], chunking["chunk_overlap"]):
            texts.append(node.get_content(metadata_mode=MetadataMode.EMBED))
    pieces = [min(encoder.count_tokens(t), 256) for t in texts]
    return len(texts), sum(map(count_tokens, texts)) / len(texts), sum(pieces) / len(pieces)


def sweep(jsonl: Path, count: int, chunking: dict) -> None:
    """The encoder alone on ``count`` chunks: model variant x batch size x threads x session options."""
    import onnxruntime as ort
    from llama_index.core.schema import MetadataMode

    from assistant.chunking import chunk_document
    from assistant.embedding import MiniLMEncoder
    from assistant.loading import load_path

    texts = []
    for doc in load_path(jsonl, jsonl.parent, 1000):
        texts += [n.get_content(metadata_mode=MetadataMode.EMBED)
                  for n in chunk_document(doc, "x" * 64, "b", chunking["chunk_size"], chunking["chunk_overlap"])]
    texts = texts[:count]
    cache = Settings().model_cache_dir
    configs = [
        ("packaged model (as installed)", dict(batch_size=8), {}),
        ("prepared fp32 (embed_quantize=false)", dict(batch_size=8, cache_dir=cache), {}),
        ("prepared, batch 1", dict(batch_size=1, cache_dir=cache), {}),
        ("prepared, batch 4", dict(batch_size=4, cache_dir=cache), {}),
        ("prepared, batch 16", dict(batch_size=16, cache_dir=cache), {}),
        ("prepared, batch 32", dict(batch_size=32, cache_dir=cache), {}),
        ("prepared, 1 thread", dict(batch_size=8, threads=1, cache_dir=cache), {}),
        ("prepared, spin-waiting threads", dict(batch_size=8, cache_dir=cache), {"spin": "1"}),
        ("prepared, basic graph optimisation", dict(batch_size=8, cache_dir=cache), {"level": "basic"}),
        ("int8 activations (the default)", dict(batch_size=1, cache_dir=cache, quantize=True), {}),  # one text per run
    ]
    reference = None
    print(f"\nencoder alone, {len(texts)} chunks (best of 2):")
    print(f"  {'configuration':<38} {'chunks/s':>9} {'chunks/cpu-s':>13} {'cos to packaged':>15}")
    for label, kwargs, session in configs:
        encoder = MiniLMEncoder(**kwargs)
        if session:
            options = ort.SessionOptions()
            options.intra_op_num_threads = kwargs.get("threads") or 0
            options.inter_op_num_threads = 1
            options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
                                                if session.get("level") == "basic"
                                                else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
            options.add_session_config_entry("session.intra_op.allow_spinning", session.get("spin", "0"))
            encoder.session = ort.InferenceSession(str(encoder.model_file), options,
                                                   providers=["CPUExecutionProvider"])
        encoder.encode(texts[:8])
        best_wall = best_cpu = 0.0
        for _ in range(2):
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = encoder.encode(texts)
            best_wall = max(best_wall, len(texts) / (time.perf_counter() - wall))
            best_cpu = max(best_cpu, len(texts) / max(time.process_time() - cpu, 1e-9))
        if reference is None:
            reference = vectors
        cosine = float((vectors * reference).sum(axis=1).mean())
        print(f"  {label:<38} {best_wall:>9.1f} {best_cpu:>13.1f} {cosine:>15.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=60, help="articles of ~1,200 tokens (~5 chunks each)")
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two paths this many times; best run")
    parser.add_argument("--exact", action="store_true", help="also run ours with exact fp32 (embed_quantize=false)")
    parser.add_argument("--workers", type=int, default=1, help="also run ours with this many ingest workers")
    parser.add_argument("--sweep", action="store_true", help="also time the encoder alone in several configurations")
    parser.add_argument("--sweep-chunks", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=256, help="cl100k tokens (the issue's unit: 256)")
    parser.add_argument("--chunk-overlap", type=int, default=32)
    args = parser.parse_args()
    chunking = {"chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap}

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        base = Path(tmp)
        jsonl = long_articles(args.articles, base / "articles.jsonl")
        chunks, tokens, pieces = chunk_stats(jsonl, chunking)
        print(f"corpus: {args.articles} articles -> {chunks} chunks, mean {tokens:.0f} cl100k tokens "
              f"= {pieces:.0f} MiniLM word pieces per chunk")
        peak_before = measured_peak_gflops()
        with_workers = f"ours, --workers {args.workers}"
        runs: dict[str, list[dict]] = {"ours": [], "llamaindex": [], "ours, fp32": [], with_workers: []}
        for i in range(args.repeat):
            log(f"round {i + 1}: ours"); runs["ours"].append(run_ours(jsonl, base, chunking))
            log(f"round {i + 1}: plain LlamaIndex"); runs["llamaindex"].append(run_llamaindex(jsonl, base, chunking))
            if args.workers > 1:
                log(f"round {i + 1}: {with_workers}")
                runs[with_workers].append(run_ours(jsonl, base, chunking, workers=args.workers))
            if args.exact:
                log(f"round {i + 1}: ours, fp32")
                runs["ours, fp32"].append(run_ours(jsonl, base, chunking, embed_quantize=False))
        peak = max(peak_before, measured_peak_gflops())  # before and after the runs: the less disturbed
        print(f"\nmeasured peak: {peak:.0f} GFLOP/s fp32 (numpy float32 matmul 2048 x 2048, all cores, best "
              f"of before and after the runs); "
              "GFLOP/s below counts MiniLM's fp32 operations, so int8 may pass 100%")
        print(f"\n  {'path':<26} {'chunks':>7} {'seconds':>8} {'chunks/s':>9} {'chunks/cpu-s':>13} {'GFLOP/s':>8} "
              f"{'of peak':>8}")
        best = {}
        for name, results in runs.items():
            if not results:
                continue
            top = min(results, key=lambda r: r["wall"])
            best[name] = top["chunks"] / top["wall"]
            rate_cpu = max(r["chunks"] / r["cpu"] for r in results)
            gflops = best[name] * MINILM_GFLOP_PER_256 * pieces / 256
            print(f"  {name:<26} {top['chunks']:>7} {top['wall']:>8.1f} {best[name]:>9.1f} {rate_cpu:>13.1f} "
                  f"{gflops:>8.0f} {gflops / peak:>8.0%}")
        print(f"\n  ours / plain LlamaIndex: {best['ours'] / best['llamaindex']:.2f}x chunks/s")
        if "ours, fp32" in best:
            print(f"  ours with exact fp32 (embed_quantize=false) / plain LlamaIndex: "
                  f"{best['ours, fp32'] / best['llamaindex']:.2f}x")
        if with_workers in best:
            print(f"  ours with --workers {args.workers} / ours with 1: {best[with_workers] / best['ours']:.2f}x "
                  f"(wall time; both alternate in the same run)")
        if args.sweep:
            sweep(jsonl, args.sweep_chunks, chunking)


if __name__ == "__main__":
    main()
