"""The one place that builds the assistant from settings, and the one orchestrator of a question.

A question goes rewrite -> spell (misspelt words read as the corpus's) -> retrieve (-> the lead of the document meant, for a question about a
whole document: "What is this article about?") -> answer (-> citation check, inside the
generative answerer), in that order, in :meth:`Assistant.stream`; :meth:`Assistant.ask`
is that stream drained. Every entry point (CLI, chat UI, eval harness,
benchmarks) asks through these two methods, so they all exercise one code path.
Answerers are chosen by ``Settings.llm`` from :data:`ANSWERERS`: adding one is a
class with a ``respond`` method (``assistant.contract.Answerer``) and one line there.
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from assistant.answering import ExtractiveAnswerer
from assistant.chat import Rewriter, RuleRewriter
from assistant.contract import (WHICH_DOCUMENT, Answer, Answerer, Evidence, Filters, Passage, Query, QuestionError,
                                Update, sentence_updates)
from assistant.embedding import encoder_for
from assistant.retrieval import RetrievalOptions, Retriever
from assistant.settings import Settings
from assistant.spelling import Speller
from assistant.store import CHROMA_FILE, Store, StoreError, check_store_dir

if TYPE_CHECKING:  # imported where used: `assistant ask` loads neither LlamaIndex nor the ingest path
    from assistant.generative import GenerativeAnswerer
    from assistant.ingest import IngestLimits, IngestReport

__all__ = ["ANSWERERS", "Assistant", "QuestionError", "clean_question", "ready_assistant"]


def extractive(settings: Settings) -> ExtractiveAnswerer:
    """The default answerer: verbatim sentences of the passages, or an abstention (no LLM)."""
    return ExtractiveAnswerer(max_sentences=settings.max_answer_sentences, max_words=settings.max_answer_words,
                              abstain_threshold=settings.abstain_threshold,
                              closest_threshold=settings.closest_threshold)


def generative(settings: Settings) -> GenerativeAnswerer:
    """An OpenAI-compatible LLM's answer, citation-checked, with the extractive one as fallback."""
    from assistant.generative import GenerativeAnswerer
    from assistant.llm import LLMClient

    return GenerativeAnswerer(LLMClient(settings), extractive(settings), settings.llm_context_window,
                              settings.llm_max_tokens, settings.citation_min_support)


# Settings.llm -> the answerer it builds.
ANSWERERS: dict[str, Callable[[Settings], Answerer]] = {
    "extractive": extractive,
    "openai": generative,
}


def retrieval_options(settings: Settings) -> RetrievalOptions:
    """The retrieval knobs of ``settings``."""
    return RetrievalOptions(top_k=settings.top_k, candidates=settings.candidates, hybrid=settings.hybrid,
                            fusion=settings.fusion, bm25_weight=settings.bm25_weight, rrf_k=settings.rrf_k)


def rewriter(settings: Settings) -> Rewriter:
    """The LLM condenses follow-ups when it answers too; otherwise the rule-based rewrite."""
    if settings.llm == "openai":
        from assistant.chat import LLMCondenser
        from assistant.llm import LLMClient

        budget = (settings.llm_context_window - settings.llm_max_tokens) // 2
        return LLMCondenser(LLMClient(settings), budget)
    return RuleRewriter()


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
        self.retriever = Retriever(self.store, encoder_for(settings), retrieval_options(settings))
        self.rewriter = rewriter(settings)
        self.speller = Speller(self.store.lexical) if settings.spelling else None
        self.answerer = ANSWERERS[settings.llm](settings)

    def ingest(self, paths: list[Path] | None = None, prune: bool = True, progress=True,
               bundled: Path | None = None, limits: IngestLimits | None = None) -> IngestReport:
        """Incrementally ingest ``paths`` (default: the corpus folder). Files under ``bundled``
        (default: the corpus folder) keep their relative path as id; others get a root prefix."""
        from assistant.ingest import ingest

        pool = None
        if self.settings.ingest_workers > 1:
            from assistant.ingest_workers import WorkerPool

            pool = partial(WorkerPool, workers=self.settings.ingest_workers)
        return ingest(paths or [self.settings.corpus_dir], self.store, self.settings, prune, progress,
                      bundled=bundled or self.settings.corpus_dir, limits=limits, pool=pool)

    def ask(self, question: str, top_k: int | None = None, filters: Filters | None = None,
            history: list[tuple[str, str]] | None = None) -> Answer:
        """Answer ``question`` with citations, or abstain. ``history``: earlier (question, answer) turns."""
        *_, (_, answer) = self._run(question, top_k, filters, history, stream=False)
        return answer

    def stream(self, question: str, top_k: int | None = None, filters: Filters | None = None,
               history: list[tuple[str, str]] | None = None) -> Iterator[Update]:
        """Yield the answer text as it grows, then ``(final text, Answer)``."""
        return self._run(question, top_k, filters, history, stream=True)

    def _run(self, question: str, top_k: int | None, filters: Filters | None,
             history: list[tuple[str, str]] | None, stream: bool) -> Iterator[Update]:
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        query = self.rewriter.rewrite(question, history or [])
        if self.speller is not None:
            self.store.sync_lexical()  # the words of what another process or replica ingested count too
            query = self.speller.correct(query, (filters or Filters()).visible_to)
        found = self.retriever.retrieve(query.search, top_k, filters)
        if query.overview:  # "What is this article about?": the lead of the document meant
            lead = self.retriever.lead(found, query.search if query.focused else None)
            if lead is None:
                yield from sentence_updates(which_document(query, found.passages, found.doc_ranking, started))
                return
            found = lead
        evidence = Evidence(found.idf, self.retriever.embed)
        for text, answer in self.answerer.respond(query, found.passages, evidence, stream=stream):
            if answer is not None:
                answer.doc_ranking, answer.corrections = found.doc_ranking, query.corrections
                answer.latency_ms = (time.perf_counter() - started) * 1000
            yield text, answer


def which_document(query: Query, passages: list[Passage], doc_ranking: list[str], started: float) -> Answer:
    """The reply to a request to summarise when several documents could be meant: ask which."""
    title = next((p.title for p in passages if p.title), "") or (passages[0].doc_id if passages else "")
    text = WHICH_DOCUMENT.format(title=title)
    return Answer(query.question, text, True, passages=passages, doc_ranking=doc_ranking,
                  latency_ms=(time.perf_counter() - started) * 1000)


def ready_assistant(settings: Settings, progress=True, out=sys.stderr) -> Assistant:
    """An assistant with something to answer from: the corpus folder is ingested first when the
    store is empty. Raises :class:`StoreError` when there is nothing to ask about (no store and no
    corpus), without leaving a new store folder behind."""
    corpus = Path(settings.corpus_dir)
    store_dir = Path(settings.store_dir).expanduser()
    if not settings.chroma_url:
        check_store_dir(store_dir)  # a --store that is a file or a foreign folder says so first
    if not settings.chroma_url and not (store_dir / CHROMA_FILE).exists() and not corpus.is_dir():
        raise StoreError(f"nothing to ask about: no store at {settings.store_dir} and no corpus folder "
                         f"{corpus} to ingest; run `assistant ingest FOLDER` first, or pass --store")
    if not corpus.is_dir() and Store(settings, preload=False).count() == 0:
        raise StoreError(f"nothing to ask about: the store at {settings.chroma_url or settings.store_dir} is "
                         f"empty and there is no corpus folder {corpus}; run `assistant ingest FOLDER` first")
    bot = Assistant(settings)
    if bot.store.count() == 0:
        print(f"The store at {bot.store.location} is empty: ingesting {corpus} first.", file=out)
        report = bot.ingest(progress=progress, prune=False)  # a start-up ingest prunes nothing
        print(report.summary(), file=out)
        if bot.store.count() == 0:
            raise StoreError(f"nothing to ask about: no document could be ingested from {corpus} "
                             f"({len(report.failed)} failed, listed above); add documents and run `assistant ingest`")
    return bot
