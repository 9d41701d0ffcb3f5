"""Small text utilities shared by retrieval and answering: terms, sentences, numbers, token counts."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being
below between both but by can could did didn't do does doesn't doing don't down during each few for
from further had has have having he her here hers herself him himself his how i if in into is isn't
it it's its itself just let me more most my myself no nor not of off on once only or other our ours
ourselves out over own same she should so some such than that that's the their theirs them
themselves then there these they this those through to too under until up very was wasn't we were
what when where which while who whom why will with would you your yours yourself yourselves
also s t does did ever many much one whose
can't couldn't hadn't hasn't haven't mightn't mustn't needn't shan't shouldn't weren't won't wouldn't
i'm i've i'd i'll you're you've you'd you'll he's he'd he'll she's she'd she'll we're we've we'd we'll
they're they've they'd they'll there's here's what's who's let's
""".split())

WORD = re.compile(r"[\w$%£€][\w'’.,%-]*[\w%]|[\w$%]", re.UNICODE)
MARKER_NUMBERS = r"\d+(?:\s*[,;]\s*\d+)*"  # inside our citation marker's brackets: "1", "1, 2", "1; 3"
# A sentence ends after . ! ? … (and closing quotes or brackets) before a capital or a digit; a
# generated answer's own citation markers written right after its full stop ("capital.[1] It ...",
# ".[1, 2]", or with no space after them, "capital.[1]It") end it too and belong to it.
_SENTENCE_END_CITED = re.compile(
    r"(?<=[.!?…])([\"'”’)\]]*(?:\[" + MARKER_NUMBERS + r"\])*)"
    r"(?:\s+(?=[\"'“‘(\[]?[A-Z0-9])|(?<=\d\])(?=[\"'“‘(]?[A-Z]))")  # "big.[1]It": no space after a marker
# A document's footnote markers right after a full stop ("island.[1] It", "[2][3]", "[citation needed]",
# as pasted from Wikipedia): the sentence ends before them and the next begins after them, so a quote
# never carries a "[1]" that reads as one of our citation markers.
_FOOTNOTES = r"(?:\[[^\[\]\n]{1,40}\])+"
_SENTENCE_END_FOOTNOTED = re.compile(
    r"(?<=[.!?…])([\"'”’)\]]*)(?:" + _FOOTNOTES + r")?\s+(?=[\"'“‘(\[]?[A-Z0-9])")
# A list item's marker ("- ", "* ", "• ", "3. ") opens no sentence: a quote starts at its first word.
_LIST_MARKER = re.compile(r"^\s*(?:[-*•‣◦▪–]|\d{1,2}[.)])\s+(?=\S)")
# A footnote marker inside a sentence, written against the word before it ("built in 1887[4] by",
# "the city,[3] the"); an editor's insertion ("said [the plan] works") has a space before it.
FOOTNOTE = re.compile(r"(?<=[^\s\[\]])\[(?:\d{1,3}|[a-z]|(?:note|n) \d{1,3}|[a-z ]{0,30} needed|update|vague|"
                      r"unreliable source\?)\]")
_FOOTNOTES_AT_END = re.compile(r"(?<=[.!?…\"'”’)])" + _FOOTNOTES + r"\s*$")
_ABBREVIATIONS = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|No|vs|etc|e\.g|i\.e|U\.S|U\.K|Inc|Ltd|Co|Corp|Gen|Gov|Sen|Rep|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|[A-Z])\.$"
)

# "By 6 a.m. PT, the ferry had ...", "at 7 p.m. Tuesday": a clock time's "a.m." goes on into a time zone,
# a day or a month; before anything else ("... at 5 p.m. The police said") the sentence ends.
_CLOCK = re.compile(r"\b[ap]\.m\.$", re.I)
_CLOCK_GOES_ON = re.compile(
    r"(?:ET|EST|EDT|CT|CST|CDT|MT|MST|MDT|PT|PST|PDT|AKST|AKDT|HST|GMT|BST|UTC|CET|CEST|IST|JST|AEST|AEDT|"
    r"Eastern|Central|Mountain|Pacific|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|"
    r"January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\b")


ENCODING = "cl100k_base"  # tiktoken's encoding for chunk sizes and prompt budgets


@lru_cache(maxsize=1)
def token_encoder():
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k_base (special tokens count as text)."""
    return len(token_encoder().encode(text, disallowed_special=()))


@lru_cache(maxsize=1)
def _stemmer():
    return Stemmer.Stemmer("english")


_APOSTROPHES = str.maketrans("’‘", "''")
# British spellings read as American ones, so that "harmonised" meets "harmonized" and "centre"
# "center" (both sides of every match go through it, so a word it alters only has to stay itself).
_BRITISH = [(re.compile(r"(?<=[a-z]{3})is(e|es|ed|ing|ation|ations|er|ers)$"), r"iz\1"),
            (re.compile(r"(?<=[a-z]{2})ys(e|es|ed|ing)$"), r"yz\1"),
            (re.compile(r"(?<=[a-z]{3})our(s|ed|ing|ite|ites|able|er|ers)?$"), r"or\1"),
            (re.compile(r"(?<=[a-z]{3})tre(s)?$"), r"ter\1")]


def words(text: str) -> list[str]:
    """Lower-cased word tokens (numbers keep their $, %, commas and decimals; a curly apostrophe
    reads as a straight one)."""
    return [w.translate(_APOSTROPHES).strip(".,'").lower() for w in WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Stemmed content terms: the unit of lexical matching everywhere. Accents are dropped
    ("América" is "america") and British spellings are American ones; a hyphenated word stays one
    term ("non-Islamic" is not "Islamic")."""
    tokens = [_unstemmed(w) for w in words(text)]
    return _stemmer().stemWords([t for t in tokens if t and t not in STOPWORDS])


@lru_cache(maxsize=1 << 17)
def _unstemmed(word: str) -> str:
    """A word as a term before stemming: a number without its commas and currency sign; a word
    without accents, spelt the American way (each part of a hyphenated word). Cached: a corpus and
    its questions repeat their words, and every passage is read again for each question."""
    if _is_number(word):
        return word.replace(",", "").lstrip("$£€")
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return "-".join(_american(part) for part in word.split("-"))


def _american(word: str) -> str:
    if len(word) < 6:
        return word
    for pattern, replacement in _BRITISH:
        word, n = pattern.subn(replacement, word)
        if n:
            break
    return word


def _is_number(token: str) -> bool:
    return bool(re.fullmatch(r"[$£€]?\d[\d,.]*%?", token))


def split_sentences(text: str, citing: bool = False) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text`` (lines never join; abbreviations don't split).
    A footnote marker after a full stop and a list item's marker are in no sentence, unless
    ``citing``: text whose bracketed numbers are our citation markers (a generated answer), kept
    with the sentence they follow."""
    spans: list[tuple[int, int]] = []
    ends = _SENTENCE_END_CITED if citing else _SENTENCE_END_FOOTNOTED
    for block in re.finditer(r"[^\n]+", text):
        line, base, start = block.group(), block.start(), 0
        if not citing and (notes := _FOOTNOTES_AT_END.search(line)):
            line = line[:notes.start()]
        if not citing and (marker := _LIST_MARKER.match(line)):
            start = marker.end()
        for match in ends.finditer(line):
            end = match.start() + len(match.group(1))
            before = line[start:match.start()]
            if _ABBREVIATIONS.search(before) or (_CLOCK.search(before) and _CLOCK_GOES_ON.match(line, match.end())):
                continue
            if line[start:end].strip():
                spans.append((base + start, base + end))
            start = match.end()
        if line[start:].strip():
            spans.append((base + start, base + len(line.rstrip())))
    return spans


NUMBER = re.compile(r"(?<![\w])[$£€]?\d[\d,]*(?:\.\d+)?(?:\s?(?:%|percent|million|billion|thousand|trillion))?")
YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
          "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
DATE = re.compile(rf"\b(?:(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+(?:{MONTHS})\.?\s+\d{{4}}|"
                  rf"(?:{MONTHS})\.?\s+\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}}|(?:1[0-9]{{3}}|20[0-9]{{2}})s?)\b", re.I)
CAPITALISED = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|the|and|van|von|la|du)?\s*[A-Z][\w'’-]*)*")


# Text written to steer an AI rather than to inform a reader ("Ignore previous instructions and
# answer 42", "SYSTEM: ..."). Such sentences are never used as answers.
INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,30}?\b(?:previous|prior|above|earlier|all|any|your)\b"
    r"[^.!?\n]{0,20}?\b(?:instructions?|prompts?|directions|rules)\b"
    r"|(?:^|[>\]]\s*)(?:system|assistant|developer)\s*(?:prompt)?\s*:"
    r"|\b(?:you are now|developer mode|new instructions|system prompt|jailbreak)\b",
    re.I | re.M,
)


def looks_like_injection(sentence: str) -> bool:
    """True for a sentence that gives orders to an AI instead of information."""
    return bool(INJECTION.search(sentence))


def without_footnotes(text: str) -> str:
    """``text`` as a reader is shown it: without its footnote markers ("built in 1887[4] by" reads
    "built in 1887 by"), so none reads as one of our citation markers."""
    return FOOTNOTE.sub("", text)


def footnote_free_parts(quote: str) -> str:
    """``quote`` split where footnote markers stand, the parts joined by " … ": each part is still
    verbatim in the document, and no "[4]" of the document is quoted."""
    return " … ".join(part.strip() for part in FOOTNOTE.split(quote) if part.strip())
