"""A real OpenAI-compatible chat-completions server on 127.0.0.1, with scripted replies, for tests.

It speaks ``POST /v1/chat/completions`` (a JSON completion, or with ``"stream": true`` the
server-sent events of chat.completion.chunk objects ending in ``data: [DONE]``) and
``GET /v1/models``. Each request takes the next scripted :class:`Reply`; when the script
is used up, ``default`` (a function of the request body) answers. Every request body is
recorded in ``requests``.

    with FakeOpenAI() as server:
        server.script(Reply("The job pays $150,000 [1]."), Reply(status=429))
        settings = Settings(llm="openai", llm_base_url=server.base_url, ...)

``python -m tests.fake_openai --port 8999`` serves :func:`echo_top_passage` until stopped.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    """One scripted reply: a completion ``content``, an error ``status``, or a ``hang`` (seconds)."""

    content: str = ""
    status: int = 200
    hang: float = 0.0
    headers: dict = field(default_factory=dict)
    message: str = ""
    piece_chars: int = 4  # streamed in pieces of about this many characters
    hang_after: int | None = None  # streaming: stall (for ``hang`` s) after this many pieces


def echo_top_passage(body: dict) -> Reply:
    """A generic model: answers with the first sentence of passage [1], cited [1].

    A condense request (the history prompt) gets the follow-up question back unchanged.
    """
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    follow_up = re.search(r"Follow Up Input: (.*)\n", text)
    if follow_up and "Standalone question" in text:
        return Reply(follow_up.group(1).strip())
    passage = re.search(r"^\[1\][^\n]*\n([^\n]+)", text, re.M)
    if not passage:
        return Reply("Not in the corpus.")
    from assistant.text import split_sentences

    text = passage.group(1).strip()
    start, end = split_sentences(text)[0]
    return Reply(f"{text[start:end]} [1]")


class FakeOpenAI:
    """The server; use as a context manager (it starts on a free port and stops on exit)."""

    def __init__(self, default: Callable[[dict], Reply] = echo_top_passage, port: int = 0) -> None:
        self.default = default
        self.requests: list[dict] = []
        self.authorizations: list[str] = []
        self._script: deque[Reply] = deque()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> "FakeOpenAI":
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._script.extend(replies)
        return self

    def _next(self, body: dict) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self._script:
                return self._script.popleft()
        return self.default(body)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                server.authorizations.append(self.headers.get("Authorization", ""))
                reply = server._next(body)
                if reply.hang and reply.hang_after is None:
                    server._stopping.wait(reply.hang)
                    self.close_connection = True
                    return
                if reply.status != 200:
                    self._json(reply.status, {"error": {"message": reply.message or f"scripted {reply.status}",
                                                        "type": "scripted", "code": reply.status}},
                               reply.headers)
                    return
                model = body.get("model", "fake-model")
                if body.get("stream"):
                    self._stream(reply, model)
                else:
                    self._json(200, {
                        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": reply.content}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    })

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, str(value))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply, model: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                pieces = [reply.content[i:i + reply.piece_chars]
                          for i in range(0, len(reply.content), reply.piece_chars)]

                def event(delta: dict, finish: str | None = None) -> None:
                    chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                             "created": int(time.time()), "model": model,
                             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()

                event({"role": "assistant", "content": ""})
                for number, piece in enumerate(pieces):
                    if reply.hang_after is not None and number >= reply.hang_after:
                        server._stopping.wait(reply.hang)
                        self.close_connection = True
                        return
                    event({"content": piece})
                event({}, "stop")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a fake OpenAI-compatible endpoint (echo_top_passage)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with FakeOpenAI(port=args.port) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
