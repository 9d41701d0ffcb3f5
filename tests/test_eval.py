"""The eval harness: metric definitions, an end-to-end run, and the regression gate firing on a real regression."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.contract import CLOSEST_MESSAGE
from assistant.gate import compare, make_baseline
from assistant.metrics import (
    EvalError,
    EvalQuestion,
    EvalRun,
    abstention_curve,
    aggregate,
    contains_answer,
    evidence_rank,
    load_questions,
    normalize_answer,
    score_answer,
    token_f1,
)
from assistant.pipeline import Assistant
from assistant.retrieval import Retriever
from tests.conftest import CORPUS, ROOT, SQUAD

BUNDLED_QUESTIONS = ROOT / "eval" / "corpus" / "questions.jsonl"
NETFLIX = "netflix-ai-job-ad.md"


def q(answers, evidence=(NETFLIX,), type_="extractive", **kw) -> EvalQuestion:
    return EvalQuestion(kw.pop("id", "q1"), kw.pop("question", "What?"), list(answers), list(evidence),
                        type_ if answers else "unanswerable", **kw)


def record(answer: str, abstained: bool = False, citations=(), retrieved=(NETFLIX,), latency=10.0) -> dict:
    return {"id": "q1", "question": "What?", "answer": answer, "abstained": abstained,
            "citations": list(citations), "retrieved_doc_ids": list(retrieved), "latency_ms": latency}


# ---------------------------------------------------------------- metric definitions


def test_normalisation_is_squad_style_and_drops_unicode_punctuation():
    assert normalize_answer("The  $300,000 Salary!") == "300000 salary"
    assert normalize_answer("“Deep Fake Love,” a show") == "deep fake love show"
    assert normalize_answer("An apple, the pear") == "apple pear"


def test_gold_answer_must_occur_as_whole_words():
    assert contains_answer("It reached 36% of households.", ["36%"])
    assert not contains_answer("It reached 360 households.", ["36%"])
    assert contains_answer("Actors like Tom Cruise joined.", ["George Clooney", "tom cruise"])
    assert not contains_answer("anything", ["the"]), "a gold answer that normalises to nothing matches nothing"


def test_answer_over_60_words_is_wrong_even_when_it_contains_the_gold_answer():
    gold = q(["$900,000"])
    sixty = " ".join(["word"] * 58 + ["$900,000", "salary"]) + " [1] [2]"
    sixty_one = "extra " + sixty
    assert score_answer(gold, record(sixty)).correct, "markers [n] are not words"
    long = score_answer(gold, record(sixty_one))
    assert not long.correct and long.failure == "answer longer than 60 words"


def test_abstaining_is_right_only_for_unanswerable_questions():
    abstention = record("The corpus does not contain the answer to this question.", abstained=True)
    answerable = score_answer(q(["May"]), abstention)
    assert not answerable.correct and not answerable.answered and answerable.f1 == 0.0
    unanswerable = score_answer(q([], evidence=()), abstention)
    assert unanswerable.correct and unanswerable.f1 is None
    assert not score_answer(q([], evidence=()), record("In May. [1]")).correct


def test_a_refusal_quoting_the_answer_as_the_closest_sentence_is_still_wrong_and_says_so():
    closest = lambda sentence, title: record(  # noqa: E731
        f"{CLOSEST_MESSAGE}\n“{sentence}” — {title} (a.md)", abstained=True, retrieved=["a.md"])
    gold = q(["Tom Cruise"], evidence=["a.md"])
    holds = score_answer(gold, closest("Tom Cruise and George Clooney joined in July.", "The strike"))
    assert not holds.correct and not holds.answered
    assert holds.failure == "abstained, quoting as the closest sentence one that holds the answer"
    title_only = score_answer(gold, closest("Actors joined in July.", "Tom Cruise joins the strike"))
    assert title_only.failure == "abstained though the evidence was retrieved", "the title is not the quote"
    assert score_answer(q([], evidence=()), closest("Actors joined in July.", "The strike")).correct


def test_token_f1_takes_the_best_gold_answer():
    assert token_f1("the cat sat on the mat", ["cat on mat"]) == pytest.approx(6 / 7)
    assert token_f1("the cat sat on the mat", ["dog", "cat sat on mat"]) == 1.0
    assert token_f1("nothing shared", ["cat"]) == 0.0


def test_evidence_rank_counts_distinct_documents():
    assert evidence_rank(["a", "b", "a", "c"], ["c"]) == 3
    assert evidence_rank(["a", "b"], ["c"]) is None


def test_retrieval_and_citation_metrics_over_hand_made_answers():
    cite = lambda doc, quote: {"n": 1, "doc_id": doc, "quote": quote}  # noqa: E731
    questions = [
        q(["May"], evidence=["d1"], id="a"),          # correct, evidence ranked 1, cites evidence
        q(["1960s"], evidence=["d2"], id="b"),        # correct, evidence ranked 2, cites other doc quoting gold
        q(["Tom Cruise"], evidence=["d3"], id="c"),   # correct, evidence missed, citation wrong
        q(["Clooney"], evidence=["d4"], id="d"),      # abstained
        q([], evidence=(), id="e"),                   # unanswerable, wrongly answered
    ]
    records = [
        record("In May. [1]", citations=[cite("d1", "in May")], retrieved=["d1", "x"], latency=10),
        record("Since the 1960s. [1]", citations=[cite("x", "since the 1960s")], retrieved=["x", "d2"], latency=20),
        record("Tom Cruise did. [1]", citations=[cite("x", "someone did")], retrieved=["x", "y"], latency=30),
        record("The corpus does not contain the answer to this question.", abstained=True,
               retrieved=["x", "y", "z", "w", "v", "d4"], latency=40),
        record("Something. [1]", citations=[cite("x", "something")], retrieved=["x"], latency=50),
    ]
    m = aggregate([score_answer(qq, r) for qq, r in zip(questions, records)])
    assert (m["answerable"], m["with_evidence"], m["answered_correctly"]) == (4, 4, 3)
    assert m["answer_accuracy"] == 0.6
    assert m["answered_rate"] == 0.75
    assert m["abstention_accuracy"] == 0.0
    assert m["citation_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["hit@1"] == 0.25 and m["hit@5"] == 0.5
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 0 + 1 / 6) / 4, abs=1e-4)
    assert m["latency_p50_ms"] == 30.0 and m["latency_p95_ms"] == 48.0


def test_abstention_curve_trades_answered_rate_against_abstentions():
    questions = [q(["May"], id="a"), q(["June"], id="b"), q([], evidence=(), id="c")]
    records = [record("In May. [1]"), record("In July. [1]"),
               record("The corpus does not contain the answer to this question.", abstained=True)]
    scores = [score_answer(qq, r, c) for qq, r, c in zip(questions, records, (0.9, 0.6, 0.3))]
    rows = {row["threshold"]: row for row in abstention_curve(scores, configured=0.5)}
    assert rows[0.2]["answered_rate"] == 1.0 and rows[0.2]["abstention_accuracy"] == 0.0
    assert rows[0.2]["precision_answered"] is None, "below the configured threshold correctness is unknown"
    assert rows[0.5]["precision_answered"] == 0.5, "the unanswerable question's abstention is not an answer"
    assert rows[0.7]["answered_rate"] == 0.5 and rows[0.7]["precision_answered"] == 1.0
    assert rows[0.7]["answer_accuracy"] == pytest.approx(2 / 3, abs=1e-4)


def test_question_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"id": "a", "question": "Why?"}\n{not json\n')
    with pytest.raises(EvalError, match=f"^{re.escape(str(bad))}:2: not a JSON object"):
        load_questions(bad)
    bad.write_text('{"id": "a", "question": "Why?"}\n{"id": "a", "question": "Who?"}\n')
    with pytest.raises(EvalError, match="duplicate id 'a'"):
        load_questions(bad)


def test_bundled_question_set_has_answerable_unanswerable_and_follow_up_cases():
    questions = load_questions(BUNDLED_QUESTIONS)
    assert sum(x.answerable for x in questions) >= 20
    assert sum(not x.answerable for x in questions) >= 8
    assert sum(bool(x.history) for x in questions) >= 5
    text = (CORPUS / NETFLIX).read_text()
    for x in questions:
        assert x.evidence_doc_ids == ([NETFLIX] if x.answerable else [])
        if x.answerable:  # every gold answer is really in the article
            assert any(contains_answer(text, [a]) for a in x.answers), x.id


# ---------------------------------------------------------------- the gate logic


def _run_of(correct_flags: list[bool]) -> EvalRun:
    questions = [q(["May"], id=f"q{i}", question=f"Question {i}?") for i in range(len(correct_flags))]
    records = [record("In May. [1]" if ok else "In June. [1]") | {"id": f"q{i}"}
               for i, ok in enumerate(correct_flags)]
    scores = [score_answer(qq, r) for qq, r in zip(questions, records)]
    m = aggregate(scores)
    return EvalRun("toy", "docs", "questions.jsonl", {"top_k": 5}, questions, records, scores, m, {}, [])


def test_gate_tolerates_one_question_and_fires_beyond_it():
    baseline = make_baseline(_run_of([True] * 10))
    assert baseline["tolerances"]["answer_accuracy"] == pytest.approx(0.1, abs=1e-3), "one question of ten"
    assert baseline["tolerances"]["citation_accuracy"] == pytest.approx(0.1, abs=1e-3)
    one_worse = compare(_run_of([False] + [True] * 9), baseline)
    assert not one_worse.failed and [f.id for f in one_worse.broke] == ["q0"]
    two_worse = compare(_run_of([False, False] + [True] * 8), baseline)
    assert two_worse.failed
    assert any("answer_accuracy" in line and "FAIL" in line for line in two_worse.lines())
    better = compare(_run_of([True] * 10), make_baseline(_run_of([False, False] + [True] * 8)))
    assert not better.failed, "improvements never fail the gate"
    assert [f.id for f in better.fixed] == ["q0", "q1"]


def test_updating_a_baseline_keeps_hand_set_tolerances_and_rescales_default_ones():
    previous = make_baseline(_run_of([True] * 10))
    previous["tolerances"]["answer_accuracy"] = 0.3
    updated = make_baseline(_run_of([True] * 20), previous)
    assert updated["tolerances"]["answer_accuracy"] == 0.3
    assert updated["tolerances"]["token_f1"] == pytest.approx(0.05, abs=1e-3), "one question of twenty now"


# ---------------------------------------------------------------- end to end


def _question_file(path: Path, ids: list[str], **overrides) -> Path:
    rows = {json.loads(line)["id"]: json.loads(line) for line in BUNDLED_QUESTIONS.read_text().splitlines()}
    with open(path, "w") as fh:
        for qid in ids:
            fh.write(json.dumps(rows[qid] | overrides.get(qid, {})) + "\n")
    return path


def test_eval_on_the_bundled_corpus_writes_answers_metrics_report_and_replays_history(tmp_path, monkeypatch):
    questions = _question_file(tmp_path / "questions.jsonl", ["salary-range", "ceo", "fu-pay"],
                               **{"salary-range": {"question_date": "2023-08-01"}})
    calls = []
    original = Assistant.ask

    def spy(self, question, top_k=None, filters=None, history=None):
        answer = original(self, question, top_k=top_k, filters=filters, history=history)
        calls.append((question, filters, history, answer.text))
        return answer

    monkeypatch.setattr(Assistant, "ask", spy)
    out = tmp_path / "out"
    rc = main(["eval", "--documents", str(CORPUS), "--questions", str(questions), "--out", str(out), "--quiet"])
    assert rc == 0

    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    contract = {"id", "question", "answer", "abstained", "citations", "retrieved_doc_ids", "latency_ms"}
    assert [a["id"] for a in answers] == ["salary-range", "ceo", "fu-pay"]
    assert all(set(a) == contract for a in answers), "the ask --json object (eval/README.md) plus the id"
    assert all("confidence" in json.loads(line) for line in (out / "details.jsonl").read_text().splitlines())

    # question_date becomes the as-of filter; the follow-up is asked after its earlier turn, with its answer
    assert calls[0][1].as_of == "2023-08-01"
    earlier, follow_up = calls[2], calls[3]
    assert earlier[0] == "What position did Netflix place an ad for?" and earlier[2] is None
    assert follow_up[0] == "How much does it pay?" and follow_up[2] == [(earlier[0], earlier[3])]

    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert (metrics["questions"], metrics["answerable"], metrics["unanswerable"]) == (3, 2, 1)
    # Both answerable questions are answered with the salary sentence, the off-corpus one abstains.
    assert [a["abstained"] for a in answers] == [False, True, False]
    assert all("$300,000 to $900,000" in answers[i]["answer"] for i in (0, 2))
    assert (metrics["answer_accuracy"], metrics["answered_rate"], metrics["abstention_accuracy"]) == (1.0, 1.0, 1.0)
    assert 0.05 < metrics["token_f1"] < 0.5, "a whole sentence around a four-word gold answer"
    assert metrics["hit@1"] == metrics["mrr@10"] == 1.0, "a one-article corpus always retrieves the evidence first"
    report = (out / "report.md").read_text()
    for section in ("## Metrics", "## Where answers fail", "## By type", "## Worst failures", "## Abstention trade-off"):
        assert section in report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_question_file_is_one_clear_line(tmp_path, capsys):
    rc = main(["eval", "--documents", str(CORPUS), "--questions", str(tmp_path / "nope.jsonl"), "--quiet"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == f"error: question file {tmp_path / 'nope.jsonl'} not found"


def test_eval_names_why_a_document_was_skipped(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(CORPUS / NETFLIX, docs / NETFLIX)
    (docs / "notes.txt").write_text("")
    questions = _question_file(tmp_path / "questions.jsonl", ["salary-range"])
    rc = main(["eval", "--documents", str(docs), "--questions", str(questions), "--out", str(tmp_path / "out"),
               "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "failed 1;" in out
    assert "  notes.txt: empty file; skipped\n" in out, "the reason, not only the count"


# ---------------------------------------------------------------- the gate on a real regression


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory) -> Path:
    """The seed article plus 20 squad2-dev paragraphs as distractors, so retrieval can go wrong."""
    docs = tmp_path_factory.mktemp("mixed") / "docs"
    docs.mkdir()
    shutil.copy(CORPUS / NETFLIX, docs / NETFLIX)
    lines = (SQUAD / "documents.jsonl").read_text().splitlines()[:20]
    (docs / "distractors.jsonl").write_text("\n".join(lines) + "\n")
    return docs


def _reversed_retrieval(monkeypatch):
    """Degrade the retriever on purpose: hand the answerer the worst candidates instead of the best."""
    original = Retriever._search

    def worst_first(self, question, filters, top_k):
        return original(self, question, filters, top_k)[::-1]

    monkeypatch.setattr(Retriever, "_search", worst_first)


def test_gate_fires_when_the_retriever_is_degraded_and_passes_otherwise(tmp_path, mixed_corpus, monkeypatch, capsys):
    questions = _question_file(tmp_path / "questions.jsonl", [
        "salary-range", "actors-pay", "dating-show", "famous-strikers", "game-director-pay", "world-cup"])
    baseline = tmp_path / "baseline" / "mixed.json"
    store = tmp_path / "store"
    common = ["eval", "--documents", str(mixed_corpus), "--questions", str(questions), "--store", str(store),
              "--baseline", str(baseline), "--quiet"]

    assert main(common + ["--out", str(tmp_path / "base"), "--update-baseline"]) == 0
    accepted = json.loads(baseline.read_text())
    assert accepted["metrics"]["hit@1"] >= 0.8
    assert set(accepted["questions"]) == {"salary-range", "actors-pay", "dating-show", "famous-strikers",
                                          "game-director-pay", "world-cup"}
    capsys.readouterr()

    assert main(common + ["--out", str(tmp_path / "same")]) == 0, "an unchanged pipeline passes the gate"
    same = capsys.readouterr().out
    assert "gate passed" in same and "right -> wrong: 0" in same

    _reversed_retrieval(monkeypatch)
    assert main(common + ["--out", str(tmp_path / "degraded")]) == 1, "a degraded retriever fails the gate"
    degraded = capsys.readouterr().out
    assert "gate FAILED" in degraded
    assert any(line.strip().startswith("hit@1") and line.endswith("FAIL") for line in degraded.splitlines())
    right = [qid for qid, v in accepted["questions"].items() if v["correct"]]
    assert right and "right -> wrong: 0" not in degraded
    assert "**FAILED**" in (tmp_path / "degraded" / "report.md").read_text()
