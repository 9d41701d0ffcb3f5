"""The citation check of generated answers: every sentence the user sees is supported.

Model-agnostic: whatever an LLM wrote, the answer is split into sentences and
each sentence's [n] markers are checked against the numbered passages the model
was given. A marker to a passage that does not exist is removed; a marker to a
passage that does not support the sentence is removed too; a sentence that no
passage supports is dropped; a sentence supported by a passage it did not cite
is re-pointed to that passage. Each kept citation quotes, verbatim, the passage
sentence that supports the generated sentence best. :class:`CitationCheck`
counts every event, so the eval report (:mod:`assistant.report`) can say how often each happens.

Support is a score in [0, 1]: the share of the sentence's content terms (idf
weighted) found in the passage, or, when higher, its mean with the embedding
similarity (MiniLM cosine to the passage's closest sentence or clause), times
the share of the numbers and names the sentence states that the passage
contains. The mix, the key-term rule and the threshold
(``Settings.citation_min_support``, 0.75) were chosen on squad2-dev by
``bench/citation_threshold.py``: at 0.75 it keeps 100% of verbatim answer
sentences and short answer fragments and 83% of gold answers restated in the
question's words, and 8% of fabricated answers, 3% of claims cited to the
wrong paragraph and 0% of unrelated sentences.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from assistant.contract import Citation, Passage
from assistant.text import WORD, split_sentences, terms

# [1], [1][2], [1, 2], [1; 2]
MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
LEADING_MARKERS = re.compile(r"^(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+")
REFUSAL = re.compile(
    r"not in the corpus|corpus does not (?:contain|include|say|mention)|"
    r"(?:passages?|context|sources?|documents?|corpus|articles?) (?:do|does|did) not "
    r"(?:contain|say|mention|answer|provide|include|specify|state)|"
    r"(?:no|not enough) information (?:about|on|in|to)|cannot (?:be )?(?:answer|determine|find)|"
    r"can(?:'|no)t (?:answer|determine|find)|(?:is|are) not (?:mentioned|stated|given|provided) in",
    re.I,
)
CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s+(?=[–—]\s)")
MIN_CLAUSE_WORDS = 4
# Support = max(lexical, w * lexical + (1 - w) * dense) (bench/citation_threshold.py).
LEXICAL_WEIGHT = 0.5


@dataclass
class Support:
    """How well one passage supports one claim, and the passage sentence that supports it best."""

    score: float
    lexical: float
    dense: float
    missing_key: float
    quote: tuple[int, int]


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
    outcome: str = "answered"  # answered | abstained | fallback
    fallback_reason: str = ""
    dropped_sentences: list[str] = field(default_factory=list)
    raw_text: str = ""

    def counts(self) -> dict[str, int]:
        """The events as numbers (a line of the eval's details.jsonl; summed by the eval report)."""
        data = {k: int(v) for k, v in asdict(self).items() if isinstance(v, (int, bool))}
        for outcome in OUTCOMES:
            data[outcome] = int(self.outcome == outcome)
        return data


OUTCOMES = ("answered", "abstained", "fallback")
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
    for start, end in split_sentences(text):
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


def key_terms(text: str) -> set[str]:
    """Terms of the numbers and names a sentence states: a passage must contain them to support it.

    A name is a capitalised word other than the sentence's first; tokens are the same as
    :func:`assistant.text.terms` makes, so a passage's terms can be compared directly.
    """
    keys: set[str] = set()
    for index, match in enumerate(WORD.finditer(text)):
        token = match.group()
        if any(ch.isdigit() for ch in token) or (index > 0 and token[0].isupper()):
            keys.update(terms(token))
    return keys


class SupportScorer:
    """Scores how well passages support claims (lexical and, given ``embed``, embedding similarity).

    ``idf``: term -> weight (the BM25 index's idf; uniform when missing).
    ``embed``: texts -> L2-normalised vectors (the retriever's MiniLM); lexical only when missing.
    """

    def __init__(self, idf: Callable[[str], float] | None = None,
                 embed: Callable[[list[str]], np.ndarray] | None = None,
                 lexical_weight: float = LEXICAL_WEIGHT) -> None:
        self.idf = idf or (lambda term: 1.0)
        self.embed = embed
        self.lexical_weight = lexical_weight if embed is not None else 1.0

    def score(self, claims: Sequence[str], passages: Sequence[str], titles: Sequence[str] | None = None,
              decide_at: float | None = None) -> list[list[Support]]:
        """``result[i][j]``: the support of passage ``j`` (its title counts as evidence) for claim ``i``.

        With ``decide_at`` (a threshold), embeddings are computed only where they can move a score
        across it; elsewhere ``dense`` is 0 and the score is the lexical one.
        """
        if not claims or not passages:
            return [[] for _ in claims]
        spans = [split_sentences(p) or [(0, len(p))] for p in passages]
        sentence_texts = [p[a:b] for p, ss in zip(passages, spans) for a, b in ss]
        own_sentences: list[list[int]] = []
        for ss in spans:
            first = sum(len(x) for x in own_sentences)
            own_sentences.append(list(range(first, first + len(ss))))
        titles = titles or [""] * len(passages)
        passage_terms = [set(terms(f"{t}\n{p}")) for t, p in zip(titles, passages)]
        sentence_terms = [set(terms(s)) for s in sentence_texts]

        claim_terms = [set(terms(c)) for c in claims]
        weights = [{t: self.idf(t) for t in ts} for ts in claim_terms]
        lexical = np.zeros((len(claims), len(passages)))
        missing = np.zeros((len(claims), len(passages)))
        for i, claim in enumerate(claims):
            total = sum(weights[i].values())
            keys = key_terms(claim)
            for j in range(len(passages)):
                if total:
                    lexical[i, j] = sum(weights[i][t] for t in claim_terms[i] & passage_terms[j]) / total
                missing[i, j] = len(keys - passage_terms[j]) / len(keys) if keys else 0.0

        w = self.lexical_weight
        needed = np.full(lexical.shape, self.embed is not None)
        if decide_at is not None:
            settled_yes = lexical * (1 - missing) >= decide_at
            settled_no = (w * lexical + (1 - w)) * (1 - missing) < decide_at
            needed &= ~(settled_yes | settled_no)
        similarity = np.full((len(claims), len(sentence_texts)), np.nan)
        if needed.any():
            rows = np.flatnonzero(needed.any(axis=1))
            # A short claim is compared with each sentence and with its clauses (a long sentence's
            # embedding dilutes the one clause that supports the claim).
            segments, segment_owner = [], []
            for j in np.flatnonzero(needed.any(axis=0)):
                for k in own_sentences[j]:
                    for segment in clause_windows(sentence_texts[k]):
                        segments.append(segment)
                        segment_owner.append(k)
            vectors = self.embed([claims[i] for i in rows] + segments)
            by_segment = vectors[: len(rows)] @ vectors[len(rows):].T
            for s_index, k in enumerate(segment_owner):
                similarity[rows, k] = np.fmax(similarity[rows, k], by_segment[:, s_index])

        result: list[list[Support]] = []
        for i in range(len(claims)):
            total = sum(weights[i].values()) or 1.0
            row = []
            for j, own in enumerate(own_sentences):
                known = similarity[i, own]
                dense = max(0.0, float(np.nanmax(known))) if not np.isnan(known).all() else 0.0
                mixed = w * lexical[i, j] + (1 - w) * dense
                score = max(float(lexical[i, j]), mixed) * (1.0 - missing[i, j])
                # The quote: the passage sentence closest to the claim, by shared terms and similarity.
                best = max(own, key=lambda k: sum(weights[i][t] for t in claim_terms[i] & sentence_terms[k]) / total
                           + (0.0 if np.isnan(similarity[i, k]) else float(similarity[i, k])))
                start, end = spans[j][own.index(best)]
                row.append(Support(score, float(lexical[i, j]), dense, float(missing[i, j]), (start, end)))
            result.append(row)
        return result


def clause_windows(sentence: str) -> list[str]:
    """The sentence, and when it has several clauses, each clause and each pair of adjacent ones."""
    clauses: list[str] = []
    for part in CLAUSE_BREAK.split(sentence.strip()):
        if clauses and len(clauses[-1].split()) < MIN_CLAUSE_WORDS:
            clauses[-1] = f"{clauses[-1]} {part}"
        elif part.strip():
            clauses.append(part)
    if len(clauses) < 2:
        return [sentence]
    pairs = [f"{a} {b}" for a, b in zip(clauses, clauses[1:])]
    return [sentence] + clauses + (pairs if len(clauses) > 2 else [])


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
                            [p.title for p in passages], decide_at=min_support)

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
