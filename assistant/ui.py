"""The chat in the browser: a Gradio Blocks app over one :class:`Assistant`.

Answers stream in as ``Assistant.stream`` yields them (growing text, then the
final :class:`Answer`), so a token-streaming LLM back end needs no change here.
Every piece of document text is HTML-escaped before it is wrapped in our own
markup: a document holding ``<script>`` or ``<b>`` shows those characters, it
never runs or renders them. Uploads land in ``<corpus>/uploads/`` under a name
that keeps its letters and are ingested beside the questions (assistant/uploads.py),
searchable as soon as their status says so. ``/chat`` is a named API endpoint (``gr.api``) for ``gradio_client``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import assistant  # noqa: F401  (offline environment before gradio is imported)
from assistant.contract import FilterError, Filters, QuestionError
from assistant.ingest import IngestReport
from assistant.loading import SUPPORTED_SUFFIXES, LoadProblem
from assistant.pipeline import Assistant, ready_assistant
from assistant.render import (SOURCES_PLACEHOLDER, _text, answer_payload, highlight,  # noqa: F401  (the UI's API)
                              render_answer, render_sources, render_user)
from assistant.settings import Settings
from assistant.store import StoreError
from assistant.uploads import UPLOAD_SUBDIR, save_uploads, settle, upload_limits

log = logging.getLogger(__name__)

API_SESSIONS_KEPT = 1000  # /chat conversations remembered (the least recently used is forgotten first)
API_TURNS_KEPT = 10  # turns remembered per /chat conversation (the rewriters read the last few)


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
    """The handlers of the Gradio app, over one assistant (one request at a time)."""

    def __init__(self, bot: Assistant) -> None:
        self.bot = bot
        self.settings: Settings = bot.settings
        self.lock = threading.Lock()  # one question at a time
        self.upload_lock = threading.Lock()  # one upload ingest at a time, never blocking questions
        self.api_sessions: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()

    # -- facts shown in the settings accordion
    def backend_text(self) -> str:
        s = self.settings
        if s.llm == "extractive":
            answerer = "**extractive** (offline, no LLM: verbatim sentences from the passages)"
        else:
            answerer = f"**{_text(s.llm)}** LLM `{_text(s.llm_model)}` at `{_text(s.llm_base_url or 'default URL')}`"
        return (f"Answerer: {answerer}  \nRetrieval: {'hybrid BM25 + MiniLM' if s.hybrid else 'MiniLM'}"
                f"  \nStore: `{_text(self.bot.store.location)}`, {self.bot.store.count():,} chunks  \n"
                f"Corpus folder: `{_text(s.corpus_dir)}` (uploads go to `{UPLOAD_SUBDIR}/` inside it)")

    # -- chat
    def respond(self, message: str, messages: list, turns: list, top_k: float,
                source: str = "", since: str = "", until: str = "") -> Iterator[tuple]:
        """Stream one turn: (textbox, chat messages, sources panel, turns)."""
        question = (message or "").strip()
        messages = list(messages or [])
        turns = list(turns or [])
        if not question:
            yield "", messages, render_sources(None), turns
            return
        messages.append({"role": "user", "content": render_user(question)})
        messages.append({"role": "assistant", "content": render_answer("", streaming=True)})
        yield "", list(messages), SOURCES_PLACEHOLDER, turns
        answer = None
        try:
            filters = make_filters(source, since, until)
            with self.lock:
                for text, final in self.bot.stream(question, top_k=int(top_k) if top_k else None,
                                                   filters=filters, history=[tuple(t) for t in turns] or None):
                    if final is not None:
                        answer = final
                        break
                    messages[-1] = {"role": "assistant", "content": render_answer(text, streaming=True)}
                    yield "", list(messages), SOURCES_PLACEHOLDER, turns
        except (QuestionError, StoreError) as exc:
            messages[-1] = {"role": "assistant", "content": render_answer(str(exc), error=True)}
            yield "", messages, SOURCES_PLACEHOLDER, turns
            return
        except Exception as exc:  # one clear line in the chat, the traceback in the server log
            log.exception("answering failed")
            messages[-1] = {"role": "assistant", "content": render_answer(
                f"Something went wrong while answering ({type(exc).__name__}: {exc}). "
                "Check the server log, or try again.", error=True)}
            yield "", messages, SOURCES_PLACEHOLDER, turns
            return
        if answer is None:
            return
        messages[-1] = {"role": "assistant", "content": render_answer(answer.text, abstained=answer.abstained)}
        turns.append((question, answer.text))
        yield "", messages, render_sources(answer), turns

    def chat_api(self, message: str, session: str) -> dict:
        """The ``/chat`` endpoint: answer ``message`` in the conversation of ``session`` (one per
        ``gradio_client.Client``); the latest sessions' recent turns are kept here, in memory."""
        turns = list(self.api_sessions.get(session, []))
        try:
            with self.lock:
                answer = self.bot.ask(message, history=turns or None)
        except QuestionError as exc:
            import gradio as gr

            raise gr.Error(str(exc)) from None
        with self.lock:
            self.api_sessions[session] = (turns + [(answer.question, answer.text)])[-API_TURNS_KEPT:]
            self.api_sessions.move_to_end(session)
            while len(self.api_sessions) > API_SESSIONS_KEPT:
                self.api_sessions.popitem(last=False)
        return answer_payload(answer)

    def clear(self) -> tuple:
        return [], SOURCES_PLACEHOLDER, [], ""

    # -- uploads
    def upload(self, files, progress=None) -> tuple[str, str]:
        """Save the uploaded files and ingest them; (status markdown, back-end text)."""
        paths = [f if isinstance(f, (str, Path)) else getattr(f, "name", f) for f in (files or [])]
        saved, problems = save_uploads(paths, self.settings.corpus_dir, self.settings.upload_max_mb)
        lines = [f"✗ {_text(p)}" for p in problems]
        if saved:
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
            lines += [f"{'✓' if ok else '✗'} {_text(line)}" for ok, line in settle(saved, report)]
            lines.append(f"<small>{_text(report.summary().splitlines()[0])}</small>")
        elif not problems:
            lines.append("No file received.")
        return "  \n".join(lines), self.backend_text()


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


def build_app(bot: Assistant):
    """The Gradio Blocks app over ``bot`` (not launched)."""
    import gradio as gr

    app = ChatApp(bot)
    settings = bot.settings
    with gr.Blocks(title="Article assistant", analytics_enabled=False) as demo:
        turns = gr.State([])
        gr.Markdown("# Article assistant\nAsk about the articles in the corpus. Every sentence of an answer "
                    "cites the passage it comes from; when the corpus does not hold the answer, it says so.",
                    elem_id="app-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    label="Chat", elem_id="chatbot", height=520, latex_delimiters=[], buttons=[],
                    feedback_options=None, sanitize_html=True, layout="bubble",
                    placeholder="Ask a question about the articles, or add your own documents below.",
                )
                with gr.Row():
                    message = gr.Textbox(placeholder="Ask a question about the articles…", show_label=False,
                                         elem_id="question", scale=5, autofocus=True, max_lines=4)
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                    clear = gr.Button("Clear", scale=1, min_width=80, elem_id="clear")
                examples = gr.Examples(examples=[[q] for q in settings.chat_examples], inputs=[message],
                                       label="Example questions")
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Sources")
                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources-panel", js_on_load=None)
                with gr.Accordion("Add documents", open=True, elem_id="upload-accordion"):
                    gr.Markdown(f"`.txt`, `.md`, `.html`, `.pdf` or `.jsonl`, up to {settings.upload_max_mb:g} MB "
                                "each. They are ingested into the corpus and searchable at once.")
                    upload = gr.UploadButton("Upload files", file_count="multiple", elem_id="upload",
                                             file_types=sorted(SUPPORTED_SUFFIXES))
                    upload_status = gr.Markdown(elem_id="upload-status")
                with gr.Accordion("Settings", open=False, elem_id="settings-accordion"):
                    top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages to consider (top-k)")
                    source_filter = gr.Textbox(label="Only sources containing", placeholder="e.g. Guardian",
                                               elem_id="filter-source")
                    with gr.Row():
                        since_filter = gr.Textbox(label="Published since", placeholder="YYYY-MM-DD",
                                                  elem_id="filter-since")
                        until_filter = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD",
                                                  elem_id="filter-until")
                    backend = gr.Markdown(app.backend_text(), elem_id="backend")

        # The chat in the browser: streams; kept out of the API docs (use /chat).
        chat_io = dict(inputs=[message, chatbot, turns, top_k, source_filter, since_filter, until_filter], outputs=[message, chatbot, sources, turns],
                       api_visibility="private", show_progress="hidden")
        message.submit(app.respond, **chat_io)
        send.click(app.respond, **chat_io)
        examples.load_input_event.then(app.respond, **chat_io)
        clear.click(app.clear, None, [chatbot, sources, turns, message], api_visibility="private", queue=False)
        chatbot.clear(app.clear, None, [chatbot, sources, turns, message], api_visibility="private", queue=False)
        def on_upload(files, progress=gr.Progress()):
            return app.upload(files, progress)

        upload.upload(on_upload, [upload], [upload_status, backend], api_visibility="private",
                      show_progress="full")

        # The named API endpoint: Client(url).predict(message=..., api_name="/chat") -> dict. A Client is
        # one Gradio session, and its session hash keys its conversation.
        def chat(message: str, request: gr.Request) -> dict:
            return app.chat_api(message, request.session_hash)

        # gr.api reads real type hints (this module's are strings, and gradio is imported locally).
        chat.__annotations__ = {"message": str, "request": gr.Request, "return": dict}
        gr.api(chat, api_name="chat",
               api_description="Answer a question with citations; a Client keeps the conversation.")

        # /upload(files) -> str, one status line per file (INTERFACES.md): what the upload button does,
        # for clients and for other replicas' tests.
        api_files = gr.File(file_count="multiple", type="filepath", visible=False)
        api_status = gr.Textbox(visible=False)
        api_upload = gr.Button(visible=False)

        def upload_api(files) -> str:
            status, _ = app.upload(files or [])
            return "\n".join(line for line in status.split("  \n") if not line.startswith("<small>"))

        api_upload.click(upload_api, [api_files], [api_status], api_name="upload")
    return demo


def prepare(settings: Settings, out=sys.stderr) -> Assistant:
    """An assistant over ``settings``, ingesting the corpus folder first when the store is empty;
    :class:`StoreError` when there is nothing to serve (an empty store and nothing to ingest)."""
    return ready_assistant(settings, progress=True, out=out)


def serve(settings: Settings, share: bool = False) -> None:
    """Ingest if needed, then serve the chat on ``settings.host:settings.port`` until interrupted."""
    import gradio as gr

    bot = prepare(settings)
    demo = build_app(bot)
    demo.queue(default_concurrency_limit=4)
    print(f"Chat on http://{settings.host}:{settings.port}", file=sys.stderr)
    demo.launch(server_name=settings.host, server_port=settings.port, share=share, css=CSS,
                theme=make_theme(), footer_links=["api"], show_error=False,
                max_file_size=int(settings.upload_max_mb * 1024 * 1024), ssr_mode=False, quiet=False)
