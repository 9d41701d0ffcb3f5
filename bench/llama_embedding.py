"""The MiniLM encoder as a LlamaIndex ``BaseEmbedding``, for the benchmarks that run LlamaIndex's
own ``VectorStoreIndex`` pipeline next to ours (the assistant itself embeds through Chroma)."""

from __future__ import annotations

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

import assistant  # noqa: F401  (offline environment)
from assistant.embedding import MiniLMEncoder, get_encoder


class MiniLMEmbedding(BaseEmbedding):
    """LlamaIndex embedding backed by :class:`MiniLMEncoder`."""

    model_name: str = "all-MiniLM-L6-v2 (int8 ONNX)"
    _encoder: MiniLMEncoder = PrivateAttr()

    def __init__(self, encoder: MiniLMEncoder | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._encoder = encoder or get_encoder(self.embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
