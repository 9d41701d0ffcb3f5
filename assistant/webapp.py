"""The app in the browser and its API: the page layout, and serving it with sign-in.

``build_app`` lays out the Gradio Blocks (chat, feedback, sources, documents, history, settings)
and wires every event to :class:`~assistant.handlers.SpaceHandlers`, which read the user of each
request; the named endpoints ``/chat``, ``/upload``, ``/documents``, ``/remove`` and ``/feedback``
are registered here with ``gr.api``. ``serve`` reads the sign-in settings and launches it.
"""

from __future__ import annotations

import sys
import time

import gradio as gr

from assistant.handlers import SpaceHandlers
from assistant.history import Database
from assistant.loading import SUPPORTED_SUFFIXES
from assistant.pipeline import Assistant, ready_assistant
from assistant.settings import Settings
from assistant.space import ChatSession, TeamSpace
from assistant.ui import CSS, SOURCES_PLACEHOLDER, ChatApp, make_theme
from assistant.users import AuthConfig, auth_config

PROGRESS_EVERY_S = 5.0


def build_app(bot: Assistant, auth: AuthConfig | None = None, space: TeamSpace | None = None):
    """The Gradio Blocks app over ``bot`` (not launched); ``auth`` says who may sign in."""
    auth = auth or AuthConfig()
    handlers = SpaceHandlers(ChatApp(bot, space), auth)
    app, settings = handlers.app, bot.settings
    with gr.Blocks(title="Article assistant", analytics_enabled=False) as demo:
        session = gr.State(ChatSession())
        selected = gr.State(None)
        with gr.Row(elem_id="app-header", equal_height=True):
            with gr.Column(scale=4):
                gr.Markdown("# Article assistant\nAsk about the articles in the corpus. Every sentence of an answer "
                            "cites the passage it comes from; when the corpus does not hold the answer, it says so.")
            with gr.Column(scale=2, min_width=220):
                if auth.mode == "hf":
                    gr.LoginButton(elem_id="login")
                signed_in = gr.Markdown(handlers.signed_in_text(None), elem_id="signed-in")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=340):
                chatbot = gr.Chatbot(
                    label="Chat", show_label=False, elem_id="chatbot", height=540, latex_delimiters=[], buttons=[],
                    feedback_options=("Like", "Dislike"), sanitize_html=True, layout="bubble",
                    placeholder="Ask a question about the articles, or add your own documents in the "
                                "Documents tab on the right.")
                with gr.Row():
                    message = gr.Textbox(placeholder="Ask about the articles…", show_label=False, elem_id="question",
                                         scale=5, autofocus=True, max_lines=4)
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="ask")
                    clear = gr.Button("New chat", scale=1, min_width=70, elem_id="clear")
                feedback_status = gr.Markdown(elem_id="feedback-status")
                examples = gr.Examples(examples=[[q] for q in settings.chat_examples], inputs=[message],
                                       label="Example questions")
                with gr.Accordion("Feedback on an answer", open=False, elem_id="feedback-box") as feedback_box:
                    about = gr.Markdown("Use 👍 / 👎 under an answer, or tell us more here (about the answer you "
                                        "clicked last, else the latest).", elem_id="feedback-about")
                    rating = gr.Radio([("👍 Right", "up"), ("👎 Wrong", "down")], value="down", label="Rating",
                                      elem_id="feedback-rating")
                    flag = gr.Radio([("No flag", ""), ("Wrong citation", "wrong_citation"),
                                     ("Should have said it is not in the corpus", "should_abstain")], value="",
                                    label="Flag", elem_id="feedback-flag")
                    correction = gr.Textbox(label="Corrected answer (optional)", elem_id="feedback-correction")
                    comment = gr.Textbox(label="Comment (optional)", elem_id="feedback-comment")
                    send_feedback = gr.Button("Send feedback", elem_id="feedback-send")
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs(elem_id="side-tabs"):
                    with gr.Tab("Sources", elem_id="sources-tab"):
                        sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources-panel")
                    with gr.Tab("Documents", elem_id="documents-tab"):
                        with gr.Group(elem_id="upload-accordion"):
                            gr.Markdown(f"Add `.txt`, `.md`, `.html`, `.pdf` or `.jsonl` files, up to "
                                        f"{settings.upload_max_mb:g} MB each"
                                        + (": only you see them." if not auth.single_user else "."))
                            upload = gr.UploadButton("Upload files", file_count="multiple", elem_id="upload",
                                                     file_types=sorted(SUPPORTED_SUFFIXES))
                            upload_status = gr.Markdown(elem_id="upload-status")
                        search = gr.Textbox(placeholder="Search title, source or id", show_label=False,
                                            elem_id="library-search")
                        library = gr.HTML(elem_id="library")
                        doc_choice = gr.Dropdown(label="Document to remove or publish", choices=[],
                                                 elem_id="library-doc", allow_custom_value=False)
                        with gr.Row():
                            remove = gr.Button("Remove", variant="stop", size="sm", elem_id="library-remove")
                            publish = gr.Button("Publish to everyone", size="sm", visible=False,
                                                elem_id="library-publish")
                            reindex = gr.Button("Re-index", size="sm", elem_id="library-reindex")
                        library_status = gr.Markdown(elem_id="library-status")
                    with gr.Tab("History", elem_id="history-tab"):
                        conversations = gr.Radio(label="Your conversations", choices=[], elem_id="history-list")
                        with gr.Row():
                            reopen = gr.Button("Open", size="sm", elem_id="history-open")
                            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="history-delete")
                            export = gr.Button("Export Markdown", size="sm", elem_id="history-export")
                        exported = gr.File(label="Markdown", visible=False, elem_id="history-file")
                        history_status = gr.Markdown(elem_id="history-status")
                    with gr.Tab("Settings", elem_id="settings-tab"):
                        top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages to consider (top-k)")
                        source_filter = gr.Textbox(label="Only sources containing", placeholder="e.g. Guardian",
                                                   elem_id="filter-source")
                        with gr.Row():
                            since_filter = gr.Textbox(label="Published since", placeholder="YYYY-MM-DD",
                                                      elem_id="filter-since")
                            until_filter = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD",
                                                      elem_id="filter-until")
                        backend = gr.Markdown(app.backend_text(), elem_id="backend")

        private = dict(api_visibility="private")
        demo.load(handlers.on_load, None, [signed_in, conversations, library, doc_choice, publish], **private)
        chat_io = dict(inputs=[message, chatbot, session, top_k, source_filter, since_filter, until_filter],
                       outputs=[message, chatbot, sources, session], show_progress="hidden", **private)
        for event in (message.submit(handlers.respond, **chat_io), send.click(handlers.respond, **chat_io),
                      examples.load_input_event.then(handlers.respond, **chat_io)):
            event.then(handlers.refresh_history, [session], [conversations], **private)
        for control in (clear.click, chatbot.clear):
            control(app.clear, None, [chatbot, sources, session, message], queue=False, **private)
        chatbot.select(handlers.on_select, [session], [sources, selected, about], **private)
        chatbot.like(handlers.on_like, [session], [feedback_status, session, selected, about, rating, feedback_box],
                     **private)
        send_feedback.click(handlers.on_feedback, [rating, flag, correction, comment, selected, session],
                            [feedback_status, session], **private)
        library_outputs = [library, doc_choice]
        upload.upload(handlers.on_upload, [upload, search], [upload_status, *library_outputs, backend],
                      show_progress="full", **private)
        search.change(handlers.on_library, [search], library_outputs, **private)
        remove.click(handlers.on_remove, [doc_choice, search], [library_status, *library_outputs], **private)
        publish.click(handlers.on_publish, [doc_choice, search], [library_status, *library_outputs], **private)
        reindex.click(handlers.on_reindex, [search], [library_status, *library_outputs, backend], **private)
        reopen.click(handlers.on_open, [conversations], [chatbot, sources, session, history_status], **private)
        delete.click(handlers.on_delete, [conversations], [conversations, history_status], **private)
        export.click(handlers.on_export, [conversations], [exported, history_status], **private)

        # The named endpoints for gradio_client, each acting as the signed-in user.
        gr.api(handlers.api_chat, api_name="chat")
        gr.api(handlers.api_upload, api_name="upload")
        gr.api(handlers.api_documents, api_name="documents")
        gr.api(handlers.api_remove, api_name="remove")
        gr.api(handlers.api_feedback, api_name="feedback")
    return demo


def line_progress(out=sys.stderr):
    """Ingest progress as whole lines (a log, e.g. a Space's, shows them; a bar's \\r would join them)."""
    last = [0.0]

    def report(done: int, total: int, note: str) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S or done >= total:
            last[0] = time.monotonic()
            print(f"ingest: {done}/{total} documents ({note})", file=out, flush=True)

    return report


def prepare(settings: Settings, out=sys.stderr) -> Assistant:
    """An assistant over ``settings``, ingesting the corpus folder first when the store is empty
    (progress as whole lines when ``out`` is not a terminal); :class:`StoreError` when there is
    nothing to serve."""
    progress = True if getattr(out, "isatty", lambda: False)() else line_progress(out)
    return ready_assistant(settings, progress=progress, out=out)


def serve(settings: Settings) -> None:
    """Ingest if needed, then serve the chat on ``settings.host:settings.port`` until interrupted."""
    users = settings.users.get_secret_value() if settings.users is not None else None
    auth = auth_config(settings.auth, users, settings.admins)  # a bad value stops here, in one line
    space_db = Database(settings.history_path())
    bot = prepare(settings)
    demo = build_app(bot, auth, TeamSpace(bot, space_db))
    demo.queue(default_concurrency_limit=4)
    mode = {"none": "single-user, no sign-in", "users": f"password sign-in, {len(auth.accounts)} account(s)",
            "hf": "Hugging Face sign-in"}[auth.mode]
    print(f"Chat on http://{settings.host}:{settings.port} ({mode})", file=sys.stderr)
    demo.launch(server_name=settings.host, server_port=settings.port, css=CSS, theme=make_theme(),
                footer_links=["api"], show_error=False, max_file_size=int(settings.upload_max_mb * 1024 * 1024),
                ssr_mode=False, quiet=True,
                auth=auth.check_password if auth.mode == "users" else None,
                auth_message="Sign in with the name and password your team gave you.")
