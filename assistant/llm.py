"""The client of an OpenAI-compatible chat-completions endpoint, with our retries.

The client is LlamaIndex's ``OpenAILike``. Retries are ours (its own retry
layers are switched off, so ``ASSISTANT_LLM_RETRIES`` means what it says):
refused connections, 429 and 5xx are retried with exponential backoff
(honouring Retry-After); a timeout is not retried (a slow endpoint would keep
the user waiting retries x timeout). Every failure becomes one
:class:`LLMError` line a user can act on, without the key.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from llama_index.core.llms import ChatMessage

from assistant.settings import Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class LLMError(RuntimeError):
    """The LLM endpoint failed; the message is one line a user can act on (never the key)."""

    def __init__(self, message: str, retryable: bool = False, wait: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.wait = wait


def build_llm(settings: Settings):
    """LlamaIndex's OpenAILike client for the configured endpoint (retries are done by the caller)."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=settings.llm_model,
        api_base=settings.llm_base_url or DEFAULT_BASE_URL,
        # Local servers (Ollama, llama.cpp, vLLM) need no key, but the client wants a string.
        api_key=settings.llm_key() or "no-key",
        is_chat_model=True,
        context_window=settings.llm_context_window,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        timeout=settings.llm_timeout,
        max_retries=0,
    )


class LLMClient:
    """One configured endpoint: whole replies (:meth:`complete`) and streamed ones, with retries.

    ``llm`` defaults to :func:`build_llm` of ``settings``.
    """

    def __init__(self, settings: Settings, llm=None) -> None:
        self.llm = llm or build_llm(settings)
        self.endpoint = settings.llm_base_url or DEFAULT_BASE_URL
        self.model = settings.llm_model
        self.timeout = settings.llm_timeout
        self.retries = settings.llm_retries
        self.backoff = settings.llm_backoff
        self.key = settings.llm_key()

    def complete(self, messages: list[ChatMessage]) -> str:
        """The model's reply to ``messages`` (one request; retried on transient failures)."""
        def run() -> Iterator[str]:
            yield self.llm.chat(messages).message.content or ""

        return "".join(self._with_retries(run))

    def stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        """The model's reply to ``messages`` as it streams (``stream: true``), piece by piece."""
        def run() -> Iterator[str]:
            for chunk in self.llm.stream_chat(messages):
                if chunk.delta:
                    yield chunk.delta

        return self._with_retries(run)

    def _with_retries(self, run: Callable[[], Iterator[str]]) -> Iterator[str]:
        """The text pieces of one completion; retried (with backoff) until the first piece arrives."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            started = False
            try:
                for piece in run():
                    started = True
                    yield piece
                return
            except Exception as exc:  # noqa: BLE001  (every failure becomes one LLMError line)
                error = self._describe(exc, attempt + 1)
                if started or not error.retryable or attempt + 1 == attempts:
                    raise error from None
                time.sleep(self._backoff(attempt, error))

    def _backoff(self, attempt: int, error: LLMError) -> float:
        wait = self.backoff * (2 ** attempt)
        if error.wait is not None:
            wait = max(wait, min(error.wait, self.timeout))
        return wait

    def _redact(self, text: str) -> str:
        return text.replace(self.key, "***") if self.key else text

    def _describe(self, exc: Exception, attempts: int) -> LLMError:
        """One clear line for what went wrong (no key, no traceback)."""
        import httpx
        import openai

        where = f"the LLM endpoint {self.endpoint}"
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            return LLMError(f"{where} did not answer within {self.timeout:g} s (ASSISTANT_LLM_TIMEOUT)")
        if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
            return LLMError(f"{where} is not reachable{tries} (is it running? check ASSISTANT_LLM_BASE_URL)",
                            retryable=True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._redact(_error_detail(exc))
            if status == 401 or status == 403:
                return LLMError(f"{where} rejected the API key (HTTP {status}{detail}); set ASSISTANT_LLM_API_KEY "
                                "(or OPENAI_API_KEY; HF_TOKEN for Hugging Face endpoints)")
            if status == 404:
                return LLMError(f"{where} does not serve model {self.model!r} (HTTP 404{detail}); "
                                "check ASSISTANT_LLM_MODEL and ASSISTANT_LLM_BASE_URL")
            if status == 429:
                return LLMError(f"{where} is rate-limiting requests (HTTP 429{detail}){tries}; try again later",
                                retryable=True, wait=_retry_after(exc))
            if status >= 500:
                return LLMError(f"{where} failed (HTTP {status}{detail}){tries}",
                                retryable=True, wait=_retry_after(exc))
            return LLMError(f"{where} refused the request (HTTP {status}{detail})")
        return LLMError(f"{where} failed: {self._redact(type(exc).__name__ + ': ' + str(exc))[:200]}")


def _error_detail(exc) -> str:
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message", "") if isinstance(error, dict) else str(error)
    message = " ".join(str(message).split())[:160]
    return f": {message}" if message else ""


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
