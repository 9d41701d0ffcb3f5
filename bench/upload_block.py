"""How long a question waits while another user's upload ingests (the chat's handlers, real store).

    python bench/upload_block.py                 # a 1,500-document .jsonl upload
    python bench/upload_block.py --documents 300 --questions 5

One embedded store holds the bundled corpus. The question is first asked alone (``--questions``
times, through ``ChatApp.chat_api`` as the ``/chat`` endpoint does), then again and again while
``ChatApp.upload`` ingests a ``.jsonl`` of ``--documents`` squad2-dev articles (new ids) in another
thread. Prints the usual latency, every latency during the upload, and the extra delay
(max and median during minus the median alone). The last line is JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from corpora import ROOT, log, replicated

import assistant  # noqa: F401  (offline environment)
from assistant.pipeline import Assistant
from assistant.settings import Settings
from assistant.ui import ChatApp

QUESTION = "How much does the Netflix machine learning job pay?"
SESSIONS = (f"bench-{n}" for n in itertools.count())  # a new conversation per question


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1500)
    parser.add_argument("--questions", type=int, default=10, help="questions asked alone first")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="upload-block-") as tmp:
        tmp = Path(tmp)
        corpus = shutil.copytree(ROOT / "corpus", tmp / "corpus")
        bot = Assistant(Settings(corpus_dir=corpus, store_dir=tmp / "store"))
        bot.ingest(progress=False)
        app = ChatApp(bot)
        app.chat_api(QUESTION, next(SESSIONS))  # warm: encoder, BM25 index

        alone = []
        for _ in range(args.questions):
            started = time.perf_counter()
            app.chat_api(QUESTION, next(SESSIONS))
            alone.append(time.perf_counter() - started)

        (tmp / "incoming").mkdir()
        upload = replicated(args.documents, tmp / "incoming" / "articles.jsonl")
        status: list[str] = []
        worker = threading.Thread(target=lambda: status.append(app.upload([str(upload)])[0]))
        began = time.perf_counter()
        worker.start()
        during = []
        while worker.is_alive():
            started = time.perf_counter()
            app.chat_api(QUESTION, next(SESSIONS))
            during.append(time.perf_counter() - started)
        worker.join()
        upload_s = time.perf_counter() - began
        app.chat_api(QUESTION, next(SESSIONS))

    usual = statistics.median(alone)
    log(f"upload of {args.documents} documents: {upload_s:.1f} s; {status[0].splitlines()[0] if status else ''}")
    log(f"question alone: median {usual * 1000:.0f} ms over {len(alone)}")
    log(f"questions during the upload: {len(during)}, latencies (s): {', '.join(f'{d:.2f}' for d in during)}")
    extra_max = max(during) - usual if during else None
    extra_median = statistics.median(during) - usual if during else None
    if during:
        log(f"extra delay: max {extra_max:.2f} s, median {extra_median:.2f} s")
    print(json.dumps({"documents": args.documents, "upload_s": round(upload_s, 1), "alone_ms": round(usual * 1000),
                      "questions_during": len(during), "extra_max_s": round(extra_max, 2) if during else None,
                      "extra_median_s": round(extra_median, 2) if during else None}))


if __name__ == "__main__":
    main()
