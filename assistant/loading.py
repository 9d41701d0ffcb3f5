"""Loading articles from disk: .txt, .md, .html/.htm, .pdf and .jsonl dumps.

Each input becomes one or more :class:`Article` records (a PDF gives one per
page, a JSONL dump one per line) with the metadata we know about it. Anything
that cannot be read becomes a :class:`LoadProblem` with one line a user can act
on; it never stops the rest of the corpus from loading.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from assistant.contract import normalise_date

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
JSONL_SUFFIXES = {".jsonl"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | JSONL_SUFFIXES
SIDECAR_SUFFIX = ".meta.json"
MAX_TITLE_CHARS = 300
MAX_ARTICLE_CHARS = 2_000_000
METADATA_KEYS = ("title", "source", "date", "url")


@dataclass
class Article:
    """One document as loaded: its text and metadata (one PDF page for PDFs)."""

    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    date: str = ""
    url: str = ""
    page: int | None = None
    outlets: str = ""


@dataclass
class LoadedDocument:
    """Everything loaded for one ``doc_id`` (several pages for a PDF)."""

    doc_id: str
    articles: list[Article]
    warnings: list[str] = field(default_factory=list)

    def content_hash(self, fingerprint: str = "") -> str:
        """Hash of text and metadata; ``fingerprint`` covers settings that change chunks."""
        digest = hashlib.sha256(fingerprint.encode())
        for article in self.articles:
            for value in (article.text, article.title, article.source, article.date, article.url,
                          str(article.page), article.outlets):
                digest.update(value.encode("utf-8", "surrogatepass"))
                digest.update(b"\x00")
        return digest.hexdigest()


@dataclass
class LoadProblem:
    """A file (or line) that was skipped, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class LoadError(Exception):
    """Raised by a loader with a message meant for the user."""


# ---------------------------------------------------------------- discovery


def iter_input_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` (or ``root`` itself) in a stable order, skipping hidden ones."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(SIDECAR_SUFFIX) and path.name != "README.md":
            yield path


def load_path(path: Path, root: Path, max_file_mb: float, prefix: str = "",
              max_pdf_pages: int | None = None) -> Iterator[LoadedDocument | LoadProblem]:
    """Load one file; ``doc_id`` is ``prefix`` + its path relative to ``root`` (JSONL: each line's
    ``id``). A PDF of more than ``max_pdf_pages`` pages is refused before any page is read."""
    rel = prefix + (path.relative_to(root).as_posix() if path != root else path.name)
    suffix = path.suffix.lower()
    try:
        if suffix not in SUPPORTED_SUFFIXES:
            raise LoadError(
                f"unsupported file type '{suffix or path.name}' "
                f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}); skipped"
            )
        size = path.stat().st_size
        if size == 0:
            raise LoadError("empty file; skipped")
        if suffix in JSONL_SUFFIXES:
            yield from _load_jsonl(path, rel)
            return
        if size > max_file_mb * 1024 * 1024:
            raise LoadError(
                f"file is {size / 1024 / 1024:.1f} MB, above the {max_file_mb:g} MB limit "
                "(raise ASSISTANT_MAX_FILE_MB or split the file); skipped"
            )
        meta = _sidecar_metadata(path)
        if suffix in PDF_SUFFIXES:
            yield _load_pdf(path, rel, meta, max_pdf_pages)
        elif suffix in HTML_SUFFIXES:
            yield _load_html(path, rel, meta)
        else:
            yield _load_text(path, rel, meta)
    except LoadError as exc:
        yield LoadProblem(rel, str(exc))
    except OSError as exc:
        yield LoadProblem(rel, f"cannot read file ({exc.strerror or exc}); skipped")


# ---------------------------------------------------------------- formats


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise LoadError("binary file, not text; skipped")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8; skipped"
        ) from None
    return _clean(text)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Control characters (other than newline and tab) only confuse tokenizers and terminals.
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", " ", text)


def _require_text(text: str, what: str = "file") -> str:
    if not text.strip():
        raise LoadError(f"{what} has no text; skipped")
    return text


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[match.end():]


def _sidecar_metadata(path: Path) -> dict[str, str]:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text("utf-8"))
    except (ValueError, OSError) as exc:
        raise LoadError(f"sidecar {sidecar.name} is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict):
        raise LoadError(f"sidecar {sidecar.name} must hold a JSON object; fix or remove it")
    return {str(k).lower(): _as_text(v) for k, v in data.items()}


def _as_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _article(doc_id: str, text: str, meta: dict[str, str], default_title: str,
             page: int | None = None) -> Article:
    title = (meta.get("title") or default_title).strip()[:MAX_TITLE_CHARS]
    return Article(
        doc_id=doc_id,
        text=text.strip(),
        title=title,
        source=meta.get("source", "").strip(),
        date=normalise_date(meta.get("date") or meta.get("published_at") or ""),
        url=meta.get("url", "").strip(),
        page=page,
        outlets=meta.get("outlets", "").strip(),
    )


def _title_from_name(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip() or path.name


def _load_text(path: Path, rel: str, sidecar: dict[str, str]) -> LoadedDocument:
    meta, body = _front_matter(_read_text(path))
    meta = {**meta, **sidecar}
    _require_text(body)
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        body, heading = _markdown_text(body)
        _require_text(body)
    else:
        found = re.search(r"^#\s+(.+)$", body, re.M)
        heading = found.group(1).strip() if found else ""
    return LoadedDocument(rel, [_article(rel, body, meta, heading or _title_from_name(path))])


def _markdown_text(body: str) -> tuple[str, str]:
    """A Markdown article's text as its reader sees it, and its first level-1 heading.

    Markup goes ("**12 May 1874**" reads "12 May 1874", a link its words, a code span its code, raw
    HTML its visible text); headings, paragraphs and list items keep their lines, and a table row is
    one line of cells joined by " | ", as a web page's is. An image is a line "Caption: ...", of the
    wholly emphasised line right under it (Markdown's usual caption) or else of its alt text:
    searchable, but never an answer (assistant/features.py).
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    lines: list[tuple[str, str, str]] = []  # (separator before it, kind: text | image | emphasis, text)
    heading, cells, lists, item, grouped = "", [], [], "", False
    for i, token in enumerate(tokens):
        opener = tokens[i - 1] if i else token
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lists.append(token.type == "bullet_list_open")
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            grouped = False
        elif token.type == "list_item_open":
            item = "- " if lists[-1] else f"{token.info or 1}. "
        elif token.type in ("fence", "code_block", "html_block"):
            text = token.content.rstrip("\n") if token.type != "html_block" else _read_html(token.content).text()
            lines += [("\n\n", "text", text)] if text.strip() else []
        elif token.type == "tr_open":
            cells = []
        elif token.type == "tr_close":
            lines.append(("\n" if grouped else "\n\n", "text", " | ".join(cells)))
            grouped = True
        elif token.type == "table_close":
            grouped = False
        elif token.type == "inline" and opener.type in ("th_open", "td_open"):
            cells.append(" ".join(text for _, text in _inline_lines(token.children or [])))
        elif token.type == "inline":
            block = _inline_lines(token.children or [])
            if opener.type == "heading_open" and opener.tag == "h1" and not heading:
                heading = " ".join(text for _, text in block).strip()
            for n, (kind, text) in enumerate(block):
                separator = "\n" if n or (item and grouped) else "\n\n"
                lines.append((separator, kind, (item if n == 0 and kind != "image" else "") + text))
            grouped, item = bool(item), ""
    return "".join(f"{sep}{text}" for sep, text in _captioned(lines)).strip("\n"), heading


def _inline_lines(children) -> list[tuple[str, str]]:
    """A Markdown paragraph's lines as (kind, text): "image" for a line that is one image (its alt
    text), "emphasis" for a line wholly in *emphasis*, else "text"; markup dropped."""
    out, line = [], []
    for child in [*children, None]:
        if child is None or child.type in ("softbreak", "hardbreak"):
            kept = [c for c in line if not (c.type == "text" and not c.content.strip())]
            text = "".join(c.content for c in line if c.type in ("text", "code_inline"))
            if any(c.type == "image" for c in line):  # an image inside a line is dropped with its gap
                text = re.sub(r"[ \t]{2,}", " ", text)
            if len(kept) == 1 and kept[0].type == "image":
                out.append(("image", kept[0].content.strip()))
            elif _wholly_emphasised(kept) and text.strip():
                out.append(("emphasis", text.strip()))
            elif text.strip():
                out.append(("text", text.strip()))
            line = []
        else:
            line.append(child)
    return out


def _wholly_emphasised(line) -> bool:
    """Whether a line's inline tokens are one *emphasised* or **strong** span, start to end."""
    if len(line) < 3 or line[0].type not in ("em_open", "strong_open"):
        return False
    depth = 0
    for n, token in enumerate(line):
        depth += token.nesting
        if depth == 0 and n < len(line) - 1:
            return False  # "*a* and *b*": the first span closes before the line ends
    return depth == 0


def _captioned(lines: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """(separator, text) lines with each image made a "Caption: ..." line: of the emphasised line
    right under it, else of its alt text (an image with neither leaves no line)."""
    out, image = [], None
    for separator, kind, text in lines:
        if image is not None:
            if kind == "emphasis":
                out.append((image[0], f"Caption: {text}"))
                image = None
                continue
            if image[1]:
                out.append((image[0], f"Caption: {image[1]}"))
            image = None
        if kind == "image":
            image = (separator, text)
        else:
            out.append((separator, text))
    if image is not None and image[1]:
        out.append((image[0], f"Caption: {image[1]}"))
    return out


def _read_html(html: str) -> "_VisibleText":
    """``html`` read by :class:`_VisibleText`: its ``text()``, ``title`` and ``h1``."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser


class _VisibleText(HTMLParser):
    """Collects the visible text of an HTML page, plus its <title> and first <h1>.

    Blocks start lines; a table row is one line of cells joined by " | " and a definition list's term
    and description are lines of their own, so no two cells' words run together ("Alice34"). A
    figure's caption is a line that reads "Caption: ...": searchable, but never an answer (a caption
    line cannot be one, assistant/features.py). Menus, buttons and drop-down lists are no text of
    the article.
    """

    HIDDEN = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object",
              "nav", "button", "select"}
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
              "article", "header", "footer", "blockquote", "pre", "table", "ul", "ol", "hr",
              "main", "aside", "figure", "figcaption", "dl", "dt", "dd", "caption", "details",
              "summary", "address", "form", "fieldset", "legend", "thead", "tbody", "tfoot"}
    CELLS = {"td", "th"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self._hidden = 0
        self._in_title = False
        self._in_h1 = False
        self._cells = 0  # cells begun in the current table row
        self._in_cell = 0  # a block inside a cell (<td><p>34</p></td>) keeps the row on one line

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        if tag == "h1" and not self.h1:
            self._in_h1 = True
        self._block(tag)
        if tag == "figcaption" and not self._hidden:
            self.parts.append("Caption: ")
        if tag in self.CELLS:
            if self._cells and not self._hidden:
                self.parts.append(" | ")
            self._cells += 1
            self._in_cell += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN and self._hidden:
            self._hidden -= 1
        if tag == "h1":
            self._in_h1 = False
        if tag in self.CELLS and self._in_cell:
            self._in_cell -= 1
        self._block(tag)

    def _block(self, tag: str) -> None:
        if tag in self.BLOCKS:
            if self._in_cell and tag not in ("table", "tr"):
                self.parts.append(" ")
            else:
                self.parts.append("\n")
                self._cells = self._in_cell = 0

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if self._hidden:
            return
        if self._in_h1:
            self.h1 += data
        self.parts.append(data)

    def text(self) -> str:
        raw = "".join(self.parts)
        lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in raw.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _load_html(path: Path, rel: str, sidecar: dict[str, str]) -> LoadedDocument:
    parser = _read_html(_read_text(path))
    text = _require_text(parser.text(), "page")
    default_title = (parser.title.strip() or parser.h1.strip() or _title_from_name(path))
    return LoadedDocument(rel, [_article(rel, text, sidecar, " ".join(default_title.split()))])


def _load_pdf(path: Path, rel: str, sidecar: dict[str, str], max_pages: int | None = None) -> LoadedDocument:
    import logging
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF (password protected); save an unprotected copy; skipped")
        if max_pages is not None and len(reader.pages) > max_pages:
            raise LoadError(f"PDF has {len(reader.pages):,} pages, above the {max_pages:,}-page limit per "
                            "upload (split it, or raise ASSISTANT_UPLOAD_MAX_PDF_PAGES); skipped")
        info = reader.metadata or {}
        pages = [(number, _clean(page.extract_text() or "")) for number, page in enumerate(reader.pages, 1)]
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF (password protected); save an unprotected copy; skipped") from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LoadError(f"not a valid PDF ({exc}); skipped") from None
    except Exception as exc:  # pypdf raises a wide range of errors on damaged files
        raise LoadError(f"not a valid PDF ({type(exc).__name__}: {exc}); skipped") from None
    meta = {"title": str(info.get("/Title") or ""), **{k: v for k, v in sidecar.items() if v}}
    default_title = _title_from_name(path)
    articles = [_article(rel, text, meta, default_title, page=n) for n, text in pages if text.strip()]
    if not articles:
        raise LoadError(
            f"PDF has no extractable text in its {len(pages)} page(s) (scanned? OCR is not "
            "supported); skipped"
        )
    empty = [n for n, text in pages if not text.strip()]
    warnings = [f"page(s) {', '.join(map(str, empty))} have no extractable text"] if empty else []
    return LoadedDocument(rel, articles, warnings)


def _load_jsonl(path: Path, rel: str) -> Iterator[LoadedDocument | LoadProblem]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise LoadError(f"cannot read file ({exc.strerror}); skipped") from None
    seen: set[str] = set()
    with handle:
        for number, raw in enumerate(handle, 1):
            where = f"{rel}:{number}"
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8-sig"))
            except UnicodeDecodeError:
                yield LoadProblem(where, "line is not valid UTF-8; skipped")
                continue
            except ValueError as exc:
                yield LoadProblem(where, f"line is not valid JSON ({exc.msg}); skipped")
                continue
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                yield LoadProblem(where, 'line needs a JSON object with a "text" string; skipped')
                continue
            text = _clean(record["text"])
            if not text.strip():
                yield LoadProblem(where, "article has no text; skipped")
                continue
            if len(text) > MAX_ARTICLE_CHARS:
                yield LoadProblem(where, f"article is {len(text):,} characters, above the "
                                         f"{MAX_ARTICLE_CHARS:,} limit; split it; skipped")
                continue
            doc_id = str(record.get("id") or f"{rel}#{hashlib.sha1(text.encode()).hexdigest()[:12]}")
            if doc_id in seen:
                yield LoadProblem(where, f"duplicate id '{doc_id}' (first one kept); skipped")
                continue
            seen.add(doc_id)
            meta = {k: _as_text(record.get(k)) for k in ("title", "source", "url", "published_at",
                                                         "date", "outlets")}
            yield LoadedDocument(doc_id, [_article(doc_id, text, meta, "")])
