"""How well a passage supports a generated sentence: every fact stated, the rest paraphrased.

A claim is supported by a passage only when the passage states every fact of the claim (numbers,
amounts, percentages, periods, decades and names, normalised by :mod:`assistant.facts`); that rule
keeps a wrong number, date or name out however fluent the rest is. Then

    score = max(lexical, w * coverage + (1 - w) * dense)

``lexical``: the weighted share of the claim's terms whose stem is in the passage (the words of its
facts count as found, in whatever form they were written); a term weighs its corpus idf times its
rarity in general English (a very common word such as "time" weighs little: a small corpus's idf
alone cannot tell it from a rare one); ``coverage``: the same share, where a
content word the passage lacks still counts by how close MiniLM puts it to the passage's nearest word
("contested" / "contentious", "annually" / "year": a synonym counts, a word the passage has nothing
like counts nothing), so that a claim whose key content is not in the passage scores low however
close its topic is; ``dense``: MiniLM cosine between the claim and the passage window closest to it:
a clause, a sentence, or two or three consecutive sentences (a claim that joins two sentences
matches their window). A chunk border is an artifact of chunking: given the chunk before the passage
(the citation check passes it when the model was shown it too), that chunk's last sentence lends the
passage its words and starts windows with the passage's first sentences ("The writers went on strike
... | It's the first joint strike since the 1960s"); the facts and the quote stay the passage's own.
``w`` and the threshold
(``Settings.citation_min_support``) are chosen by ``bench/citation_threshold.py`` on one half of
the model-like replies in ``tests/fixtures/generated_replies.jsonl`` and reported on the other.
The dense part depends on the embedding vectors: refit when they change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from assistant.background import background_weight
from assistant.facts import PassageFacts, claim_facts
from assistant.text import STOPWORDS, _stemmer, split_sentences, words
from assistant.text import terms as _terms

# Support = max(lexical, w * coverage + (1 - w) * dense) (bench/citation_threshold.py).
LEXICAL_WEIGHT = 0.5
# A claim word the passage lacks counts in ``coverage`` as 0 at this MiniLM similarity to the passage's
# nearest word and below ("nutrients" / "plants" 0.35), fully at SAME_WORD_SIMILARITY and above
# ("tv" / "television" 0.96, "almost" / "nearly" 0.87), linearly between ("contested" / "contentious" 0.65).
UNRELATED_WORD_SIMILARITY = 0.2
SAME_WORD_SIMILARITY = 0.8
MAX_WINDOW_SENTENCES = 3
# A quote of several sentences must earn its length: this much per extra sentence.
WINDOW_QUOTE_PENALTY = 0.1
# Irregular past forms, so that "struck" matches "strike" and "paid" matches "pay" (stems of both).
IRREGULAR = dict(pair.split(":") for pair in """struck:strike paid:pay made:make won:win went:go gone:go led:lead
held:hold told:tell said:say began:begin begun:begin brought:bring built:build bought:buy caught:catch
chose:choose chosen:choose drove:drive driven:drive fell:fall fallen:fall felt:feel found:find fought:fight
gave:give given:give grew:grow grown:grow kept:keep knew:know known:know left:leave lost:lose meant:mean
met:meet ran:run rose:rise risen:rise sold:sell sent:send shot:shoot sought:seek spent:spend stood:stand
taught:teach thought:think took:take taken:take wrote:write written:write became:become""".split())
# The general-English factor of a term's weight is at least this (a claim of only the commonest words
# is still judged by them).
MIN_INFORMATIVENESS = 1e-6
UNSEEN_TERM = "\x00unseen"  # asked of the idf to learn the weight of a word no passage has
CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s+(?=[–—]\s)")
# A passage sentence is also split before a conjunction that starts a clause ("It's the first joint
# strike since the 1960s | and threatens to change Hollywood forever"): a claim may state one clause.
PASSAGE_CLAUSE_BREAK = re.compile(CLAUSE_BREAK.pattern + r"|\s+(?=(?:and|but|while|whereas|which)\s)")
MIN_CLAUSE_WORDS = 4


@dataclass
class Support:
    """How well one passage supports one claim, and the passage span that supports it best."""

    score: float
    lexical: float
    dense: float
    coverage: float  # ``lexical`` with synonyms counted by similarity (0 when not computed)
    missing_key: float  # share of the claim's facts the passage does not state
    quote: tuple[int, int]
    missing: list[str] = field(default_factory=list)  # those facts, as the claim wrote them


@dataclass
class Window:
    """Consecutive sentences ``first..last`` of a passage (or a clause of one), as text."""

    first: int
    last: int
    text: str


class SupportScorer:
    """Scores how well passages support claims (facts, terms and, given ``embed``, similarity).

    ``idf``: term -> weight (the BM25 index's idf; uniform when missing).
    ``embed``: texts -> L2-normalised vectors (the retriever's MiniLM); lexical only when missing.
    """

    def __init__(self, idf: Callable[[str], float] | None = None,
                 embed: Callable[[list[str]], np.ndarray] | None = None,
                 lexical_weight: float = LEXICAL_WEIGHT) -> None:
        self.idf = idf or (lambda term: 1.0)
        self.embed = embed
        self.lexical_weight = lexical_weight if embed is not None else 1.0

    def _weights(self, claim_terms: set[str], fact_terms: set[str]) -> dict[str, float]:
        """Weights of a claim's terms: how rare each is in the corpus (idf) times how rare in general
        English (:func:`assistant.background.background_weight`), so that a very common word the
        passage lacks ("time" in "the first time since") costs little however rare the corpus finds it.
        A word the index has never seen (a paraphrase's own word in a small corpus) takes, as its idf,
        what the claim's known words have on average, not the most."""
        unseen = self.idf(UNSEEN_TERM)
        idf = {t: self.idf(t) for t in claim_terms}
        known = [w for t, w in idf.items() if w < unseen]
        typical = float(np.mean(known)) if known else 1.0
        return {t: (typical if w >= unseen and t not in fact_terms else w)
                * max(background_weight(t), MIN_INFORMATIVENESS) for t, w in idf.items()}

    def score(self, claims: Sequence[str], passages: Sequence[str], titles: Sequence[str] | None = None,
              decide_at: float | None = None, before: Sequence[str] | None = None) -> list[list[Support]]:
        """``result[i][j]``: the support of passage ``j`` (its title counts as evidence) for claim ``i``.

        With ``decide_at`` (a threshold), embeddings are computed only where they can move a score
        across it; elsewhere ``dense`` is 0 and the score is the lexical one. ``before[j]``: the text
        just before passage ``j`` in its document ("" when unknown); its last sentence lends the
        passage its words and windows (never facts, never the quote).
        """
        if not claims or not passages:
            return [[] for _ in claims]
        titles = titles or [""] * len(passages)
        leads = [last_sentence(b) for b in (before or [""] * len(passages))]
        offsets = [len(lead) + 1 if lead else 0 for lead in leads]
        evidence = [PassageFacts(p, t) for p, t in zip(passages, titles)]  # the facts: the passage's own
        passages = [f"{lead}\n{p}" if lead else p for lead, p in zip(leads, passages)]
        spans = [split_sentences(p) or [(0, len(p))] for p in passages]
        windows = [passage_windows(p, s, skip=int(bool(lead))) for p, s, lead in zip(passages, spans, leads)]
        passage_terms = [set(terms(f"{t}\n{p}")) for p, t in zip(passages, titles)]

        facts = [claim_facts(c) for c in claims]
        claim_terms = [set(terms(c)) for c in claims]
        fact_terms = [set(terms(" ".join(f.text for f in fs))) for fs in facts]
        weights = [self._weights(ts, ft) for ts, ft in zip(claim_terms, fact_terms)]
        lexical = np.zeros((len(claims), len(passages)))
        missing: list[list[list[str]]] = []
        for i in range(len(claims)):
            total = sum(weights[i].values())
            row = []
            for j in range(len(passages)):
                lacking = [f.text for f in facts[i] if not evidence[j].states(f)]
                found = passage_terms[j] | (fact_terms[i] if not lacking else set())
                if total:
                    lexical[i, j] = sum(weights[i][t] for t in claim_terms[i] & found) / total
                row.append(lacking)
            missing.append(row)
        gated = np.array([[not m for m in row] for row in missing])

        w = self.lexical_weight
        needed = gated & (self.embed is not None)
        if decide_at is not None:
            needed &= ~(lexical >= decide_at)
        similarity: dict[tuple[int, int], np.ndarray] = {}
        by_parts: dict[tuple[int, int], float] = {}
        words_ = self._coverage_words(claims, passages, titles, fact_terms, passage_terms, needed)
        word_vectors: dict[str, np.ndarray] = {}
        if needed.any():
            rows = np.flatnonzero(needed.any(axis=1))
            columns = np.flatnonzero(needed.any(axis=0))
            texts = [w_.text for j in columns for w_ in windows[j]]
            parts = {i: claim_parts(claims[i]) for i in rows}
            part_texts = [part for i in rows for part in parts[i]]
            # one encoder call: claims, their clauses, passage windows and the coverage's words
            vectors = self.embed([claims[i] for i in rows] + part_texts + texts + words_.vocabulary)
            n_claims, n_texts = len(rows) + len(part_texts), len(texts)
            word_vectors = dict(zip(words_.vocabulary, vectors[n_claims + n_texts:]))
            vectors = vectors[:n_claims + n_texts]
            sims = vectors[:n_claims] @ vectors[n_claims:].T
            offset = 0
            for j in columns:
                part_row = len(rows)
                for r, i in enumerate(rows):
                    block = sims[:, offset:offset + len(windows[j])]
                    if needed[i, j]:
                        similarity[(i, j)] = block[r]
                        if parts[i]:
                            best = block[part_row:part_row + len(parts[i])].max(axis=1)
                            sizes = np.array([len(part.split()) for part in parts[i]], dtype=float)
                            by_parts[(i, j)] = float(best @ sizes / sizes.sum())
                    part_row += len(parts[i])
                offset += len(windows[j])

        coverage = coverage_of(words_, word_vectors, weights)
        result: list[list[Support]] = []
        for i in range(len(claims)):
            total = sum(weights[i].values()) or 1.0
            row = []
            for j, passage_windows_ in enumerate(windows):
                sims = similarity.get((i, j))
                dense = max(0.0, float(sims.max()), by_parts.get((i, j), 0.0)) if sims is not None else 0.0
                cover = coverage.get((i, j), float(lexical[i, j]))
                score = max(float(lexical[i, j]), w * cover + (1 - w) * dense) if gated[i, j] else 0.0

                def quote_value(k: int) -> float:
                    window = passage_windows_[k]
                    share = sum(weights[i][t] for t in claim_terms[i] & set(terms(window.text))) / total
                    return (share + (float(sims[k]) if sims is not None else 0.0)
                            - WINDOW_QUOTE_PENALTY * (window.last - window.first))

                best = passage_windows_[max(range(len(passage_windows_)), key=quote_value)]
                quote = (max(spans[j][best.first][0] - offsets[j], 0), spans[j][best.last][1] - offsets[j])
                n_facts = len(facts[i])
                row.append(Support(score, float(lexical[i, j]), dense, cover,
                                   len(missing[i][j]) / n_facts if n_facts else 0.0, quote, missing[i][j]))
            result.append(row)
        return result

    def _coverage_words(self, claims: Sequence[str], passages: Sequence[str], titles: Sequence[str],
                        fact_terms: list[set[str]], passage_terms: list[set[str]],
                        needed: np.ndarray) -> CoverageWords:
        """What ``coverage`` must embed where ``needed``: each claim's content words, those passage ``j``
        lacks by stem, and the passage words they are compared to (nothing without an encoder)."""
        if self.embed is None or not needed.any():
            return CoverageWords()
        claim_words = {i: content_words(claims[i]) for i in np.flatnonzero(needed.any(axis=1))}
        unmatched = {(i, j): [word for word, term in claim_words[i]
                              if term not in passage_terms[j] and term not in fact_terms[i]]
                     for i, j in zip(*np.nonzero(needed))}
        columns = sorted({j for (_, j), lacking in unmatched.items() if lacking})
        candidates = {j: list(dict.fromkeys(word for word, _ in content_words(f"{titles[j]}\n{passages[j]}")))
                      for j in columns}
        lonely = list(dict.fromkeys(word for lacking in unmatched.values() for word in lacking))
        vocabulary = list(dict.fromkeys(lonely + [word for j in columns for word in candidates[j]])) if lonely else []
        return CoverageWords(claim_words, unmatched, candidates, vocabulary)


@dataclass
class CoverageWords:
    """The words ``coverage`` compares: ``claim_words[i]`` (word, stem), ``unmatched[(i, j)]`` (those
    passage ``j`` lacks), ``candidates[j]`` (the passage's words) and ``vocabulary`` (all, to embed)."""

    claim_words: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    unmatched: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    candidates: dict[int, list[str]] = field(default_factory=dict)
    vocabulary: list[str] = field(default_factory=list)


def coverage_of(words_: CoverageWords, vectors: dict[str, np.ndarray],
                weights: list[dict[str, float]]) -> dict[tuple[int, int], float]:
    """``(i, j) -> coverage``: the weighted share of claim ``i``'s content words that passage ``j`` has
    by stem, or by MiniLM similarity (``vectors``) of the word to the passage's closest word."""
    out = {}
    for (i, j), lacking in words_.unmatched.items():
        claim_words = words_.claim_words[i]
        total = sum(weights[i].get(term, 0.0) for _, term in claim_words)
        if not total:
            out[(i, j)] = 1.0
            continue
        near = {}
        candidates = words_.candidates.get(j, [])
        if lacking and candidates:
            sims = np.stack([vectors[w] for w in lacking]) @ np.stack([vectors[w] for w in candidates]).T
            near = dict(zip(lacking, sims.max(axis=1)))
        found = sum(weights[i].get(term, 0.0) * (word_match(float(near[word])) if word in near else
                                                 0.0 if word in lacking else 1.0)
                    for word, term in claim_words)
        out[(i, j)] = found / total
    return out


def word_match(similarity: float) -> float:
    """How much a word the passage lacks counts as found, from its similarity to the passage's closest word."""
    span = SAME_WORD_SIMILARITY - UNRELATED_WORD_SIMILARITY
    return float(np.clip((similarity - UNRELATED_WORD_SIMILARITY) / span, 0.0, 1.0))


def content_words(text: str) -> list[tuple[str, str]]:
    """``(word, stem)`` of each distinct alphabetic content word of ``text``, in order."""
    out = []
    for word in dict.fromkeys(w for w in words(text) if w and w not in STOPWORDS and w.isalpha()):
        stems = terms(word)
        if stems:
            out.append((word, stems[0]))
    return out


def terms(text: str) -> list[str]:
    """:func:`assistant.text.terms`, with irregular past forms mapped to their verb's stem."""
    return [_IRREGULAR_STEMS.get(t, t) for t in _terms(text)]


_IRREGULAR_STEMS = dict(zip(_stemmer().stemWords(list(IRREGULAR)), _stemmer().stemWords(list(IRREGULAR.values()))))


def passage_windows(passage: str, spans: list[tuple[int, int]], skip: int = 0) -> list[Window]:
    """Each sentence with its clauses, and each run of two to ``MAX_WINDOW_SENTENCES`` sentences;
    the first ``skip`` sentences (a lead from the chunk before) only as the start of a run."""
    out = [Window(k, k, clause) for k, (a, b) in enumerate(spans) if k >= skip
           for clause in clause_windows(passage[a:b])]
    for size in range(2, MAX_WINDOW_SENTENCES + 1):
        out.extend(Window(k, k + size - 1, passage[spans[k][0]:spans[k + size - 1][1]])
                   for k in range(len(spans) - size + 1) if k + size - 1 >= skip)
    return out


def last_sentence(text: str) -> str:
    """The last sentence of ``text`` ("" for none)."""
    spans = split_sentences(text)
    return text[spans[-1][0]:spans[-1][1]] if spans else ""


def split_clauses(text: str, breaks: re.Pattern) -> list[str]:
    """``text`` split at ``breaks``, a part shorter than ``MIN_CLAUSE_WORDS`` joined to the next."""
    clauses: list[str] = []
    for part in breaks.split(text.strip()):
        if clauses and len(clauses[-1].split()) < MIN_CLAUSE_WORDS:
            clauses[-1] = f"{clauses[-1]} {part}"
        elif part.strip():
            clauses.append(part)
    return clauses


def claim_parts(claim: str) -> list[str]:
    """The clauses of a long claim (each compared on its own: a claim that joins two passage
    sentences, or paraphrases a long one clause by clause); empty for a one-clause claim."""
    clauses = split_clauses(claim, CLAUSE_BREAK)
    if clauses and len(clauses[-1].split()) < MIN_CLAUSE_WORDS and len(clauses) > 1:
        clauses[-2:] = [f"{clauses[-2]} {clauses[-1]}"]
    return clauses if len(clauses) > 1 else []


def clause_windows(sentence: str) -> list[str]:
    """The sentence, and when it has several clauses, each clause and each pair of adjacent ones."""
    clauses = split_clauses(sentence, PASSAGE_CLAUSE_BREAK)
    if len(clauses) < 2:
        return [sentence]
    pairs = [f"{a} {b}" for a, b in zip(clauses, clauses[1:])]
    return [sentence] + clauses + (pairs if len(clauses) > 2 else [])
