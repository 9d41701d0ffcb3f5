"""The citation check of generated answers: every sentence the user sees is supported.

Model-agnostic: whatever an LLM wrote, the answer is split into sentences and
each sentence's [n] markers are checked against the numbered passages the model
was given. A marker to a passage that does not exist is removed; a marker to a
passage that does not support the sentence is removed too; a sentence that no
passage supports is dropped; a sentence supported by a passage it did not cite
is re-pointed to that passage. Each kept citation quotes, verbatim, the passage
sentence that supports the generated sentence best. :class:`CitationCheck`
counts every event, so the eval report (:mod:`assistant.report`) can say how often each happens.

Support (:mod:`assistant.support`): the passage must state every fact of the sentence
(numbers, amounts, dates, names, after normalisation: :mod:`assistant.facts`), and its words
and meaning must match the passage by stem and by embedding similarity, at least
``Settings.citation_min_support``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

from assistant.contract import Citation, Meta, Passage
from assistant.text import MARKER_NUMBERS, split_sentences, terms


class Support(Protocol):
    """How well one passage supports one claim (``assistant.support.Support``)."""

    score: float
    quote: tuple[int, int]  # the span of the passage that supports it best


class SupportScorer(Protocol):
    """What the check asks of a support scorer (``assistant.support.SupportScorer``, given by the caller)."""

    def score(self, claims: Sequence[str], passages: Sequence[str], titles: Sequence[str] | None = None,
              decide_at: float | None = None, before: Sequence[str] | None = None) -> list[list[Support]]: ...

# [1], [1][2], [1, 2], [1; 2]
MARKER = re.compile(r"\[(" + MARKER_NUMBERS + r")\]")
LEADING_MARKERS = re.compile(r"^(?:\s*\[" + MARKER_NUMBERS + r"\])+")
REFUSAL = re.compile(
    r"not in the corpus|corpus does not (?:contain|include|say|mention)|"
    r"(?:passages?|context|sources?|documents?|corpus|articles?) (?:do|does|did) not "
    r"(?:contain|say|mention|answer|provide|include|specify|state)|"
    r"(?:no|not enough) information (?:about|on|in|to)|cannot (?:be )?(?:answer|determine|find)|"
    r"can(?:'|no)t (?:answer|determine|find)|(?:is|are) not (?:mentioned|stated|given|provided) in",
    re.I,
)


@dataclass
class CitationCheck:
    """What the check did to one generated answer (counts for the eval report)."""

    sentences: int = 0
    kept: int = 0
    dropped: int = 0
    invalid_markers: int = 0
    unsupported_markers: int = 0
    recited: int = 0
    uncited: int = 0
    refused: bool = False
    passages_in_prompt: int = 0
    passages_dropped: int = 0  # left out whole to fit the context window
    outcome: str = "answered"  # answered | abstained | unverified | fallback
    fallback_reason: str = ""
    dropped_sentences: list[str] = field(default_factory=list)
    raw_text: str = ""

    def counts(self) -> dict[str, int]:
        """The events as numbers (a line of the eval's details.jsonl; summed by the eval report)."""
        data = {k: int(v) for k, v in asdict(self).items() if isinstance(v, (int, bool))}
        for outcome in OUTCOMES:
            data[outcome] = int(self.outcome == outcome)
        return data


OUTCOMES = ("answered", "abstained", "unverified", "fallback")
@dataclass
class Sentence:
    """One sentence of a generated answer: as written, without markers, and the numbers it cited."""

    raw: str
    claim: str
    markers: list[int]


def split_generated(text: str) -> list[Sentence]:
    """The sentences of a generated answer; markers (and stray punctuation) written after the
    full stop stay with their sentence."""
    pieces: list[str] = []
    for start, end in split_sentences(text, citing=True):
        piece = text[start:end]
        lead = LEADING_MARKERS.match(piece)
        if lead and pieces:
            pieces[-1] += " " + lead.group().strip()
            piece = piece[lead.end():]
        if pieces and not re.search(r"\w", MARKER.sub("", piece)):
            pieces[-1] += piece
        elif piece.strip():
            pieces.append(piece.strip())
    out = []
    for piece in pieces:
        markers = [int(n) for group in MARKER.findall(piece) for n in re.split(r"\s*[,;]\s*", group)]
        claim = MARKER.sub("", piece)
        claim = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(claim.split()))
        claim = re.sub(r"^[-*•]\s+|^\d+[.)]\s+", "", claim)
        claim = re.sub(r"([.!?])\.+$", r"\1", claim)
        out.append(Sentence(piece, claim, list(dict.fromkeys(markers))))
    return out


def is_refusal(sentence: str) -> bool:
    """True when the sentence says the passages do not answer the question."""
    return bool(REFUSAL.search(sentence))


def previous_text(passage: Passage, passages: list[Passage]) -> str:
    """The text of the chunk just before ``passage`` in its document (same page), when the model
    was shown it too; else "". A chunk border is an artifact of chunking: the sentence before it
    may name who or what the passage's first sentence is about."""
    index = passage.extra.get(Meta.CHUNK_INDEX)
    if index is None:
        return ""
    return next((p.text for p in passages if p.doc_id == passage.doc_id and p.page == passage.page
                 and p.extra.get(Meta.CHUNK_INDEX) == index - 1), "")


def check_citations(text: str, passages: list[Passage], scorer: SupportScorer,
                    min_support: float) -> tuple[str, list[Citation], CitationCheck]:
    """The checked answer text, its citations (renumbered 1..m, verbatim quotes) and what was done.

    ``passages`` are the numbered passages the model saw ([1] is ``passages[0]``). An empty text
    with ``check.refused`` means the model said the passages do not answer the question.
    """
    check = CitationCheck(raw_text=text)
    sentences = split_generated(text)
    check.sentences = len(sentences)
    candidates: list[tuple[int, Sentence]] = []
    for index, sentence in enumerate(sentences):
        if is_refusal(sentence.claim):
            check.refused = True
            continue
        invalid = [n for n in sentence.markers if not 1 <= n <= len(passages)]
        check.invalid_markers += len(invalid)
        candidates.append((index, sentence))
    contents = [(i, s) for i, s in candidates if terms(s.claim)]
    for _, sentence in candidates:
        if not terms(sentence.claim):
            check.dropped += 1
            check.dropped_sentences.append(sentence.claim)
    supports = scorer.score([s.claim for _, s in contents], [p.text for p in passages],
                            [p.title for p in passages], decide_at=min_support,
                            before=[previous_text(p, passages) for p in passages])

    kept: list[tuple[str, list[int], list[Support]]] = []
    for (_, sentence), row in zip(contents, supports):
        cited = [n - 1 for n in sentence.markers if 1 <= n <= len(passages)]
        supported = [j for j in cited if row[j].score >= min_support]
        check.unsupported_markers += len(cited) - len(supported)
        if not supported:
            best = max(range(len(row)), key=lambda j: row[j].score)
            if row[best].score >= min_support:
                supported = [best]
                if sentence.markers:
                    check.recited += 1
                else:
                    check.uncited += 1
        if supported:
            kept.append((sentence.claim, supported, [row[j] for j in supported]))
        else:
            check.dropped += 1
            check.dropped_sentences.append(sentence.claim)
    check.kept = len(kept)

    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for claim, passage_indices, sups in kept:
        marks = []
        for j, support in zip(passage_indices, sups):
            passage = passages[j]
            quote = passage.text[support.quote[0]:support.quote[1]].strip()
            if j not in numbers:
                numbers[j] = len(numbers) + 1
                citations.append(Citation.of(numbers[j], passage, quote, support.score))
            else:
                citation = citations[numbers[j] - 1]
                if quote not in citation.quote.split(" … "):
                    citation.quote += " … " + quote
                citation.score = max(citation.score, support.score)
            marks.append(f"[{numbers[j]}]")
        parts.append(f"{claim} {''.join(marks)}")
    return " ".join(parts), citations, check
