"""The chat in the browser: `python app.py` (also the Hugging Face Space entry point).

Serves on ASSISTANT_HOST:ASSISTANT_PORT (default 127.0.0.1:7860), ingesting the
corpus first when the store is empty. The corpus and the store default to
`corpus/` and `.store/` next to this file; ASSISTANT_CORPUS_DIR and
ASSISTANT_STORE_DIR move them (e.g. to a writable folder on a Space).
"""

from __future__ import annotations

import sys
from pathlib import Path

import assistant  # noqa: F401  (offline environment first)
from assistant.settings import Settings
from assistant.webapp import serve

HERE = Path(__file__).resolve().parent


def app_settings() -> Settings:
    """Settings from the environment, with unset folders resolved next to this file."""
    settings = Settings()
    defaults = {}
    if "corpus_dir" not in settings.model_fields_set:
        defaults["corpus_dir"] = HERE / "corpus"
    if "store_dir" not in settings.model_fields_set:
        defaults["store_dir"] = HERE / ".store"
    return settings.with_overrides(**defaults)


def main() -> int:
    """Serve until interrupted; a problem we can explain is one line, not a traceback."""
    from assistant.embedding import ModelMissingError
    from assistant.store import StoreError

    try:
        serve(app_settings())
    except KeyboardInterrupt:
        return 130
    except (ModelMissingError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
