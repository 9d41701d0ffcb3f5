"""What the extractive answerer knows about a question and its candidate sentences.

- :func:`analyse_question`: the question's terms, key terms, expected answer type and its finer
  kind (country, US state, place, organisation, person, percentage, money, year, name), matched by
  :func:`kind_fit` (countries and states by name, :mod:`assistant.places`).
- :func:`answer_form`: whether a sentence can be an answer at all (not a heading, title-like line,
  question, caption or fragment without a verb).
- :func:`sentence_features`: per sentence, how well it answers (the sentence model's input).
- :func:`answer_features`: per question, whether the best sentence answers it at all, in relative
  and absolute terms (the abstention model's input); the absolute ones weigh the question's terms
  by general English (:mod:`assistant.background`), which does not depend on the corpus's size.

Both models are logistic regressions over these features, fitted by ``bench/fit_answerer.py``.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from assistant.background import background_weight
from assistant.places import KINDS as PLACE_KINDS, place_pattern
from assistant.text import CAPITALISED, DATE, NUMBER, STOPWORDS, terms

SENTENCE_FEATURES = ("overlap", "resolved_overlap", "context_overlap", "type_fit", "type_near", "novelty",
                     "rank", "bm25_rank", "short", "first", "recent", "kind_fit", "kind_near", "bigrams",
                     "key_overlap", "common_overlap", "redundancy", "lead_answer")
ANSWER_FEATURES = ("sentence_prob", "overlap", "passage_dense", "missing_key", "passage_coverage",
                   "covered_idf", "max_missing_idf", "negation_mismatch", "contrast", "margin", "type_fit",
                   "context_missing", "max_context_missing", "type_missing", "missing_key_context",
                   "unknown_key", "unknown_idf", "kind_fit")

MAX_VERBLESS_WORDS = 12     # a longer line that ends in a full stop is read as a sentence, verb or not
MIN_INFORMATIVENESS = 1e-6  # the general-English factor of a term's weight is at least this
UNSEEN_TERM = "\x00unseen"  # asked of the idf function: the weight of a term no chunk holds
REDUNDANT_SENTENCES = 12   # an answer named in this many retrieved sentences is as redundant as it gets
NEAR_WORDS = 8               # an expected entity "next to" the question's event: within this many words
RECENT_HALF_LIFE_DAYS = 7.0  # a dated question's week: articles of that week score ~1, a month older ~0.05
DAY_OR_MONTH = re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|October|November|"
                          r"December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|"
                          r"tomorrow|(?:last|next|this) (?:week|month|year))\b")
COUNT_WORDS = re.compile(r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|"
                         r"hundreds?|thousands?|millions?|billions?)\b", re.I)

# Words that questions written to be unanswerable swap for a sibling ("larger" for "smaller",
# "weekly" for "annual"): a question term missing from the answer sentence while a sibling
# of it is present is a strong sign that the sentence does not answer the question.
CONTRAST_CLASSES = [
    "first second third fourth fifth sixth last final next previous earliest latest initial",
    "larger smaller bigger greater less more fewer higher lower largest smallest biggest greatest most "
    "least highest lowest longest shortest oldest newest youngest best worst major minor wider narrower",
    "north south east west northern southern eastern western upper lower inner outer northeast "
    "northwest southeast southwest",
    "daily weekly monthly annual annually yearly hourly decade century",
    "hot cold heat warm cool warmer cooler colder hotter",
    "increase decrease rise fall gain loss win lose won lost success failure before after early late "
    "begin end start finish import export public private internal external maximum minimum male female "
    "men women buy sell bought sold open close opened closed ancient modern positive negative "
    "allow forbid support oppose accept reject inside outside above below add remove",
]
_CONTRAST: dict[str, int] = {}

# Capitalised only because they open a sentence: not names.
SENTENCE_OPENERS = STOPWORDS | frozenset("""
according after although already also another because before but despite during earlier even every
however if instead last later like many meanwhile most now once only other over since some still
that then there these this those though today tomorrow unlike when where while yesterday yet
monday tuesday wednesday thursday friday saturday sunday
""".split())

REFERS_BACK = re.compile(r"\W*(?:it|its|it's|they|their|them|he|his|him|she|her|this|these|those|there|"
                         r"the (?:latter|former|same)|such)\b", re.I)
NEGATION = re.compile(r"\b(not|never|no|without|neither|nor|cannot|none)\b|n['’]t\b", re.I)
TERMINAL = re.compile(r"[.!…][\"'”’)\]]*$")
CAPTION = re.compile(r"^\s*(?:\(?(?:photo|image|picture|video|figure|fig\.|table|caption|credit|source|"
                     r"file photo|show caption|hide caption)\b|[^.]{0,80}\b(?:getty images|associated press|"
                     r"ap photo|reuters|usa today network|/ ?ap|/ ?afp)\)?\.?\s*$)", re.I)
# A line that a caption opens (a figure's or an image's caption is loaded as "Caption: ..."): none of
# its sentences answers, the second of a two-sentence caption no more than the first. Matched at a
# line's start, or over a whole text (``sub``) to leave its captions out.
CAPTION_LINE = re.compile(r"^[ \t]*caption:.*$", re.I | re.M)
# A sentence with none of these has no finite verb: "Annual Report 2023.", "Correspondent."
VERB_HINT = re.compile(r"\b(?:is|are|was|were|be|been|being|am|has|have|had|do|does|did|will|would|can|could|"
                       r"shall|should|may|might|must|says?|said|began|became|beat|bought|brought|built|came|"
                       r"caught|chose|drew|drove|fell|felt|flew|fought|found|gave|got|grew|heard|held|hit|"
                       r"kept|knew|led|left|lost|made|meant|met|paid|put|ran|rose|sat|saw|sent|set|shot|"
                       r"sold|spent|spoke|stood|struck|took|taught|thought|told|went|won|wore|wrote|\w{2,}(?:ed|es))\b|\b\w+s\b(?=\s+(?:a|an|the|to|"
                       r"that|its|his|her|their|on|in|at|for|with|from|by|up|out)\b)", re.I)


# The finer kind of answer a question expects, from its wording ("which country", "what
# percentage"), and how a sentence shows one (see ``kind_spans``).
_HEADS = {
    "place": r"countr(?:y|ies)|states?|cit(?:y|ies)|nations?|count(?:y|ies)|towns?|islands?|continents?|"
             r"regions?|provinces?|capital|territor(?:y|ies)|neighbou?rhoods?|venue|location|place",
    "org": r"compan(?:y|ies)|organi[sz]ations?|firms?|agenc(?:y|ies)|networks?|groups?|teams?|brands?|airlines?|"
           r"retailers?|banks?|carriers?|part(?:y|ies)|universit(?:y|ies)|colleges?|schools?|newspapers?|"
           r"publications?|outlets?|unions?|leagues?|clubs?|courts?|departments?|manufacturers?|automakers?|"
           r"chains?|stores?|platforms?|apps?|services?|startups?|nonprofits?|charit(?:y|ies)|institutions?|"
           r"broadcasters?|studios?|makers?|businesses|business|restaurants?|companies",
    "person": r"actors?|actress(?:es)?|singers?|rappers?|artists?|players?|athletes?|persons?|people|man|woman|"
              r"celebrit(?:y|ies)|politicians?|senators?|governors?|presidents?|candidates?|judges?|authors?|"
              r"musicians?|ceos?|executives?|stars?|coach(?:es)?|directors?|leaders?|officials?|lawmakers?|"
              r"billionaires?|comedians?|hosts?|quarterbacks?|pitchers?|founders?|writers?|journalists?|"
              r"reporters?|chefs?|members?|ministers?|mayors?|rep(?:resentative)?s?|justices?",
}
QUESTION_KIND = [
    ("percent", re.compile(r"\b(?:percent(?:age)?|proportion|what share)\b", re.I)),
    ("money", re.compile(r"\bhow much (?:money|\w+ (?:cost|pay|paid|worth|spend|spent|earn|raise|raised|"
                         r"charge|fine|owe|sell|sold)\w*)|\b(?:what|which) (?:price|cost|salary|amount|sum|fee)|"
                         r"\bhow much\b.*\b(?:cost|pay|paid|worth|spen[dt]|earn|rais|fine|charg|sold|sell|price)", re.I)),
    ("year", re.compile(r"\b(?:what|which|in what|in which) year\b", re.I)),
    ("name", re.compile(r"\b(?:what (?:is|was|were|are) (?:the|its|their|his|her) names?|what (?:is|was) it called|"
                        r"under what name|what (?:is|was) (?:the )?\w+ (?:called|named))\b", re.I)),
    ("country", re.compile(r"\b(?:which|what) (?:\w+ )?(?:countr(?:y|ies)|nations?)\b", re.I)),
    ("state", re.compile(r"\b(?:which|what) (?:\w+ )?states?\b", re.I)),
    ("place", re.compile(rf"\bwhere\b|\b(?:which|what) (?:\w+ )?(?:{_HEADS['place']})\b", re.I)),
    ("org", re.compile(rf"\b(?:which|what) (?:\w+ )?(?:{_HEADS['org']})\b", re.I)),
    ("person", re.compile(rf"\bwho(?:m|se)?\b|\b(?:which|what) (?:\w+ )?(?:{_HEADS['person']})\b", re.I)),
]
ORG_WORD = re.compile(r"\b(?:Inc|Corp|Co|Company|Group|Airlines?|Airways|Bank|University|Institute|Association|"
                      r"Agency|Department|Council|Foundation|Party|Network|News|Times|Post|Journal|Committee|"
                      r"Commission|Bureau|Service|Union|League|Club|Court|Motors|Technologies|Labs|Media|"
                      r"Entertainment|Studios|Pictures|Guild|Alliance|Administration|Authority|Board|Center|"
                      r"Centre|Hospital|College|School|Systems|Holdings|Partners|Records|Festival)\b|"
                      r"\b[A-Z][A-Z&]{1,}[A-Z]\b|\b[A-Z]{2,}\b")
PLACE_BEFORE = re.compile(r"\b(?:in|at|from|to|near|across|outside|inside|into|of|throughout)\s+(?:the\s+)?$")
PERSON_AFTER = re.compile(r"^\s*(?:,\s*(?:who|a|an|the)\b|\s(?:said|says|told|wrote|added|announced|"
                          r"died|won|was|is|has|had|will|who)\b)")


# Past forms the stemmer leaves alone, read also as their base form: a question asks "when did the
# writers go on strike?", the article says they "went on strike". (Stems, as ``terms`` gives them.)
IRREGULAR = dict(pair.split(":") for pair in """went:go gone:go paid:pay won:win made:make took:take taken:take
gave:give given:give found:find told:tell said:say sold:sell bought:buy brought:bring began:begin begun:begin
becam:becom came:come left:leav held:hold led:lead met:meet ran:run saw:see seen:see spent:spend stood:stand
struck:strike thought:think wrote:write written:write knew:know known:know grew:grow grown:grow fell:fall
fallen:fall felt:feel kept:keep lost:lose meant:mean rose:rise risen:rise sent:send built:build caught:catch
chose:choos chosen:choos drew:draw drawn:draw drove:drive driven:drive flew:fli flown:fli fought:fight
forgot:forget forgotten:forget froze:freez got:get gotten:get hid:hide hidden:hide hung:hang heard:hear
laid:lay lent:lend lit:light rode:ride ridden:ride rang:ring sang:sing sung:sing sank:sink shook:shake
shaken:shake shot:shoot slept:sleep spoke:speak spoken:speak stole:steal stolen:steal swam:swim swum:swim
taught:teach threw:throw thrown:throw understood:understand woke:wake wore:wear worn:wear wound:wind
broke:break broken:break ate:eat eaten:eat fed:feed fled:flee dealt:deal dug:dig sought:seek sold:sell
shut:shut sped:speed spun:spin stuck:stick sworn:swear swore:swear tore:tear torn:tear withdrew:withdraw
withdrawn:withdraw""".split())


def with_base_forms(stems) -> set[str]:
    """``stems`` plus the base form of each irregular past form among them."""
    found = set(stems)
    return found | {IRREGULAR[t] for t in found if t in IRREGULAR}


@dataclass
class QuestionInfo:
    """A question's terms, the names and numbers it is about, and the kind of answer it expects."""

    text: str
    terms: list[str]
    answer_type: str | None  # date | number | entity | None
    key_terms: set[str]
    kind: str | None = None  # percent | money | year | name | country | state | place | org | person | None


def analyse_question(question: str) -> QuestionInfo:
    lower = question.lower()
    answer_type = None
    if re.search(r"\b(when|what (year|date|decade|century|time|month|day)|which (year|century|decade|month|day)|"
                 r"how long ago|since when)\b", lower):
        answer_type = "date"
    elif re.search(r"\b(how (many|much|long|old|far|big|large|tall|high|fast|often)|what (percentage|percent|"
                   r"number|amount|proportion|share|fraction|salary|price|cost)|how much money)\b", lower):
        answer_type = "number"
    elif re.search(r"\b(who|whom|whose|where|which|what is the name|what was the name|name the)\b", lower):
        answer_type = "entity"  # a person, place, organisation or title: a name
    # Key terms: numbers and proper names the question is about (other than its first word).
    key_terms: set[str] = set()
    for match in NUMBER.finditer(question):
        key_terms.update(terms(match.group()))
    for match in CAPITALISED.finditer(question):
        if match.start() == 0 and " " not in match.group():
            continue
        key_terms.update(t for t in terms(match.group()) if t not in STOPWORDS)
    kind = next((name for name, pattern in QUESTION_KIND if pattern.search(question)), None)
    return QuestionInfo(question, list(dict.fromkeys(terms(question))), answer_type, key_terms, kind)


def answer_form(sentence: str) -> bool:
    """True when ``sentence`` reads as a statement that can answer: not a heading or title-like
    line, a question, a caption or credit line, or a fragment without a verb."""
    text = sentence.strip()
    n_words = len(text.split())
    if n_words < 4 or text.endswith("?") or CAPTION.search(text):
        return False
    if not TERMINAL.search(text):  # no full stop: a heading, byline, dateline or list label
        return False
    words_ = re.findall(r"[A-Za-z][\w'’-]*", text)
    capitalised = sum(1 for w in words_ if w[0].isupper())
    if n_words <= 12 and words_ and capitalised / len(words_) >= 0.6:  # "Riverside Cycling Club Annual Report 2023."
        return False
    return n_words > MAX_VERBLESS_WORDS or bool(VERB_HINT.search(text))


def _contrast_index() -> dict[str, int]:
    if not _CONTRAST:
        for number, words_ in enumerate(CONTRAST_CLASSES):
            for word in words_.split():
                for stem in terms(word):
                    _CONTRAST.setdefault(stem, number)
    return _CONTRAST


# The agent of a passive verb in lower case ("donated by the town council", "built by the harbour
# board"): who did it, though no capital letter names it.
_AGENT_WORD = r"(?!(?:in|on|at|of|for|to|with|from|since|during|after|before|and|or|but|the|a|an)\b)[a-z][\w-]*"
BY_AGENT = re.compile(rf"(?<=\bby )(?:the|a|an|its|their|his|her|local|two|three) (?:{_AGENT_WORD} ){{0,2}}{_AGENT_WORD}\b")


def typed_spans(sentence: str, answer_type: str | None) -> list[re.Match]:
    """The spans of ``sentence`` of the question's answer type (dates, numbers or names)."""
    if answer_type == "date":
        return list(DATE.finditer(sentence)) + list(DAY_OR_MONTH.finditer(sentence))
    if answer_type == "number":
        return list(NUMBER.finditer(sentence)) + list(COUNT_WORDS.finditer(sentence))
    if answer_type == "entity":
        # A name may open the sentence ("Tetris is ..."), a capitalised first word alone ("During") may not.
        names = [m for m in CAPITALISED.finditer(sentence)
                 if m.start() > 0 or m.group().split(None, 1)[0].lower() not in SENTENCE_OPENERS]
        return names + list(BY_AGENT.finditer(sentence))
    return []


def type_fit(sentence: str, info: QuestionInfo, question_terms: set[str]) -> tuple[float, float]:
    """(an answer of the expected type that the question does not already name is present,
    and it stands within ``NEAR_WORDS`` words of a question term)."""
    spans = [m for m in typed_spans(sentence, info.answer_type) if not set(terms(m.group())) <= question_terms]
    if not spans:
        return 0.0, 0.0
    tokens = list(re.finditer(r"\S+", sentence))
    hits = [i for i, m in enumerate(tokens) if _token_terms(m.group()) & question_terms]
    if not hits:
        return 1.0, 0.0
    starts = [m.start() for m in tokens]
    near = any(min(abs(bisect.bisect_right(starts, m.start()) - 1 - h) for h in hits) <= NEAR_WORDS for m in spans)
    return 1.0, 1.0 if near else 0.0


def kind_spans(sentence: str, kind: str | None) -> list[tuple[int, int]]:
    """Character spans of ``sentence`` that look like an answer of the question's finer kind."""
    if kind == "percent":
        return [m.span() for m in re.finditer(r"\d[\d,.]*\s?(?:%|percent\b)", sentence)]
    if kind == "money":
        return [m.span() for m in re.finditer(r"[$£€]\s?\d[\d,.]*(?:\s?(?:million|billion|trillion|[mbk])\b)?|"
                                              r"\d[\d,.]*\s?(?:million |billion )?(?:dollars|pounds|euros)\b", sentence)]
    if kind in PLACE_KINDS:  # "which country" / "which state": a country's or a US state's name
        return [m.span() for m in place_pattern(kind).finditer(sentence)]
    if kind == "year":
        return [m.span() for m in re.finditer(r"\b(?:1[5-9]\d\d|20\d\d)s?\b", sentence)]
    names = typed_spans(sentence, "entity")
    if kind == "name":  # a name, or a quoted title ("Deep Fake Love")
        return [m.span() for m in names] + [m.span() for m in re.finditer(r"[“\"‘][^”\"’]{2,60}[”\"’]", sentence)]
    if kind == "org":
        return [m.span() for m in names if ORG_WORD.search(m.group())]
    if kind == "place":
        return [m.span() for m in names if not ORG_WORD.search(m.group())
                and PLACE_BEFORE.search(sentence[max(m.start() - 20, 0):m.start()])]
    if kind == "person":
        agents = [m.span() for m in BY_AGENT.finditer(sentence)]
        return agents + [m.span() for m in names if not ORG_WORD.search(m.group()) and (
            len(m.group().split()) in (2, 3) or PERSON_AFTER.match(sentence[m.end():m.end() + 12]))]
    return []


def kind_fit(sentence: str, info: QuestionInfo, question_terms: set[str]) -> tuple[float, float]:
    """(an answer of the question's finer kind that the question does not already name is present,
    and it stands within ``NEAR_WORDS`` words of a question term); (0, 0) without a finer kind."""
    spans = [(a, b) for a, b in kind_spans(sentence, info.kind) if not set(terms(sentence[a:b])) <= question_terms]
    if not spans:
        return 0.0, 0.0
    tokens = list(re.finditer(r"\S+", sentence))
    hits = [i for i, m in enumerate(tokens) if _token_terms(m.group()) & question_terms]
    starts = [m.start() for m in tokens]
    near = any(min((abs(bisect.bisect_right(starts, a) - 1 - h) for h in hits), default=NEAR_WORDS + 1) <= NEAR_WORDS
               for a, _ in spans)
    return 1.0, 1.0 if near else 0.0


# What may open a sentence before its subject: a bullet, a dateline ("WASHINGTON −", "SPRINGFIELD, Ill. –").
LEAD_IN = re.compile(r"^[\W_]*(?:[A-Z][A-Z.' ]+(?:,\s*[A-Z][\w.]+)*\s*(?:\([A-Za-z ]+\)\s*)?[-–—−]+\s*)?")


def answer_spans(sentence: str, info: QuestionInfo, question_terms: set[str]) -> list[tuple[int, int]]:
    """The character spans of ``sentence`` that could be the answer (of the question's finer kind,
    else of its answer type) and name something the question does not."""
    if info.kind:
        spans = kind_spans(sentence, info.kind)
    else:
        spans = [m.span() for m in typed_spans(sentence, info.answer_type)]
    return [(a, b) for a, b in spans if set(terms(sentence[a:b])) - question_terms]


def answer_terms(sentence: str, info: QuestionInfo, question_terms: set[str],
                 spans: list[tuple[int, int]] | None = None) -> list[frozenset[str]]:
    """The terms of each of ``sentence``'s :func:`answer_spans` (``spans`` when already found), less
    those the question names."""
    if spans is None:
        spans = answer_spans(sentence, info, question_terms)
    return [frozenset(terms(sentence[a:b])) - question_terms for a, b in spans]


def leads_with_answer(sentence: str, spans: list[tuple[int, int]]) -> float:
    """1 when the sentence opens (after any bullet or dateline) with one of its answer ``spans``
    (:func:`answer_spans`): "Norway hosted the sailing summit in June." names what "which country"
    asks for as its subject, where a sentence that restates the question names it at most in passing."""
    start = LEAD_IN.match(sentence).end()
    return 1.0 if any(a == start for a, _ in spans) else 0.0


def redundancy(spans: list[frozenset[str]], sentence_frequency) -> float:
    """How often the sentence's likeliest answer recurs in the passages (answers recur, noise does
    not): the most frequent span's count of sentences holding its rarest term, on a log scale."""
    counts = [min(sentence_frequency[t] for t in span) for span in spans]
    return min(math.log1p(max(counts, default=0)) / math.log1p(REDUNDANT_SENTENCES), 1.0)


def bigram_share(question_terms: list[str], sentence_terms: list[str]) -> float:
    """Share of the question's consecutive term pairs that occur next to each other in the sentence."""
    pairs = set(zip(question_terms, question_terms[1:]))
    if not pairs:
        return 0.0
    return len(pairs & set(zip(sentence_terms, sentence_terms[1:]))) / len(pairs)


def common_share(question_terms, present: set[str]) -> float:
    """Share of the question's general-English weight (:mod:`assistant.background`) in ``present``."""
    weights = {t: background_weight(t) for t in question_terms}
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in present) / total if total else 0.0


@lru_cache(maxsize=65536)
def _token_terms(token: str) -> frozenset[str]:
    return frozenset(terms(token))


def recency(age_days: float | None) -> float:
    """How close a passage's article is to the question's date: 1 in its week, falling with age;
    0 for articles published after it (beyond the publication lag) or without a date."""
    if age_days is None or age_days < 0:
        return 0.0
    return 0.5 ** (age_days / RECENT_HALF_LIFE_DAYS)


def answer_features(info: QuestionInfo, best_sentence: str, best_features: dict, sentence_prob: float,
                    second_prob: float, passage_text: str, context: str, passages,
                    weights: dict[str, float], unseen_weight: float) -> dict[str, float]:
    """Whether the best sentence answers the question: relative (its score, margin, share of the
    question covered) and absolute (raw idf mass covered, best raw cosine, names the corpus never
    mentions) evidence. ``weights``: idf of the question's terms; ``unseen_weight``: the idf of a
    term no chunk of the corpus holds."""
    sentence_terms = with_base_forms(terms(best_sentence))
    passage_terms = with_base_forms(terms(passage_text))
    keys = info.key_terms or set()
    missing_key = len(keys - passage_terms) / len(keys) if keys else 0.0
    context_terms = with_base_forms(terms(context)) | sentence_terms
    missing_terms = [t for t in info.terms if t not in context_terms]
    contrast_index = _contrast_index()
    sentence_classes = {contrast_index[t] for t in sentence_terms if t in contrast_index}
    contrast = any(contrast_index.get(t) in sentence_classes for t in missing_terms)
    unseen = {t for t, w in weights.items() if w >= unseen_weight - 1e-9}
    informative = {t: w * max(background_weight(t), MIN_INFORMATIVENESS) for t, w in weights.items()}
    total = sum(weights.values()) or 1.0
    top = max(weights.values(), default=1.0) or 1.0
    absent = [w for t, w in weights.items() if t not in passage_terms]
    return {
        "unknown_key": len(keys & unseen) / len(keys) if keys else 0.0,
        # A word no chunk holds weighs its idf times its rarity in general English: an unseen name or
        # number says "another subject", an unseen common word ("famous") mostly says "other words".
        "unknown_idf": sum(informative[t] for t in unseen) / (sum(informative.values()) or 1.0),
        "sentence_prob": sentence_prob,
        "overlap": best_features["overlap"],
        "type_fit": best_features["type_fit"],
        "passage_dense": max((p.dense for p in passages), default=0.0),
        "missing_key": missing_key,
        "passage_coverage": 1.0 - sum(absent) / total,
        "covered_idf": sum(w for t, w in weights.items() if t in passage_terms),
        "max_missing_idf": max(absent, default=0.0) / top,
        "negation_mismatch": float(bool(NEGATION.search(info.text)) != bool(NEGATION.search(best_sentence))),
        "contrast": 1.0 if contrast else 0.0,
        "margin": sentence_prob - second_prob,
        "type_missing": 1.0 if info.answer_type and not best_features["type_fit"] else 0.0,
        "missing_key_context": len(keys - context_terms) / len(keys) if keys else 0.0,
        "context_missing": sum(w for t, w in weights.items() if t not in context_terms) / total,
        "max_context_missing": max((w for t, w in weights.items() if t not in context_terms), default=0.0) / top,
        "kind_fit": best_features.get("kind_fit", 0.0),
    }
