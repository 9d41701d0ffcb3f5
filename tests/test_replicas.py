"""Several app replicas on one Chroma server: what one ingests, the others answer from within seconds.

Two `python app.py` processes share a `chroma run` server and the corpus folder (a shared volume in
production); each keeps its own lexical index. An upload through one is answerable through the other.
"""

from __future__ import annotations

import shutil
import time

import pytest
from gradio_client import Client, handle_file

from tests.app_server import ROOT, running_app
from tests.chroma_server import running_chroma

pytestmark = pytest.mark.slow

VISIBLE_WITHIN_S = 5.0


def client(url: str) -> Client:
    return Client(url, analytics_enabled=False, verbose=False, download_files=False)


def test_an_upload_through_one_replica_is_answered_through_the_other(tmp_path):
    corpus = tmp_path / "shared" / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    note = tmp_path / "glacier-survey.md"
    note.write_text("# Glacier survey\n\nThe survey found that the Quorvane glacier retreated 412 metres in 2023.\n")
    question = "How far did the Quorvane glacier retreat in 2023?"
    with running_chroma(tmp_path / "chroma", tmp_path / "chroma.log") as chroma_url:
        replicas = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(running_app(corpus, tmp_path / name / "store", tmp_path / name / "app.log",
                                        ASSISTANT_CHROMA_URL=chroma_url,
                                        ASSISTANT_LEXICAL_DIR=str(tmp_path / name / "lexical")))
        with replicas[0] as first, replicas[1] as second:
            other = client(second)
            assert "412" not in other.predict(message=question, api_name="/chat")["answer"]

            status = client(first).predict(files=[handle_file(str(note))], api_name="/upload")
            assert "glacier-survey" in status
            uploaded = time.monotonic()
            while True:
                result = other.predict(message=question, api_name="/chat")
                waited = time.monotonic() - uploaded
                if "412" in result["answer"] or waited > VISIBLE_WITHIN_S:
                    break
                time.sleep(0.2)
            assert "412" in result["answer"], f"not answered through the other replica after {waited:.1f} s"
            print(f"answered through the other replica {waited:.1f} s after the upload returned")
            assert result["citations"][0]["doc_id"].endswith("glacier-survey.md")
