"""The Gradio handlers around the chat: sign-in line, documents, history, feedback, and the named
API endpoints. Each handler reads the user on the server, from the request Gradio signed in
(``gr.Request``) or the Hugging Face OAuth profile it injects (``gr.OAuthProfile``), and passes
that :class:`~assistant.users.User` on; the endpoints act as that user and refuse without one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
from gradio.data_classes import FileData

from assistant.space import ChatSession
from assistant.render import (SOURCES_PLACEHOLDER, _text, for_users, record_answer, render_sources, render_turn,
                              render_user)
from assistant.users import AuthConfig, NotSignedIn, User



class SpaceHandlers:
    """The Gradio handlers around the chat; each one reads the user from the request."""

    def __init__(self, app, auth: AuthConfig) -> None:
        """``app``: the :class:`~assistant.ui.ChatApp` whose chat and uploads these handlers wrap."""
        self.app, self.space, self.auth = app, app.space, auth

    def user(self, request: gr.Request | None, profile: gr.OAuthProfile | None) -> User:
        return self.auth.user(request, profile)

    def api_user(self, request: gr.Request | None, profile: gr.OAuthProfile | None) -> User:
        try:
            return self.user(request, profile)
        except NotSignedIn as exc:
            raise gr.Error(str(exc)) from None

    # -- page
    def signed_in_text(self, user: User | None) -> str:
        if self.auth.single_user:
            return ("**Single-user mode**: everyone who opens this page shares the same documents and "
                    "history. Sign-in is off.")
        if user is None:
            return "Not signed in: sign in to ask, upload and see your history."
        role = " (admin)" if user.admin else ""
        logout = " · [Sign out](/logout)" if self.auth.mode == "users" else ""
        return f"Signed in as **{_text(user.name)}**{role}: your uploads are private to you{logout}."

    def on_load(self, request: gr.Request, profile: gr.OAuthProfile | None):
        """The sign-in line, the conversations, the library and the admin-only buttons."""
        try:
            user = self.user(request, profile)
        except NotSignedIn:
            return (self.signed_in_text(None), gr.update(choices=[], value=None), "", gr.update(choices=[]),
                    gr.update(visible=False))
        rows, choices = self._library(user, "")
        return (self.signed_in_text(user), self._conversation_choices(user), rows, choices,
                gr.update(visible=user.admin and not self.auth.single_user))

    # -- chat
    def respond(self, message, messages, session, top_k, source, since, until,
                request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = self.user(request, profile)
        except NotSignedIn as exc:
            yield message, messages, f'<div class="sources-empty">{_text(exc)}</div>', session
            return
        yield from self.app.respond(message, messages, session, top_k, source, since, until, user=user)

    def on_select(self, session: ChatSession, event: gr.SelectData):
        """Clicking an answer shows its sources in the panel and makes it the one feedback is about."""
        index = _answer_index(session, event.index)
        if index is None:
            return gr.update(), None, gr.update()
        record = session.answers[index]
        return render_sources(record_answer(record)), index, _about(record)

    def on_like(self, session: ChatSession, event: gr.LikeData, request: gr.Request,
                profile: gr.OAuthProfile | None):
        """A thumb under an answer is stored at once; a thumb down opens the form for details."""
        index = _answer_index(session, event.index)
        if index is None:
            return "Feedback is for answers only.", session, None, gr.update(), gr.update(), gr.update()
        rating = "up" if event.liked is True or event.liked == "Like" else "down"
        try:
            status = self.space.rate(self.user(request, profile), session, rating, index=index)
        except (NotSignedIn, ValueError) as exc:
            return str(exc), session, index, gr.update(), gr.update(), gr.update()
        return (status, session, index, _about(session.answers[index]), rating,
                gr.update(open=True) if rating == "down" else gr.update())

    def on_feedback(self, rating, flag, correction, comment, selected, session: ChatSession,
                    request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            status = self.space.rate(self.user(request, profile), session, rating or "down", comment,
                                     flag or "", correction, index=selected)
        except (NotSignedIn, ValueError) as exc:
            return f"✗ {_text(exc)}", session
        return status, session

    # -- history
    def _conversation_choices(self, user: User, value: str | None = None):
        items = self.space.history.list(user.name)
        choices = [(f"{c.title} · {c.updated[:16].replace('T', ' ')}", c.id) for c in items]
        return gr.update(choices=choices, value=value if value in {c.id for c in items} else None)

    def refresh_history(self, session: ChatSession, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            return self._conversation_choices(self.user(request, profile), session.conversation)
        except NotSignedIn:
            return gr.update(choices=[], value=None)

    def on_open(self, conversation, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            session = self.space.reopen(self.user(request, profile), conversation or "")
        except NotSignedIn as exc:
            return gr.update(), gr.update(), gr.update(), str(exc)
        if session is None:
            return gr.update(), gr.update(), gr.update(), "Choose one of your conversations first."
        messages = []
        for number, record in enumerate(session.answers, 1):
            messages.append({"role": "user", "content": render_user(record["question"])})
            record["message"] = len(messages)
            messages.append({"role": "assistant", "content": render_turn(record, number)})
        sources = render_sources(record_answer(session.answers[-1])) if session.answers else SOURCES_PLACEHOLDER
        return messages, sources, session, f"Reopened: {len(session.answers)} turn(s). Ask on to continue it."

    def on_delete(self, conversation, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = self.user(request, profile)
        except NotSignedIn as exc:
            return gr.update(), str(exc)
        deleted = self.space.history.delete(user.name, conversation or "")
        return self._conversation_choices(user), ("Deleted." if deleted else "Choose one of your conversations first.")

    def on_export(self, conversation, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            markdown = self.space.history.export_markdown(self.user(request, profile).name, conversation or "")
        except NotSignedIn as exc:
            return gr.update(visible=False), str(exc)
        if markdown is None:
            return gr.update(visible=False), "Choose one of your conversations first."
        folder = Path(tempfile.mkdtemp(prefix="conversation-"))
        path = folder / f"conversation-{conversation[:8]}.md"
        path.write_text(markdown, encoding="utf-8")
        return gr.update(value=str(path), visible=True), "Exported as Markdown with its citations."

    # -- documents
    def _library(self, user: User, search: str):
        """The library panel (one entry per document the user may see) and the removable ids."""
        docs = self.space.documents(user, search)
        removable = [d.doc_id for d in docs if self.space.may_remove(user, d)]
        return render_library(docs), gr.update(choices=removable, value=None)

    def on_library(self, search, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            return self._library(self.user(request, profile), search)
        except NotSignedIn:
            return "", gr.update(choices=[])

    def on_remove(self, doc_id, search, request: gr.Request, profile: gr.OAuthProfile | None,
                  progress=gr.Progress()):
        return self._document_action(self.space.remove, doc_id, search, request, profile, progress, "Removing")

    def on_publish(self, doc_id, search, request: gr.Request, profile: gr.OAuthProfile | None,
                   progress=gr.Progress()):
        return self._document_action(self.space.publish, doc_id, search, request, profile, progress, "Publishing")

    def _document_action(self, action, doc_id, search, request, profile, progress, verb):
        try:
            user = self.user(request, profile)
        except NotSignedIn as exc:
            return str(exc), "", gr.update(choices=[])
        progress(0.2, desc=f"{verb} {doc_id or ''}")
        with self.app.upload_lock:
            status = action(user, doc_id or "")
        return _text(status), *self._library(user, search)

    def on_reindex(self, search, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        try:
            user = self.user(request, profile)
        except NotSignedIn as exc:
            return str(exc), "", gr.update(choices=[]), gr.update()
        progress(0.0, desc="Reading the corpus folder")
        with self.app.upload_lock:
            report = self.app.bot.ingest(progress=lambda done, total, note: progress(
                done / max(total, 1), desc=f"Embedding {done}/{total} documents ({note})"))
        summary = _text(for_users(report.summary().splitlines()[0]))
        return f"Re-indexed: {summary}", *self._library(user, search), self.app.backend_text()

    def on_upload(self, files, search, request: gr.Request, profile: gr.OAuthProfile | None,
                  progress=gr.Progress()):
        try:
            user = self.user(request, profile)
        except NotSignedIn as exc:
            return str(exc), "", gr.update(choices=[]), gr.update()
        status, backend = self.app.upload(files, progress, user=user)
        return status, *self._library(user, search), backend

    # -- the named API endpoints
    def api_chat(self, message: str, request: gr.Request, profile: gr.OAuthProfile | None) -> dict:
        """Answer a question with citations, as the signed-in user; a Client keeps the conversation."""
        user = self.api_user(request, profile)
        return self.app.chat_api(message, _session_key(request), user=user)

    def api_upload(self, files: list[FileData], request: gr.Request, profile: gr.OAuthProfile | None) -> str:
        """Add files to the signed-in user's documents (private when sign-in is on); one line per file."""
        user = self.api_user(request, profile)
        paths = [f["path"] if isinstance(f, dict) else f.path for f in files or []]
        return "\n".join(self.app.upload_lines(paths, user=user))

    def api_documents(self, request: gr.Request, profile: gr.OAuthProfile | None) -> list[dict]:
        """The documents the signed-in user may see: doc_id, title, source, owner, chunks, pages, origin, updated."""
        return [d.to_json() for d in self.space.documents(self.api_user(request, profile))]

    def api_remove(self, doc_id: str, request: gr.Request, profile: gr.OAuthProfile | None) -> str:
        """Remove a document the signed-in user may remove (their uploads; admins: any)."""
        user = self.api_user(request, profile)
        with self.app.upload_lock:
            return self.space.remove(user, doc_id)

    def api_feedback(self, rating: str, comment: str, request: gr.Request, profile: gr.OAuthProfile | None,
                     flag: str = "", correction: str = "") -> str:
        """Rate the latest answer of this client's conversation: rating up or down, an optional comment,
        flag (wrong_citation or should_abstain) and corrected answer."""
        user = self.api_user(request, profile)
        try:
            return self.space.rate(user, self.app.api_session(user, _session_key(request)), rating, comment, flag,
                                   correction)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None


def render_library(docs) -> str:
    """Documents as escaped HTML: the title, then id, source, date, pages, chunks, owner, when added."""
    if not docs:
        return '<div class="lib-empty">No documents match.</div>'
    rows = []
    for d in docs:
        facts = [d.doc_id, d.source, d.date, f"{d.pages} pages" if d.pages else "", f"{d.chunks} chunk" + ("s" if d.chunks != 1 else ""),
                 f"owner: {d.owner}" if d.owner else "everyone", f"updated {d.updated[:16].replace('T', ' ')}"
                 if d.updated else ""]
        rows.append(f'<div class="lib-row" data-doc="{_text(d.doc_id)}"><div class="lib-title">{_text(d.title or d.doc_id)}'
                    f'</div><div class="lib-meta">{" · ".join(_text(f) for f in facts if f)}</div></div>')
    return f'<div class="lib-count">{len(docs)} document(s)</div>' + "".join(rows)


def _session_key(request) -> str:
    """One API client's session (gradio_client keeps one per ``Client``)."""
    return getattr(request, "session_hash", None) or ""


def _answer_index(session: ChatSession, message_index) -> int | None:
    """The session's answer shown as chat message ``message_index`` (None for questions and errors)."""
    index = message_index[0] if isinstance(message_index, (list, tuple)) else message_index
    return next((i for i, r in enumerate(session.answers) if r.get("message") == index), None)


def _about(record: dict) -> str:
    return f"About the answer to “{_text(record['question'])}”"
