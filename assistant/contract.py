"""The contract that crosses module borders: passages, filters, answers, citations.

Every stage (retrieval, the answerers, the citation check, the CLI, the UI, the
eval harness) speaks in these small dataclasses, and this module imports none
of the stages, so it sits at the bottom of the import graph. The chunk metadata
keys, the date parser and the way a source is described to a reader are
defined here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable, Iterator, Protocol

ABSTAIN_MESSAGE = "The corpus does not contain the answer to this question."
# An abstention that is not sure the corpus lacks the answer: it quotes the sentence that comes
# closest (no citation: nothing is claimed), so the user can judge it.
CLOSEST_MESSAGE = "I found no sentence that clearly answers this. The closest the articles come:"
WHICH_DOCUMENT = ("Which document should I summarise? The corpus holds several: name one by its title or "
                  "subject, for example: Summarise “{title}”.")
RANKING_DEPTH = 10  # documents kept in an answer's retrieval ranking


class Meta:
    """The metadata keys every stored chunk carries (written by chunking, read by store and retrieval)."""

    DOC_ID = "doc_id"
    TITLE = "title"  # cut to a token budget when long (assistant/chunking.py: bounded_title)
    TITLE_FULL = "title_full"  # the whole title, only where TITLE was cut
    SOURCE = "source"
    DATE = "date"
    DATE_ORDINAL = "date_ordinal"
    URL = "url"
    PAGE = "page"
    OUTLETS = "outlets"
    DOC_HASH = "doc_hash"
    ORIGIN = "origin"
    CHUNK_INDEX = "chunk_index"
    N_CHUNKS = "n_chunks"
    UPDATED = "updated"  # when the document's file last changed (ISO 8601 UTC)
    OWNER = "owner"  # private uploads only (assistant/ownership.py): the owner's key ...
    PRIVATE = "private"  # ... and 1; public chunks have neither key


# ---------------------------------------------------------------- dates


def chunk_owner(metadata: dict) -> str | None:
    """The owner of a private upload's chunk (assistant/ownership.py), or None when everyone sees it."""
    return str(metadata[Meta.OWNER]) if metadata.get(Meta.PRIVATE) and metadata.get(Meta.OWNER) else None


def normalise_date(value: str) -> str:
    """ISO date (YYYY-MM-DD) from common date spellings, or the input stripped when unknown."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    for fmt in ("%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%d %b %Y", "%Y%m%d"):
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    match = re.match(r"(\d{4}-\d{2}-\d{2})", value)
    return match.group(1) if match else value


LATEST_DAY = date(9998, 12, 31)  # leaves room for the day arithmetic of date filters


def parse_day(value: str, what: str) -> date:
    """``value`` (YYYY-MM-DD) as a date; ValueError with a message naming ``what`` otherwise
    (not a date, or after :data:`LATEST_DAY`)."""
    try:
        day = date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date like 2024-05-31") from None
    if day <= LATEST_DAY:
        return day
    raise ValueError(f"{what} {value!r} is out of range (the latest date accepted is {LATEST_DAY})")


def date_ordinal(value: str | None) -> int | None:
    """Days since 0001-01-01 for an ISO date (a time after it is ignored), or None when it is not one."""
    try:
        return date.fromisoformat(str(value)[:10]).toordinal()
    except (ValueError, TypeError):
        return None


# ---------------------------------------------------------------- what goes in


class QuestionError(ValueError):
    """The question cannot be asked as given; the message says why."""


class FilterError(QuestionError):
    """A filter value is unusable; the message names the field and the fix."""


@dataclass(frozen=True)
class Filters:
    """User filters on metadata, and the date a question is asked on (dates: YYYY-MM-DD).

    Validated once, here: a date that is not one raises :class:`FilterError`.
    """

    source: str | None = None
    since: str | None = None
    until: str | None = None
    as_of: str | None = None
    visible_to: str | None = None  # an owner key: only public passages and theirs; None: no owner rule

    def __post_init__(self) -> None:
        for name in ("since", "until", "as_of"):
            value = getattr(self, name)
            if value and date_ordinal(value) is None:
                raise FilterError(f"the '{name.replace('_', '-')}' date {value!r} is not a date like 2024-05-31")
            if value and date_ordinal(value) > LATEST_DAY.toordinal():
                raise FilterError(f"the '{name.replace('_', '-')}' date {value!r} is out of range (the latest "
                                  f"date accepted is {LATEST_DAY})")

    @property
    def since_ordinal(self) -> int | None:
        return date_ordinal(self.since) if self.since else None

    @property
    def until_ordinal(self) -> int | None:
        return date_ordinal(self.until) if self.until else None

    def matches(self, meta: dict) -> bool:
        """True when a chunk with metadata ``meta`` passes the owner, source and date-range filters."""
        if self.visible_to is not None and meta.get(Meta.PRIVATE) and meta.get(Meta.OWNER) != self.visible_to:
            return False
        if self.source and self.source.lower() not in str(meta.get(Meta.SOURCE, "")).lower():
            return False
        ordinal = meta.get(Meta.DATE_ORDINAL)
        if self.since and (ordinal is None or ordinal < self.since_ordinal):
            return False
        if self.until and (ordinal is None or ordinal > self.until_ordinal):
            return False
        return True


@dataclass
class Query:
    """A question as the user asked it, and as rewritten for search and for answering.

    ``rewrite_error``: why an LLM rewrite failed (the rule-based rewrite was used instead).
    ``overview``: it asks what a document is about ("Summarize the article.") rather than a fact
    in it; ``focused``: it, or the conversation, says which document (else only a corpus of one
    document does). ``corrections``: (word asked, word read) for each misspelt word the spelling
    stage read as a corpus word (:mod:`assistant.spelling`).
    """

    question: str
    search: str
    answer: str
    rewrite_error: str = ""
    overview: bool = False
    focused: bool = False
    corrections: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- what retrieval gives


@dataclass
class Passage:
    """A retrieved chunk with its citation metadata and scores."""

    chunk_id: str
    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    date: str = ""
    url: str = ""
    page: int | None = None
    score: float = 0.0
    dense: float = 0.0
    bm25: float = 0.0
    dense_rank: int | None = None
    bm25_rank: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, chunk_id: str, text: str, meta: dict) -> "Passage":
        return cls(
            chunk_id=chunk_id,
            doc_id=str(meta.get(Meta.DOC_ID, "")),
            text=text,
            title=str(meta.get(Meta.TITLE_FULL) or meta.get(Meta.TITLE, "")),
            source=str(meta.get(Meta.SOURCE, "")),
            date=str(meta.get(Meta.DATE, "")),
            url=str(meta.get(Meta.URL, "")),
            page=int(meta[Meta.PAGE]) if meta.get(Meta.PAGE) else None,
            extra={Meta.DATE_ORDINAL: meta.get(Meta.DATE_ORDINAL), Meta.CHUNK_INDEX: meta.get(Meta.CHUNK_INDEX)},
        )


@dataclass
class Evidence:
    """What an answerer may weigh besides the passages.

    ``idf``: term -> weight, from the index the search itself used; ``embed``: texts ->
    L2-normalised vectors (the retriever's encoder), or None.
    """

    idf: Callable[[str], float]
    embed: Callable[[list[str]], object] | None = None


def ranked_doc_ids(passages: list[Passage], limit: int = RANKING_DEPTH) -> list[str]:
    """Distinct document ids of ``passages`` in order, at most ``limit``."""
    ids: list[str] = []
    for passage in passages:
        if passage.doc_id not in ids:
            ids.append(passage.doc_id)
            if len(ids) == limit:
                break
    return ids


# ---------------------------------------------------------------- what comes out


@dataclass
class Citation:
    """A numbered source of an answer: the passage and the exact quoted span."""

    n: int
    doc_id: str
    title: str
    source: str
    page: int | None
    quote: str
    score: float
    url: str = ""
    date: str = ""
    passage: str = ""
    chunk_id: str = ""

    @classmethod
    def of(cls, n: int, passage: Passage, quote: str, score: float) -> "Citation":
        """Citation ``n`` quoting ``quote`` from ``passage``."""
        return cls(n=n, doc_id=passage.doc_id, title=passage.title, source=passage.source,
                   page=passage.page, quote=quote, score=score, url=passage.url,
                   date=passage.date, passage=passage.text, chunk_id=passage.chunk_id)

    def public(self) -> dict:
        """The fields of the ``ask --json`` contract."""
        return {"n": self.n, "doc_id": self.doc_id, "title": self.title, "source": self.source,
                "page": self.page, "quote": self.quote, "score": round(self.score, 4)}


class CheckRecord(Protocol):
    """What a citation check of a generated answer reports (``assistant.citations.CitationCheck``)."""

    outcome: str

    def counts(self) -> dict[str, int]: ...


@dataclass
class Answer:
    """An answer with its citations, or an abstention."""

    question: str
    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    confidence: float = 0.0
    latency_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    doc_ranking: list[str] = field(default_factory=list)
    # Generated answers: what the citation check did; None for extractive answers.
    check: CheckRecord | None = None
    # What the extractive answerer made of the question, the ``--explain`` object
    # ({"p_answerable", "candidates": [{"doc_id", "sentence", "p"}]}); None when none assessed it.
    explain: dict | None = None
    # An abstention because nothing of the model's reply could be verified in the passages and the
    # extractive answerer abstained too; ``ask --json`` then says ``"unverified": true``.
    unverified: bool = False
    # An abstention that quotes the closest sentence (CLOSEST_MESSAGE): that sentence and its passage,
    # for the sources panel. Not a citation: nothing is claimed, and ``ask --json`` leaves it out.
    closest: Citation | None = None
    # The question's misspelt words and the corpus words they were read as (Query.corrections);
    # not in ``ask --json``.
    corrections: tuple[tuple[str, str], ...] = ()

    @property
    def retrieved_doc_ids(self) -> list[str]:
        """The retrieval's ranking of documents (up to 10), or the documents of the passages."""
        return (self.doc_ranking or ranked_doc_ids(self.passages))[:RANKING_DEPTH]

    def to_json(self, explain: bool = False) -> dict:
        """Exactly the ``assistant ask --json`` object (with ``"explain"`` when asked for)."""
        data = {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [c.public() for c in self.citations],
            "retrieved_doc_ids": self.retrieved_doc_ids,
            "latency_ms": round(self.latency_ms, 1),
        }
        if self.unverified:
            data["unverified"] = True
        if explain:
            data["explain"] = self.explain or {"p_answerable": round(self.confidence, 4), "candidates": []}
        return data


def read_as(corrections: tuple[tuple[str, str], ...]) -> str:
    """The line that tells a user how their misspelt words were read: 'Read “reportd” as “reported”.'"""
    return "Read " + ", ".join(f"“{asked}” as “{meant}”" for asked, meant in corrections) + "."


# An answer as it streams: (text so far, None) while it grows, then (final text, Answer).
Update = tuple[str, "Answer | None"]


class Answerer(Protocol):
    """Every answerer implements this one method (see ``assistant.pipeline.ANSWERERS``)."""

    def respond(self, query: Query, passages: list[Passage], evidence: Evidence,
                stream: bool = True) -> Iterator[Update]:
        """Yield ``(text so far, None)`` as the answer grows, then ``(final text, Answer)``.

        ``passages`` are the retrieved ones, best first (maybe none); ``stream=False`` asks
        for the whole answer at once where the back end can tell the difference.
        """
        ...


def closest_text(shown: str, passage: Passage) -> str:
    """The text of a refusal quoting ``shown`` from ``passage`` as the closest sentence."""
    return f"{CLOSEST_MESSAGE}\n“{shown}” — {passage.title or passage.doc_id} ({passage.doc_id})"


def closest_quote(text: str) -> str | None:
    """The sentence a refusal quoted as the closest (what :func:`closest_text` wrote), or None for
    any other answer text."""
    if CLOSEST_MESSAGE not in text:
        return None
    quote, dash, _ = text.split(CLOSEST_MESSAGE, 1)[1].strip().rpartition("” — ")
    return quote.removeprefix("“") if dash else None


def sentence_updates(answer: Answer) -> Iterator[Update]:
    """A finished answer as a stream: its text grows one cited sentence at a time, then the answer."""
    parts = re.split(r"(?<=\])\s+", answer.text)
    text = ""
    for i, part in enumerate(parts):
        text += part + (" " if i < len(parts) - 1 else "")
        yield text, None
    yield answer.text, answer


# ---------------------------------------------------------------- how a source reads


def source_details(item: Citation | Passage, doc_id: bool = True) -> list[str]:
    """The non-empty facts that locate a source: source, document id, page, date."""
    page = f"page {item.page}" if item.page else ""
    return [x for x in (item.source, item.doc_id if doc_id else "", page, item.date) if x]


def source_line(citation: Citation) -> str:
    """``[n] Title (source | doc id | page | date)``: how a citation is listed under an answer."""
    return f"[{citation.n}] {citation.title or citation.doc_id} ({' | '.join(source_details(citation))})"
