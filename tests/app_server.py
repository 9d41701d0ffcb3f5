"""Launch the chat (`python app.py`) in a subprocess on a free loopback port, for API and browser tests."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.servers import free_port, serving

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180


@contextmanager
def running_app(corpus_dir: Path, store_dir: Path, log_path: Path, **env_extra: str) -> Iterator[str]:
    """Run app.py over ``corpus_dir``/``store_dir``; yield its URL once it answers, stop it afterwards."""
    port = free_port()
    env = {**os.environ, "ASSISTANT_CORPUS_DIR": str(corpus_dir), "ASSISTANT_STORE_DIR": str(store_dir),
           "ASSISTANT_HOST": "127.0.0.1", "ASSISTANT_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(store_dir.parent / "gradio-tmp"), **env_extra}
    url = f"http://127.0.0.1:{port}/"
    probe = url if env_extra.get("ASSISTANT_USERS") else url + "config"  # with sign-in, /config needs a login
    with serving([sys.executable, str(ROOT / "app.py")], probe, log_path, START_TIMEOUT_S, "app.py",
                 cwd=store_dir.parent, env=env):
        yield url
