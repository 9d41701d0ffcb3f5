"""Chunking loaded articles into LlamaIndex nodes by tokens (tiktoken cl100k_base).

Chunk ids are deterministic (document id, content hash, page, position), so the
same input always gives the same chunks: re-ingesting is idempotent and an
interrupted ingest can be completed without duplicates. The splitter assigns
them itself (``id_func``), before it links each chunk to its previous and next.
"""

from __future__ import annotations

from functools import lru_cache

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode

from assistant.contract import Meta, date_ordinal
from assistant.loading import LoadedDocument
from assistant.text import count_tokens, token_encoder  # noqa: F401  (count_tokens: re-exported)

# Only the title is embedded with the text; the rest of the metadata is for citations.
EMBEDDED_METADATA = (Meta.TITLE,)
# The title is prepended to every chunk (as "title: ..."), so it is cut to at most this many tokens,
# and to a quarter of the chunk size; the full title is kept as Meta.TITLE_FULL for display.
MAX_TITLE_TOKENS = 48
# Other metadata is only stored (never prepended): cut to a bounded length all the same.
MAX_METADATA_CHARS = 1000


def chunk_id(doc_id: str, doc_hash: str, page: int, position: int) -> str:
    """The id of chunk ``position`` of ``page`` of a document with content hash ``doc_hash``."""
    return f"{doc_id}::{doc_hash[:12]}::{page}:{position}"


def _id_func(position: int, document: Document) -> str:
    meta = document.metadata
    return chunk_id(meta[Meta.DOC_ID], meta[Meta.DOC_HASH], meta[Meta.PAGE], position)


@lru_cache(maxsize=8)
def splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    encode = token_encoder().encode
    return SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=lambda text: encode(text, disallowed_special=()),
        id_func=_id_func,
    )


def bounded_title(title: str, chunk_size: int) -> str:
    """``title`` cut so that what is prepended to a chunk ("title: ...") fits its token budget."""
    budget = min(MAX_TITLE_TOKENS, chunk_size // 4)
    if count_tokens(f"title: {title}") <= budget:
        return title  # ordinary titles are untouched, so their chunks and ids stay the same
    tokens = token_encoder().encode(title, disallowed_special=())
    cut = len(tokens)
    while cut and count_tokens(f"title: {token_encoder().decode(tokens[:cut])}…") > budget:
        cut -= 1
    # A cut inside a multi-byte character decodes to U+FFFD: drop those.
    return token_encoder().decode(tokens[:cut]).replace("\ufffd", "").rstrip() + "…"


def chunk_document(doc: LoadedDocument, doc_hash: str, origin: str,
                   chunk_size: int, chunk_overlap: int) -> list[TextNode]:
    """Split one loaded document (all its pages) into nodes with citation metadata."""
    parser = splitter(chunk_size, chunk_overlap)
    nodes: list[TextNode] = []
    for article in doc.articles:
        title = bounded_title(article.title, chunk_size)
        metadata = {
            Meta.DOC_ID: doc.doc_id,
            Meta.TITLE: title,
            Meta.SOURCE: article.source[:MAX_METADATA_CHARS],
            Meta.DATE: article.date[:MAX_METADATA_CHARS],
            Meta.URL: article.url[:MAX_METADATA_CHARS],
            Meta.PAGE: article.page or 0,
            Meta.OUTLETS: article.outlets[:MAX_METADATA_CHARS],
            Meta.DOC_HASH: doc_hash,
            Meta.ORIGIN: origin,
        }
        if title != article.title:
            metadata[Meta.TITLE_FULL] = article.title
        ordinal = date_ordinal(article.date)
        if ordinal is not None:
            metadata[Meta.DATE_ORDINAL] = ordinal
        document = Document(
            id_=doc.doc_id,
            text=article.text,
            metadata=metadata,
            excluded_embed_metadata_keys=[k for k in metadata if k not in EMBEDDED_METADATA],
            excluded_llm_metadata_keys=[k for k in metadata if k not in EMBEDDED_METADATA],
        )
        nodes.extend(parser.get_nodes_from_documents([document]))
    for index, node in enumerate(nodes):
        node.metadata[Meta.CHUNK_INDEX] = index
        node.metadata[Meta.N_CHUNKS] = len(nodes)
        for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            keys.extend(k for k in (Meta.CHUNK_INDEX, Meta.N_CHUNKS) if k not in keys)
    return nodes
