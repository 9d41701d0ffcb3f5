"""`assistant ask` loads only what answering needs: no LlamaIndex, Gradio or matplotlib on that path."""

from __future__ import annotations

import json
import subprocess
import sys


HEAVY = ("llama_index.core", "gradio", "matplotlib", "bm25s")
PROBE = """
import json, sys
from assistant.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def test_ask_answers_without_importing_llama_index_gradio_or_matplotlib(bot):
    bot.ingest(progress=False)
    where = (["--chroma-url", bot.settings.chroma_url, "--collection", bot.settings.collection]
             if bot.settings.chroma_url else ["--store", str(bot.settings.store_dir)])
    run = subprocess.run([sys.executable, "-c", PROBE, "ask", "How much does the Netflix machine learning job pay?",
                          "--json", *where], capture_output=True, text=True, timeout=300)
    answer, probe = (json.loads(line) for line in run.stdout.strip().splitlines()[-2:])
    assert probe == {"code": 0, "loaded": []}, run.stderr
    assert "$900,000" in answer["answer"] and answer["citations"]
