"""Query latency on a 1,000-article corpus, and the cold start of `assistant ask`.

    python bench/query_latency.py                          # builds /tmp/bench-1000 once, then reuses it
    python bench/query_latency.py --articles 1000 --store /tmp/bench-1000 --questions 227 --cold 3

The corpus is the squad2-dev documents replicated with new ids up to ``--articles``. Latency is
``Assistant.ask`` (question cleaning, hybrid retrieval, extractive answer with citations) over the
squad2-dev questions after a short warm-up, with retrieval alone timed separately. Cold start is the
wall time of a fresh `assistant ask --json` process against the same store (imports, model load,
store open, answer) until the answer is printed, and until the process has ended, alternating with
the bare import floor ``python -c "import chromadb, onnxruntime"`` so both see the same load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from corpora import log, machine, peak_rss_mb, replicated, squad_questions, summary_ms, time_questions

import assistant  # noqa: F401  (offline environment)
from assistant.pipeline import Assistant
from assistant.settings import Settings

COLD_QUESTION = "What did BSkyB name their interactive service?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--store", type=Path, default=Path("/tmp/bench-1000"))
    parser.add_argument("--questions", type=int, default=227, help="squad2-dev questions to time")
    parser.add_argument("--cold", type=int, default=5, help="cold `assistant ask` runs (each with a floor run)")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    args.store.mkdir(parents=True, exist_ok=True)
    corpus = replicated(args.articles, args.store.parent / f"{args.store.name}-articles.jsonl")
    settings = Settings(store_dir=args.store / "chroma")
    bot = Assistant(settings)
    log("ingest (incremental: only the first run embeds)")
    report = bot.ingest([corpus], progress=True)
    print(f"corpus: {args.articles} articles, {bot.store.count()} chunks (chunk_size {settings.chunk_size}); "
          f"ingest: {report.summary().splitlines()[0]}")

    questions = [q["question"] for q in squad_questions()][: args.questions]
    asked, retrieved = time_questions(bot, questions, warm_up=5)
    print(f"ask (retrieval + extractive answer): {summary_ms(asked)}")
    print(f"  retrieval alone:                   {summary_ms(retrieved)}")
    print(f"  peak RSS of this process: {peak_rss_mb():.0f} MB")

    cold_start(args.store / "chroma", args.cold)


def cold_start(store: Path, runs: int) -> None:
    """`assistant ask --json` in fresh processes, alternating with the bare import floor
    (`python -c "import chromadb, onnxruntime"`) so that both see the same load."""
    answered, exited, floor = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import chromadb, onnxruntime"], check=True)
        floor.append(time.perf_counter() - started)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "ask", COLD_QUESTION, "--json",
                                 "--store", str(store)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = proc.stdout.readline()  # the answer (one JSON line) is printed before the interpreter exits
        answered.append(time.perf_counter() - started)
        proc.stdout.close()
        if proc.wait() != 0 or not line.startswith(b"{"):
            raise SystemExit(f"`assistant ask` failed (exit {proc.returncode})")
        exited.append(time.perf_counter() - started)
    if not answered:
        return
    ask, bare = statistics.median(answered), statistics.median(floor)
    print(f"cold start of `assistant ask --json` (fresh process, same store), median of {len(answered)}: "
          f"answer printed after {ask:.2f} s, process ended after {statistics.median(exited):.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in answered)} s)")
    print(f"  import floor `python -c \"import chromadb, onnxruntime\"`, alternating with it: {bare:.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in floor)} s); answer printed after {ask / bare:.2f}x the floor")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import assistant.pipeline"], check=True)
    print(f"  of which importing assistant.pipeline (chromadb, onnxruntime, numpy, ...): "
          f"{time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
