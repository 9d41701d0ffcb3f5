"""Choose the citation support score and threshold on squad2-dev.

Each case is a claim (a sentence a model might write) and the passage it cites:

supported
  restated   the question restated with its gold answer ("researcher showed that air is a
             necessity for combustion: Robert Boyle."), cited to the gold paragraph
  verbatim   the gold paragraph's sentence that holds the answer, cited to that paragraph
  fragment   the answer with the five words either side of it in that sentence (a short claim
             against a long sentence, as models often write)
unsupported
  wrong_passage  the restated claim cited to the most similar other paragraph (one without the answer)
  fabricated     the question restated with another question's answer of the same kind, cited to
                 the gold paragraph (which does not contain it): a hallucinated fact
  unanswerable   a SQuAD 2.0 unanswerable question restated with a borrowed answer, cited to the
                 paragraph the question was written against
  other_sentence a sentence of another paragraph, cited to the gold paragraph

For lexical weights 0 (embedding only) .. 1 (lexical only), and three rules for a claim's numbers and
names missing from the passage (none: ignored; soft: score times the share present; hard: score 0), it prints the threshold that maximises
balanced accuracy (supported kept vs unsupported dropped) and the keep rate per case type.

    python bench/citation_threshold.py            # about a minute on 2 cores
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import assistant  # noqa: F401  (offline environment)
from assistant.citations import SupportScorer
from assistant.embedding import get_encoder
from assistant.text import split_sentences, terms

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT / "eval" / "squad2-dev"
WH = re.compile(r"^\s*(what|which|who|whom|whose|when|where|why|how( many| much| long| old)?|in what|"
                r"on what|at what|to what|from what|by what|for what|during what|is|are|was|were|did|does|do)\b\s*",
                re.I)


def restate(question: str, answer: str) -> str:
    return f"{WH.sub('', question).rstrip(' ?')}: {answer}."


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def main(seed: int = 0) -> None:
    rng = random.Random(seed)
    docs = {d["id"]: d for d in map(json.loads, open(SQUAD / "documents.jsonl"))}
    questions = [json.loads(line) for line in open(SQUAD / "questions.jsonl")]
    doc_terms = {i: set(terms(d["text"])) for i, d in docs.items()}
    df = Counter(t for ts in doc_terms.values() for t in ts)
    n_docs = len(docs)

    def idf(term: str) -> float:
        return math.log(1 + (n_docs - df.get(term, 0) + 0.5) / (df.get(term, 0) + 0.5))

    def neighbour(question: str, exclude: str, answer: str) -> str | None:
        q = set(terms(question))
        ranked = sorted((i for i in docs if i != exclude),
                        key=lambda i: -sum(idf(t) for t in q & doc_terms[i]))
        return next((i for i in ranked if norm(answer) not in norm(docs[i]["text"])), None)

    answerable = [q for q in questions if q["answers"] and q["evidence_doc_ids"]]
    numeric = [q["answer"] for q in answerable if re.search(r"\d", q["answer"])]
    wordy = [q["answer"] for q in answerable if not re.search(r"\d", q["answer"])]

    def borrowed(answer: str, passage: str) -> str | None:
        pool = numeric if re.search(r"\d", answer) else wordy
        for _ in range(20):
            other = rng.choice(pool)
            if norm(other) != norm(answer) and norm(other) not in norm(passage):
                return other
        return None

    cases: list[tuple[str, str, str]] = []  # (kind, claim, doc_id)
    for q in answerable:
        gold = q["evidence_doc_ids"][0]
        text = docs[gold]["text"]
        claim = restate(q["question"], q["answer"])
        cases.append(("restated", claim, gold))
        for a, b in split_sentences(text):
            if norm(q["answer"]) in norm(text[a:b]):
                cases.append(("verbatim", text[a:b], gold))
                where = text[a:b].find(q["answer"])
                if where >= 0:
                    before = text[a:a + where].split()[-5:]
                    after = text[a + where + len(q["answer"]):b].split()[:5]
                    cases.append(("fragment", " ".join(before + [q["answer"]] + after), gold))
                break
        other = neighbour(q["question"], gold, q["answer"])
        if other:
            cases.append(("wrong_passage", claim, other))
        fake = borrowed(q["answer"], text)
        if fake:
            cases.append(("fabricated", restate(q["question"], fake), gold))
        random_doc = docs[rng.choice([i for i in docs if i != gold])]["text"]
        spans = split_sentences(random_doc)
        a, b = rng.choice(spans)
        cases.append(("other_sentence", random_doc[a:b], gold))
    for q in questions:
        if q["answers"] or not q.get("related_doc_ids"):
            continue
        related = q["related_doc_ids"][0]
        fake = borrowed(rng.choice(numeric + wordy), docs[related]["text"])
        if fake:
            cases.append(("unanswerable", restate(q["question"], fake), related))

    encoder = get_encoder()
    cache: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for t, v in zip(missing, encoder.encode(missing)):
                cache[t] = v
        return np.stack([cache[t] for t in texts])

    scorer = SupportScorer(idf=idf, embed=embed, lexical_weight=0.5)
    rows = []  # (kind, lexical, dense, missing_key)
    for kind, claim, doc_id in cases:
        support = scorer.score([claim], [docs[doc_id]["text"]], [docs[doc_id].get("title", "")])[0][0]
        rows.append((kind, support.lexical, support.dense, support.missing_key))
    supported = ("fragment", "restated", "verbatim")
    kinds = sorted({k for k, *_ in rows}, key=lambda k: (k not in supported, k))
    positive = np.array([k in supported for k, *_ in rows])
    print(f"{len(rows)} cases: " + ", ".join(f"{k} {sum(r[0] == k for r in rows)}" for k in kinds))
    print("lexical mean by kind: " + ", ".join(
        f"{k} {np.mean([r[1] for r in rows if r[0] == k]):.2f}" for k in kinds))
    print("dense mean by kind:   " + ", ".join(
        f"{k} {np.mean([r[2] for r in rows if r[0] == k]):.2f}" for k in kinds))
    print()
    header = "weight mix  key-rule threshold bal-acc | " + " ".join(f"{k[:12]:>12}" for k in kinds)
    print(header)
    print("-" * len(header))
    best = None
    for mix, key_rule in (("mean", "none"), ("mean", "soft"), ("mean", "hard"), ("max", "soft")):
        for weight in (0.0, 0.25, 0.5, 0.75, 1.0):
            if mix == "max" and weight in (0.0, 1.0):
                continue
            scores = np.array([(max(lex, weight * lex + (1 - weight) * den) if mix == "max"
                                else weight * lex + (1 - weight) * den)
                               * {"none": 1.0, "soft": 1.0 - m, "hard": float(m == 0)}[key_rule]
                               for _, lex, den, m in rows])
            options = []
            for threshold in np.arange(0.05, 0.96, 0.05):
                keep = scores >= threshold
                balanced = (keep[positive].mean() + (~keep[~positive]).mean()) / 2
                options.append((balanced, threshold, keep))
            balanced, threshold, keep = max(options, key=lambda o: o[0])
            rates = " ".join(f"{keep[[r[0] == k for r in rows]].mean():>12.2f}" for k in kinds)
            print(f"{weight:>6.2f} {mix:>4} {key_rule:>8} {threshold:>9.2f} {balanced:>7.3f} | {rates}")
            if best is None or balanced > best[0]:
                best = (balanced, weight, f"{mix}/{key_rule}", threshold)
    weight, rule, chosen = best[1], best[2], best[3]
    mix, key_rule = rule.split("/")
    scores = np.array([(max(lex, weight * lex + (1 - weight) * den) if mix == "max"
                        else weight * lex + (1 - weight) * den)
                       * {"none": 1.0, "soft": 1.0 - m, "hard": float(m == 0)}[key_rule]
                       for _, lex, den, m in rows])
    print(f"\nthresholds around the best, lexical weight {weight}, {rule}:")
    for threshold in np.arange(chosen - 0.1, chosen + 0.101, 0.025):
        keep = scores >= threshold
        balanced = (keep[positive].mean() + (~keep[~positive]).mean()) / 2
        rates = " ".join(f"{keep[[r[0] == k for r in rows]].mean():>12.2f}" for k in kinds)
        print(f"{'':>16} {threshold:>9.3f} {balanced:>7.3f} | {rates}")
    print()
    print(f"best: lexical weight {best[1]}, mix/key-term rule {best[2]}, threshold {best[3]:.2f} "
          f"(balanced accuracy {best[0]:.3f}); the table shows the share of each kind kept")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
