"""The chat's handlers over one assistant (the page layout is in webapp.py, rendering in render.py).

Answers stream in as ``Assistant.stream`` yields them (growing text, then the
final :class:`Answer`), so a token-streaming LLM back end needs no change here.
Every piece of document text is HTML-escaped (render.py) before it is wrapped in
our own markup. Uploads land in ``<corpus>/uploads/`` (with sign-in:
``uploads/<owner>/``, private) under a name that keeps its letters and are
ingested beside the questions (assistant/uploads.py), searchable as soon as
their status says so.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import assistant  # noqa: F401  (offline environment before gradio is imported)
from assistant.contract import FilterError, Filters, QuestionError
from assistant.history import Database
from assistant.ingest import IngestLimits, IngestReport
from assistant.loading import LoadProblem
from assistant.render import (SOURCES_PLACEHOLDER, _text, answer_payload, for_users,  # noqa: F401  (the UI's API)
                              highlight, render_answer, render_sources, render_turn, render_user)
from assistant.settings import Settings
from assistant.space import ChatSession, TeamSpace
from assistant.store import StoreError
from assistant.uploads import save_uploads, settle
from assistant.users import SINGLE_USER, User

log = logging.getLogger(__name__)

API_SESSIONS_KEPT = 1000  # /chat conversations remembered (the least recently used is forgotten first)
API_TURNS_KEPT = 10  # turns passed on per /chat conversation (the rewriters read the last few)
SINGLE = User(SINGLE_USER, admin=True, private=False)  # the user when sign-in is off


# ---------------------------------------------------------------- the app


def make_filters(source: str = "", since: str = "", until: str = "") -> Filters | None:
    """Filters from the settings accordion (None when empty); a malformed date raises
    :class:`QuestionError` with the fix."""
    values = {"source": (source or "").strip(), "since": (since or "").strip(), "until": (until or "").strip()}
    if not any(values.values()):
        return None
    try:
        return Filters(**{k: v or None for k, v in values.items()})
    except FilterError as exc:
        raise QuestionError(f"The {exc}.") from None


class ChatApp:
    """The handlers of the chat, over one assistant (one request at a time), for a given user.

    ``space`` keeps each user's history and feedback and knows what they may see; without one, a
    single-user space with its history file beside the store is made.
    """

    def __init__(self, bot, space: TeamSpace | None = None) -> None:
        """``bot``: the :class:`~assistant.pipeline.Assistant` (its ``stream``, ``ask``, ``ingest``,
        ``store`` and ``settings`` are used; not imported here, which keeps the UI a low floor)."""
        self.bot = bot
        self.settings: Settings = bot.settings
        self.lock = threading.Lock()  # one question at a time
        self.upload_lock = threading.Lock()  # one ingest at a time (uploads, re-index), never blocking questions
        self.api_lock = threading.Lock()
        self.api_sessions: OrderedDict[tuple[str, str], ChatSession] = OrderedDict()
        self.space = space or TeamSpace(bot, Database(bot.settings.history_path()))

    # -- facts shown in the settings accordion (no server paths: users cannot act on them)
    def backend_text(self) -> str:
        s = self.settings
        if s.llm == "extractive":
            answerer = "**extractive** (offline, no LLM: verbatim sentences from the passages)"
        else:
            answerer = f"**{_text(s.llm)}** LLM `{_text(s.llm_model)}`"
        return (f"Answerer: {answerer}  \nRetrieval: {'hybrid BM25 + MiniLM' if s.hybrid else 'MiniLM'}"
                f"  \nStore: {self.bot.store.count():,} chunks")

    # -- chat
    def respond(self, message: str, messages: list, session: ChatSession | None, top_k: float,
                source: str = "", since: str = "", until: str = "",
                user: User = SINGLE) -> Iterator[tuple]:
        """Stream one turn of ``user``: (textbox, chat messages, sources panel, session)."""
        question = (message or "").strip()
        messages = list(messages or [])
        session = session if isinstance(session, ChatSession) else ChatSession()
        if not question:
            yield "", messages, render_sources(None), session
            return
        messages.append({"role": "user", "content": render_user(question)})
        messages.append({"role": "assistant", "content": render_answer("", streaming=True)})
        yield "", list(messages), SOURCES_PLACEHOLDER, session
        answer = None
        try:
            filters = self.space.filters(user, make_filters(source, since, until))
            with self.lock:
                for text, final in self.bot.stream(question, top_k=int(top_k) if top_k else None,
                                                   filters=filters, history=list(session.turns) or None):
                    if final is not None:
                        answer = final
                        break
                    messages[-1] = {"role": "assistant", "content": render_answer(text, streaming=True)}
                    yield "", list(messages), SOURCES_PLACEHOLDER, session
        except (QuestionError, StoreError) as exc:
            messages[-1] = {"role": "assistant", "content": render_answer(for_users(exc), error=True)}
            yield "", messages, SOURCES_PLACEHOLDER, session
            return
        except Exception as exc:  # one clear line in the chat, the traceback in the server log
            log.exception("answering failed")
            messages[-1] = {"role": "assistant", "content": render_answer(
                f"Something went wrong while answering ({type(exc).__name__}: {exc}). "
                "Check the server log, or try again.", error=True)}
            yield "", messages, SOURCES_PLACEHOLDER, session
            return
        if answer is None:
            return
        self.space.remember(user, session, question, answer)
        session.answers[-1]["message"] = len(messages) - 1
        messages[-1] = {"role": "assistant", "content": render_turn(session.answers[-1], len(session.answers))}
        yield "", messages, render_sources(answer), session

    def api_session(self, user: User, key: str) -> ChatSession:
        """The conversation of one API client (``key``: its Gradio session hash) of ``user``; the
        latest sessions are kept, in memory (the least recently used is forgotten first)."""
        with self.api_lock:
            session = self.api_sessions.pop((user.name, key), None) or ChatSession()
            self.api_sessions[(user.name, key)] = session
            while len(self.api_sessions) > API_SESSIONS_KEPT:
                self.api_sessions.popitem(last=False)
        return session

    def chat_api(self, message: str, session: str, user: User = SINGLE) -> dict:
        """The ``/chat`` endpoint: answer ``message`` as ``user`` in the conversation of ``session``
        (one per ``gradio_client.Client``), kept in their history too."""
        conversation = self.api_session(user, session)
        try:
            with self.lock:
                answer = self.bot.ask(message, filters=self.space.filters(user),
                                      history=conversation.turns[-API_TURNS_KEPT:] or None)
        except (QuestionError, StoreError) as exc:
            import gradio as gr

            raise gr.Error(for_users(exc)) from None
        self.space.remember(user, conversation, answer.question, answer)
        return answer_payload(answer)

    def clear(self) -> tuple:
        return [], SOURCES_PLACEHOLDER, ChatSession(), ""

    # -- uploads
    def upload_lines(self, files, progress=None, user: User = SINGLE) -> list[str]:
        """Save ``user``'s uploaded files (their own folder when sign-in is on) and ingest them beside
        the questions; say per file what happened (plain text, one line each, then the summary)."""
        paths = [f.get("path") if isinstance(f, dict) else f if isinstance(f, (str, Path)) else getattr(f, "name", f)
                 for f in (files or [])]
        saved, problems = save_uploads(paths, self.settings.corpus_dir, self.settings.upload_max_mb, owner=user.owner)
        lines = [f"✗ {for_users(p)}" for p in problems]
        if not saved:
            return lines or ["No file received."]

        def report_progress(done: int, total: int, note: str) -> None:
            if progress is not None:
                progress(done / max(total, 1), desc=f"Embedding {done}/{total} documents ({note})")

        if progress is not None:
            progress(0.0, desc=f"Reading {len(saved)} file(s)")
        try:  # beside the questions: they keep the last complete state until it is done
            with self.upload_lock:
                report = self.bot.ingest([s.path for s in saved], prune=False, progress=report_progress,
                                         limits=upload_limits(self.settings))
        except Exception as exc:  # one line in the status, the traceback in the server log
            log.exception("upload ingest failed")
            report = IngestReport(failed=[LoadProblem(s.doc_id, f"could not be ingested ({exc})") for s in saved])
        lines += [f"{'✓' if ok else '✗'} {for_users(line)}" for ok, line in settle(saved, report)]
        return lines + [for_users(report.summary().splitlines()[0])]

    def upload(self, files, progress=None, user: User = SINGLE) -> tuple[str, str]:
        """:meth:`upload_lines` as the page's status markdown; (status, back-end text)."""
        lines = [_text(line) for line in self.upload_lines(files, progress, user)]
        if len(lines) > 1 and not lines[-1].startswith(("✓", "✗")):
            lines[-1] = f"<small>{lines[-1]}</small>"
        return "  \n".join(lines), self.backend_text()


def upload_limits(settings: Settings) -> IngestLimits:
    """The per-upload caps of ``settings``."""
    return IngestLimits(max_documents=settings.upload_max_documents, max_chunks=settings.upload_max_chunks,
                        max_pdf_pages=settings.upload_max_pdf_pages)


CSS = """
.gradio-container { max-width: 1280px !important; margin: 0 auto !important; }
#app-header h1 { margin-bottom: 0; }
#app-header p { margin-top: 4px; color: var(--body-text-color-subdued); }
.msg { white-space: normal; line-height: 1.55; }
.cite-marker { display: inline-block; font-size: 0.78em; font-weight: 600; color: var(--color-accent);
  background: var(--color-accent-soft); border-radius: 4px; padding: 0 4px; margin-left: 2px;
  vertical-align: 1px; }
.abstained { color: var(--body-text-color-subdued); font-style: italic; border-left: 3px solid #d97706;
  padding: 2px 0 2px 10px; }
.abstain-label { display: block; font-style: normal; font-weight: 600; font-size: 0.8em; color: #b45309;
  text-transform: uppercase; letter-spacing: 0.04em; margin-bottom: 2px; }
.answer-error { color: #b91c1c; }
.typing { animation: blink 1s steps(2, start) infinite; color: var(--color-accent); }
@keyframes blink { to { visibility: hidden; } }
#sources-panel { max-height: 640px; overflow-y: auto; }
.sources-empty { color: var(--body-text-color-subdued); font-size: 0.92em; padding: 8px 2px; }
.src-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;
  margin-bottom: 10px; background: var(--background-fill-secondary); }
.src-head { font-weight: 600; margin-bottom: 2px; }
.src-meta { font-size: 0.82em; color: var(--body-text-color-subdued); margin-bottom: 6px; }
.src-passage { font-size: 0.9em; line-height: 1.5; white-space: pre-wrap; max-height: 260px; overflow-y: auto; }
.src-passage mark, .src-quote mark { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
.src-quote { font-size: 0.9em; margin-bottom: 6px; }
#upload-status { font-size: 0.9em; }
a.cite-marker { text-decoration: none; cursor: pointer; }
.read-as { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 4px; }
.answer-sources { margin-top: 8px; border-top: 1px solid var(--border-color-primary); padding-top: 6px; }
.src-mini { font-size: 0.85em; margin: 4px 0; scroll-margin-top: 40px; }
.src-mini:target { background: var(--color-accent-soft); border-radius: 4px; }
.src-mini .src-title { font-weight: 600; }
.src-mini .src-meta { margin: 0; }
.src-mini .src-quote { margin: 2px 0 0 1.6em; color: var(--body-text-color-subdued); }
#signed-in { text-align: right; font-size: 0.9em; }
#library { max-height: 420px; overflow-y: auto; }
.lib-count { font-size: 0.8em; color: var(--body-text-color-subdued); margin-bottom: 4px; }
.lib-row { padding: 6px 2px; border-bottom: 1px solid var(--border-color-primary); }
.lib-title { font-weight: 600; font-size: 0.92em; }
.lib-meta { font-size: 0.8em; color: var(--body-text-color-subdued); word-break: break-word; }
@media (min-width: 1000px) { .answer-sources .src-quote { display: none; } }  /* the side panel shows them */
"""


def make_theme():
    """The look: Gradio's Soft theme with locally served fonts (nothing fetched from the web).

    Only the regular and bold files of IBM Plex are complete in the gradio wheel (the semibold
    ones are subsets), so no other weight is asked for.
    """
    import gradio as gr

    local = gr.themes.LocalFont
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", neutral_hue="slate",
                          font=[local("IBM Plex Sans", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=[local("IBM Plex Mono", weights=(400, 700)), "ui-monospace", "monospace"])
