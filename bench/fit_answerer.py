"""Fit the extractive answerer's two small models on squad2-dev, with cross-validation.

1. Sentence model: P(sentence contains the gold answer) from the sentence features
   (assistant.answering.SENTENCE_FEATURES), trained on the sentences of the passages
   retrieved for the answerable questions.
2. Answer model: P(the composed answer is correct) from the answer features
   (assistant.answering.ANSWER_FEATURES); unanswerable questions are negatives. The
   assistant abstains when this probability is below ``abstain_threshold``.

Both are L2-regularised logistic regressions (numpy, Newton steps). Out-of-fold
predictions (5 folds, split by question) give the honest figures printed here; the
final weights are fitted on all of squad2-dev and written to
assistant/answerer_weights.json. Usage:

    python bench/fit_answerer.py [--store /tmp/squad-store] [--write]
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from pathlib import Path

import numpy as np

import assistant  # noqa: F401
from assistant.answering import ANSWER_FEATURES, SENTENCE_FEATURES, WEIGHTS_PATH, _logistic
from assistant.pipeline import Assistant
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FOLDS = 5
L2 = float(__import__("os").environ.get("FIT_L2", "5.0"))
LABEL = "answerable"


def normalise(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Weights and bias on standardised features; returns (w, b, mean, std)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    z1 = np.hstack([z, np.ones((len(z), 1))])
    w = np.zeros(z1.shape[1])
    reg = np.eye(len(w)) * l2
    reg[-1, -1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-z1 @ w))
        grad = z1.T @ (p - y) + reg @ w
        hess = (z1 * (p * (1 - p))[:, None]).T @ z1 + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1]), mean, std


def to_model(names, w, b, mean, std) -> dict:
    """Fold the standardisation into plain weights: z = sum(w_i * x_i) + bias."""
    weights = {n: float(wi / si) for n, wi, si in zip(names, w, std)}
    bias = float(b - sum(wi * mi / si for wi, mi, si in zip(w, mean, std)))
    return {"bias": bias, "weights": weights}


def collect(bot: Assistant, questions: list[dict]):
    """Per question: candidates with features, passages and analysis (sentence model applied later)."""
    rows = []
    idf = bot.store.lexical.idf  # the store does not change while fitting
    for q in questions:
        passages = bot.retriever.retrieve(q["question"]).passages
        info, cands = bot.answerer.candidates(q["question"], passages, idf, bot.retriever.embed)
        golds = [normalise(g) for g in q.get("answers") or []]
        labels = []
        for c in cands:
            text = normalise(passages[c.passage_index].text[c.start:c.end])
            labels.append(1.0 if golds and any(g and g in text for g in golds) else 0.0)
        rows.append({"q": q, "passages": passages, "info": info, "cands": cands, "labels": labels, "golds": golds})
    return rows


def answer_correct(bot: Assistant, row) -> bool:
    """Would the composed answer (top sentence(s)) contain a gold answer within 60 words?"""
    if not row["golds"] or not row["cands"]:
        return False
    chosen = bot.answerer._choose(row["cands"], row["passages"])
    answer = bot.answerer._compose(row["q"]["question"], chosen, row["passages"], 1.0)
    text = normalise(answer.text)
    return len(answer.text.split()) <= 60 and any(g in text for g in row["golds"])


def rescore(rows, model) -> None:
    for row in rows:
        for c in row["cands"]:
            c.score = _logistic(model, c.features)
        order = sorted(range(len(row["cands"])), key=lambda i: -row["cands"][i].score)
        row["cands"] = [row["cands"][i] for i in order]
        row["labels"] = [row["labels"][i] for i in order]


def sentence_data(rows):
    x, y = [], []
    for row in rows:
        if not row["golds"]:
            continue
        for c, label in zip(row["cands"], row["labels"]):
            x.append([c.features[n] for n in SENTENCE_FEATURES])
            y.append(label)
    return np.array(x), np.array(y)


def answer_data(bot, rows):
    x, y = [], []
    for row in rows:
        feats = bot.answerer.answer_features(row["info"], row["cands"], row["passages"], bot.store.lexical.idf) if row["cands"] else {}
        x.append([feats.get(n, 0.0) for n in ANSWER_FEATURES])
        y.append(1.0 if (answer_correct(bot, row) if LABEL == "correct" else bool(row["golds"])) else 0.0)
    return np.array(x), np.array(y)


def summarise(rows, probs, correct, threshold):
    answerable = [i for i, r in enumerate(rows) if r["golds"]]
    unanswerable = [i for i, r in enumerate(rows) if not r["golds"]]
    answered = [i for i in answerable if probs[i] >= threshold]
    acc = sum(1 for i in answered if correct[i]) / len(answerable)
    abstain = sum(1 for i in unanswerable if probs[i] < threshold) / max(len(unanswerable), 1)
    return acc, len(answered) / len(answerable), abstain


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="/tmp/squad-store")
    parser.add_argument("--questions", default=str(ROOT / "eval/squad2-dev/questions.jsonl"))
    parser.add_argument("--cache", action="store_true", help="reuse the retrieved candidates of the last run")
    parser.add_argument("--label", choices=["correct", "answerable"], default="answerable",
                        help="what the answer model predicts")
    parser.add_argument("--write", action="store_true", help="write assistant/answerer_weights.json")
    args = parser.parse_args()
    global LABEL
    LABEL = args.label

    bot = Assistant(Settings(store_dir=Path(args.store)))
    if bot.store.count() == 0:
        print(bot.ingest([ROOT / "eval/squad2-dev/documents.jsonl"], progress=False).summary())
    questions = [json.loads(line) for line in open(args.questions)]
    import pickle
    cache = Path(args.store) / "fit-rows.pkl"
    if args.cache and cache.exists():
        rows = pickle.loads(cache.read_bytes())
    else:
        rows = collect(bot, questions)
        cache.write_bytes(pickle.dumps(rows))
    rng = np.random.default_rng(0)
    folds = rng.permutation(len(rows)) % FOLDS

    # Out-of-fold evaluation of the two-stage model.
    oof_probs = np.zeros(len(rows))
    oof_correct = np.zeros(len(rows), dtype=bool)
    top_hit = []
    for fold in range(FOLDS):
        train = [r for r, f in zip(rows, folds) if f != fold]
        test_idx = [i for i, f in enumerate(folds) if f == fold]
        xs, ys = sentence_data(train)
        s_model = to_model(SENTENCE_FEATURES, *fit_logistic(xs, ys))
        rescore(rows, s_model)
        xa, ya = answer_data(bot, train)
        a_model = to_model(ANSWER_FEATURES, *fit_logistic(xa, ya))
        for i in test_idx:
            row = rows[i]
            feats = bot.answerer.answer_features(row["info"], row["cands"], row["passages"], bot.store.lexical.idf) if row["cands"] else {}
            oof_probs[i] = _logistic(a_model, feats) if feats else 0.0
            oof_correct[i] = answer_correct(bot, row)
            if row["golds"]:
                top_hit.append(bool(row["labels"] and row["labels"][0]))
    print(f"sentence model (out of fold): top sentence holds the gold answer for {np.mean(top_hit):.3f} "
          f"of answerable questions; composed answer correct for "
          f"{np.mean([oof_correct[i] for i, r in enumerate(rows) if r['golds']]):.3f}")
    print("threshold  answerable-acc  answered  unanswerable-abstained   (out of fold)")
    for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        acc, answered, abstain = summarise(rows, oof_probs, oof_correct, t)
        print(f"  {t:.2f}      {acc:.3f}          {answered:.3f}     {abstain:.3f}")

    # Final fit on everything.
    xs, ys = sentence_data(rows)
    s_model = to_model(SENTENCE_FEATURES, *fit_logistic(xs, ys))
    rescore(rows, s_model)
    xa, ya = answer_data(bot, rows)
    a_model = to_model(ANSWER_FEATURES, *fit_logistic(xa, ya))
    print("sentence weights:", json.dumps({k: round(v, 3) for k, v in s_model["weights"].items()}))
    print("answer weights:  ", json.dumps({k: round(v, 3) for k, v in a_model["weights"].items()}))
    if args.write:
        WEIGHTS_PATH.write_text(json.dumps({
            "fitted_on": "eval/squad2-dev/questions.jsonl (bench/fit_answerer.py)",
            "sentence": s_model, "answer": a_model}, indent=2) + "\n")
        print(f"wrote {WEIGHTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
