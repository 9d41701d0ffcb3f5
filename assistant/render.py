"""How answers look in the chat: HTML for the chat window and the sources panel, text for ``/chat``.

Every piece of document or user text is HTML-escaped before it is wrapped in our
own markup: a document holding ``<script>`` or ``<b>`` shows those characters, it
never runs or renders them.
"""

from __future__ import annotations

import html
import re

from assistant.contract import ABSTAIN_MESSAGE, Answer, Citation, read_as, source_details, source_line

OPERATOR_HINT = re.compile(r"\s*\((?:[^()]*\bASSISTANT_[A-Z_]+\b[^()]*)\)")
SOURCES_PLACEHOLDER = '<div class="sources-empty">The sources of the latest answer appear here, with the quoted span highlighted.</div>'


def _text(value: object) -> str:
    """Document or user text as inert HTML: escaped, with template and markdown characters as entities."""
    escaped = html.escape(str(value or ""), quote=True)
    return escaped.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;").replace(
        "*", "&#42;").replace("_", "&#95;").replace("`", "&#96;").replace("~", "&#126;").replace(
        "[", "&#91;").replace("]", "&#93;").replace("\\", "&#92;")


def render_user(question: str) -> str:
    """A user message for the chat window, shown as typed."""
    return f'<div class="msg user-msg">{_text(question)}</div>'


def render_answer(text: str, abstained: bool = False, streaming: bool = False, error: bool = False) -> str:
    """An answer for the chat window: escaped text with styled [n] markers; abstentions look different."""
    body = _text(text).replace("\n", "<br>")
    if not abstained:  # an abstention cites nothing: a "[2024]" in a quoted title stays text
        body = re.sub(r"&#91;(\d+)&#93;", r'<span class="cite-marker">[\1]</span>', body)
    if error:
        return f'<div class="msg answer-error">⚠ {body}</div>'
    if abstained:
        # Only the plain refusal says the corpus lacks the answer; another abstention (the closest
        # sentence quoted, the which-document question, an unverified LLM reply) cites nothing.
        label = "No answer in the corpus" if ABSTAIN_MESSAGE in text else "No cited answer"
        return f'<div class="msg abstained"><span class="abstain-label">{label}</span>{body}</div>'
    cursor = '<span class="typing">▍</span>' if streaming else ""
    return f'<div class="msg answer">{body}{cursor}</div>'


def highlight(passage: str, quote: str) -> str:
    """The passage as escaped HTML with the quoted span(s) inside ``<mark>``.

    A quote of several sentences from one passage is joined by `` … ``; each part
    is found in order. Parts not found verbatim are shown above the passage.
    """
    parts = [p.strip() for p in (quote or "").split(" … ") if p.strip()]
    out, cursor, missing = [], 0, []
    for part in parts:
        at = passage.find(part, cursor)
        if at < 0:
            missing.append(part)
            continue
        out += [_text(passage[cursor:at]), f"<mark>{_text(part)}</mark>"]
        cursor = at + len(part)
    out.append(_text(passage[cursor:]))
    quoted = "".join(f'<div class="src-quote"><mark>{_text(p)}</mark></div>' for p in missing)
    return quoted + "".join(out)


def _citation_meta(citation: Citation) -> str:
    return " · ".join(f"<span>{_text(b)}</span>" for b in source_details(citation))


def render_sources(answer: Answer | None) -> str:
    """The sources panel: each cited source with title, source/file, page, date and the highlighted
    passage; for a refusal that quotes the closest sentence, that sentence's passage, marked as not cited."""
    if answer is None:
        return SOURCES_PLACEHOLDER
    if answer.abstained and ABSTAIN_MESSAGE in answer.text:
        return ('<div class="sources-empty">No sources: the corpus does not contain the answer to '
                "this question.</div>")
    if answer.abstained and answer.closest:
        return ('<div class="sources"><div class="sources-empty">No sources cited. The passage of the '
                "closest sentence, for you to judge:</div>" + _source_card(answer.closest, "closest") + "</div>")
    if answer.abstained or not answer.citations:
        return '<div class="sources-empty">No sources: this reply cites nothing as an answer.</div>'
    return '<div class="sources">' + "".join(_source_card(c, f"[{c.n}]") for c in answer.citations) + "</div>"


def _source_card(c: Citation, marker: str) -> str:
    """One source card: ``marker``, title (a link for an http(s) URL), details, the passage with the quote marked."""
    title = _text(c.title or c.doc_id)
    if c.url.startswith(("http://", "https://")):
        title = f'<a href="{html.escape(c.url, quote=True)}" target="_blank" rel="noopener noreferrer">{title}</a>'
    return (f'<div class="src-card" id="source-{c.n}">'
            f'<div class="src-head"><span class="cite-marker">{marker}</span> <span class="src-title">{title}</span></div>'
            f'<div class="src-meta">{_citation_meta(c)}</div>'
            f'<div class="src-passage">{highlight(c.passage or c.quote, c.quote)}</div>'
            "</div>")


def render_turn(record: dict, number: int) -> str:
    """A finished answer for the chat window with its own sources under it: each ``[n]`` links to
    the card of source n of this answer (``#src-<number>-<n>``), so every answer keeps its sources.
    ``record``: the answer as a session or the history keeps it (text, abstained, citation dicts)."""
    answer = record_answer(record)
    body = render_answer(answer.text, abstained=answer.abstained)
    if answer.corrections:  # how a misspelt question word was read, so the user can tell a misreading
        body += f'<div class="read-as">{_text(read_as(answer.corrections))}</div>'
    if not answer.citations:
        return body
    known = {c.n for c in answer.citations}
    body = re.sub(r'<span class="cite-marker">\[(\d+)\]</span>',
                  lambda m: (f'<a class="cite-marker" href="#src-{number}-{m.group(1)}">[{m.group(1)}]</a>'
                             if int(m.group(1)) in known else m.group(0)), body)
    cards = [f'<div class="src-mini" id="src-{number}-{c.n}"><span class="cite-marker">[{c.n}]</span> '
             f'<span class="src-title">{_text(c.title or c.doc_id)}</span> <span class="src-meta">{_citation_meta(c)}'
             f'</span><div class="src-quote">“{_text(c.quote)}”</div></div>' for c in answer.citations]
    return f'{body}<div class="answer-sources">{"".join(cards)}</div>'


def record_answer(record: dict) -> Answer:
    """An answer record of a session (or of the history) as an :class:`Answer`, for the sources panel."""
    fields = set(Citation.__dataclass_fields__)
    citations = [Citation(**{k: v for k, v in c.items() if k in fields}) for c in record.get("citations") or []]
    closest = record.get("closest")
    return Answer(record.get("question", ""), record["answer"], bool(record.get("abstained")), citations,
                  closest=Citation(**{k: v for k, v in closest.items() if k in fields}) if closest else None,
                  corrections=tuple((asked, meant) for asked, meant in record.get("corrections") or []))


def answer_payload(answer: Answer) -> dict:
    """What ``/chat`` returns: the ``assistant ask --json`` object plus a plain-text rendering."""
    data = answer.to_json()
    lines = [answer.text]
    if answer.corrections:
        lines.append(f"\n({read_as(answer.corrections)})")
    if answer.citations:
        lines.append("\nSources:")
        for c in answer.citations:
            lines.append(f"{source_line(c)}\n    “{c.quote}”")
    data["text"] = "\n".join(lines)
    return data


def for_users(message: object) -> str:
    """A message without the operator's hints, such as ``(ASSISTANT_UPLOAD_MAX_MB raises it)``:
    the people using the page cannot change settings."""
    return OPERATOR_HINT.sub("", str(message))
