"""The `/chat` API of the running app (`python app.py` on a free loopback port), through gradio_client."""

from __future__ import annotations

import shutil

import pytest
from gradio_client import Client

from tests.app_server import ROOT, running_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    base = tmp_path_factory.mktemp("app-api")
    shutil.copytree(ROOT / "corpus", base / "corpus")
    with running_app(base / "corpus", base / "store", base / "app.log") as url:
        yield url


def client(url: str) -> Client:
    """A new client is a new conversation (gradio_client keeps one session per Client)."""
    return Client(url, analytics_enabled=False, verbose=False, download_files=False)


def test_chat_endpoint_is_named_and_takes_a_message(app_url):
    info = client(app_url).view_api(print_info=False, return_format="dict")
    assert [p["parameter_name"] for p in info["named_endpoints"]["/chat"]["parameters"]] == ["message"]


def test_question_about_the_seed_article_is_answered_with_a_citation(app_url):
    result = client(app_url).predict(message="How much does the Netflix machine learning job pay?",
                                     api_name="/chat")
    assert result["abstained"] is False
    assert "$900,000" in result["answer"] and "[1]" in result["answer"]
    citation = result["citations"][0]
    assert citation["n"] == 1 and citation["doc_id"] == "netflix-ai-job-ad.md" and citation["source"] == "DevStyleR"
    assert citation["quote"] in (ROOT / "corpus" / "netflix-ai-job-ad.md").read_text()
    assert "\nSources:\n[1] Netflix advertises an AI job" in result["text"]


def test_follow_up_is_answered_about_the_first_turn_of_the_same_client(app_url):
    # The same follow-up, after two different first turns, gets two different answers.
    ml, games = client(app_url), client(app_url)
    ml.predict(message="What job did Netflix advertise for its machine learning platform?", api_name="/chat")
    games.predict(message="What job is Netflix's game studio looking to hire for?", api_name="/chat")

    about_ml = ml.predict(message="How much does it pay?", api_name="/chat")
    about_games = games.predict(message="How much does it pay?", api_name="/chat")

    assert "$300,000" in about_ml["answer"] and "$900,000" in about_ml["answer"]
    assert "$650,000" not in about_ml["answer"]
    assert "$650,000" in about_games["answer"] and "$900,000" not in about_games["answer"]
    assert about_ml["citations"] and about_games["citations"]


def test_off_corpus_question_abstains(app_url):
    result = client(app_url).predict(message="What is the boiling point of tungsten?", api_name="/chat")
    assert result["abstained"] is True
    assert result["citations"] == []
    assert result["answer"] == "The corpus does not contain the answer to this question."
