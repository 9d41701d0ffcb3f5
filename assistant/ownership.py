"""Who may see a document: private uploads and the rule retrieval enforces.

A signed-in user's uploads are saved under ``<corpus>/uploads/<owner>/``; every chunk of a file
there carries ``owner`` (the user's owner key) and ``private: 1`` in its metadata. Everything
else (the bundled corpus, public uploads directly in ``uploads/``, what an admin published) has
neither key, so stores written before private uploads existed need no migration.

A passage is visible to user U when it is not private or its owner is U. Retrieval applies this
as a Chroma where-clause (``{"$or": [{"private": {"$ne": 1}}, {"owner": U}]}``; Chroma's
``$ne`` also matches chunks without the key), embedded or on a Chroma server, and to the BM25
candidates in the lexical index (its ``owner`` column).
"""

from __future__ import annotations

from pathlib import Path

from assistant.contract import Filters, Meta

OWNER_KEY = Meta.OWNER
PRIVATE_KEY = Meta.PRIVATE
UPLOAD_SUBDIR = "uploads"


def upload_owner(file: Path, corpus_dir: Path | None) -> str | None:
    """The owner of ``file``: the folder name when it lies in ``<corpus_dir>/uploads/<owner>/``."""
    if corpus_dir is None:
        return None
    try:
        parts = Path(file).resolve().relative_to((Path(corpus_dir) / UPLOAD_SUBDIR).resolve()).parts
    except (ValueError, OSError):
        return None
    return parts[0] if len(parts) >= 2 else None


def mark_owner(nodes, owner: str | None) -> None:
    """Record ``owner`` on chunks (private), kept out of the embedded and LLM text."""
    if not owner:
        return
    for node in nodes:
        node.metadata[OWNER_KEY] = owner
        node.metadata[PRIVATE_KEY] = 1
        for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            keys.extend(k for k in (OWNER_KEY, PRIVATE_KEY) if k not in keys)


def visible(metadata: dict, user: str) -> bool:
    """True when the chunk with ``metadata`` is public or owned by ``user`` (an owner key)."""
    return Filters(visible_to=user).matches(metadata)


def visibility_where(user: str) -> dict:
    """The rule of :func:`visible` as a Chroma where-clause (queries and ``collection.get``)."""
    return {"$or": [{PRIVATE_KEY: {"$ne": 1}}, {OWNER_KEY: user}]}
