"""Multi-turn context without an LLM: follow-ups borrow the salient words of earlier turns."""

from assistant.chat import answer_query, contextualise, is_follow_up
from assistant.contract import CLOSEST_MESSAGE, closest_quote

JOB = "What job did Netflix advertise for its machine learning platform?"


def test_pronoun_follow_up_is_rewritten_with_the_earlier_question():
    rewritten = contextualise("How much does it pay?", [(JOB, "A product manager ... [1]")])
    assert rewritten.startswith("How much does it pay?")
    assert "Netflix" in rewritten and "machine" in rewritten


def test_self_contained_question_is_left_alone():
    question = "What percentage of guild actors earn less than $26,000 a year?"
    assert not is_follow_up(question)
    assert contextualise(question, [(JOB, "...")]) == question


def test_follow_up_that_says_enough_is_answered_on_its_own_words():
    question = "What do they say AI will do to the perception of cinema?"
    search = contextualise(question, [("Which alliance negotiates with the unions?", "The AMPTP [1]")])
    assert search != question, "retrieval still gets the earlier context"
    assert answer_query(question, search) == question


def test_a_follow_up_to_a_refusal_quoting_the_closest_sentence_borrows_the_quote_not_the_wording():
    refusal = (f"{CLOSEST_MESSAGE}\n“The writers went on strike in May, with Tom Cruise and George Clooney "
               "joining.” — Netflix Advertises An AI Job (netflix.md)")
    rewritten = contextualise("When did they join?", [("Which famous actors joined the strike?", refusal)])
    assert "Tom Cruise" in rewritten and "Clooney" in rewritten
    assert not {"I", "Advertises", "netflix.md"} & set(rewritten.replace("(", " ").replace(")", " ").split())


def test_an_answer_quoting_a_remark_before_a_dash_keeps_its_names_for_the_follow_up():
    answer = "“We will not back down” — Fran Drescher told the Screen Actors Guild in Los Angeles. [1]"
    rewritten = contextualise("What else did she say?", [("What did the union leader say?", answer)])
    assert "Drescher" in rewritten and "Screen Actors Guild" in rewritten


def test_the_quote_of_a_closest_sentence_refusal_is_read_whole_even_with_a_dash_inside():
    sentence = "“We will not back down” — Fran Drescher said in Los Angeles."
    refusal = f"{CLOSEST_MESSAGE}\n“{sentence}” — Strike Report (strike.md)"
    assert closest_quote(refusal) == sentence
    assert closest_quote("In May. [1]") is None


def test_bare_follow_up_is_answered_with_the_rewritten_query():
    search = contextualise("How much does it pay?", [(JOB, "...")])
    assert answer_query("How much does it pay?", search) == search


def test_follow_up_about_the_seed_article_is_answered_about_the_earlier_job(seeded_bot):
    first = seeded_bot.ask(JOB)
    answer = seeded_bot.ask("How much does it pay?", history=[(JOB, first.text)])
    assert "$900,000" in answer.text and not answer.abstained
