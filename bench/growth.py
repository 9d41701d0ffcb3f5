"""How cost grows with the corpus: ingest time, query latency and memory at 1x, 4x, 16x squad2-dev.

    python bench/growth.py                         # 1x, 4x, 16x (411, 1,644, 6,576 articles), then on to 10k chunks
    python bench/growth.py --factors 1,4 --questions 50 --rss-chunks 0

One process grows one embedded store: each step ingests the next copies of the squad2-dev documents
(new ids) incrementally, so "ingest to here" (the sum of the steps) is what a from-scratch ingest of
that size costs, plus re-hashing the unchanged documents of earlier steps. After each step it times
``Assistant.ask`` on squad2-dev questions and reports the process's peak RSS. With ``--rss-chunks N``
(default 10,000) a last step continues until the store holds at least N chunks, for the memory
figure of an ingest of that many chunks.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from corpora import (log, machine, peak_rss_mb, percentile, replicated, squad_documents, squad_questions,
                     time_questions)

import assistant  # noqa: F401  (offline environment)
from assistant.pipeline import Assistant
from assistant.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", default="1,4,16")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--rss-chunks", type=int, default=10_000)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    per_copy = len(squad_documents())
    questions = [q["question"] for q in squad_questions()][: args.questions]
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        base = Path(tmp)
        bot = Assistant(Settings(store_dir=base / "store"))
        print(f"chunk_size {bot.settings.chunk_size}, overlap {bot.settings.chunk_overlap}; "
              f"{len(questions)} questions per step\n")
        print(f"{'size':>5} {'articles':>8} {'chunks':>7} {'step s':>7} {'step chunks/s':>13} {'ingest to here s':>16} "
              f"{'ask p50 ms':>10} {'ask p95 ms':>10} {'retrieve p50 ms':>15} {'peak RSS MB':>11}", flush=True)
        done, total_seconds = 0, 0.0
        steps = [round(float(f) * per_copy) for f in args.factors.split(",")]
        while steps:
            articles = steps.pop(0)
            part = replicated(articles, base / f"part-{articles}.jsonl", start=done)
            log(f"ingest articles {done}..{articles - 1}")
            started = time.perf_counter()
            report = bot.ingest([part], prune=False, progress=True)
            seconds = time.perf_counter() - started
            total_seconds += seconds
            done = articles
            chunks = bot.store.count()
            asked, retrieved = time_questions(bot, questions, warm_up=3)  # warm-up rebuilds BM25 untimed
            print(f"{articles / per_copy:>4.1f}x {articles:>8} {chunks:>7} {seconds:>7.0f} "
                  f"{report.chunks_added / seconds:>13.1f} {total_seconds:>16.0f} {percentile(asked, 50):>10.0f} "
                  f"{percentile(asked, 95):>10.0f} {percentile(retrieved, 50):>15.0f} {peak_rss_mb():>11.0f}",
                  flush=True)
            if not steps and args.rss_chunks and chunks < args.rss_chunks:
                per_article = chunks / articles
                steps.append(math.ceil(args.rss_chunks / per_article / 10) * 10)


if __name__ == "__main__":
    main()
