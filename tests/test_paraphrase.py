"""Generated answers in the model's own words: kept when right, never when a fact is wrong.

The support check (assistant/support.py, assistant/facts.py) against the real MiniLM encoder, the
scripted OpenAI-compatible server (tests/fake_openai.py) and the real pipeline over the bundled
article; the fixture set of model-like replies (tests/fixtures/generated_replies.jsonl) through
the server.
"""

from __future__ import annotations

import json

import pytest

from assistant.cli import main
from assistant.citations import check_citations
from assistant.contract import ABSTAIN_MESSAGE, Answer, Evidence, Meta, Passage, Query
from assistant.embedding import encoder_for
from assistant.facts import PassageFacts, claim_facts, missing_facts
from assistant.generative import UNVERIFIED_MESSAGE, GenerativeAnswerer
from assistant.llm import LLMClient
from assistant.settings import Settings
from assistant.support import SupportScorer, word_match
from tests.fake_openai import FakeOpenAI, Reply
from tests.replies import load_replies
from tests.test_generative import citing, llm_bot, markers, prompt_of


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def states(claim: str, passage: str) -> bool:
    return not missing_facts(claim, PassageFacts(passage))


# ---------------------------------------------------------------- one test per normalisation kind


def test_amounts_match_in_symbols_words_and_scales():
    passage = "The job pays $300,000 to $900,000, and 3 million cattle live there."
    assert states("It pays 300,000 dollars to 900,000 dollars.", passage)
    assert states("It pays $300k to $0.9 million.", passage)
    assert states("There are three million cattle.", passage)
    assert not states("It pays $400,000.", passage)
    assert not states("There are five million cattle.", passage)
    assert not states("It pays £300,000.", passage), "another currency is another fact"


def test_percentages_match_as_sign_or_words():
    passage = "87% of actors in the guild are paid less than $26,000 a year."
    assert states("87 percent of guild actors earn under $26,000.", passage)
    assert states("Eighty-seven per cent of them earn under 26,000 dollars.", passage)
    assert not states("78 percent of guild actors earn under $26,000.", passage)


def test_periods_after_an_amount_must_be_the_passages():
    passage = "Netflix offers an annual salary of $300,000 to $900,000."
    for period in ("a year", "per year", "annually", "yearly", "each year"):
        assert states(f"The job pays $300,000 to $900,000 {period}.", passage), period
    assert not states("The job pays $300,000 to $900,000 a month.", passage)


def test_decades_dates_and_months():
    passage = "It's the first joint strike since the 1960s. The service started on 1 September 1993."
    assert states("It is the first such strike since the sixties.", passage)
    assert states("It is the first such strike since the '60s.", passage)
    assert not states("It is the first such strike since the 1950s.", passage)
    assert states("The service began in Sept. 1993.", passage)
    assert not states("The service began on 1 September 1994.", passage + " It grew by mid-1994.")
    assert not states("The writers went on strike in April.", "The writers went on strike in May.")


def test_names_match_across_case_punctuation_possessives_and_initials():
    passage = "According to the Screen Actors Guild (Sag-Aftra), actors earn little. William E. Simon of Normandy."
    for claim in ("SAG-AFTRA says actors earn little.", "The SAG AFTRA union says so.",
                  "The sag-aftra union says so.", "It was William Simon.", "Normandy's William E. Simon."):
        assert states(claim, passage), claim
    assert not states("The Directors Guild says so.", passage)
    assert not states("It was George Simon.", passage)


def test_hyphenated_names_match_their_parts_and_names_joined_by_connectors_match_part_by_part():
    passage = ("The UCLA Bruins and the USC Trojans both field teams in NCAA Division I in the Pac-12 Conference. "
               "John Schmitt and Ben Zipperer (2006) of the CEPR point to the decline of union membership.")
    assert states("They play in the Pac 12 Conference.", passage)
    assert states("They play in the Pac-12.", passage)
    assert states("Schmitt and Zipperer of the Center for Economic and Policy Research blamed unions' decline.",
                  passage), "two names and an expansion, joined by connectors"
    assert not states("Schmitt and Zipperer of the Center for American Progress blamed unions' decline.", passage)
    assert not states("The UCLA Bruins and the Stanford Cardinal play in the Pac-12.", passage)


def test_acronyms_match_their_expansion_both_ways():
    passage = ("Talks between the Alliance of Motion Picture and Television Producers (AMPTP) and Sag. "
               "The Federal Communications Commission decided. MSPs vote at 5 pm.")
    assert states("The AMPTP represents the studios.", "The AMPTP says AI will change cinema.")
    assert states("The Alliance of Motion Picture and Television Producers says so.", "The AMPTP says so.")
    assert states("The FCC decided.", passage)
    assert states("Members of the Scottish Parliament vote at 5 pm.", passage)
    assert not states("The FTC decided.", passage)


def test_an_extra_name_is_a_missing_fact_and_the_first_word_alone_is_not_a_name():
    passage = "The writers went on strike in May, with Tom Cruise and George Clooney joining."
    assert [f.text for f in missing_facts("Tom Cruise, George Clooney and Brad Pitt joined.",
                                          PassageFacts(passage))] == ["George Clooney and Brad Pitt"]
    assert states("Joblessness is not mentioned, but Tom Cruise joined.", passage)
    assert [f.kind for f in claim_facts("HBO advertised the job.")] == ["name"], "an acronym opening a sentence"


def test_a_synonym_counts_toward_coverage_and_a_word_the_passage_has_nothing_like_does_not():
    scorer = SupportScorer(embed=encoder_for(Settings()).encode)
    passage = "The use of AI has been the most contentious topic in the negotiations with the studios."
    (synonym,), (unrelated,) = scorer.score(["AI is the most contested issue in the negotiations.",
                                             "AI is the most profitable crop in the negotiations."], [passage])
    assert synonym.lexical < synonym.coverage < 1.0, "contested / contentious, issue / topic count in part"
    assert unrelated.coverage < synonym.coverage and unrelated.score < synonym.score
    assert word_match(0.2) == 0.0 and word_match(0.8) == 1.0 and 0.0 < word_match(0.5) < 1.0



def test_a_very_common_word_the_passage_lacks_costs_less_than_a_rare_one():
    scorer = SupportScorer()  # the same corpus weight for every term: only general English tells them apart
    passage = "The writers went on strike in May."
    (common,), (rare,) = scorer.score(["The writers went on strike in May this time.",
                                       "The writers went on strike in May over pensions."], [passage])
    assert rare.lexical < common.lexical < 1.0, "'time' is among the commonest English words, 'pensions' is not"
    assert common.lexical > 0.9

# ---------------------------------------------------------------- across a chunk border


def chunk(index: int, text: str, doc_id: str = "walkout.md") -> Passage:
    return Passage(f"{doc_id}::0123456789ab::0:{index}", doc_id, text, extra={Meta.CHUNK_INDEX: index})


BEFORE = chunk(0, "The hospital's budget was cut again this year. The nurses walked out on 3 March, and the "
                  "junior doctors joined them a week later.")
CITED = chunk(1, "It is the first joint walkout since 1982 and has already closed three wards.\n\n"
                 "The health board says talks will resume.")
MIN_SUPPORT = Settings().citation_min_support


def test_a_claim_whose_subject_is_in_the_sentence_before_a_chunk_border_is_supported():
    scorer = SupportScorer(embed=encoder_for(Settings()).encode)
    claim = "The nurses and junior doctors are holding their first joint walkout since 1982 [1]."

    text, [citation], check = check_citations(claim, [CITED, BEFORE], scorer, MIN_SUPPORT)
    assert check.kept == 1 and text.endswith("[1]") and citation.chunk_id == CITED.chunk_id
    assert citation.quote in CITED.text, "the quote is the cited passage's own"
    # the model was not shown the chunk before it, or the chunk before has another document's index
    assert check_citations(claim, [CITED], scorer, MIN_SUPPORT)[2].kept == 0
    other = chunk(0, BEFORE.text, doc_id="another.md")
    assert check_citations(claim, [CITED, other], scorer, MIN_SUPPORT)[2].kept == 0


def test_a_number_only_in_the_neighbouring_chunk_does_not_count_for_the_cited_one():
    scorer = SupportScorer(embed=encoder_for(Settings()).encode)
    claim = "The junior doctors joined the walkout on 3 March, the first joint walkout since 1982 [1]."

    text, citations, check = check_citations(claim, [CITED, BEFORE], scorer, MIN_SUPPORT)
    assert (text, citations, check.kept) == ("", [], 0)
    [support] = scorer.score([claim], [CITED.text], before=[BEFORE.text])[0]
    assert support.score == 0.0 and "March" in support.missing, "the date is a fact the cited passage lacks"


# ---------------------------------------------------------------- the cases, real pipeline


CORRECT = [
    ("How much does the machine learning product manager job pay?",
     "The product manager position for Netflix's machine learning platform pays between $300,000 and "
     "$900,000 per year [{n}].", "$900,000", ["$300,000", "$900,000"]),
    ("How much do actors in the guild earn?",
     "Most guild actors earn little: 87% of SAG-AFTRA members make under $26,000 annually [{n}].",
     "87%", ["87%", "$26,000"]),
    ("Who represents the studios in the negotiations?",
     "The studios are represented in the talks by the Alliance of Motion Picture and Television Producers, "
     "known as the AMPTP [{n}].", "(AMPTP)", ["AMPTP"]),
    ("What is the most contentious topic in the negotiations?",
     "The most contested issue in the negotiations is the use of AI to write scripts, create actor likenesses "
     "or cut the cost of creative work [{n}].", "contentious", ["write scripts"]),
    ("Is this the first joint strike of actors and writers?",
     # the cited chunk begins "It's the first joint strike since the 1960s": "time" has no counterpart there,
     # but it is among the commonest words of English and weighs little (support 0.85; 0.74 when it weighed
     # its corpus idf alone)
     "It is the first time since the 1960s that actors and writers have struck together [{n}].",
     "1960s", ["1960s"]),
    ("Is this the first joint strike of actors and writers?",  # who struck: the sentence before the chunk border
     "Actors and writers are on strike together for the first time since the 1960s [{n}].", "1960s",
     ["first time since the 1960s"]),
    ("What other AI job is Netflix hiring for?",
     "Netflix is also hiring a technical director for generative AI at its game studio, paying up to "
     "$650,000 a year [{n}].", "$650,000", ["$650,000"]),
    ("Who first reported the job post?",
     "The Intercept was the first to report the job post [{n}].", "first reported by The Intercept",
     ["The Intercept"]),
    ("Which actors joined the strike?",
     "Tom Cruise and George Clooney are among the actors who joined the strike [{n}].", "Clooney",
     ["Tom Cruise", "George Clooney"]),
]
WRONG = [
    ("How much does the machine learning product manager job pay?",
     "The product manager job pays $400,000 to $950,000 a year [{n}].", "$900,000", "$950,000"),
    ("What is the most contentious topic in the negotiations?",
     "AI has been the most contentious topic in negotiations between the AMPTP and the Directors Guild of "
     "America [{n}].", "contentious", "Directors Guild"),
    ("When did the writers go on strike?",
     "The writers went on strike in April [{n}].", "strike in May", "April"),
    ("Which actors joined the strike?",
     "Tom Cruise, George Clooney and Brad Pitt joined the strike earlier this month [{n}].", "Clooney", "Brad Pitt"),
    ("Who advertised the machine learning job?",
     "HBO has placed an ad for a product manager of a machine learning platform paying $300,000 to "
     "$900,000 a year [{n}].", "$900,000", "HBO"),
    ("Who first reported the job post?",
     "The job post was first reported by The New York Times [{n}].", "first reported by The Intercept",
     "New York Times"),
]


@pytest.mark.parametrize("question,reply,needle,facts", CORRECT, ids=[c[3][0] for c in CORRECT])
def test_a_correct_reply_in_the_models_words_is_shown_with_its_facts(seeded_bot, server, question, reply,
                                                                      needle, facts):
    server.default = citing(reply, needle)
    answer = llm_bot(seeded_bot, server).ask(question)

    assert answer.check.outcome == "answered" and not answer.text.startswith("Note:")
    assert all(fact in answer.text for fact in facts)
    assert markers(answer.text) == [1] and answer.citations[0].doc_id == "netflix-ai-job-ad.md"
    assert answer.citations[0].quote in answer.citations[0].passage


@pytest.mark.parametrize("question,reply,needle,wrong", WRONG, ids=[w[3] for w in WRONG])
def test_a_reply_with_a_wrong_fact_is_never_shown(seeded_bot, server, question, reply, needle, wrong):
    server.default = citing(reply, needle)
    answer = llm_bot(seeded_bot, server).ask(question)

    assert wrong not in answer.text
    assert answer.check.kept == 0 and answer.check.dropped == 1


# ---------------------------------------------------------------- the fixture set, through the server


def test_held_out_model_like_replies_correct_ones_shown_wrong_facts_never(seeded_bot, server):
    """Held-out half of tests/fixtures/generated_replies.jsonl (the threshold was chosen on the other)."""
    replies = load_replies(half="held-out")
    settings = llm_bot(seeded_bot, server).settings
    generator = GenerativeAnswerer(LLMClient(settings), Abstaining(), settings.llm_context_window,
                                   settings.llm_max_tokens, settings.citation_min_support)
    evidence = Evidence(lambda term: 1.0, seeded_bot.retriever.embed)
    shown, wrong_facts, wrong_citations = [], [], []
    for reply in replies:
        server.script(Reply(reply.reply))
        query = Query(reply.question, reply.question, reply.question)
        *_, (_, answer) = generator.respond(query, list(reply.passages), evidence, stream=False)
        cited = {c.chunk_id for c in answer.citations}
        numbers = {n for n, p in enumerate(reply.passages, 1) if p.chunk_id in cited}
        if reply.label == "correct":
            shown.append(answer.check.outcome == "answered" and all(f in answer.text for f in reply.shown)
                         and numbers <= set(reply.supports))
        elif answer.check.outcome == "answered" and any(w in answer.text for w in reply.never_shown):
            # (an unverified answer quotes the passages themselves, which may name the same thing)
            wrong_facts.append(reply.id)
        elif numbers & set(reply.never_cited):
            wrong_citations.append(reply.id)
    assert len(shown) >= 40 and sum(shown) / len(shown) >= 0.95
    assert len([r for r in replies if r.label == "wrong"]) >= 40
    assert wrong_facts == [], "a wrong number, name or date reached the user"
    assert wrong_citations == [], "a right fact was cited to a passage that does not state it"


class Abstaining:
    """A fallback answerer that always abstains (the fixture passages are not in any store)."""

    def respond(self, query: Query, passages, evidence, stream: bool = True):
        yield ABSTAIN_MESSAGE, Answer(query.question, ABSTAIN_MESSAGE, True)


# ---------------------------------------------------------------- no false refusals


OFF_CORPUS = "Who won the football World Cup in 1998?"


def test_an_unverifiable_reply_becomes_an_abstention_that_quotes_the_closest_passages(seeded_bot, server):
    server.script(Reply("The 1998 World Cup was won by France, coached by Aime Jacquet [1]."))
    answer = llm_bot(seeded_bot, server).ask(OFF_CORPUS)

    assert answer.abstained and answer.unverified and answer.citations == []
    first, *passages = answer.text.splitlines()
    assert first == UNVERIFIED_MESSAGE and passages
    assert all(line.startswith("- ") and "(netflix-ai-job-ad.md): \"" in line for line in passages)
    assert "Jacquet" not in answer.text and "corpus does not contain" not in answer.text
    assert answer.check.outcome == "unverified" and answer.check.dropped == 1
    assert answer.to_json()["unverified"] is True


def test_ask_json_says_unverified_only_when_it_is(seeded_bot, server, monkeypatch, capsys):
    monkeypatch.setenv("ASSISTANT_LLM", "openai")
    monkeypatch.setenv("ASSISTANT_LLM_BASE_URL", server.base_url)
    store = str(seeded_bot.settings.store_dir)
    server.script(Reply("The 1998 World Cup was won by France, coached by Aime Jacquet [1]."))
    assert main(["ask", OFF_CORPUS, "--store", store, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record.get("unverified") is True, record and record["abstained"] is True and record["citations"] == []
    assert record["answer"].startswith(UNVERIFIED_MESSAGE)

    server.script(Reply("Not in the corpus."))
    assert main(["ask", OFF_CORPUS, "--store", store, "--json"]) == 0
    assert "unverified" not in json.loads(capsys.readouterr().out)


def test_follow_up_after_an_unverified_turn_is_condensed_and_a_paraphrase_is_kept(seeded_bot, server):
    bot = llm_bot(seeded_bot, server)
    server.script(Reply("The 1998 World Cup was won by France, coached by Aime Jacquet [1]."))
    first = bot.ask(OFF_CORPUS)
    assert first.unverified

    server.requests.clear()
    server.script(Reply("How much does the Netflix machine learning product manager job pay?"))
    server.default = citing("The role pays 300,000 to 900,000 dollars annually [{n}].", "$900,000")
    answer = bot.ask("And how much does the Netflix job pay?", history=[(OFF_CORPUS, first.text)])

    condense, generate = server.requests
    assert "Follow Up Input: And how much does the Netflix job pay?" in prompt_of(condense)
    assert OFF_CORPUS in prompt_of(condense) and UNVERIFIED_MESSAGE in prompt_of(condense)
    assert "Question: How much does the Netflix machine learning product manager job pay?" in prompt_of(generate)
    assert answer.check.outcome == "answered" and "300,000 to 900,000 dollars annually" in answer.text
    assert markers(answer.text) == [1] and not answer.unverified
