"""Answers users can trust: answered when the corpus holds the answer, with the right sentence,
never a heading, a question or the same sentence twice, and refused when it does not."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from assistant.background import background_weight
from assistant.contract import ABSTAIN_MESSAGE, CLOSEST_MESSAGE
from assistant.features import (analyse_question, answer_form, answer_spans, answer_terms, kind_fit,
                                leads_with_answer, redundancy, with_base_forms)
from assistant.text import terms
from assistant.pipeline import Assistant
from assistant.settings import Settings
from tests.conftest import drop_store, make_pdf, store_backend

ARTICLE = "netflix-ai-job-ad.md"


# Known gap (issue 10): the fitted abstention model still refuses these paraphrased questions over the
# six-chunk article (P(answerable) well below the fitted threshold, 0.45); strict, so a fix shows.
REFUSED_STILL = pytest.mark.xfail(strict=True, reason="P(answerable) below the fitted threshold")


@pytest.mark.parametrize("question, expected", [
    ("When did the writers go on strike?", "May"),
    pytest.param("Which famous actors joined the strike?", "Tom Cruise", marks=REFUSED_STILL),
    pytest.param("Who represents the studios in the negotiations with the unions?",
                 "Alliance of Motion Picture and Television Producers", marks=REFUSED_STILL),
    ("When was the previous joint strike by actors and writers?", "1960s"),
    ("Who reported the job ad first?", "The Intercept"),
])
def test_plain_questions_about_the_article_are_answered_with_the_sentence_that_holds_the_answer(
        seeded_bot, question, expected):
    answer = seeded_bot.ask(question)
    assert not answer.abstained, f"refused an answerable question: {answer.explain}"
    assert any(expected in c.quote and c.doc_id == ARTICLE for c in answer.citations), answer.text
    assert all(c.quote in c.passage for c in answer.citations)


@pytest.mark.parametrize("question", ["Who is the CEO of Netflix?", "What was the box office of Oppenheimer?"])
def test_questions_the_article_does_not_answer_are_still_refused(seeded_bot, question):
    answer = seeded_bot.ask(question)
    assert answer.abstained and answer.citations == []
    assert answer.text == ABSTAIN_MESSAGE, "far from anything the article says: a plain refusal"


def test_a_refusal_that_is_not_sure_quotes_the_closest_sentence_and_cites_nothing(seeded_bot):
    # P(answerable) is under the threshold but above closest_threshold: the refusal does not claim
    # that the corpus lacks the answer; it quotes the sentence closest to one, for the user to judge.
    answer = seeded_bot.ask("Which famous actors joined the strike?")
    assert answer.abstained and answer.citations == [] and not re.search(r"\[\d+\]", answer.text)
    opening, quoted = answer.text.split("\n")
    assert opening == CLOSEST_MESSAGE and ABSTAIN_MESSAGE not in answer.text
    quote, source = re.fullmatch(r"“(.+)” — (.+)", quoted).groups()
    assert "Tom Cruise and George Clooney" in quote and source.endswith(f"({ARTICLE})")
    assert any(quote.strip("…") in p.text for p in answer.passages), "the quote is verbatim"
    assert answer.to_json()["abstained"] is True and "unverified" not in answer.to_json()


def test_closest_threshold_one_turns_the_closest_sentences_off(seeded_bot):
    strict = Assistant(seeded_bot.settings.model_copy(update={"closest_threshold": 1.0}))
    assert strict.ask("Which famous actors joined the strike?").text == ABSTAIN_MESSAGE


def _bot(tmp_path, corpus, **overrides) -> Assistant:
    bot = Assistant(Settings(corpus_dir=corpus, **store_backend(tmp_path / "store"), **overrides))
    bot.ingest(progress=False)
    return bot


def _one_file_corpus(tmp_path, name: str, text: str):
    """A corpus folder holding one file ``name`` with ``text``."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / name).write_text(text)
    return corpus


def test_a_pdf_heading_is_never_the_answer(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    make_pdf(corpus / "club.pdf", [
        "Riverside Cycling Club Annual Report 2023\n"
        "The club grew to 214 members during the year.\n"
        "Most members ride on Sunday mornings along the river path.",
    ])
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("How many members did the Riverside Cycling Club have in 2023?")
        assert not answer.abstained and "214 members" in answer.text
        assert "Annual Report" not in answer.text
    finally:
        drop_store(bot)


def test_overlapping_chunks_never_give_the_same_sentence_twice(tmp_path):
    filler = " ".join(f"The old mill on the river ground grain for the village in year {1800 + i}." for i in range(6))
    corpus = _one_file_corpus(tmp_path, "mill.txt",
        f"{filler} The miller Agnes Hart rebuilt the water wheel in 1921 after the great flood. {filler}")
    bot = _bot(tmp_path, corpus, chunk_size=48, chunk_overlap=24)  # every sentence lies in two chunks
    try:
        holding = [p for p in bot.retriever.retrieve("Who rebuilt the water wheel after the great flood?").passages
                   if "Agnes Hart" in p.text]
        assert len(holding) >= 2, "the test needs the sentence in two retrieved chunks"
        answer = bot.ask("Who rebuilt the water wheel after the great flood?")
        assert not answer.abstained and "Agnes Hart" in answer.text
        quotes = [part for c in answer.citations for part in c.quote.split(" … ")]
        assert len(quotes) == len(set(quotes)), answer.text
        assert answer.text.count("Agnes Hart") == 1
    finally:
        drop_store(bot)


def test_a_question_in_the_article_is_never_the_answer(tmp_path):
    corpus = _one_file_corpus(tmp_path, "festival.md",
        "# Harbour Festival guide\n\n"
        "When is the Harbour Festival?\n\n"
        "The Harbour Festival takes place on 14 June on the old quay.\n\n"
        "Where can visitors park?\n\n"
        "Visitors can park at the station car park for free.\n")
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("When is the Harbour Festival?")
        assert not answer.abstained and "14 June" in answer.text
        assert "?" not in re.sub(r"\[\d+\]", "", answer.text)
    finally:
        drop_store(bot)


def test_a_long_sentence_cut_to_its_window_shows_where_it_was_cut(tmp_path):
    corpus = _one_file_corpus(tmp_path, "regatta.txt",
        "The regatta of the city, after the sailing clubs of the region had planned it for more than three "
        "years and after boats, crews, families and visitors had come from across the whole coast despite "
        "the rain, the wind, the cold, the fog and the late start of the season, and after the mayor, the "
        "harbour master and the club presidents had spoken at length on the quay about the history of "
        "sailing on this coast, was in the end hosted by the harbour of Porto.")
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("Which harbour hosted the regatta?")
        assert not answer.abstained and "Porto" in answer.text, answer.text
        assert answer.text.startswith("…"), answer.text              # cut at its start
        quote = answer.citations[0].quote
        assert quote in answer.text and quote in answer.citations[0].passage and not quote.startswith("…")
        assert len(re.sub(r"\[\d+\]", "", answer.text).split()) <= 60
    finally:
        drop_store(bot)


def test_the_tail_of_a_sentence_that_a_chunk_cut_is_never_the_answer():
    # A chunk that begins mid-sentence: its first "sentence" is the tail of one the chunk before holds.
    from assistant.answering import ExtractiveAnswerer
    from assistant.contract import Passage

    passage = Passage("c2", "regatta", "the harbour of Porto hosted the regatta for the clubs of the coast. "
                      "Crews arrived from twelve clubs on the first day.", title="Regatta")
    _, candidates = ExtractiveAnswerer().candidates("Which harbour hosted the regatta?", [passage],
                                                    lambda term: 1.0)
    assert [c.text for c in candidates] == ["Crews arrived from twelve clubs on the first day."]


@pytest.mark.parametrize("line, answers", [
    ("Riverside Cycling Club Annual Report 2023", False),   # heading
    ("When is the Nevada primary?", False),                 # question
    ("Photo: the quay at dawn (Getty Images)", False),      # caption
    ("March 3, 2025, 5:01 a.m. ET", False),                 # dateline
    ("Annual Report of the Riverside Cycling Club.", False),  # title-like, no verb
    ("The club grew to 214 members during the year.", True),
    ("Tom Cruise and George Clooney joined the strike.", True),
])
def test_only_statements_can_be_answers(line, answers):
    assert answer_form(line) is answers


def test_explain_shows_p_answerable_and_candidates_after_the_answer(seeded_bot):
    settings = seeded_bot.settings
    env_store = ["--store", str(settings.store_dir)] if settings.store_dir and not settings.chroma_url else []
    if not env_store:
        pytest.skip("the CLI test reads an embedded store")
    run = [sys.executable, "-m", "assistant.cli", "ask", "How much does the Netflix machine learning job pay?",
           *env_store]
    data = json.loads(subprocess.run([*run, "--json", "--explain"], capture_output=True, text=True, check=True).stdout)
    explain = data["explain"]
    assert set(explain) == {"p_answerable", "candidates"} and 0.0 <= explain["p_answerable"] <= 1.0
    assert explain["candidates"] and all(set(c) == {"doc_id", "sentence", "p"} for c in explain["candidates"])
    assert "$900,000" in explain["candidates"][0]["sentence"]
    plain = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout)
    assert "explain" not in plain
    text = subprocess.run([*run, "--explain"], capture_output=True, text=True, check=True).stdout
    answer_at, why_at = text.find("$900,000"), text.find("P(answerable)")
    assert 0 <= answer_at < why_at, "the explanation comes after the answer"


def test_common_words_weigh_less_than_names_and_numbers_whatever_the_corpus():
    # In a six-chunk corpus "go" and "Oppenheimer" are both unseen; general English tells them apart.
    weight = {word: background_weight(word) for word in ("go", "year", "strike", "ceo", "oppenheim", "26000")}
    assert weight["go"] < weight["strike"] < weight["ceo"] < weight["oppenheim"] == weight["26000"]


@pytest.mark.parametrize("word", ["surprise", "enterprise", "exercise", "colour", "theatre", "café", "analysed"])
def test_general_english_knows_a_word_however_the_terms_rules_spell_it(word):
    # The table is made by terms() itself (bench/english_zipf.py): "surprise" is the term "surpriz",
    # and an unknown term would weigh like a rare name and be open to the spelling stage.
    (term,) = terms(word)
    assert background_weight(term) < background_weight("oppenheim"), term


@pytest.mark.parametrize("question, kind", [
    ("Which country hosted the 2019 regatta?", "country"),
    ("Which US state sued the agency?", "state"),
    ("Where did the regatta take place?", "place"),
    ("Which company built the bridge?", "org"),
    ("Which famous actors joined the strike?", "person"),
    ("What percentage of members ride on Sundays?", "percent"),
    ("How much did the new clubhouse cost?", "money"),
    ("In what year was the club founded?", "year"),
    ("What is the name of the club's newsletter?", "name"),
    ("Why did the members vote?", None),
])
def test_the_question_wording_gives_the_kind_of_answer_expected(question, kind):
    assert analyse_question(question).kind == kind


@pytest.mark.parametrize("question, sentence, fits", [
    ("Which country hosted the 2019 regatta?", "The 2019 regatta was held in Portugal for the first time.", True),
    ("Which country hosted the 2019 regatta?", "The 2019 regatta drew 300 boats from the Atlantic Sailing Union.", False),
    ("Which company built the bridge?", "The bridge was built by Harland Steel Corp in two years.", True),
    # "Which state/country": a state's or country's name, not any place (assistant/places.tsv).
    ("Which state sued the agency?", "Texas sued the agency on Wednesday in a federal court.", True),
    ("Which state sued the agency?", "The agency was sued on Wednesday in a court in Austin.", False),
    ("Which country loaned the zoo two pandas?", "The pandas arrived in Washington from China on Tuesday.", True),
    ("Which country loaned the zoo two pandas?", "The pandas arrived at the zoo in Washington on Tuesday.", False),
    ("What percentage of members ride on Sundays?", "Some 64% of members ride on Sunday mornings.", True),
    ("What percentage of members ride on Sundays?", "The club has 214 members who ride on Sundays.", False),
    ("How much did the new clubhouse cost?", "The new clubhouse cost $1.2 million to build.", True),
])
def test_a_candidate_fits_the_kind_only_with_an_answer_of_that_kind(question, sentence, fits):
    info = analyse_question(question)
    assert kind_fit(sentence, info, set(info.terms))[0] == (1.0 if fits else 0.0)


def test_a_past_form_the_stemmer_misses_matches_the_base_form_a_question_uses():
    # "When did the writers go on strike?" / "The writers went on strike in May."
    assert {"go", "strike", "writer"} <= with_base_forms(terms("The writers went on strike in May."))
    assert "go" not in set(terms("The writers went on strike in May."))


def test_an_answer_named_again_and_again_in_the_passages_counts_as_redundant():
    info = analyse_question("Which storm flooded the harbour town?")
    sentences = ["Storm Alma flooded the harbour town on Monday.", "Alma brought 20 cm of rain.",
                 "Crews cleared roads after Alma.", "Mayor Brent Oakley thanked the crews."]
    frequency = {t: sum(t in set(terms(s)) for s in sentences) for s in sentences for t in terms(s)}
    q_terms = set(info.terms)
    assert redundancy(answer_terms(sentences[0], info, q_terms), frequency) > \
        redundancy(answer_terms(sentences[3], info, q_terms), frequency) > 0


@pytest.mark.parametrize("sentence, leads", [
    ("Norway hosted the sailing summit in June.", True),
    ("∎ Norway hosted the sailing summit in June.", True),                  # after a bullet
    ("BERGEN, Vestland – Norway hosted the sailing summit in June.", True),  # after a dateline
    ("Delegates said the sailing summit in Norway ended early.", False),    # named in passing
    ("The country hosted the sailing summit in June.", False),              # not named at all
    ("The summit ended early, Norway said.", False),
])
def test_a_sentence_that_opens_with_an_answer_the_question_asks_for_leads_with_it(sentence, leads):
    info = analyse_question("Which country hosted the sailing summit?")
    q_terms = set(info.terms)
    assert leads_with_answer(sentence, answer_spans(sentence, info, q_terms)) == (1.0 if leads else 0.0)


def test_two_sentences_that_name_different_answers_and_score_alike_are_both_given(tmp_path):
    # Neither sentence dominates: the user sees both candidates, each cited, rather than a coin toss.
    corpus = _one_file_corpus(tmp_path, "regatta.txt",
        "The autumn regatta was hosted by the city of Lyon in 2019, with boats from twelve clubs. "
        "The spring regatta was hosted by the city of Porto in 2021, with boats from nine clubs. "
        "Entry to the quay is free for visitors on both days.")
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("Which city hosted the regatta?")
        assert not answer.abstained
        assert "Lyon" in answer.text and "Porto" in answer.text, answer.text
        assert "Entry to the quay" not in answer.text  # no unrelated sentence
        assert all(part in c.passage for c in answer.citations for part in c.quote.split(" … "))
    finally:
        drop_store(bot)


def test_a_runner_up_that_names_the_same_answer_is_not_appended(tmp_path):
    corpus = _one_file_corpus(tmp_path, "regatta.txt",
        "The autumn regatta was hosted by the city of Lyon in 2019, with boats from twelve clubs. "
        "The regatta in the city of Lyon drew boats from twelve clubs in 2019. "
        "Entry to the quay is free for visitors on both days.")
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("Which city hosted the regatta?")
        assert not answer.abstained and answer.text.count("Lyon") == 1, answer.text
    finally:
        drop_store(bot)


def test_a_sentence_too_long_for_the_answer_is_cut_to_the_window_that_keeps_its_answer():
    from assistant.answering import _trim

    info = analyse_question("Which city hosted the regatta?")
    # Two of the question's words stand at the start, one next to the answer, 40 words further on.
    sentence = ("The regatta of the city, after the sailing clubs of the region had planned it for more than "
                "three years and after boats, crews, families and visitors had come from across the whole coast "
                "despite the rain, the wind and the late start, was in the end hosted by the harbour of Porto.")
    answers = set().union(*answer_terms(sentence, info, set(info.terms)))
    quote = _trim(sentence, 20, info.text, answers)
    assert "Porto" in quote and quote in sentence and len(quote.split()) == 20


@pytest.mark.parametrize("text, sentences", [
    ("By 6 a.m. PT, the ferry had left with 40 passengers. It docked at noon.",
     ["By 6 a.m. PT, the ferry had left with 40 passengers.", "It docked at noon."]),
    ("The office opens at 9 a.m. Monday through Friday.", ["The office opens at 9 a.m. Monday through Friday."]),
    ("The polls closed at 8 p.m. The count began at once.", ["The polls closed at 8 p.m.", "The count began at once."]),
])
def test_a_clock_time_ends_a_sentence_only_when_no_time_zone_day_or_month_follows(text, sentences):
    from assistant.text import split_sentences

    assert [text[a:b] for a, b in split_sentences(text)] == sentences


@pytest.mark.parametrize("text, sentences", [
    ("It stands on the cape.[1] It was built in 1887.[2][3] It has a keeper.[citation needed]",
     ["It stands on the cape.", "It was built in 1887.", "It has a keeper."]),
    ("The spelling changed.[note 3] The vowel stayed.", ["The spelling changed.", "The vowel stayed."]),
    ("It opened. [Editor's note: in May.] It closed.", ["It opened.", "[Editor's note: in May.]", "It closed."]),
    ("- Training runs on Tuesdays. It starts at 6 pm.\n• The boathouse opens at 7 am.\n2. Bring a towel.",
     ["Training runs on Tuesdays.", "It starts at 6 pm.", "The boathouse opens at 7 am.", "Bring a towel."]),
])
def test_footnote_and_list_markers_are_in_no_sentence(text, sentences):
    from assistant.text import split_sentences

    assert [text[a:b] for a, b in split_sentences(text)] == sentences
    generated = "Paris is the capital. [1] It is big. [2]"  # our own markers stay with their sentences
    assert [generated[a:b] for a, b in split_sentences(generated, citing=True)] == [
        "Paris is the capital.", "[1] It is big.", "[2]"]


def test_an_article_pasted_with_its_footnote_markers_is_answered_without_them(tmp_path):
    # Before, "island.[1] It was built ..." was one sentence of the whole paragraph, too long to
    # be an answer: both questions got "The corpus does not contain the answer"; and a marker inside
    # a sentence ("1889[4] by") was shown in the answer as if it cited a source [4].
    corpus = _one_file_corpus(tmp_path, "lighthouse.md", (
        "# Quillfeather lighthouse\n\nThe Quillfeather lighthouse stands on the northern cape of the island.[1] "
        "It was built in 1887 by the harbour board.[2][3] The lighthouse was repainted in 2021 with 340 litres "
        "of white paint.[12] Its keeper, Mara Olsen, has lived there since 1998.[citation needed]\n\n"
        "The lamp was first lit in 1889[4] by the keeper's wife, and it was electrified,[5] like the "
        "harbour, in 1936.\n"))
    bot = _bot(tmp_path, corpus)
    try:
        for question, answer_words in (("When was the Quillfeather lighthouse built?", "built in 1887"),
                                       ("How many litres of paint did the lighthouse need in 2021?", "340 litres"),
                                       ("When was the lamp of the lighthouse first lit?", "first lit in 1889 by")):
            answer = bot.ask(question)
            assert not answer.abstained and answer_words in answer.text, answer.text
            assert all(not re.search(r"\[(?:\d+|citation needed)\]", c.quote) for c in answer.citations)
            # A quote cut around a footnote marker is in parts, each verbatim in the document.
            text = (corpus / "lighthouse.md").read_text()
            assert all(part in text for c in answer.citations for part in c.quote.split(" … "))
            assert set(re.findall(r"\[(\d+)\]", answer.text)) <= {str(c.n) for c in answer.citations}
    finally:
        drop_store(bot)


def test_the_sentence_after_the_answer_joins_it_only_when_it_adds_what_the_answer_lacks(tmp_path):
    # Before, any next sentence that opened with "It" / "Its" joined the answer: "When was it first
    # lit?" got its date and then who designed it, a second claim that answers nothing asked.
    corpus = _one_file_corpus(tmp_path, "tower.md", (
        "# Gull Point Lighthouse\n\nThe Gull Point Lighthouse was first lit on 12 May 1874, after four "
        "years of building. It was designed by the engineer Margaret Ellery, who also built the harbour "
        "wall. Its keeper since 2019 has been Tomas Varga.\n"))
    bot = _bot(tmp_path, corpus)
    try:
        lit = bot.ask("When was the Gull Point Lighthouse first lit?")
        assert "12 May 1874" in lit.text and "Margaret Ellery" not in lit.text, lit.text
        assert "Margaret Ellery" in bot.ask("Who designed the Gull Point Lighthouse?").text
    finally:
        drop_store(bot)


def test_a_who_question_takes_an_agent_that_no_capital_letter_names(tmp_path):
    # "by the town council" answers "Who ...?" though it is no name: before, the answer model read
    # the sentence as lacking a person (P 0.31) and only quoted it as the closest.
    corpus = _one_file_corpus(tmp_path, "club.md", (
        "# Harbour Rowing Club\n\nThe club's oldest boat, the Heron, was donated by the town council in 1972. "
        "Members must pass a swimming test of 50 metres before rowing on open water.\n"))
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("Who donated the Heron?")
        assert not answer.abstained and "donated by the town council" in answer.text and answer.citations
        assert bot.ask("Who is the CEO of Netflix?").text == ABSTAIN_MESSAGE
    finally:
        drop_store(bot)


def test_an_answer_quotes_the_whole_sentence_around_a_clock_time(tmp_path):
    corpus = _one_file_corpus(tmp_path, "ferry.md", (
        "The Brannock ferry changed its timetable on Monday. By 6 a.m. PT, the Brannock ferry had left the "
        "harbour with 40 passengers on board. It docked at Port Ellery at noon.\n"))
    bot = _bot(tmp_path, corpus)
    try:
        answer = bot.ask("How many passengers did the Brannock ferry leave the harbour with?")
        assert not answer.abstained
        assert any(c.quote.startswith("By 6 a.m. PT, the Brannock ferry had left") for c in answer.citations), answer.text
    finally:
        drop_store(bot)
