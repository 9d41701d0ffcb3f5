"""Multi-turn context without an LLM: rewrite follow-ups with the salient terms of earlier turns.

"How much does it pay?" after "What job did Netflix advertise for its machine
learning platform?" only makes sense with the first question in mind. A
follow-up (it refers back with a pronoun, or names nothing of its own) is
searched and answered as itself plus the content words of the previous
question(s) and the key words of the previous answer, so retrieval lands on the
same article and sentence scoring still favours what the new question asks.
"""

from __future__ import annotations

import re

from assistant.text import CAPITALISED, STOPWORDS, words

REFERRING = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|hers|there|"
    r"the (job|role|post|position|company|article|person|man|woman|one|same|former|latter)|such|"
    r"what about|how about|and the|also)\b",
    re.I,
)
MAX_TURNS = 2
MAX_ANSWER_TERMS = 6
OWN_TERMS_TO_STAND_ALONE = 3


def is_follow_up(question: str) -> bool:
    """True when the question leans on earlier turns (pronouns, or no subject of its own)."""
    content = [w for w in words(question) if w not in STOPWORDS]
    names = [m.group() for m in CAPITALISED.finditer(question) if m.start() > 0]
    return bool(REFERRING.search(question)) or (len(content) <= 2 and not names)


def contextualise(question: str, history: list[tuple[str, str]]) -> str:
    """The question to search and answer with: the question, plus earlier context if it is a follow-up."""
    if not history or not is_follow_up(question):
        return question
    context: list[str] = []
    for previous_question, previous_answer in history[-MAX_TURNS:]:
        context += [w for w in re.findall(r"[\w$%.,'-]+", previous_question) if w.lower() not in STOPWORDS]
        names = [m.group() for m in CAPITALISED.finditer(_strip_markers(previous_answer))]
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


def _strip_markers(text: str) -> str:
    return re.sub(r"\[\d+\]", " ", text or "")
