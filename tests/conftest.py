"""Shared fixtures: a temp store, a copy of the bundled corpus, PDFs made in the test.

The store is an embedded Chroma folder, or, when ``ASSISTANT_TEST_CHROMA_URL`` is set
(``.ci/run`` does that for a second run of the integration tests), a fresh collection on
that Chroma server, so the same tests cover both modes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

import assistant  # noqa: F401  (offline environment before anything else)
from assistant.pipeline import Assistant
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SQUAD = ROOT / "eval" / "squad2-dev"
TEST_CHROMA_URL = os.environ.get("ASSISTANT_TEST_CHROMA_URL") or None


def store_backend(folder: Path) -> dict:
    """Settings fields for a private store: ``folder`` embedded, or a new collection on the test server."""
    if TEST_CHROMA_URL:
        return {"chroma_url": TEST_CHROMA_URL, "collection": f"test-{uuid.uuid4().hex[:16]}",
                "lexical_dir": folder.parent / f"{folder.name}-lexical"}
    return {"store_dir": folder}


def drop_store(bot: Assistant) -> None:
    """Delete a test's collection from the shared test server (embedded stores go with tmp_path)."""
    if bot.settings.chroma_url:
        bot.store.client.delete_collection(bot.settings.collection)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled corpus that a test may edit."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture
def settings(tmp_path: Path, corpus_dir: Path) -> Settings:
    return Settings(corpus_dir=corpus_dir, **store_backend(tmp_path / "store"))


@pytest.fixture
def bot(settings: Settings):
    bot = Assistant(settings)
    yield bot
    drop_store(bot)


@pytest.fixture(scope="session")
def seeded_bot(tmp_path_factory):
    """An assistant over the bundled corpus, ingested once per test session (read-only use)."""
    base = tmp_path_factory.mktemp("seeded")
    shutil.copytree(CORPUS, base / "corpus")
    bot = Assistant(Settings(corpus_dir=base / "corpus", **store_backend(base / "store")))
    bot.ingest(progress=False)
    yield bot
    drop_store(bot)


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A real PDF, one string per page, each line of it a line of text (Helvetica, written by hand)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        lines = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in text.split("\n")]
        shown = " T* ".join(f"({line}) Tj" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET".encode("latin-1")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode('latin-1')}\nendstream")
        content_ref = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_ref} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path
