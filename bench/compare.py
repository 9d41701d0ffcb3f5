"""Our pipeline against the plain LlamaIndex quickstart and BM25, scored with the eval harness.

One command gives the README's comparison table:

    python bench/compare.py [--documents eval/squad2-dev/documents.jsonl]
                            [--questions eval/squad2-dev/questions.jsonl] [--chunk-sizes 128,256,512]

Systems (all with all-MiniLM-L6-v2 int8 ONNX, top-10 retrieval, scored by assistant.evaluation):
- quickstart, answer = top chunk: VectorStoreIndex, default SentenceSplitter 1024/200;
- quickstart + best sentence of the top-3 chunks (cosine of question and sentence, embedded at
  question time);
- BM25 (bm25s over 256-token chunks) + best sentence of the top-3 chunks;
- ours: `Assistant.ask` with the default settings (hybrid retrieval, fitted extractive answerer,
  calibrated abstention), and the same with abstention off.
``--chunk-sizes`` adds our pipeline at other chunk sizes (the chunking study).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import assistant  # noqa: F401
from assistant.embedding import get_encoder
from llama_embedding import MiniLMEmbedding
from assistant.metrics import aggregate, load_questions, score_answer
from assistant.loading import iter_input_files, load_path
from assistant.pipeline import Assistant
from assistant.settings import Settings
from assistant.text import split_sentences, terms

ROOT = Path(__file__).resolve().parent.parent


def _documents(path: Path):
    from llama_index.core import Document

    docs = []
    for file in iter_input_files(path):
        for item in load_path(file, path if path.is_dir() else path.parent, 64):
            if hasattr(item, "articles"):
                for article in item.articles:
                    docs.append(Document(text=article.text, metadata={"doc_id": item.doc_id}))
    return docs


def _record(question: str, answer: str, doc_ids: list[str], started: float, abstained=False) -> dict:
    seen: list[str] = []
    for d in doc_ids:
        if d not in seen:
            seen.append(d)
    return {"question": question, "answer": answer, "abstained": abstained,
            "citations": [{"doc_id": seen[0], "quote": answer}] if seen and not abstained else [],
            "retrieved_doc_ids": seen[:10], "latency_ms": (time.perf_counter() - started) * 1000}


def _best_sentence(question: str, texts: list[str]) -> str:
    sentences = [t[a:b] for t in texts for a, b in split_sentences(t)]
    if not sentences:
        return ""
    encoder = get_encoder()
    vectors = encoder.encode([question] + sentences)
    return sentences[int(np.argmax(vectors[1:] @ vectors[0]))]


def run_quickstart(documents: Path, questions) -> tuple[dict, dict]:
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    LlamaSettings.embed_model = MiniLMEmbedding()
    LlamaSettings.llm = None
    index = VectorStoreIndex.from_documents(_documents(documents), transformations=[SentenceSplitter()])
    retriever = index.as_retriever(similarity_top_k=10)
    top_chunk, best_sentence = [], []
    for q in questions:
        started = time.perf_counter()
        nodes = retriever.retrieve(q.question)
        ids = [n.node.metadata["doc_id"] for n in nodes]
        top_chunk.append(score_answer(q, _record(q.question, nodes[0].node.get_content() if nodes else "",
                                                 ids, started)))
        started = time.perf_counter()
        nodes = retriever.retrieve(q.question)
        sentence = _best_sentence(q.question, [n.node.get_content() for n in nodes[:3]])
        best_sentence.append(score_answer(q, _record(q.question, sentence, ids, started)))
    return aggregate_answerable(top_chunk), aggregate_answerable(best_sentence)


def run_bm25(documents: Path, questions) -> dict:
    import bm25s
    from llama_index.core.node_parser import SentenceSplitter

    from assistant.chunking import token_encoder

    encode = token_encoder().encode
    nodes = SentenceSplitter(chunk_size=256, chunk_overlap=32,
                             tokenizer=lambda t: encode(t, disallowed_special=())).get_nodes_from_documents(
        _documents(documents))
    model = bm25s.BM25()
    model.index([terms(n.get_content()) for n in nodes], show_progress=False)
    scores = []
    for q in questions:
        started = time.perf_counter()
        query = [t for t in terms(q.question)]
        ids, _ = model.retrieve([query], k=min(10, len(nodes)), show_progress=False) if query else ([[]], None)
        hits = [nodes[int(i)] for i in ids[0]]
        sentence = _best_sentence(q.question, [n.get_content() for n in hits[:3]])
        scores.append(score_answer(q, _record(q.question, sentence, [n.metadata["doc_id"] for n in hits], started)))
    return aggregate_answerable(scores)


def run_ours(documents: Path, questions, **overrides) -> dict:
    with tempfile.TemporaryDirectory() as store:
        bot = Assistant(Settings(store_dir=Path(store), **overrides))
        bot.ingest([documents], progress=False)
        bot.ask("warm up")
        scores = []
        for q in questions:
            answer = bot.ask(q.question)
            scores.append(score_answer(q, answer.to_json(), answer.confidence))
        return aggregate_answerable(scores)


def aggregate_answerable(scores) -> dict:
    metrics = aggregate(scores)
    answerable = [s for s in scores if s.answerable]
    metrics["answerable_accuracy"] = round(sum(s.correct for s in answerable) / max(len(answerable), 1), 3)
    return metrics


def _row(name: str, m: dict) -> str:
    def f(key):
        value = m.get(key)
        return "-" if value is None else f"{value:.2f}" if key.startswith(("hit", "mrr", "answer", "abst", "cit")) else f"{value:.0f}"
    return (f"| {name} | {f('hit@1')} / {f('hit@5')} / {f('mrr@10')} | {f('answerable_accuracy')} | "
            f"{f('answered_rate')} | {f('abstention_accuracy')} | {f('citation_accuracy')} | "
            f"{f('latency_p50_ms')} / {f('latency_p95_ms')} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=Path, default=ROOT / "eval/squad2-dev/documents.jsonl")
    parser.add_argument("--questions", type=Path, default=ROOT / "eval/squad2-dev/questions.jsonl")
    parser.add_argument("--chunk-sizes", default="", help="comma-separated extra chunk sizes for our pipeline")
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()
    questions = load_questions(args.questions)
    rows = []
    if not args.skip_baselines:
        top_chunk, best_sentence = run_quickstart(args.documents, questions)
        rows.append(("quickstart, answer = top chunk", top_chunk))
        rows.append(("quickstart + best sentence of top-3 chunks", best_sentence))
        rows.append(("BM25 (bm25s) + best sentence", run_bm25(args.documents, questions)))
    rows.append(("**ours** (hybrid + fitted extractive answerer + abstention)", run_ours(args.documents, questions)))
    rows.append(("ours, abstention off", run_ours(args.documents, questions, abstain_threshold=0.0)))
    for size in filter(None, args.chunk_sizes.split(",")):
        size = int(size)
        rows.append((f"ours, chunks of {size} tokens", run_ours(args.documents, questions, chunk_size=size,
                                                               chunk_overlap=min(32, size // 8))))
    print(f"\n{args.questions} over {args.documents}\n")
    print("| system | hit@1 / hit@5 / MRR@10 | answerable acc | answered | unanswerable abstained | "
          "citation acc | p50 / p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, metrics in rows:
        print(_row(name, metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
