"""Offline by default: a full ingest + ask opens no connection beyond loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import CORPUS

GUARD = '''
import ipaddress, os, socket

_LOG = os.environ["NETWORK_ATTEMPTS_LOG"]


def _record(what):
    with open(_LOG, "a") as log:
        log.write(what + "\\n")


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host in ("localhost", "")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(str(address[0])):
        _record(f"connect {address}")
        raise OSError("network access blocked by the test")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(str(address[0])):
        _record(f"connect {address}")
        return 111
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback(str(host)):
        _record(f"resolve {host}")
        raise socket.gaierror("name resolution blocked by the test")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def guarded(tmp_path: Path, env: dict) -> tuple[dict, Path]:
    """``env`` with the socket guard loaded into every Python process, and the log it records to."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    attempts = tmp_path / "attempts.log"
    attempts.write_text("")
    return {**env, "PYTHONPATH": os.pathsep.join([str(guard), env.get("PYTHONPATH", "")]),
            "NETWORK_ATTEMPTS_LOG": str(attempts)}, attempts


def test_ingest_and_ask_make_no_connection_beyond_loopback(tmp_path):
    shutil.copytree(CORPUS, tmp_path / "corpus")
    env, attempts = guarded(tmp_path, {k: v for k, v in os.environ.items()
                                       if not k.startswith(("ASSISTANT_", "HF_", "GRADIO_"))})
    env.update(HOME=str(tmp_path / "home"), ASSISTANT_MODEL_CACHE_DIR=str(tmp_path / "model-cache"))
    run = [sys.executable, "-m", "assistant.cli"]
    common = ["--store", str(tmp_path / "store")]
    subprocess.run(run + ["ingest", str(tmp_path / "corpus"), "--quiet", *common], env=env, cwd=tmp_path,
                   check=True, capture_output=True)
    out = subprocess.run(run + ["ask", "How much does the Netflix machine learning job pay?", "--json", *common],
                         env=env, cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert "$900,000" in json.loads(out)["answer"]
    assert attempts.read_text() == "", f"network attempts: {attempts.read_text()}"


def test_the_guard_really_blocks_and_records(tmp_path):
    env, attempts = guarded(tmp_path, dict(os.environ))
    code = "import socket\ntry:\n    socket.create_connection(('93.184.216.34', 80), timeout=1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert "93.184.216.34" in attempts.read_text()
    assert Path(attempts).read_text().count("\n") == 1
