"""Chunking loaded articles into LlamaIndex nodes by tokens (tiktoken cl100k_base).

Chunk ids are deterministic (document id, content hash, page, position), so the
same input always gives the same chunks: re-ingesting is idempotent and an
interrupted ingest can be completed without duplicates.
"""

from __future__ import annotations

from functools import lru_cache

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import RelatedNodeInfo, TextNode

from assistant.loading import LoadedDocument, date_ordinal

ENCODING = "cl100k_base"
# Only the title is embedded with the text; the rest of the metadata is for citations.
EMBEDDED_METADATA = ("title",)


@lru_cache(maxsize=1)
def token_encoder():
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(token_encoder().encode(text, disallowed_special=()))


@lru_cache(maxsize=8)
def splitter(chunk_size: int, chunk_overlap: int) -> SentenceSplitter:
    encode = token_encoder().encode
    return SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=lambda text: encode(text, disallowed_special=()),
    )


def chunk_document(doc: LoadedDocument, doc_hash: str, origin: str,
                   chunk_size: int, chunk_overlap: int) -> list[TextNode]:
    """Split one loaded document (all its pages) into nodes with citation metadata."""
    parser = splitter(chunk_size, chunk_overlap)
    nodes: list[TextNode] = []
    for article in doc.articles:
        metadata = {
            "doc_id": doc.doc_id,
            "title": article.title,
            "source": article.source,
            "date": article.date,
            "url": article.url,
            "page": article.page or 0,
            "outlets": article.outlets,
            "doc_hash": doc_hash,
            "origin": origin,
        }
        ordinal = date_ordinal(article.date)
        if ordinal is not None:
            metadata["date_ordinal"] = ordinal
        document = Document(
            id_=doc.doc_id,
            text=article.text,
            metadata=metadata,
            excluded_embed_metadata_keys=[k for k in metadata if k not in EMBEDDED_METADATA],
            excluded_llm_metadata_keys=[k for k in metadata if k not in EMBEDDED_METADATA],
        )
        page_nodes = parser.get_nodes_from_documents([document])
        renamed = {}
        for position, node in enumerate(page_nodes):
            renamed[node.id_] = node.id_ = f"{doc.doc_id}::{doc_hash[:12]}::{article.page or 0}:{position}"
        for node in page_nodes:  # previous/next links point at the splitter's random ids until renamed
            for related in node.relationships.values():
                if isinstance(related, RelatedNodeInfo) and related.node_id in renamed:
                    related.node_id = renamed[related.node_id]
        nodes.extend(page_nodes)
    for index, node in enumerate(nodes):
        node.metadata["chunk_index"] = index
        node.metadata["n_chunks"] = len(nodes)
        for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            keys.extend(k for k in ("chunk_index", "n_chunks") if k not in keys)
    return nodes
