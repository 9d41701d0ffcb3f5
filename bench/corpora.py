"""Benchmark corpora made from the bundled squad2-dev documents (nothing is downloaded).

- :func:`replicated`: the 411 squad2-dev documents repeated with new ids (``<id>~r<k>``) up to a
  number of articles, for query latency and growth runs (same text, so the same cost per copy).
- :func:`long_articles`: consecutive paragraphs joined into articles of about ``tokens`` cl100k
  tokens, so that chunking at 256 tokens gives full-size chunks (squad paragraphs alone are ~170).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT / "eval" / "squad2-dev"


def squad_documents() -> list[dict]:
    return [json.loads(line) for line in open(SQUAD / "documents.jsonl")]


def squad_questions() -> list[dict]:
    return [json.loads(line) for line in open(SQUAD / "questions.jsonl")]


def replicated(articles: int, path: Path, start: int = 0) -> Path:
    """Write articles ``start``..``articles``-1 of the replicated corpus to ``path`` (JSONL)."""
    docs = squad_documents()
    with open(path, "w") as out:
        for i in range(start, articles):
            doc = dict(docs[i % len(docs)])
            copy = i // len(docs)
            if copy:
                doc["id"] = f"{doc['id']}~r{copy}"
            out.write(json.dumps(doc) + "\n")
    return path


def long_articles(count: int, path: Path, tokens: int = 1200) -> Path:
    """``count`` articles of about ``tokens`` cl100k tokens each (squad paragraphs joined, cycling)."""
    from assistant.chunking import count_tokens

    docs = squad_documents()
    with open(path, "w") as out:
        cursor = 0
        for n in range(count):
            parts, size = [], 0
            while size < tokens:
                text = docs[cursor % len(docs)]["text"]
                parts.append(text)
                size += count_tokens(text)
                cursor += 1
            out.write(json.dumps({"id": f"long-{n:05d}", "title": f"Article {n}", "text": "\n\n".join(parts)}) + "\n")
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> str:
    return (f"p50 {percentile(values, 50):.1f} ms, p95 {percentile(values, 95):.1f} ms, "
            f"mean {statistics.mean(values):.1f} ms (n={len(values)})")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import os
    import platform

    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        memory = f"{mem / 1024 / 1024:.0f} GB"
    except OSError:
        memory = "? GB"
    import onnxruntime

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores {model}, {memory}, Python {platform.python_version()}, "
            f"onnxruntime {onnxruntime.__version__}; load average at start {load:.1f}")


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def time_questions(bot, questions: list[str], warm_up: int) -> tuple[list[float], list[float]]:
    """(ask ms, retrieval-only ms) per question, after ``warm_up`` untimed questions (BM25, ONNX arenas)."""
    import time

    for question in questions[:warm_up]:
        bot.ask(question)
    asked, retrieved = [], []
    for question in questions:
        started = time.perf_counter()
        bot.retriever.retrieve(question)
        retrieved.append((time.perf_counter() - started) * 1000)
        asked.append(bot.ask(question).latency_ms)
    return asked, retrieved
