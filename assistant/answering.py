"""The grounded extractive answerer (the default: no LLM needed).

It scores every sentence of the retrieved passages as a possible answer,
composes the best one or two (trimmed to stay short) with [n] markers, and
abstains when a calibrated model of "is this question answered here?" says no.
Both models are small logistic regressions over explainable features, fitted on
squad2-dev by ``bench/fit_answerer.py`` and stored in ``answerer_weights.json``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from assistant.contract import (ABSTAIN_MESSAGE, Answer, Citation, Evidence, Passage, Query, Update,
                                sentence_updates)
from assistant.text import (CAPITALISED, DATE, NUMBER, STOPWORDS, looks_like_injection, split_sentences,
                            terms, words)

WEIGHTS_PATH = Path(__file__).parent / "answerer_weights.json"
SECOND_SENTENCE_RATIO = 0.5  # a runner-up sentence joins the answer when at least this close

SENTENCE_FEATURES = ("overlap", "resolved_overlap", "context_overlap", "type_fit", "novelty", "rank",
                     "bm25_rank", "short", "first")
ANSWER_FEATURES = ("sentence_prob", "overlap", "passage_dense", "missing_key", "passage_coverage",
                   "max_missing_idf", "negation_mismatch", "contrast", "margin")

# Words that questions written to be unanswerable swap for a sibling ("larger" for "smaller",
# "weekly" for "annual"): a question term missing from the answer sentence while a sibling
# of it is present is a strong sign that the sentence does not answer the question.
CONTRAST_CLASSES = [
    "first second third fourth fifth sixth last final next previous earliest latest initial",
    "larger smaller bigger greater less more fewer higher lower largest smallest biggest greatest most "
    "least highest lowest longest shortest oldest newest youngest best worst major minor wider narrower",
    "north south east west northern southern eastern western upper lower inner outer northeast "
    "northwest southeast southwest",
    "daily weekly monthly annual annually yearly hourly decade century",
    "hot cold heat warm cool warmer cooler colder hotter",
    "increase decrease rise fall gain loss win lose won lost success failure before after early late "
    "begin end start finish import export public private internal external maximum minimum male female "
    "men women buy sell bought sold open close opened closed ancient modern positive negative "
    "allow forbid support oppose accept reject inside outside above below add remove",
]
_CONTRAST: dict[str, int] = {}


def _contrast_index() -> dict[str, int]:
    if not _CONTRAST:
        for number, words_ in enumerate(CONTRAST_CLASSES):
            for word in words_.split():
                for stem in terms(word):
                    _CONTRAST.setdefault(stem, number)
    return _CONTRAST


REFERS_BACK = re.compile(r"\W*(?:it|its|it's|they|their|them|he|his|him|she|her|this|these|those|there|"
                         r"the (?:latter|former|same)|such)\b", re.I)
_NEGATION = re.compile(r"\b(not|never|no|n't|without|neither|nor|cannot|none)\b|n't\b", re.I)


@dataclass
class Candidate:
    """One sentence of one passage, scored as a possible answer."""

    passage_index: int
    start: int
    end: int
    features: dict[str, float]
    score: float = 0.0


# ---------------------------------------------------------------- question analysis


@dataclass
class QuestionInfo:
    text: str
    terms: list[str]
    answer_type: str | None
    key_terms: set[str]


def analyse_question(question: str) -> QuestionInfo:
    lower = question.lower()
    answer_type = None
    if re.search(r"\b(when|what (year|date|decade|century|time|month|day)|which (year|century|decade)|"
                 r"how long ago|since when)\b", lower):
        answer_type = "date"
    elif re.search(r"\b(how (many|much|long|old|far|big|large|tall|high|fast|often)|what (percentage|percent|"
                   r"number|amount|proportion|share|fraction|salary|price|cost)|how much money)\b", lower):
        answer_type = "number"
    elif re.search(r"\b(who|whom|whose)\b", lower):
        answer_type = "entity"
    elif re.search(r"\bwhere\b|what (country|city|state|place|region|continent)", lower):
        answer_type = "entity"
    # Key terms: numbers and proper names the question is about (other than its first word).
    key_terms: set[str] = set()
    for match in NUMBER.finditer(question):
        key_terms.update(terms(match.group()))
    for match in CAPITALISED.finditer(question):
        if match.start() == 0 and " " not in match.group():
            continue
        key_terms.update(t for t in terms(match.group()) if t not in STOPWORDS)
    return QuestionInfo(question, list(dict.fromkeys(terms(question))), answer_type, key_terms)


def _type_fit(sentence: str, info: QuestionInfo, question_terms: set[str]) -> float:
    if info.answer_type is None:
        return 0.0
    if info.answer_type == "date":
        found = [m.group() for m in DATE.finditer(sentence)]
    elif info.answer_type == "number":
        found = [m.group() for m in NUMBER.finditer(sentence)]
        found += re.findall(r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                            r"dozen|hundred|thousand|million|billion)s?\b", sentence, re.I)
    else:
        found = [m.group() for m in CAPITALISED.finditer(sentence) if m.start() > 0]
    for candidate in found:
        if not set(terms(candidate)) <= question_terms:
            return 1.0
    return 0.0


# ---------------------------------------------------------------- the answerer


class ExtractiveAnswerer:
    """Chooses and composes answer sentences from retrieved passages."""

    def __init__(self, max_sentences: int = 2, max_words: int = 60,
                 abstain_threshold: float = 0.5, weights_path: Path = WEIGHTS_PATH) -> None:
        self.max_sentences = max_sentences
        self.max_words = max_words
        self.abstain_threshold = abstain_threshold
        weights = json.loads(weights_path.read_text()) if weights_path.is_file() else {}
        self.sentence_model = weights.get("sentence") or _DEFAULT_SENTENCE_MODEL
        self.answer_model = weights.get("answer") or _DEFAULT_ANSWER_MODEL

    # -- features

    def candidates(self, question: str, passages: list[Passage], idf,
                   embed=None) -> tuple[QuestionInfo, list[Candidate]]:
        """Every sentence of ``passages`` with its features (``idf``: term -> weight)."""
        info = analyse_question(question)
        q_terms = set(info.terms)
        weight = {t: idf(t) for t in q_terms}
        total = sum(weight.values()) or 1.0
        spans, texts = [], []
        for index, passage in enumerate(passages):
            for start, end in split_sentences(passage.text):
                if looks_like_injection(passage.text[start:end]):
                    continue  # hostile text in a document is never an answer
                spans.append((index, start, end))
                texts.append(passage.text[start:end])
        if not texts:
            return info, []
        # Sentence-level embedding similarity is optional: on squad2-dev it did not improve sentence
        # choice (0.829 vs 0.820 top-sentence hit without it) and cost ~300 ms a question on 2 cores.
        uses_dense = embed is not None and "dense" in self.sentence_model["weights"]
        similarities = (embed(texts) @ embed([question])[0]) if uses_dense else np.zeros(len(texts))
        sentence_terms = [set(terms(t)) for t in texts]
        top_score = max((p.score for p in passages), default=0.0) or 1.0
        top_bm25 = max((p.bm25 for p in passages), default=0.0) or 1.0
        out: list[Candidate] = []
        for i, (index, start, end) in enumerate(spans):
            passage = passages[index]
            s_terms = sentence_terms[i]
            context = set(s_terms)
            for j in (i - 1, i + 1):
                if 0 <= j < len(spans) and spans[j][0] == index:
                    context |= sentence_terms[j]
            context |= set(terms(passage.title))
            overlap = sum(weight[t] for t in q_terms & s_terms) / total
            # "Its mascot is ..." continues the sentence before it: read the two together.
            resolved = set(s_terms)
            if REFERS_BACK.match(texts[i]) and i > 0 and spans[i - 1][0] == index:
                resolved |= sentence_terms[i - 1]
            resolved_overlap = sum(weight[t] for t in q_terms & resolved) / total
            context_overlap = sum(weight[t] for t in q_terms & context) / total
            novelty = len(s_terms - q_terms) / max(len(s_terms), 1)
            n_words = len(texts[i].split())
            features = {
                "overlap": overlap,
                "resolved_overlap": resolved_overlap,
                "context_overlap": context_overlap,
                "dense": float(similarities[i]),
                "type_fit": _type_fit(texts[i], info, q_terms),
                "novelty": novelty,
                # Relative retrieval scores, not ranks: in a small corpus the passages of one
                # article score alike and their order says little.
                "rank": passage.score / top_score,
                "bm25_rank": passage.bm25 / top_bm25,
                "short": 1.0 if n_words <= self.max_words else 0.0,
                "first": 1.0 if start == 0 else 0.0,
            }
            out.append(Candidate(index, start, end, features))
        for candidate in out:
            candidate.score = _logistic(self.sentence_model, candidate.features)
        out.sort(key=lambda c: -c.score)
        return info, out

    def answer_features(self, info: QuestionInfo, candidates: list[Candidate],
                        passages: list[Passage], idf) -> dict[str, float]:
        """Features of the best candidate that tell an answered question from an unanswerable one."""
        if not candidates:
            return {}
        best = candidates[0]
        passage = passages[best.passage_index]
        sentence_terms = set(terms(passage.text[best.start:best.end]))
        passage_terms = set(terms(passage.title + " " + passage.text))
        doc_terms = set().union(*(set(terms(p.text)) for p in passages if p.doc_id == passage.doc_id))
        keys = info.key_terms or set()
        missing = len(keys - (sentence_terms | passage_terms)) / len(keys) if keys else 0.0
        missing_doc = len(keys - doc_terms) / len(keys) if keys else 0.0
        second = candidates[1].score if len(candidates) > 1 else 0.0
        context_terms = set(sentence_terms)
        spans = split_sentences(passage.text)
        for i, (start, end) in enumerate(spans):
            if start <= best.start < end or (start, end) == (best.start, best.end):
                for j in (i - 1, i + 1):
                    if 0 <= j < len(spans):
                        context_terms |= set(terms(passage.text[spans[j][0]:spans[j][1]]))
        missing_terms = [t for t in info.terms if t not in context_terms]
        contrast_index = _contrast_index()
        sentence_classes = {contrast_index[t] for t in sentence_terms if t in contrast_index}
        contrast = any(contrast_index.get(t) in sentence_classes for t in missing_terms)
        sentence = passage.text[best.start:best.end]
        weights = {t: idf(t) for t in info.terms}
        total = sum(weights.values()) or 1.0
        top = max(weights.values(), default=1.0) or 1.0
        absent = [w for t, w in weights.items() if t not in passage_terms]
        return {
            "sentence_prob": best.score,
            "overlap": best.features["overlap"],
            "context_overlap": best.features["context_overlap"],
            "dense": best.features["dense"],
            "type_fit": best.features["type_fit"],
            "missing_key": missing,
            "missing_key_doc": missing_doc,
            "passage_dense": max((p.dense for p in passages), default=0.0),
            "margin": best.score - second,
            "has_type": 1.0 if info.answer_type else 0.0,
            "passage_coverage": 1.0 - sum(absent) / total,
            "max_missing_idf": max(absent, default=0.0) / top,
            "negation": 1.0 if re.search(r"\b(not|never|n't|no|without|neither|nor)\b", info.text.lower()) else 0.0,
            "bm25_top": max((p.bm25 for p in passages), default=0.0) / total,
            "missing_key_sentence": len(keys - context_terms) / len(keys) if keys else 0.0,
            "missing_terms": min(len(missing_terms), 3) / 3,
            "contrast": 1.0 if contrast else 0.0,
            "negation_mismatch": 1.0 if bool(_NEGATION.search(info.text)) != bool(_NEGATION.search(sentence)) else 0.0,
        }

    # -- answering

    def respond(self, query: Query, passages: list[Passage], evidence: Evidence,
                stream: bool = True) -> Iterator[Update]:
        """The answerer interface: the answer to ``query.answer`` from ``passages``, one sentence at a time."""
        answer = self.answer(query.answer, passages, evidence.idf, evidence.embed)
        answer.question = query.question
        yield from sentence_updates(answer)

    def answer(self, question: str, passages: list[Passage], idf, embed=None) -> Answer:
        """An :class:`Answer` (not yet timed) for ``question`` from ``passages``."""
        info, candidates = self.candidates(question, passages, idf, embed)
        if not candidates:
            return Answer(question, ABSTAIN_MESSAGE, True, passages=passages)
        confidence = _logistic(self.answer_model, self.answer_features(info, candidates, passages, idf))
        if confidence < self.abstain_threshold:
            return Answer(question, ABSTAIN_MESSAGE, True, passages=passages, confidence=confidence)
        chosen = self._choose(candidates, passages)
        return self._compose(question, chosen, passages, confidence)

    def _choose(self, candidates: list[Candidate], passages: list[Passage]) -> list[Candidate]:
        """The best sentence, plus a close runner-up when both fit in the word budget."""
        def length(c: Candidate) -> int:
            return len(passages[c.passage_index].text[c.start:c.end].split())

        best = candidates[0]
        chosen = [best]
        budget = self.max_words - length(best) - 1  # each sentence also carries a [n] marker
        text = passages[best.passage_index].text
        # The sentence right after the best one that refers back to it ("Its mascot is ...") often
        # holds the answer the best one sets up; it goes first in line for the second place.
        follow = [c for c in candidates[1:] if c.passage_index == best.passage_index and c.start >= best.end
                  and not text[best.end:c.start].strip() and REFERS_BACK.match(text[c.start:c.end])]
        runners = follow + [c for c in candidates[1:4] if c.score >= SECOND_SENTENCE_RATIO * best.score]
        for other in runners:
            if len(chosen) >= self.max_sentences:
                break
            if other in chosen or length(other) + 1 > budget:
                continue
            chosen.append(other)
            budget -= length(other) + 1
        chosen.sort(key=lambda c: (c.passage_index != best.passage_index, c.passage_index, c.start))
        return chosen

    def _compose(self, question: str, chosen: list[Candidate], passages: list[Passage],
                 confidence: float) -> Answer:
        numbers: dict[int, int] = {}
        citations: list[Citation] = []
        parts = []
        remaining = self.max_words
        for candidate in chosen:
            passage = passages[candidate.passage_index]
            quote = _trim(passage.text[candidate.start:candidate.end], remaining - 1, question)
            remaining -= len(quote.split()) + 1
            n = numbers.get(candidate.passage_index)
            if n is None:
                n = numbers[candidate.passage_index] = len(numbers) + 1
                citations.append(Citation.of(n, passage, quote, candidate.score))
            else:
                citations[n - 1].quote += " … " + quote
            parts.append(f"{quote} [{n}]")
        return Answer(question, " ".join(parts), False, citations, passages, confidence)


def _trim(sentence: str, max_words: int, question: str) -> str:
    """The sentence, or its window densest in question terms when it is too long.

    The result is always an exact substring of ``sentence`` (quotes must be verbatim).
    """
    spans = [m.span() for m in re.finditer(r"\S+", sentence)]
    if len(spans) <= max_words:
        return sentence.strip()
    q_terms = set(terms(question))
    hits = [1.0 if set(terms(sentence[a:b])) & q_terms else 0.0 for a, b in spans]
    size = max(max_words, 1)
    first = max(range(len(spans) - size + 1), key=lambda s: sum(hits[s : s + size]))
    return sentence[spans[first][0] : spans[first + size - 1][1]]


def _logistic(model: dict, features: dict[str, float]) -> float:
    z = model.get("bias", 0.0) + sum(w * features.get(k, 0.0) for k, w in model["weights"].items())
    return 1.0 / (1.0 + math.exp(-max(min(z, 40), -40)))


# Hand-set starting points, replaced by the fitted weights in answerer_weights.json.
_DEFAULT_SENTENCE_MODEL = {"bias": -3.0, "weights": {"overlap": 4.0, "context_overlap": 1.5, "dense": 2.0,
                                                      "type_fit": 1.0, "novelty": 0.5, "rank": 1.0}}
_DEFAULT_ANSWER_MODEL = {"bias": -1.0, "weights": {"sentence_prob": 3.0, "missing_key": -3.0,
                                                    "passage_dense": 1.0}}
