"""Run a real Chroma server (`chroma run`) on a free loopback port, for server-mode tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command + ["run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not answer on {url} within {START_TIMEOUT_S} s")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
