"""What the citation check of one generated answer costs: encoder calls, texts embedded and time.

Each reply of tests/fixtures/generated_replies.jsonl is checked the way the LLM answerer checks a
finished answer (``check_citations`` with a fresh per-answer embedding cache, as
:mod:`assistant.generative` builds it), against the real MiniLM encoder; the encoder is warmed first.
Prints, over the answers whose check runs the encoder (the others are decided by their facts or
their words alone): encoder calls and texts embedded per answer (mean) and wall time per answer
(median and mean over ``--rounds`` passes); and checksums of the kept citations' scores and of every
claim-passage score, so that two versions of the check can be compared for cost and for scores.

    python bench/citation_cost.py [--rounds 3]        # about a minute on 2 shared cores
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import assistant  # noqa: E402,F401  (offline environment)
from assistant.citations import check_citations, split_generated  # noqa: E402
from assistant.embedding import encoder_for  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.support import SupportScorer  # noqa: E402
from tests.replies import load_replies  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from citation_threshold import corpus_idf  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the replies (time: median over all)")
    args = parser.parse_args()
    replies = load_replies()
    encoder = encoder_for(Settings())
    encoder.encode(["warm up the encoder"])
    idf = corpus_idf(replies)
    threshold = Settings().citation_min_support
    calls, texts, seconds, scores, every = [], [], [], [], []
    for round_ in range(args.rounds):
        for reply in replies:
            count = {"calls": 0, "texts": 0}
            cache: dict[str, np.ndarray] = {}

            def embed(batch: list[str]) -> np.ndarray:  # assistant.generative._cached, counted
                missing = [t for t in dict.fromkeys(batch) if t not in cache]
                if missing:
                    count["calls"] += 1
                    count["texts"] += len(missing)
                    cache.update(zip(missing, encoder.encode(missing)))
                return np.stack([cache[t] for t in batch])

            start = time.perf_counter()
            _, citations, _ = check_citations(reply.reply, list(reply.passages), SupportScorer(idf, embed), threshold)
            elapsed = time.perf_counter() - start
            if count["calls"]:
                seconds.append(elapsed)
            if round_ == 0:
                if count["calls"]:
                    calls.append(count["calls"])
                    texts.append(count["texts"])
                scores.extend(c.score for c in citations)
                every.extend(x.score for row in SupportScorer(idf, embed).score(
                    [x.claim for x in split_generated(reply.reply)], [p.text for p in reply.passages], [p.title for p in reply.passages]) for x in row)
    print(f"{len(replies)} checked answers, {len(calls)} of them run the encoder; per such answer: encoder calls "
          f"{np.mean(calls):.2f} (max {max(calls)}), texts embedded {np.mean(texts):.1f}, time median "
          f"{statistics.median(seconds) * 1000:.0f} ms, mean {np.mean(seconds) * 1000:.0f} ms ({args.rounds} rounds); "
          f"kept citations {len(scores)}, score sum {sum(scores):.6f}; every score, sum {sum(every):.6f}")


if __name__ == "__main__":
    main()
