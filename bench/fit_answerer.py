"""Fit the extractive answerer's two models on a mix of what users ask, and measure them honestly.

The mix (bench/answer_cases.py): every question set (squad2-dev, the bundled corpus, and news-dev
where ../shared/data/news-dev exists) asked of its own corpus (answerable questions, and SQuAD's
adversarial unanswerables) and of every other corpus (off-corpus: should abstain).

1. Sentence model: P(sentence holds a gold answer), over assistant.features.SENTENCE_FEATURES:
   a listwise ranker over each answerable question's candidate sentences, calibrated to a
   probability by a one-feature logistic fit of its score.
2. Answer model: P(the question is answerable here), over assistant.features.ANSWER_FEATURES,
   with a refused answerable question weighing ANSWERABLE_WEIGHT times a wrongly answered one.
   The assistant abstains below ``abstain_threshold`` (assistant/settings.py); from
   ``closest_threshold`` up to it, its abstention quotes the closest sentence (no citation)
   instead of saying that the corpus does not hold the answer.

Protocol (eval/README.md "How the answerer is fitted"): questions are split into 5 folds grouped
by document (a set's questions about one document stay in one fold, in-corpus and off-corpus
alike). For each fold k, both models are fitted on three folds, the abstention threshold is chosen
on fold k+1 (and the closest-sentence floor with it), and fold k, used for neither, is answered:
the "held-out" figures. The "fit" figures
are the final models (fitted on everything) answering the questions they were fitted on.

    python bench/fit_answerer.py --store squad2-dev=/tmp/s --store corpus=/tmp/c --store news-dev=/tmp/n
    python bench/fit_answerer.py --cache /tmp/answer-cases.pkl [--write]   # refit without re-asking
    python bench/fit_answerer.py --cache /tmp/int8.pkl /tmp/fp32.pkl --write  # how the shipped models are fitted

The shipped models are fitted on the cases asked of stores of both vector variants: int8
activations (``embed_quantize``, the default) and exact fp32 (``ASSISTANT_EMBED_QUANTIZE=false``),
so that one weight file serves either setting; the two copies of a question share its fold. With
several caches the held-out figures are also printed for each cache alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import answer_cases  # noqa: E402
from assistant.answering import WEIGHTS_PATH, ExtractiveAnswerer, _logistic  # noqa: E402
from assistant.contract import Answer  # noqa: E402
from assistant.features import ANSWER_FEATURES, SENTENCE_FEATURES  # noqa: E402
from assistant.metrics import MAX_ANSWER_WORDS, answer_text, contains_answer  # noqa: E402

FOLDS = 5
L2 = 5.0
OFF_CORPUS_WEIGHT = 4.0  # all off-corpus cases together weigh as much as this many answerable sets
ANSWERABLE_WEIGHT = 2.0  # refusing an answerable question costs this many wrongly answered unanswerable ones
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.025), 3)
# The threshold policy: refusing an answerable question is the worst failure (a wrong but cited
# sentence can be checked, a refusal cannot), so the threshold is the lowest one at which this
# share of off-corpus questions is refused on the tuning fold.
OFF_CORPUS_REFUSED = 0.965
# Below the threshold, a refusal quotes the closest sentence down to the lowest P(answerable) at
# which this share of the off-corpus questions still gets the plain "the corpus does not contain the
# answer": showing an unrelated sentence labelled as no answer costs little, a bare refusal of an
# answerable question the most.
OFF_CORPUS_PLAIN = 0.90


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2,
                 sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Weights and bias on standardised features (L2-regularised, Newton steps); (w, b, mean, std)."""
    sw = np.ones(len(y)) if sample_weight is None else sample_weight
    mean, std = x.mean(0), x.std(0) + 1e-6
    z1 = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(z1.shape[1])
    reg = np.eye(len(w)) * l2
    reg[-1, -1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-z1 @ w))
        step = np.linalg.solve((z1 * (sw * p * (1 - p))[:, None]).T @ z1 + reg, z1.T @ (sw * (p - y)) + reg @ w)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1]), mean, std


def to_model(names, w, b, mean, std) -> dict:
    """Fold the standardisation into plain weights: z = sum(w_i * x_i) + bias."""
    return {"bias": float(b - sum(wi * mi / si for wi, mi, si in zip(w, mean, std))),
            "weights": {n: float(wi / si) for n, wi, si in zip(names, w, std)}}


def fold_of(case: answer_cases.Case) -> int:
    return int(hashlib.sha1(case.group.encode()).hexdigest(), 16) % FOLDS


class Row:
    """A case with its candidates (features computed once; scores follow the sentence model)."""

    def __init__(self, case: answer_cases.Case, answerer: ExtractiveAnswerer) -> None:
        self.case = case
        self.info, self.candidates = answerer.candidates(case.query, case.passages, case.idf)
        self.labels = [contains_answer(c.text, case.golds) if case.golds else False for c in self.candidates]


def fit_ranker(x: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: float = L2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A listwise ranker: per question, softmax over its candidates with the gold-holding ones as the
    target (conditional logit, L2-regularised, Newton steps on standardised features); (w, mean, std)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = np.zeros(z.shape[1])
    bounds = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
    spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if y[a:b].any()]
    for _ in range(30):
        grad, hess = l2 * w, np.eye(len(w)) * l2
        for a, b in spans:
            zg = z[a:b]
            s = zg @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = y[a:b] / y[a:b].sum()
            grad += zg.T @ (p - q)
            hess += zg.T @ (zg * p[:, None]) - np.outer(zg.T @ p, zg.T @ p)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w, mean, std


def fit_sentence_model(rows: list[Row]) -> dict:
    """P(sentence holds a gold answer): a listwise ranker (which sentence of a question's candidates),
    then calibrated to a probability by a one-feature logistic fit of its score."""
    picked = [r for r in rows if r.case.golds and r.candidates]
    x = np.array([[c.features[n] for n in SENTENCE_FEATURES] for r in picked for c in r.candidates])
    y = np.array([float(label) for r in picked for label in r.labels])
    groups = np.array([i for i, r in enumerate(picked) for _ in r.candidates])
    w, mean, std = fit_ranker(x, y, groups)
    score = ((x - mean) / std) @ w
    (a,), b, m, sd = fit_logistic(score[:, None], y, l2=1e-3)
    scale = a / sd[0]
    return to_model(SENTENCE_FEATURES, w * scale, b - scale * m[0], mean, std)


def answers_of(rows: list[Row], answerer: ExtractiveAnswerer, sentence_model: dict) -> list[tuple]:
    """Per row: (answer features, the composed answer or None, the closest-sentence abstention or
    None) under ``sentence_model``."""
    answerer.sentence_model = sentence_model
    out = []
    for r in rows:
        for c in r.candidates:
            c.score = _logistic(sentence_model, c.features)
        order = sorted(range(len(r.candidates)), key=lambda i: -r.candidates[i].score)
        r.candidates[:] = [r.candidates[i] for i in order]
        r.labels[:] = [r.labels[i] for i in order]
        if not r.candidates:
            out.append(({}, None, None))
            continue
        assessment = answerer_assessment(answerer, r, r.candidates)
        chosen = answerer.choose(assessment, r.case.passages)
        out.append((assessment.features, answerer.compose(r.case.query, chosen, r.case.passages, 1.0),
                    answerer.closest(r.case.query, assessment, r.case.passages)))
    return out


def answerer_assessment(answerer: ExtractiveAnswerer, row: Row, candidates):
    """The answerer's assessment of ``row`` with ``candidates`` already scored (no re-featurising)."""
    original = answerer.candidates
    answerer.candidates = lambda *_: (row.info, candidates)
    try:
        return answerer.assess(row.case.query, row.case.passages, row.case.idf)
    finally:
        answerer.candidates = original


def fit_answer_model(rows: list[Row], answers: list[tuple]) -> dict:
    x = [[f.get(n, 0.0) for n in ANSWER_FEATURES] for f, *_ in answers]
    y = [1.0 if r.case.kind == "answerable" else 0.0 for r in rows]
    # Each set's adversarial questions weigh as one group (the small bundled corpus as much as
    # squad2-dev), each set's answerable ones as ANSWERABLE_WEIGHT groups (a false refusal is the
    # worst failure); off-corpus questions, many and easy, weigh OFF_CORPUS_WEIGHT groups together.
    keys = [(r.case.set, r.case.kind) if r.case.kind != "off-corpus" else ("", "off-corpus") for r in rows]
    sizes = {k: keys.count(k) for k in set(keys)}
    total = len(rows) / (len(sizes) - 1 + OFF_CORPUS_WEIGHT)
    cost = {"off-corpus": OFF_CORPUS_WEIGHT, "answerable": ANSWERABLE_WEIGHT}
    weight = [total * cost.get(k[1], 1.0) / sizes[k] for k in keys]
    return to_model(ANSWER_FEATURES, *fit_logistic(np.array(x), np.array(y), sample_weight=np.array(weight)))


def outcome(row: Row, p: float, answer: Answer | None, threshold: float) -> str:
    if answer is None or p < threshold:
        return "refused"
    if row.case.kind != "answerable":
        return "answered"
    text = answer_text(answer.text)
    return "right" if len(text.split()) <= MAX_ANSWER_WORDS and contains_answer(text, row.case.golds) else "wrong"


def choose_threshold(rows: list[Row], probs: list[float], share: float = OFF_CORPUS_REFUSED) -> float:
    """The lowest threshold at which ``share`` of the off-corpus ``rows`` fall below it."""
    off = np.array([p for r, p in zip(rows, probs) if r.case.kind == "off-corpus"])
    return float(next((t for t in THRESHOLDS if np.mean(off < t) >= share), THRESHOLDS[-1]))


def report_closest(rows: list[Row], probs: list[float], answers: list[tuple], thresholds: list[float],
                   floors: list[float]) -> None:
    """Of the refused questions, the share whose refusal quotes the closest sentence, and (answerable
    ones) the share whose quote holds a gold answer."""
    print("\n  refusals quoting the closest sentence (held-out)")
    print(f"  {'set':<11} {'kind':<12} {'refused':>7}  closest  holds answer")
    for key in sorted({(r.case.set, r.case.kind) for r in rows}):
        refused = [i for i, r in enumerate(rows) if (r.case.set, r.case.kind) == key and probs[i] < thresholds[i]]
        shown = [i for i in refused if answers[i][2] is not None and probs[i] >= floors[i]]
        holds = [i for i in shown if rows[i].case.golds and contains_answer(answers[i][2].closest.quote,
                                                                             rows[i].case.golds)]
        share = (lambda part: f"{len(part) / len(refused):.3f}" if refused else "  -  ")
        print(f"  {key[0]:<11} {key[1]:<12} {len(refused):>7}  {share(shown)}    "
              f"{share(holds) if key[1] == 'answerable' else '  -  '}")


def report(rows: list[Row], probs: list[float], answers: list[tuple], thresholds: list[float], label: str) -> dict:
    """Print and return the figures per set: accuracy, answered, refused, citations, verbatim quotes, and
    the standard error of the headline figure (accuracy of answerable questions, else refused)."""
    figures = {}
    print(f"\n{label}")
    print(f"  {'set':<11} {'kind':<12} {'n':>4}  accuracy  answered  refused  citation  verbatim  s.e.")
    keys = sorted({(r.case.set, r.case.kind) for r in rows})
    for key in keys:
        idx = [i for i, r in enumerate(rows) if (r.case.set, r.case.kind) == key]
        outs = [outcome(rows[i], probs[i], answers[i][1], thresholds[i]) for i in idx]
        answered = [i for i, o in zip(idx, outs) if o != "refused"]
        verbatim = all(_verbatim(answers[i][1]) for i in answered)
        line = {"n": len(idx), "refused": outs.count("refused") / len(idx)}
        if key[1] == "answerable":
            right = [i for i, o in zip(idx, outs) if o == "right"]
            line.update(accuracy=len(right) / len(idx), answered=len(answered) / len(idx),
                        citation=np.mean([_cited(rows[i], answers[i][1]) for i in right]) if right else None)
        # The standard error of the line's headline figure (accuracy, else refused) over its distinct
        # questions (a question asked of stores of both vector variants is one observation, not two).
        headline = line.get("accuracy", line["refused"])
        line["se"] = float(np.sqrt(headline * (1 - headline) / len({(rows[i].case.corpus, rows[i].case.id) for i in idx})))
        print(f"  {key[0]:<11} {key[1]:<12} {len(idx):>4}  {_f(line.get('accuracy'))}     "
              f"{_f(line.get('answered'))}     {_f(line['refused'])}    {_f(line.get('citation'))}     "
              f"{'yes' if verbatim else 'NO':<8}  {line['se']:.3f}")
        figures["/".join(key)] = line
    return figures


def _cited(row: Row, answer: Answer) -> bool:
    evidence = _evidence(row.case)
    return any(c.doc_id in evidence or contains_answer(c.quote, row.case.golds) for c in answer.citations)


_EVIDENCE: dict[tuple, set] = {}


def _evidence(case) -> set:
    key = (case.set, case.id)
    if not _EVIDENCE:
        for name, (_, questions) in answer_cases.available_sets().items():
            for line in open(questions):
                q = json.loads(line)
                _EVIDENCE[(name, q["id"])] = set(q.get("evidence_doc_ids") or [])
    return _EVIDENCE.get(key, set())


def _verbatim(answer: Answer) -> bool:
    return all(part in c.passage for c in answer.citations for part in c.quote.split(" … "))


def _f(value) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", action="append", default=[], metavar="SET=DIR",
                        help="an ingested store of a set's documents (ask every set's questions of it)")
    parser.add_argument("--cache", type=Path, nargs="+", default=[Path("/tmp/answer-cases.pkl")],
                        help="the asked cases: written (to the first) after --store runs; all are read")
    parser.add_argument("--write", action="store_true", help="write assistant/answerer_weights.json")
    args = parser.parse_args()

    if args.store:
        from assistant.pipeline import Assistant
        from assistant.settings import Settings

        cases = []
        sets = answer_cases.available_sets()
        for spec in args.store:
            name, _, store = spec.partition("=")
            bot = Assistant(Settings(store_dir=Path(store)))
            if bot.store.count() == 0:
                print(f"{store}: empty store; ingest {sets[name][0]} into it first", file=sys.stderr)
                return 1
            cases += answer_cases.ask_cases(bot, name, sets)
            print(f"asked {name}: {len(cases)} cases so far", file=sys.stderr)
        answer_cases.save(cases, args.cache[0])
    loaded = [answer_cases.load(path) for path in args.cache]
    cases = [case for part in loaded for case in part]
    source = np.array([k for k, part in enumerate(loaded) for _ in part])
    # The fixed prior models, not the shipped weights: which copy of a sentence that overlapping
    # chunks repeat is kept must not depend on a model fitted on these very cases.
    answerer = ExtractiveAnswerer(weights_path=None)
    rows = [Row(c, answerer) for c in cases]
    folds = np.array([fold_of(c) for c in cases])
    print(f"{len(rows)} cases: " + ", ".join(f"{k}: {sum(r.case.kind == k for r in rows)}"
                                             for k in ("answerable", "adversarial", "off-corpus")))

    # Held-out: fit on three folds, choose the threshold on the next, answer the fold used for neither.
    probs, answers, thresholds = [0.0] * len(rows), [({}, None, None)] * len(rows), [0.5] * len(rows)
    floors = [1.0] * len(rows)
    fold_thresholds: list[float] = []
    fold_floors: list[float] = []
    for k in range(FOLDS):
        tune_k = (k + 1) % FOLDS
        fit = [r for r, f in zip(rows, folds) if f not in (k, tune_k)]
        s_model = fit_sentence_model(fit)
        a_model = fit_answer_model(fit, answers_of(fit, answerer, s_model))
        tune = [r for r, f in zip(rows, folds) if f == tune_k]
        tune_answers = answers_of(tune, answerer, s_model)
        tune_probs = [_logistic(a_model, f) if f else 0.0 for f, *_ in tune_answers]
        threshold = choose_threshold(tune, tune_probs)
        floor = min(choose_threshold(tune, tune_probs, OFF_CORPUS_PLAIN), threshold)
        test_idx = [i for i, f in enumerate(folds) if f == k]
        for i, result in zip(test_idx, answers_of([rows[i] for i in test_idx], answerer, s_model)):
            answers[i] = result
            probs[i] = _logistic(a_model, result[0]) if result[0] else 0.0
            thresholds[i], floors[i] = threshold, floor
        fold_thresholds.append(threshold)
        fold_floors.append(floor)
        print(f"fold {k}: threshold {threshold:.3f}, closest sentence from {floor:.3f} (chosen on fold {tune_k})")
    held_out = report(rows, probs, answers, thresholds, "held-out (out-of-fold, grouped by document)")
    report_closest(rows, probs, answers, thresholds, floors)
    if len(args.cache) > 1:
        for k, path in enumerate(args.cache):
            idx = np.flatnonzero(source == k)
            report([rows[i] for i in idx], [probs[i] for i in idx], [answers[i] for i in idx],
                   [thresholds[i] for i in idx], f"held-out, the cases of {path} alone")

    # The shipped models: fitted on everything; the threshold by the same policy, applied to them.
    s_model = fit_sentence_model(rows)
    final_answers = answers_of(rows, answerer, s_model)
    a_model = fit_answer_model(rows, final_answers)
    final_probs = [_logistic(a_model, f) if f else 0.0 for f, *_ in final_answers]
    threshold = choose_threshold(rows, final_probs)
    floor = min(choose_threshold(rows, final_probs, OFF_CORPUS_PLAIN), threshold)
    report(rows, final_probs, final_answers, [threshold] * len(rows), f"fit (in-sample, threshold {threshold:.3f})")
    print("\nsentence weights:", json.dumps({k: round(v, 3) for k, v in s_model["weights"].items()}))
    print("answer weights:  ", json.dumps({k: round(v, 3) for k, v in a_model["weights"].items()}))
    print(f"abstain_threshold: {threshold:.3f} (the policy on the final models; folds chose "
          f"{', '.join(f'{t:.3f}' for t in fold_thresholds)}; set it in assistant/settings.py)")
    print(f"closest_threshold: {floor:.3f} (the policy on the final models; folds chose "
          f"{', '.join(f'{t:.3f}' for t in fold_floors)}; set it in assistant/settings.py)")
    if args.write:
        WEIGHTS_PATH.write_text(json.dumps({
            "fitted_by": "bench/fit_answerer.py", "sets": sorted({c.set for c in cases}),
            "abstain_threshold": round(threshold, 3), "closest_threshold": round(floor, 3),
            "sentence": s_model, "answer": a_model}, indent=2) + "\n")
        print(f"wrote {WEIGHTS_PATH}")
    return 0 if held_out else 1


if __name__ == "__main__":
    sys.exit(main())
