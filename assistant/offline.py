"""Offline hygiene in one place.

Imported first by the package: no telemetry, no hub downloads, and tiktoken
reads the encodings that llama-index-core ships instead of downloading them.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ORT_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _llama_static_dir() -> Path | None:
    spec = find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "_static"


def apply() -> None:
    """Set the environment so that nothing reaches the network at run time."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    static = _llama_static_dir()
    if static is not None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(static / "tiktoken_cache"))
