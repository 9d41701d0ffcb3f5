"""The document library: what the store holds, one entry per document, and removing documents.

``assistant documents`` / ``assistant remove`` and the chat's document list use these functions.
The store is its own manifest (assistant/store.py), so the list is read from the chunks' metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from assistant.ownership import UPLOAD_SUBDIR
from assistant.store import Store, StoredDocument

UNKNOWN_TIME = "1970-01-01T00:00:00Z"  # chunks written before the ``updated`` key existed


@dataclass
class DocumentInfo:
    """One document of the store, as ``assistant documents --json`` prints it."""

    doc_id: str
    title: str
    source: str
    owner: str | None
    chunks: int
    pages: int | None
    origin: str
    updated: str
    date: str = ""  # the article's date (the chat's library shows it; not an ``--json`` key)

    def to_json(self) -> dict:
        return {"doc_id": self.doc_id, "title": self.title, "source": self.source, "owner": self.owner,
                "chunks": self.chunks, "pages": self.pages, "origin": self.origin, "updated": self.updated}

    def line(self) -> str:
        pages = f", {self.pages} pages" if self.pages else ""
        about = " | ".join(x for x in (self.title, self.source) if x)
        return f"{self.doc_id}  ({self.chunks} chunks{pages}, updated {self.updated})  {about}"


def _info(doc: StoredDocument) -> DocumentInfo:
    return DocumentInfo(doc.doc_id, doc.title, doc.source, doc.owner, doc.chunks, len(doc.pages) or None,
                        doc.origin, doc.updated or _file_time(doc), doc.date)


def _file_time(doc: StoredDocument) -> str:
    """For chunks written before ``updated`` was recorded: the file's time, when it can be found."""
    origin = Path(doc.origin)
    for path in (origin / doc.doc_id, origin):
        if path.is_file():
            return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return UNKNOWN_TIME


def list_documents(store: Store) -> list[DocumentInfo]:
    """Every document in the store, sorted by id."""
    return [_info(doc) for _, doc in sorted(store.documents().items())]


@dataclass
class Removal:
    """What removing one id did: ``ok`` False when the store holds no such document."""

    doc_id: str
    ok: bool
    message: str


def remove_documents(store: Store, doc_ids: list[str], corpus_dir: Path) -> list[Removal]:
    """Delete these documents from the store. An upload's file goes too; other files are kept, so
    the message says that the next ingest of their folder brings them back."""
    held = store.documents()
    uploads = (Path(corpus_dir) / UPLOAD_SUBDIR).resolve()
    out: list[Removal] = []
    for doc_id in doc_ids:
        doc = held.get(doc_id)
        if doc is None:
            out.append(Removal(doc_id, False, f"{doc_id}: not found (`assistant documents` lists the ids)"))
            continue
        store.delete_document(doc_id)
        file = (Path(corpus_dir) / doc_id).resolve()
        if doc_id.startswith(UPLOAD_SUBDIR + "/") and uploads in file.parents and file.is_file():
            file.unlink()
            out.append(Removal(doc_id, True, f"{doc_id}: removed, with its uploaded file"))
        else:
            out.append(Removal(doc_id, True, f"{doc_id}: removed ({doc.chunks} chunks); its file in "
                                             f"{doc.origin} is kept, so the next ingest of that folder brings it back"))
    if any(r.ok for r in out):
        store.bump_revision()
    return out
