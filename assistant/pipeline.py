"""The one place that builds the assistant from settings: store, retriever, answerer.

Every entry point (CLI, chat UI, eval harness, benchmarks) asks questions
through :meth:`Assistant.ask`, so they all exercise the same code path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

from assistant.answering import ABSTAIN_MESSAGE, Answer, ExtractiveAnswerer
from assistant.ingest import IngestReport, ingest
from assistant.retrieval import Filters, Retriever, ranked_doc_ids
from assistant.settings import Settings
from assistant.store import Store


class QuestionError(ValueError):
    """The question cannot be asked as given; the message says why."""


def clean_question(question: str, max_chars: int) -> str:
    """The question with control characters removed; raises :class:`QuestionError` if unusable."""
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in question)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise QuestionError("Please type a question: the question is empty.")
    if len(cleaned) > max_chars:
        raise QuestionError(
            f"The question is {len(cleaned):,} characters long; the limit is {max_chars:,}. "
            "Please shorten it (ASSISTANT_MAX_QUESTION_CHARS raises the limit)."
        )
    return cleaned


class Assistant:
    """Ingest and ask over one store, as configured by :class:`Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.retriever = Retriever(self.store, settings)
        self.answerer = ExtractiveAnswerer(
            max_sentences=settings.max_answer_sentences,
            max_words=settings.max_answer_words,
            abstain_threshold=settings.abstain_threshold,
        )
        self.generator = None
        if settings.llm == "openai":
            from assistant.generative import GenerativeAnswerer

            self.generator = GenerativeAnswerer(settings, self.retriever)

    def ingest(self, paths: list[Path] | None = None, prune: bool = True, progress=True) -> IngestReport:
        """Incrementally ingest ``paths`` (default: the corpus folder)."""
        return ingest(paths or [self.settings.corpus_dir], self.store, self.settings, prune, progress)

    def ask(self, question: str, top_k: int | None = None, filters: Filters | None = None,
            history: list[tuple[str, str]] | None = None) -> Answer:
        """Answer ``question`` with citations, or abstain. ``history``: earlier (question, answer) turns."""
        if self.generator is not None:
            *_, (_, answer) = self._generated(question, top_k, filters, history, stream=False)
            return answer
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        search_query = answer_query = question
        if history:
            from assistant import chat

            search_query = chat.contextualise(question, history)
            answer_query = chat.answer_query(question, search_query)
        ranked = self.retriever.search(search_query, filters=filters, top_k=top_k)
        passages = ranked[: top_k or self.settings.top_k]
        if not passages:
            answer = Answer(question, ABSTAIN_MESSAGE, True)
        else:
            answer = self.answerer.answer(answer_query, passages, self.retriever.idf, self.retriever.embed)
            answer.question = question
        answer.doc_ranking = ranked_doc_ids(ranked)
        answer.latency_ms = (time.perf_counter() - started) * 1000
        return answer

    def stream(self, question: str, **kwargs) -> Iterator[tuple[str, Answer | None]]:
        """Yield the answer text as it grows (sentence by sentence), then the final :class:`Answer`."""
        if self.generator is not None:
            yield from self._generated(question, stream=True, **kwargs)
            return
        answer = self.ask(question, **kwargs)
        text = ""
        for part in _sentence_parts(answer.text):
            text += part
            yield text, None
        yield answer.text, answer

    def _generated(self, question: str, top_k: int | None = None, filters: Filters | None = None,
                   history: list[tuple[str, str]] | None = None,
                   stream: bool = True) -> Iterator[tuple[str, Answer | None]]:
        """The LLM's answer (ASSISTANT_LLM=openai), citation-checked; extractive when the LLM fails."""
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)

        ranking: list[str] = []

        def retrieve(query: str):
            ranked = self.retriever.search(query, filters=filters, top_k=top_k)
            ranking[:] = ranked_doc_ids(ranked)
            return ranked[: top_k or self.settings.top_k]

        def extractive(query: str, passages) -> Answer:
            return self.answerer.answer(query, passages, self.retriever.idf, self.retriever.embed)

        for text, answer in self.generator.stream(question, history, retrieve, extractive, stream=stream):
            if answer is not None:
                answer.latency_ms = (time.perf_counter() - started) * 1000
                answer.doc_ranking = answer.doc_ranking or list(ranking)
            yield text, answer


def _sentence_parts(text: str) -> list[str]:
    import re

    parts = re.split(r"(?<=\])\s+", text)
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]
