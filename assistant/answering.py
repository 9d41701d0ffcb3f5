"""The grounded extractive answerer (the default: no LLM needed).

It scores every sentence of the retrieved passages that reads as a statement (see
:func:`assistant.features.answer_form`) as a possible answer, composes the best one, or two
when the second adds what the first lacks, with [n] markers, and abstains when a calibrated
model of "is this question answered here?" says no. Both models are small logistic
regressions over the features of :mod:`assistant.features`, fitted by
``bench/fit_answerer.py`` on a mix of answerable, off-corpus and adversarial questions and
stored (coefficients only) in ``answerer_weights.json``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from assistant.contract import (ABSTAIN_MESSAGE, Answer, Citation, Evidence, Passage, Query, Update, closest_text,
                                sentence_updates)
from assistant.features import (CAPTION_LINE, REFERS_BACK, UNSEEN_TERM, QuestionInfo,
                                analyse_question, answer_features, answer_form, answer_spans, answer_terms,
                                bigram_share, common_share, kind_fit, leads_with_answer, recency, redundancy,
                                type_fit, with_base_forms)
from assistant.text import footnote_free_parts, looks_like_injection, split_sentences, terms, without_footnotes

WEIGHTS_PATH = Path(__file__).parent / "answerer_weights.json"
SECOND_SENTENCE_RATIO = 0.5  # a runner-up sentence of the same document may join when at least this close
TWO_DOCUMENTS_RATIO = 0.8    # the best sentence of another document joins when this close: neither dominates
RIVAL_RATIO = TWO_DOCUMENTS_RATIO  # a runner-up this close that names another answer joins: the two compete
MIN_RIVAL_WORDS = 15  # such a rival too long for the word budget joins trimmed around its answer when this many are left
EXPLAIN_CANDIDATES = 5       # candidate sentences shown by ``assistant ask --explain``


@dataclass
class Candidate:
    """One sentence of one passage, scored as a possible answer."""

    passage_index: int
    start: int
    end: int
    text: str
    doc_id: str
    features: dict[str, float]
    score: float = 0.0


@dataclass
class Assessment:
    """What the answerer made of a question: its analysis, the ranked candidates (one per distinct
    sentence) and P(answerable) with the features behind it."""

    info: QuestionInfo
    candidates: list[Candidate]
    features: dict[str, float]
    p_answerable: float

    def explain(self, limit: int = EXPLAIN_CANDIDATES) -> dict:
        """The ``--explain`` object: P(answerable) and the top candidate sentences."""
        return {"p_answerable": round(self.p_answerable, 4),
                "candidates": [{"doc_id": c.doc_id, "sentence": c.text, "p": round(c.score, 4)}
                               for c in self.candidates[:limit]]}


class ExtractiveAnswerer:
    """Chooses and composes answer sentences from retrieved passages."""

    def __init__(self, max_sentences: int = 2, max_words: int = 60, abstain_threshold: float = 0.5,
                 closest_threshold: float = 1.0, weights_path: Path | None = WEIGHTS_PATH) -> None:
        """``weights_path``: the fitted models (``bench/fit_answerer.py --write``); ``None`` (or a
        missing file) gives the fixed prior models, which do not depend on any fit. Below
        ``abstain_threshold`` the answerer abstains; at or above ``closest_threshold`` its abstention
        quotes the closest sentence instead of saying that the corpus does not hold the answer."""
        self.max_sentences = max_sentences
        self.max_words = max_words
        self.abstain_threshold = abstain_threshold
        self.closest_threshold = closest_threshold
        weights = json.loads(weights_path.read_text()) if weights_path and weights_path.is_file() else {}
        self.sentence_model = weights.get("sentence") or _DEFAULT_SENTENCE_MODEL
        self.answer_model = weights.get("answer") or _DEFAULT_ANSWER_MODEL

    # -- features

    def candidates(self, question: str, passages: list[Passage], idf) -> tuple[QuestionInfo, list[Candidate]]:
        """Every distinct answer-like sentence of ``passages``, scored, best first (``idf``: term -> weight)."""
        info = analyse_question(question)
        q_terms = set(info.terms)
        weight = {t: idf(t) for t in q_terms}
        total = sum(weight.values()) or 1.0
        spans = [(index, start, end) for index, passage in enumerate(passages)
                 for start, end in split_sentences(passage.text)]
        texts = [passages[i].text[a:b] for i, a, b in spans]
        sentence_lists = [terms(t) for t in texts]
        sentence_terms = [with_base_forms(t) for t in sentence_lists]
        frequency = Counter(t for s in sentence_terms for t in s)  # sentences holding each term
        keys = info.key_terms
        top_score = max((p.score for p in passages), default=0.0) or 1.0
        top_bm25 = max((p.bm25 for p in passages), default=0.0) or 1.0
        titles = [set(terms(p.title)) for p in passages]
        best: dict[str, Candidate] = {}  # one candidate per distinct sentence (overlapping chunks repeat them)
        for i, (index, start, end) in enumerate(spans):
            text, passage = texts[i], passages[index]
            if not can_answer(text, passage, start):
                continue
            s_terms = sentence_terms[i]
            neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(spans) and spans[j][0] == index]
            context = s_terms.union(*(sentence_terms[j] for j in neighbours), titles[index])
            # "Its mascot is ..." continues the sentence before it: read the two together.
            resolved = s_terms | (sentence_terms[i - 1] if REFERS_BACK.match(text) and i - 1 in neighbours else set())
            fit, near = type_fit(text, info, q_terms)
            kind, kind_near = kind_fit(text, info, q_terms)
            answers = answer_spans(text, info, q_terms)
            features = {
                "overlap": sum(weight[t] for t in q_terms & s_terms) / total,
                "resolved_overlap": sum(weight[t] for t in q_terms & resolved) / total,
                "context_overlap": sum(weight[t] for t in q_terms & context) / total,
                "type_fit": fit,
                "type_near": near,
                "novelty": len(s_terms - q_terms) / max(len(s_terms), 1),
                # Relative retrieval scores, not ranks: in a small corpus the passages of one
                # article score alike and their order says little.
                "rank": passage.score / top_score,
                "bm25_rank": passage.bm25 / top_bm25,
                "short": 1.0 if len(text.split()) <= self.max_words else 0.0,
                "first": 1.0 if start == 0 else 0.0,
                "recent": recency(passage.extra.get("age_days")),
                "kind_fit": kind,
                "kind_near": kind_near,
                "bigrams": bigram_share(info.terms, sentence_lists[i]),
                "key_overlap": len(keys & s_terms) / len(keys) if keys else 0.0,
                "common_overlap": common_share(info.terms, s_terms),
                "redundancy": redundancy(answer_terms(text, info, q_terms, answers), frequency),
                "lead_answer": leads_with_answer(text, answers),
            }
            candidate = Candidate(index, start, end, text, passage.doc_id, features,
                                  _logistic(self.sentence_model, features))
            key = " ".join(text.split())
            if key not in best or candidate.score > best[key].score:
                best[key] = candidate
        return info, sorted(best.values(), key=lambda c: -c.score)

    def assess(self, question: str, passages: list[Passage], idf) -> Assessment:
        """Candidates and P(answerable) for ``question`` over ``passages``."""
        info, candidates = self.candidates(question, passages, idf)
        if not candidates:
            return Assessment(info, [], {}, 0.0)
        best = candidates[0]
        passage = passages[best.passage_index]
        # A caption's words are no evidence that the question is answered here: none of its sentences answers.
        spans = [(a, b) for a, b in split_sentences(passage.text) if not _in_caption(passage.text, a)]
        at = next((i for i, (a, b) in enumerate(spans) if a <= best.start < b), 0)
        context = " ".join(passage.text[a:b] for a, b in spans[max(at - 1, 0):at + 2])
        features = answer_features(
            info, best.text, best.features, best.score, candidates[1].score if len(candidates) > 1 else 0.0,
            f"{passage.title}\n{CAPTION_LINE.sub('', passage.text)}", context, passages,
            {t: idf(t) for t in info.terms}, idf(UNSEEN_TERM))
        return Assessment(info, candidates, features, _logistic(self.answer_model, features))

    # -- answering

    def respond(self, query: Query, passages: list[Passage], evidence: Evidence,
                stream: bool = True) -> Iterator[Update]:
        """The answerer interface: the answer to ``query.answer`` from ``passages``, one sentence at a time."""
        answer = self.overview(query.question, passages) if query.overview else None
        answer = answer or self.answer(query.answer, passages, evidence.idf)
        answer.question = query.question
        yield from sentence_updates(answer)

    def overview(self, question: str, passages: list[Passage]) -> Answer | None:
        """What a document is about, for "What is this article about?": its lead, the first
        sentences of ``passages`` (the document's lead chunk first) that read as statements, as many
        as the sentence and word budgets take; None when none does."""
        chosen: list[Candidate] = []
        budget = self.max_words
        for index, passage in enumerate(passages):
            for start, end in split_sentences(passage.text):
                text = passage.text[start:end]
                if not can_answer(text, passage, start):
                    continue
                words = len(text.split()) + 1
                if chosen and (words > budget or len(chosen) >= self.max_sentences):
                    break
                chosen.append(Candidate(index, start, end, text, passage.doc_id, {}, 1.0))
                budget -= words
            if chosen:
                break  # the lead is one place in one document
        if not chosen:
            return None
        answer = self.compose(question, chosen, passages, 1.0)
        answer.explain = {"p_answerable": 1.0, "candidates": [
            {"doc_id": c.doc_id, "sentence": c.text, "p": 1.0} for c in chosen]}
        return answer

    def answer(self, question: str, passages: list[Passage], idf) -> Answer:
        """An :class:`Answer` (not yet timed) for ``question`` from ``passages``."""
        assessment = self.assess(question, passages, idf)
        p = assessment.p_answerable
        if assessment.candidates and p >= self.abstain_threshold:
            answer = self.compose(question, self.choose(assessment, passages), passages, p)
        elif assessment.candidates and p >= self.closest_threshold:
            answer = self.closest(question, assessment, passages)
        else:
            answer = Answer(question, ABSTAIN_MESSAGE, True, passages=passages, confidence=p)
        answer.explain = assessment.explain()
        return answer

    def closest(self, question: str, assessment: Assessment, passages: list[Passage]) -> Answer:
        """An abstention that quotes the best candidate sentence with its document. No citation and
        no marker: nothing is claimed, the user judges the quote."""
        best = assessment.candidates[0]
        passage = passages[best.passage_index]
        whole = best.text.strip()
        quote = _trim(whole, self.max_words, question)
        shown = without_footnotes(_with_cuts(whole, quote))
        return Answer(question, closest_text(shown, passage), True, passages=passages,
                      confidence=assessment.p_answerable,
                      closest=Citation.of(0, passage, footnote_free_parts(quote), best.score))

    def choose(self, assessment: Assessment, passages: list[Passage]) -> list[Candidate]:
        """The best sentence, plus one that adds what it lacks.

        A second sentence joins only when it fits the word budget and either comes from another
        document while the two score alike (neither dominates), or scores alike and names another
        answer of the expected kind (a rival: it may join cut around its answer when the budget is
        short), or follows the best one and refers back to it, or scores close; these last two only
        when they carry question terms or an answer of the expected type that the best one lacks.
        """
        candidates = assessment.candidates
        best = candidates[0]
        q_terms = set(assessment.info.terms)
        best_terms = set(terms(best.text)) & q_terms
        text = passages[best.passage_index].text

        def adds(c: Candidate) -> bool:
            return bool((set(terms(c.text)) & q_terms) - best_terms) or (
                c.features["type_fit"] > best.features["type_fit"])

        info = assessment.info
        best_answers = set(answer_terms(best.text, info, q_terms))

        def rival(c: Candidate) -> bool:
            """It scores about as well and names an answer of the expected kind that the best one does not."""
            return c.score >= RIVAL_RATIO * best.score and bool(set(answer_terms(c.text, info, q_terms)) - best_answers)

        other_doc = next((c for c in candidates[1:4] if c.doc_id != best.doc_id), None)
        runners: list[Candidate] = []
        if other_doc and other_doc.score >= TWO_DOCUMENTS_RATIO * best.score:
            runners.append(other_doc)
        rivals = [c for c in candidates[1:3] if rival(c)]
        runners += rivals
        # The sentence right after the best one that refers back to it ("Its mascot is ...") often
        # holds the answer the best one sets up: it joins when it adds what the best one lacks.
        runners += [c for c in candidates[1:] if c.passage_index == best.passage_index and c.start >= best.end
                    and not text[best.end:c.start].strip() and REFERS_BACK.match(c.text) and adds(c)]
        runners += [c for c in candidates[1:4] if c.doc_id == best.doc_id
                    and c.score >= SECOND_SENTENCE_RATIO * best.score and adds(c)]
        chosen = [best]
        budget = self.max_words - len(best.text.split()) - 1  # each sentence also carries a [n] marker
        for other in runners:
            if len(chosen) >= self.max_sentences:
                break
            if other in chosen:
                continue
            words = len(other.text.split()) + 1
            if words > budget and not (other in rivals and budget >= MIN_RIVAL_WORDS):
                continue
            chosen.append(other)
            budget -= min(words, budget)
        chosen.sort(key=lambda c: (c.doc_id != best.doc_id, c.passage_index, c.start))
        return chosen

    def compose(self, question: str, chosen: list[Candidate], passages: list[Passage],
                confidence: float) -> Answer:
        """The answer text with [n] markers and one citation per cited passage (quotes verbatim)."""
        numbers: dict[int, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        quotes: set[str] = set()
        remaining = self.max_words
        info = analyse_question(question)
        for candidate in chosen:
            passage = passages[candidate.passage_index]
            answers = set().union(*answer_terms(candidate.text, info, set(info.terms)))
            whole = candidate.text.strip()
            quote = _trim(whole, remaining - 1, question, answers)
            if quote in quotes:
                continue  # never the same sentence twice
            quotes.add(quote)
            shown = without_footnotes(_with_cuts(whole, quote))  # a document's "[4]" is no marker of ours
            remaining -= len(shown.split()) + 1
            n = numbers.get(candidate.passage_index)
            if n is None:
                n = numbers[candidate.passage_index] = len(numbers) + 1
                citations.append(Citation.of(n, passage, footnote_free_parts(quote), candidate.score))
            else:
                citations[n - 1].quote += " … " + footnote_free_parts(quote)
            parts.append(f"{shown} [{n}]")
        return Answer(question, " ".join(parts), False, citations, passages, confidence)


def can_answer(sentence: str, passage: Passage, start: int) -> bool:
    """Whether the sentence of ``passage`` at ``start`` may be (part of) an answer. Headings,
    questions, captions (any sentence of a line that reads "Caption: ...", as a web page's figure
    caption is loaded), fragments and hostile text never answer; nor does the tail of a sentence
    that a chunk cut ("the harbour of Porto hosted ..."): the whole sentence belongs to the chunk before."""
    cut_tail = sentence[:1].islower() and not passage.text[:start].strip()
    in_caption = _in_caption(passage.text, start)
    return answer_form(sentence) and not looks_like_injection(sentence) and not cut_tail and not in_caption


def _in_caption(text: str, start: int) -> bool:
    """Whether the sentence of ``text`` at ``start`` is on a line that reads "Caption: ..."."""
    return bool(CAPTION_LINE.match(text, text.rfind("\n", 0, start) + 1))  # its line's start


def _with_cuts(sentence: str, quote: str) -> str:
    """``quote``, a window of ``sentence``, with "…" where it was cut (attached: no extra word)."""
    return f"{'' if sentence.startswith(quote) else '…'}{quote}{'' if sentence.endswith(quote) else '…'}"


def _trim(sentence: str, max_words: int, question: str, answers: set[str] = frozenset()) -> str:
    """The sentence, or its window densest in question terms (and, twice as dense, in the
    ``answers`` terms of its likely answer) when it is too long.

    The result is always an exact substring of ``sentence`` (quotes must be verbatim).
    """
    spans = [m.span() for m in re.finditer(r"\S+", sentence)]
    if len(spans) <= max_words:
        return sentence.strip()
    q_terms = set(terms(question))
    hits = [2.0 if (found := set(terms(sentence[a:b]))) & answers else 1.0 if found & q_terms else 0.0
            for a, b in spans]
    size = max(max_words, 1)
    first = max(range(len(spans) - size + 1), key=lambda s: sum(hits[s : s + size]))
    return sentence[spans[first][0] : spans[first + size - 1][1]]


def _logistic(model: dict, features: dict[str, float]) -> float:
    z = model.get("bias", 0.0) + sum(w * features.get(k, 0.0) for k, w in model["weights"].items())
    return 1.0 / (1.0 + math.exp(-max(min(z, 40), -40)))


# Hand-set starting points, replaced by the fitted weights in answerer_weights.json.
_DEFAULT_SENTENCE_MODEL = {"bias": -3.0, "weights": {"overlap": 4.0, "context_overlap": 1.5,
                                                      "type_fit": 1.0, "novelty": 0.5, "rank": 1.0}}
_DEFAULT_ANSWER_MODEL = {"bias": -1.0, "weights": {"sentence_prob": 3.0, "missing_key": -3.0,
                                                    "passage_dense": 1.0}}
