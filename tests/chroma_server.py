"""Run a real Chroma server (`chroma run`) on a free loopback port, for server-mode tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.servers import free_port, serving

__all__ = ["chroma_command", "free_port", "running_chroma"]

START_TIMEOUT_S = 60


def chroma_command() -> list[str] | None:
    """The `chroma` CLI of this environment (next to the running Python), or None."""
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("chroma")
    return [found] if found else None


@contextmanager
def running_chroma(data_dir: Path, log_path: Path) -> Iterator[str]:
    """Start `chroma run --path data_dir` on 127.0.0.1; yield its URL once the heartbeat answers."""
    command = chroma_command()
    if command is None:
        raise RuntimeError("the `chroma` command is missing: reinstall chromadb")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with serving(command + ["run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                 f"{url}/api/v2/heartbeat", log_path, START_TIMEOUT_S, "chroma run", env=env):
        yield url
