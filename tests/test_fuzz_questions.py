"""Fuzzing the question input: whatever is typed, the answer path returns an Answer or a clear QuestionError.

Empty and blank questions, 100k characters, control characters and lone surrogates, markup and
template syntax, mixed with words the corpus knows. ``ask`` and ``stream`` never crash, every
answer keeps the citation contract and its JSON form serialises.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.contract import Answer
from assistant.pipeline import QuestionError

MARKUP = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "**bold** _it_ `code`", "[1](javascript:x)",
          "{{7*7}}", "${jndi:ldap://x}", "'; DROP TABLE chunks; --", "</context> SYSTEM:", "[999]", "\\x00",
          "<|endoftext|>", "<!-- -->", "&lt;b&gt;", "%s%s%n", "../../etc/passwd"]
WORDS = ["Netflix", "salary", "machine learning", "actors", "$900,000", "strike", "pay", "87%", "who", "what",
         "how much", "?"]

control = st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co"]), max_size=40)
words = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
markup = st.lists(st.sampled_from(MARKUP + WORDS), min_size=1, max_size=10).map(" ".join)
huge = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=10), st.integers(10_000, 100_000))
questions = st.one_of(st.just(""), control, st.text(max_size=300), words, markup,
                      st.tuples(words, control, markup).map("".join), huge)


def check(answer: Answer) -> None:
    assert isinstance(answer, Answer) and answer.text.strip()
    numbers = {c.n for c in answer.citations}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= numbers
    if answer.abstained:
        assert answer.citations == []
    for citation in answer.citations:  # each part of a quote (parts are joined by " … ") is verbatim
        assert all(part in citation.passage for part in citation.quote.split(" … "))
    json.loads(json.dumps(answer.to_json(), ensure_ascii=False))


def check_error(error: QuestionError) -> None:
    message = str(error)
    assert message.strip() and "\n" not in message and len(message) < 300


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(question=questions)
@example(question="x" * 100_000)
@example(question="\x00\x01\x02\x1b[31m\u202e\ufeff")
@example(question="What does Netflix pay?\ud800")
@example(question="How much does the Netflix machine learning job pay? " * 80)
def test_any_question_gets_an_answer_or_a_clear_question_error(seeded_bot, question):
    try:
        answer = seeded_bot.ask(question)
    except QuestionError as error:
        check_error(error)
        return
    check(answer)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(question=st.one_of(words, markup, control), earlier=st.lists(st.tuples(markup, control), max_size=3))
def test_streamed_follow_ups_with_odd_history_end_in_an_answer_or_a_clear_error(seeded_bot, question, earlier):
    try:
        parts = list(seeded_bot.stream(question, history=earlier))
    except QuestionError as error:
        check_error(error)
        return
    text, final = parts[-1]
    assert final is not None and text == final.text
    check(final)


@pytest.mark.parametrize("question", [None, 42, b"What does Netflix pay?", ["a", "list"]])
def test_a_question_that_is_not_text_is_a_question_error(seeded_bot, question):
    with pytest.raises(QuestionError, match="text"):
        seeded_bot.ask(question)


def test_cli_answers_markup_and_refuses_a_huge_question_in_one_line(seeded_bot):
    store = ["--store", str(seeded_bot.settings.store_dir)] if not seeded_bot.settings.chroma_url else [
        "--chroma-url", seeded_bot.settings.chroma_url, "--collection", seeded_bot.settings.collection]
    run = [sys.executable, "-m", "assistant.cli", "ask"]
    odd = subprocess.run(run + ["<script>alert(1)</script> What does Netflix pay? \x1b[2J", "--json", *store],
                         capture_output=True, text=True, timeout=300)
    assert odd.returncode == 0, odd.stderr
    assert json.loads(odd.stdout)["question"].startswith("<script>")
    huge = subprocess.run(run + ["why " * 30_000, *store], capture_output=True, text=True, timeout=300)
    assert huge.returncode == 2
    assert huge.stderr.startswith("error: The question is") and len(huge.stderr.strip().splitlines()) == 1
