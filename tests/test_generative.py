"""Generative answers (ASSISTANT_LLM=openai) against a real OpenAI-compatible server on loopback.

The server (tests/fake_openai.py) speaks the chat-completions protocol, JSON and SSE, with
scripted replies; the client is the real LlamaIndex OpenAILike over HTTP. Replies that must cite
the right passage read the prompt the assistant sent, as a model would.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from assistant.contract import ABSTAIN_MESSAGE, Passage
from assistant.answering import ExtractiveAnswerer
from assistant.chunking import count_tokens
from assistant.cli import main
from assistant.citations import check_citations, split_generated
from assistant.evaluation import run_eval, write_outputs
from assistant.generative import NOT_IN_CORPUS, TOKENIZER_HEADROOM, fit_passages
from assistant.llm import LLMError
from assistant.pipeline import Assistant
from assistant.settings import Settings
from assistant.support import SupportScorer
from tests.conftest import CORPUS, ROOT
from tests.fake_openai import FakeOpenAI, Reply

SALARY = "What salary does Netflix offer for the machine learning product manager job?"


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def llm_bot(seeded_bot: Assistant, server: FakeOpenAI, **overrides) -> Assistant:
    """An assistant over the seeded store that answers through the fake endpoint."""
    values = dict(llm="openai", llm_base_url=server.base_url, llm_model="fake-model", llm_timeout=5.0,
                  llm_backoff=0.01, llm_retries=2, llm_api_key="sk-test-secret-123")
    values.update(overrides)
    return Assistant(seeded_bot.settings.with_overrides(**values))


def prompt_of(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"])


def passage_numbers(body: dict) -> dict[int, str]:
    """The numbered passages of an answer prompt: {n: text}."""
    blocks = re.findall(r"^\[(\d+)\][^\n]*\n(.*?)(?=\n\n\[\d+\]|\n\nQuestion:)", prompt_of(body), re.M | re.S)
    return {int(n): text for n, text in blocks}


def citing(sentence_template: str, needle: str):
    """A scripted model: the template with {n} = the number of the passage that contains ``needle``."""
    def reply(body: dict) -> Reply:
        n = next(k for k, text in passage_numbers(body).items() if needle in text)
        return Reply(sentence_template.format(n=n))
    return reply


def markers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


# ---------------------------------------------------------------- checked answers


def test_correct_cited_answer_passes_through_with_a_verbatim_quote(seeded_bot, server):
    server.default = citing("Netflix offers $300,000 to $900,000 a year for the machine learning "
                            "platform product manager [{n}].", "$900,000")
    answer = llm_bot(seeded_bot, server).ask(SALARY)

    assert not answer.abstained
    assert "$300,000 to $900,000" in answer.text and answer.text.endswith("[1]")
    [citation] = answer.citations
    assert citation.doc_id == "netflix-ai-job-ad.md"
    assert citation.quote in citation.passage and "$900,000" in citation.quote
    assert (answer.check.kept, answer.check.dropped, answer.check.invalid_markers) == (1, 0, 0)
    body = server.requests[-1]
    assert body["model"] == "fake-model" and not body.get("stream")
    assert "Not in the corpus." in prompt_of(body) and SALARY in prompt_of(body)
    assert server.authorizations[-1] == "Bearer sk-test-secret-123"
    assert set(answer.to_json()) == {"question", "answer", "abstained", "citations", "retrieved_doc_ids", "latency_ms"}


def test_hallucinated_sentence_is_dropped_and_counted(seeded_bot, server):
    server.default = citing("The job pays $300,000 to $900,000 a year [{n}]. Netflix also gives every "
                            "applicant a free villa in Malibu and a private jet [{n}].", "$900,000")
    answer = llm_bot(seeded_bot, server).ask(SALARY)

    assert "$900,000" in answer.text
    assert "Malibu" not in answer.text
    assert answer.check.dropped == 1 and "Malibu" in answer.check.dropped_sentences[0]
    assert answer.check.kept == 1 and answer.check.unsupported_markers == 1


def test_markers_written_right_after_the_full_stop_are_checked_with_their_own_sentence(seeded_bot, server):
    # "a year.[1] Netflix ..." is a common way for a model to cite: before, it read as one sentence
    # of both claims, so the made-up villa rode along with the salary or took it down with it.
    server.default = citing("The job pays $300,000 to $900,000 a year.[{n}] Netflix also gives every "
                            "applicant a free villa in Malibu and a private jet.[{n}]", "$900,000")
    answer = llm_bot(seeded_bot, server).ask(SALARY)

    assert "$900,000" in answer.text and "Malibu" not in answer.text
    assert answer.check.kept == 1 and answer.check.dropped == 1
    assert [(s.claim, s.markers) for s in split_generated("It is big.[1, 2] It is old.[3][4] Fine.")] == [
        ("It is big.", [1, 2]), ("It is old.", [3, 4]), ("Fine.", [])]
    # ... and when the model leaves out the space after the marker ("big.[1]It"), but not inside a
    # marker or before a number ("1.[2]5" is no sentence end).
    assert [(s.claim, s.markers) for s in split_generated("It is big.[1]It is old.[2]\"Fine.\" 1.[3]5")] == [
        ("It is big.", [1]), ("It is old.", [2]), ('"Fine."', []), ("1.5", [3])]


def test_citation_to_passage_9_of_3_is_removed(seeded_bot, server):
    server.default = citing("The job pays $300,000 to $900,000 a year [{n}][9].", "$900,000")
    answer = llm_bot(seeded_bot, server).ask(SALARY, top_k=3)

    assert len(passage_numbers(server.requests[-1])) <= 3
    assert "[9]" not in answer.text and markers(answer.text) == [1]
    assert answer.check.invalid_markers == 1 and len(answer.citations) == 1


def test_sentence_citing_only_a_missing_passage_is_re_pointed_to_the_passage_that_supports_it(seeded_bot, server):
    server.script(Reply("87% of the actors in Sag-Aftra are paid less than $26,000 a year [9]."))
    answer = llm_bot(seeded_bot, server).ask("How many actors earn under $26,000?", top_k=3)

    assert "[9]" not in answer.text and markers(answer.text) == [1]
    assert "87%" in answer.citations[0].quote
    assert answer.check.invalid_markers == 1 and answer.check.recited == 1


def test_refusal_becomes_an_abstention(seeded_bot, server):
    server.script(Reply(NOT_IN_CORPUS))
    answer = llm_bot(seeded_bot, server).ask("Who directed Deep Fake Love?")

    assert answer.abstained and answer.text == ABSTAIN_MESSAGE and answer.citations == []
    assert answer.check.refused and answer.check.outcome == "abstained"


def test_answer_with_no_supported_sentence_falls_back_to_extractive_and_says_so(seeded_bot, server):
    server.script(Reply("Netflix was founded on the Moon by penguins in 1820 [1]."))
    answer = llm_bot(seeded_bot, server).ask(SALARY)

    assert answer.text.startswith("Note: the generated answer could not be verified in the articles; "
                                  "this answer quotes the articles directly.")
    assert "extractive" not in answer.text and "LLM" not in answer.text
    assert "penguins" not in answer.text
    assert answer.check.outcome == "fallback" and answer.check.dropped == 1
    assert not answer.abstained and "$900,000" in answer.text  # the extractive answer


# ---------------------------------------------------------------- failing endpoints


def test_500_is_retried_then_falls_back_to_the_extractive_answer_with_a_note(seeded_bot, server):
    server.script(*[Reply(status=500, message="model crashed")] * 3)
    answer = llm_bot(seeded_bot, server, llm_retries=2).ask(SALARY)

    assert len(server.requests) == 3
    first_line = answer.text.splitlines()[0]
    assert first_line.startswith(f"Note: the LLM endpoint {server.base_url} failed (HTTP 500: model crashed) "
                                 "after 3 attempts")
    assert first_line.endswith("this answer quotes the articles directly.")
    assert "$900,000" in answer.text and answer.citations and answer.check.outcome == "fallback"


def test_a_500_then_success_is_recovered_by_the_retry(seeded_bot, server):
    server.script(Reply(status=503))
    server.default = citing("The job pays $300,000 to $900,000 a year [{n}].", "$900,000")
    answer = llm_bot(seeded_bot, server).ask(SALARY)

    assert len(server.requests) == 2
    assert answer.check.outcome == "answered" and not answer.text.startswith("Note:")


def test_429_is_retried_with_retry_after_then_falls_back(seeded_bot, server):
    server.script(*[Reply(status=429, headers={"Retry-After": "0.2"})] * 2)
    started = time.perf_counter()
    answer = llm_bot(seeded_bot, server, llm_retries=1).ask(SALARY)

    assert len(server.requests) == 2
    assert time.perf_counter() - started >= 0.2, "Retry-After was honoured"
    assert "is rate-limiting requests (HTTP 429" in answer.text.splitlines()[0]
    assert "this answer quotes the articles directly" in answer.text and answer.check.outcome == "fallback"


def test_hang_times_out_without_retrying_and_falls_back(seeded_bot, server):
    server.script(Reply(hang=30))
    started = time.perf_counter()
    answer = llm_bot(seeded_bot, server, llm_timeout=0.5).ask(SALARY)

    assert time.perf_counter() - started < 10
    assert len(server.requests) == 1
    assert answer.text.startswith(f"Note: the LLM endpoint {server.base_url} did not answer within 0.5 s "
                                  "(ASSISTANT_LLM_TIMEOUT)")
    assert "$900,000" in answer.text


def test_wrong_key_is_named_without_printing_it(seeded_bot, server):
    server.script(Reply(status=401, message="Incorrect API key provided: sk-test-secret-123"))
    answer = llm_bot(seeded_bot, server).ask(SALARY)

    assert len(server.requests) == 1, "a wrong key is not retried"
    assert "rejected the API key (HTTP 401" in answer.text and "ASSISTANT_LLM_API_KEY" in answer.text
    assert "sk-test-secret-123" not in answer.text


def test_endpoint_down_is_one_clear_line(seeded_bot, server):
    down = FakeOpenAI()
    url = down.base_url
    down._server.server_close()  # the port is closed: connections are refused
    answer = llm_bot(seeded_bot, server, llm_base_url=url, llm_retries=1).ask(SALARY)

    assert answer.text.startswith(f"Note: the LLM endpoint {url} is not reachable after 2 attempts")
    assert "$900,000" in answer.text


# ---------------------------------------------------------------- streaming, history, budget


def test_streaming_shows_tokens_and_only_checked_citations(seeded_bot, server):
    server.default = citing("The job pays $300,000 to $900,000 a year [{n}]. It also comes with a castle "
                            "in Scotland [{n}][9]. Every employee gets a free car.", "$900,000")
    updates = list(llm_bot(seeded_bot, server).stream(SALARY))

    assert server.requests[-1]["stream"] is True
    growing = [text for text, answer in updates if answer is None]
    final_text, final = updates[-1]
    assert len(growing) > 10, "tokens arrive one piece at a time"
    assert all(a is None for _, a in updates[:-1]) and final is not None and final_text == final.text
    assert any("castle" in text for text in growing), "the sentence being written is shown"
    assert all("[9]" not in text and "[2]" not in text for text, _ in updates), "unchecked markers never shown"
    assert "castle" not in final.text and markers(final.text) == [1]


def test_cli_ask_streams_checked_sentences_and_json_keeps_its_contract(seeded_bot, server, monkeypatch, capsys):
    server.default = citing("The job pays $300,000 to $900,000 a year [{n}][9]. It comes with a castle [{n}].",
                            "$900,000")
    monkeypatch.setenv("ASSISTANT_LLM", "openai")
    monkeypatch.setenv("ASSISTANT_LLM_BASE_URL", server.base_url)
    store = str(seeded_bot.settings.store_dir)

    assert main(["ask", SALARY, "--store", store]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The job pays $300,000 to $900,000 a year. [1]\n")
    assert "castle" not in out and "[9]" not in out
    assert "Sources:\n[1] Netflix advertises an AI job" in out
    assert server.requests[-1]["stream"] is True

    assert main(["ask", SALARY, "--store", store, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["answer"] == "The job pays $300,000 to $900,000 a year. [1]" and not record["abstained"]
    assert record["citations"][0]["n"] == 1 and "$900,000" in record["citations"][0]["quote"]


def test_stream_failing_mid_answer_falls_back(seeded_bot, server):
    server.script(Reply("The job pays $300,000 to $900,000 a year [1]. And", hang=30, hang_after=5))
    updates = list(llm_bot(seeded_bot, server, llm_timeout=0.5).stream(SALARY))

    final_text, final = updates[-1]
    assert final_text.startswith("Note: the LLM endpoint") and "did not answer within 0.5 s" in final_text
    assert final.check.outcome == "fallback"


def test_follow_up_is_condensed_with_the_history_before_retrieval(seeded_bot, server):
    server.script(Reply("How much does the Netflix machine learning product manager job pay?"))
    server.default = citing("It pays $300,000 to $900,000 a year [{n}].", "$900,000")
    history = [("What job did Netflix advertise?", "A product manager of a machine learning platform [1].")]
    answer = llm_bot(seeded_bot, server).ask("How much does it pay?", history=history)

    condense, generate = server.requests
    assert "Follow Up Input: How much does it pay?" in prompt_of(condense)
    assert "What job did Netflix advertise?" in prompt_of(condense)
    assert "Question: How much does the Netflix machine learning product manager job pay?" in prompt_of(generate)
    assert answer.question == "How much does it pay?" and "$900,000" in answer.text


def _passage(i: int, words: int) -> Passage:
    return Passage(f"c{i}", f"doc{i}.md", " ".join(f"word{i}x{j}" for j in range(words)) + ".", title=f"Doc {i}")


def test_passages_are_fitted_whole_to_the_context_window():
    passages = [_passage(i, 120) for i in range(6)]
    prompt = fit_passages("What is in the documents?", passages, context_window=1024, max_tokens=256)

    limit = (1024 - 256) / (1 + TOKENIZER_HEADROOM)
    assert sum(count_tokens(m.content) for m in prompt.messages) <= limit
    assert 0 < len(prompt.passages) < 6 and prompt.dropped == 6 - len(prompt.passages)
    text = "\n".join(m.content for m in prompt.messages)
    for passage in prompt.passages:
        assert passage.text in text, "a passage in the prompt is never cut"
    for passage in passages[len(prompt.passages):]:
        assert passage.text[:20] not in text
    # with a big window every passage fits
    assert fit_passages("q?", passages, context_window=32768, max_tokens=512).dropped == 0


def test_the_prompt_shows_no_footnote_marker_the_model_could_copy_as_a_citation():
    passage = Passage("c0", "lamp.md", "The lamp was first lit in 1889[4] by the keeper.[5] It shone.", title="Lamp")
    text = "\n".join(m.content for m in fit_passages("q?", [passage], 4096, 256).messages)
    assert "The lamp was first lit in 1889 by the keeper. It shone." in text and "[4]" not in text


def test_a_prompt_that_cannot_fit_is_a_clear_error_and_the_answer_falls_back(seeded_bot, server):
    with pytest.raises(LLMError, match="no passage fits in the context window"):
        fit_passages("q?", [_passage(0, 2000)], context_window=1024, max_tokens=256)
    answer = llm_bot(seeded_bot, server, llm_context_window=512, llm_max_tokens=400).ask(SALARY)
    assert answer.text.startswith("Note: the question needs ")
    assert "raise ASSISTANT_LLM_CONTEXT_WINDOW or lower ASSISTANT_LLM_MAX_TOKENS" in answer.text.splitlines()[0]
    assert server.requests == [], "nothing is sent that would be cut"


# ---------------------------------------------------------------- the check itself, and settings


def test_markers_after_the_full_stop_stay_with_their_sentence():
    sentences = split_generated("It pays $900,000. [1] Actors earn less [2][3]. Both [1, 2].")
    assert [(s.claim, s.markers) for s in sentences] == [
        ("It pays $900,000.", [1]), ("Actors earn less.", [2, 3]), ("Both.", [1, 2])]


def test_unsupported_marker_is_removed_and_an_uncited_supported_sentence_gets_one():
    passages = [Passage("a", "a.md", "The salary is $300,000 to $900,000 a year."),
                Passage("b", "b.md", "87% of actors are paid less than $26,000 a year.")]
    scorer = SupportScorer()  # lexical only
    text, citations, check = check_citations(
        "The salary is $300,000 to $900,000 a year [1][2]. 87% of actors are paid less than $26,000.",
        passages, scorer, min_support=0.7)
    assert text == "The salary is $300,000 to $900,000 a year. [1] 87% of actors are paid less than $26,000. [2]"
    assert [c.doc_id for c in citations] == ["a.md", "b.md"]
    assert (check.unsupported_markers, check.uncited, check.kept) == (1, 1, 2)
    # a number the passage does not contain is not supported
    _, _, wrong = check_citations("The salary is $400,000 to $950,000 a year [1].", passages, scorer, 0.7)
    assert wrong.dropped == 1


def test_extractive_stays_the_default_and_the_key_comes_from_the_usual_variables(monkeypatch, seeded_bot):
    assert Settings().llm == "extractive" and isinstance(seeded_bot.answerer, ExtractiveAnswerer)
    for name in ("ASSISTANT_LLM_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "ASSISTANT_HF_TOKEN", "ASSISTANT_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert Settings().llm_key() == "sk-openai"
    monkeypatch.setenv("ASSISTANT_LLM_API_KEY", "sk-explicit")
    assert Settings().llm_key() == "sk-explicit"
    monkeypatch.delenv("ASSISTANT_LLM_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("HF_TOKEN", "hf_space_secret")
    assert Settings(llm_base_url="https://router.huggingface.co/v1").llm_key() == "hf_space_secret"
    assert Settings(llm_base_url="http://my-vllm:8000/v1").llm_key() is None, "an HF token goes only to HF"
    shown = json.dumps(Settings(llm_api_key="sk-x").public_dict())
    assert "hf_space_secret" not in shown and "sk-x" not in shown


# ---------------------------------------------------------------- the eval harness with this back end


def test_eval_on_the_bundled_corpus_runs_through_the_llm_back_end(tmp_path, server):
    """CI: the eval harness with ASSISTANT_LLM=openai against a generic model (cites passage [1])."""
    questions = ROOT / "eval" / "corpus" / "questions.jsonl"
    settings = Settings(llm="openai", llm_base_url=server.base_url, llm_model="fake-model",
                        store_dir=tmp_path / "store", llm_backoff=0.01)
    run = run_eval(settings, CORPUS, questions, progress=False)

    n_questions = sum(1 for line in questions.read_text().splitlines() if line.strip())
    assert run.metrics["questions"] == n_questions
    asked = [b for b in server.requests if "Standalone question" not in prompt_of(b)]
    assert len(asked) >= n_questions
    assert not any(r["answer"].startswith("Note:") for r in run.records), "no fallback: the LLM path answered"
    answered = [r for r in run.records if not r["abstained"]]
    assert answered and all(markers(r["answer"]) == [1] for r in answered)
    assert run.metrics["answered_rate"] > 0.5

    write_outputs(run, tmp_path / "out")
    details = [json.loads(line) for line in (tmp_path / "out" / "details.jsonl").read_text().splitlines()]
    assert all(d["citation_check"]["answered"] + d["citation_check"]["abstained"] == 1 for d in details)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Citation check of generated answers" in report
    assert f"| answered | {len(answered)} |" in report
