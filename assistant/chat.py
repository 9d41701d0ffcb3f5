"""Rewriting a question with its conversation: the first step of every answer.

A rewriter turns (question, earlier turns) into a :class:`Query`: what to search
for and what to answer. :class:`RuleRewriter` is the default and needs no LLM;
:class:`LLMCondenser` asks the LLM for a standalone question and falls back to
the rule-based rewrite when the endpoint fails.

Multi-turn context without an LLM: rewrite follow-ups with the salient terms of earlier turns.

"How much does it pay?" after "What job did Netflix advertise for its machine
learning platform?" only makes sense with the first question in mind. A
follow-up (it refers back with a pronoun, or names nothing of its own) is
searched and answered as itself plus the content words of the previous
question(s) and the key words of the previous answer, so retrieval lands on the
same article and sentence scoring still favours what the new question asks.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from assistant.contract import Query, closest_quote
from assistant.text import CAPITALISED, STOPWORDS, count_tokens, terms, words

REFERRING = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|hers|there|"
    r"such|what about|how about|and the|also)\b",
    re.I,
)
# "the job", "the company": a follow-up only when the question says little else ("How much does the
# job pay?"); "Who reported the job ad first?" names enough to be searched as it is.
DEFINITE = re.compile(r"\bthe (job|role|post|position|company|article|person|man|woman|one|same|former|latter)\b",
                      re.I)
_DOCUMENT = r"(?:article|document|doc|text|story|piece|report|paper|file|pdf|page|upload|corpus|source)s?"
# "What is this article about?", "Summarize it.", "What are the main points?": a request for what a
# document says as a whole, which no single fact-bearing sentence matches word for word.
OVERVIEW = re.compile(
    r"^\W*(?:please\s+)?(?:(?:can|could|would|will) you\s+)?(?:please\s+)?"
    r"(?:summari[sz]e|sum up|recap|give (?:me )?(?:a |an )?(?:short |brief |quick )?(?:summary|overview|gist|rundown|recap)"
    r"|tl;?\s?dr)\b"
    rf"|\b(?:what(?:'s|’s| is| are| was| were)|tell me)\s+(?:(?:this|the|that|these|those|it|my|your)\s+)?"
    rf"(?:(?:[\w'’-]+\s+){{0,3}}?{_DOCUMENT}\s+)?(?:mainly\s+|all\s+|really\s+)?about\s*\W*$"
    r"|\b(?:main|key)\s+(?:points?|ideas?|takeaways?|findings?|messages?)\b"
    rf"|\bwhat (?:does|do|did) (?:this|the|that|it|these|those)\s*(?:{_DOCUMENT})?\s+(?:say|cover|discuss|describe)\s*\W*$"
    r"|\b(?:summary|overview|gist|rundown) of\b"
    rf"|^\W*tell me about (?:this|the|that|these|those|my) {_DOCUMENT}\W*$",
    re.I,
)
# The words of such a request that name no subject: what is left ("Summarize the Netflix article")
# says which document.
OVERVIEW_WORDS = frozenset(terms(
    "summarize summarise summary sum up recap overview gist rundown tl dr tldr main key points ideas "
    "takeaways findings messages article document doc text story piece report paper file pdf page upload "
    "corpus source say cover discuss describe tell give please briefly short brief quick mainly really what's"))
MAX_TURNS = 2
MAX_ANSWER_TERMS = 6
OWN_TERMS_TO_STAND_ALONE = 3
CONDENSE_HISTORY_TURNS = 3
CONDENSE_ANSWER_CHARS = 600

History = list[tuple[str, str]]

if TYPE_CHECKING:  # LlamaIndex is imported only when an LLM condenses (`assistant ask` starts faster)
    from assistant.llm import LLMClient


@lru_cache(maxsize=1)
def condense_prompt():
    """LlamaIndex's condense prompt (as ``CondensePlusContextChatEngine`` uses it)."""
    from llama_index.core.chat_engine.condense_plus_context import DEFAULT_CONDENSE_PROMPT_TEMPLATE
    from llama_index.core.prompts import PromptTemplate

    return PromptTemplate(DEFAULT_CONDENSE_PROMPT_TEMPLATE)


class Rewriter(Protocol):
    """Turns a question and the earlier (question, answer) turns into the :class:`Query` to run."""

    def rewrite(self, question: str, history: History) -> Query: ...


class RuleRewriter:
    """The default: a follow-up is searched with the salient terms of earlier turns (no LLM)."""

    def rewrite(self, question: str, history: History) -> Query:
        search = contextualise(question, history)
        return with_overview(Query(question, search, answer_query(question, search)))


class LLMCondenser:
    """A follow-up rewritten by the LLM into a standalone question (LlamaIndex's condense prompt,
    as ``CondensePlusContextChatEngine`` does); the rule-based rewrite when the endpoint fails."""

    def __init__(self, client: LLMClient, token_budget: int, fallback: Rewriter | None = None) -> None:
        self.client = client
        self.token_budget = token_budget  # for the history in the condense prompt
        self.fallback = fallback or RuleRewriter()

    def rewrite(self, question: str, history: History) -> Query:
        from assistant.llm import LLMError

        if not history:
            return with_overview(Query(question, question, question))
        try:
            condensed = self.condense(question, history)
        except LLMError as error:
            query = self.fallback.rewrite(question, history)
            query.rewrite_error = str(error)
            return query
        return with_overview(Query(question, condensed, condensed))

    def condense(self, question: str, history: History) -> str:
        """A standalone version of a follow-up ``question``, written by the LLM from the history."""
        lines: list[str] = []
        for previous_question, previous_answer in reversed(history[-CONDENSE_HISTORY_TURNS:]):
            answer = re.sub(r"^Note: .*\n+", "", previous_answer or "")  # a fallback's note is not content
            answer = re.sub(r"\s*\[\d+\]", "", answer)[:CONDENSE_ANSWER_CHARS]
            turn = [f"user: {previous_question}", f"assistant: {answer}"]
            if count_tokens("\n".join(turn + lines)) > self.token_budget:
                break
            lines = turn + lines
        from llama_index.core.llms import ChatMessage, MessageRole

        prompt = condense_prompt().format(chat_history="\n".join(lines), question=question)
        text = self.client.complete([ChatMessage(role=MessageRole.USER, content=prompt)])
        condensed = next((line.strip(" \"'") for line in text.splitlines() if line.strip()), "")
        condensed = re.sub(r"^(standalone question|question)\s*:\s*", "", condensed, flags=re.I)
        return condensed or question


def with_overview(query: Query) -> Query:
    """``query`` marked when it asks what a document is about, and then searched by its subject
    alone ("Summarise the ferry report" -> "ferry"); focused when its own words or the
    conversation name one."""
    if OVERVIEW.search(query.question):
        query.overview = True
        subject = [w for w in re.findall(r"[\w$%.,'’-]+", query.search) if set(terms(w)) - OVERVIEW_WORDS]
        query.focused = bool(subject)
        if subject:
            query.search = " ".join(subject)
    return query


def is_follow_up(question: str) -> bool:
    """True when the question leans on earlier turns: a pronoun, a definite reference ("the job")
    with little else, or no subject of its own."""
    content = [w for w in words(question) if w not in STOPWORDS]
    names = [m.group() for m in CAPITALISED.finditer(question) if m.start() > 0]
    referred = {m.group(1).lower() for m in DEFINITE.finditer(question)}
    own = [w for w in content if w not in referred]
    return (bool(REFERRING.search(question)) or bool(referred and len(own) < OWN_TERMS_TO_STAND_ALONE)
            or (len(content) <= 2 and not names))


def contextualise(question: str, history: list[tuple[str, str]]) -> str:
    """The question to search and answer with: the question, plus earlier context if it is a follow-up."""
    if not history or not is_follow_up(question):
        return question
    context: list[str] = []
    for previous_question, previous_answer in history[-MAX_TURNS:]:
        context += [w for w in re.findall(r"[\w$%.,'-]+", previous_question) if w.lower() not in STOPWORDS]
        names = [m.group() for m in CAPITALISED.finditer(_answer_words(previous_answer))]
        context += names[:MAX_ANSWER_TERMS]
    seen, extra = set(words(question)), []
    for term in context:
        key = term.lower().strip(".,")
        if key and key not in seen:
            seen.add(key)
            extra.append(term.strip(".,"))
    return f"{question} ({' '.join(extra)})" if extra else question


def answer_query(question: str, search_query: str) -> str:
    """What the answerer matches sentences against: the follow-up itself when it says enough on
    its own ("What do they say AI will do to cinema?"), else the rewritten search query ("How much
    does it pay?"). Earlier turns' words would otherwise pull the answer back to the earlier one."""
    own = [w for w in words(question) if w not in STOPWORDS and not REFERRING.fullmatch(w)]
    return question if len(own) >= OWN_TERMS_TO_STAND_ALONE else search_query


def _answer_words(text: str) -> str:
    """An earlier answer's own words: no [n] markers; of a refusal quoting the closest sentence, only
    the quote (not its opening line nor the document it names)."""
    text = re.sub(r"\[\d+\]", " ", text or "")
    quote = closest_quote(text)
    return text if quote is None else quote
