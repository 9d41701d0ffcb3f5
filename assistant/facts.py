"""The facts a generated sentence states, normalised, and whether a passage states them too.

A model writes the passage's facts in its own words: "$300,000" as "300,000 dollars", "87%" as
"87 percent", "a year" as "annually", "Sag-Aftra" as "SAG-AFTRA", "AMPTP" as "Alliance of Motion
Picture and Television Producers". :func:`claim_facts` finds the facts of a claim, each in a
normalised form, and :class:`PassageFacts` says which of them a passage states:

number  a value with its unit ($, £, €, %), written in digits or words, with k/thousand/million/...
        scales; a unit on both sides must agree ("87%" is not "87 actors"... only when the passage
        says "87" without a unit is a unit in the claim accepted).
period  "a year" / "per year" / "annually" / "yearly" after an amount; the passage must name the
        same period anywhere ("annual salary").
decade  "the 1960s", "the '60s", "the sixties".
name    capitalised words (not a sentence's ordinary first word), acronyms and hyphenated names,
        matched across case and punctuation ("SAG-AFTRA" / "Sag-Aftra" / "SAG AFTRA"), an acronym
        against its expansion either way, months by full or short name.

Every fact of a claim must be in the cited passage (or its title): that is what keeps a wrong
number, date or name out, however well the rest of the sentence matches.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from assistant.text import STOPWORDS, terms

CURRENCY = {"$": "$", "usd": "$", "dollar": "$", "dollars": "$", "£": "£", "gbp": "£", "pound": "£",
            "pounds": "£", "€": "€", "eur": "€", "euro": "€", "euros": "€", "%": "%", "percent": "%",
            "per cent": "%", "pct": "%"}
SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9,
         "trillion": 1e12}
UNITS_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
               "fifteen sixteen seventeen eighteen nineteen").split()
TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS = {w: float(i) for i, w in enumerate(UNITS_WORDS)}
NUMBER_WORDS.update({w: float(20 + 10 * i) for i, w in enumerate(TENS_WORDS)})
NUMBER_WORDS.update({"dozen": 12.0, "hundred": 100.0})
# "one" alone is an article more often than a count ("one of the ..."): a fact only with a unit or scale.
WEAK_NUMBER_WORDS = {"one"}
_WORD_NUMBER = (r"(?:(?:" + "|".join(TENS_WORDS) + r")(?:[- ](?:" + "|".join(UNITS_WORDS[1:10]) + r"))?|"
                + "|".join(sorted(UNITS_WORDS + ["dozen", "hundred"], key=len, reverse=True)) + r")")
NUMBER = re.compile(
    r"(?<![\w.])(?P<cur>[$£€])?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|" + _WORD_NUMBER + r"\b)"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion)\b|(?P<short>bn|mn|k|m)\b)?"
    r"(?:\s?(?P<pct>%|percent\b|per cent\b|pct\b)|\s(?P<curword>dollars?|usd|pounds?|euros?)\b)?",
    re.I)
PERIODS = {"year": "year", "years": "year", "annual": "year", "annually": "year", "yearly": "year",
           "annum": "year", "month": "month", "months": "month", "monthly": "month", "week": "week",
           "weeks": "week", "weekly": "week", "day": "day", "days": "day", "daily": "day",
           "hour": "hour", "hours": "hour", "hourly": "hour"}
PERIOD_AFTER_AMOUNT = re.compile(
    r"^\s*(?:(?:a|an|per|each|every|/)\s*(?P<unit>year|month|week|day|hour)\b|"
    r"(?P<adverb>annually|yearly|monthly|weekly|daily|hourly|per annum)\b)", re.I)
DECADE = re.compile(r"(?:\b(?P<century>1\d|20)(?P<digit>\d)0s|['’](?P<short>\d)0s)\b")
DECADE_WORDS = {"twenties": 2, "thirties": 3, "forties": 4, "fifties": 5, "sixties": 6, "seventies": 7,
                "eighties": 8, "nineties": 9}
DECADE_WORD = re.compile(r"\bthe (" + "|".join(DECADE_WORDS) + r")\b", re.I)
MONTHS = {"jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june",
          "jul": "july", "aug": "august", "sep": "september", "sept": "september", "oct": "october",
          "nov": "november", "dec": "december"}
_MONTH = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
          r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?")
DATE = re.compile(rf"\b(?:(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<month>{_MONTH})\s+(?P<year>\d{{4}})|"
                  rf"(?P<month2>{_MONTH})\s+(?:(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?,?\s+)?(?P<year2>\d{{4}}))\b", re.I)
FIRST_OPTIONAL = "<first word optional>"
TOKEN = re.compile(r"[^\W_](?:[\w'’&.-]*[^\W_])?")
CONNECTORS = frozenset("of the de du la le van von der for and & y".split())
@dataclass(frozen=True)
class Fact:
    """One fact a claim states: its kind, the words as written, and its normalised key."""

    kind: str  # number | period | decade | name
    text: str
    key: object


def normal_token(token: str) -> str:
    """A word as names are compared: lower case, no accents, no possessive, letters and digits only,
    months in full."""
    token = unicodedata.normalize("NFKD", token.lower()).encode("ascii", "ignore").decode()
    token = re.sub(r"['’]s$", "", token)
    token = re.sub(r"[^0-9a-z]", "", token)
    return MONTHS.get(token, token)


def _singular(token: str) -> str:
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


def _is_number_word(token: str) -> bool:
    return all(part in NUMBER_WORDS for part in re.split(r"[- ]", token.lower()))


def numbers(text: str) -> list[tuple[str, float, str | None, int]]:
    """``(as written, value, unit, end offset)`` of each amount, count or percentage in ``text``."""
    found = []
    for match in NUMBER.finditer(text):
        raw = match.group("num")
        word = raw.lower()
        scale = (match.group("scale") or match.group("short") or "").lower()
        if not raw[0].isdigit():
            if word in WEAK_NUMBER_WORDS and not (scale or match.group("pct") or match.group("cur")):
                continue
            parts = re.split(r"[- ]", word)
            value = sum(NUMBER_WORDS[p] for p in parts)
        else:
            value = float(raw.replace(",", ""))
        if scale in ("m", "k", "bn", "mn") and not raw[0].isdigit():
            scale = ""
        if scale:
            value *= SCALE[scale]
        unit_text = match.group("cur") or match.group("pct") or match.group("curword")
        unit = CURRENCY.get(unit_text.lower()) if unit_text else None
        found.append((match.group().strip(), value, unit, match.end()))
    return found


def decades(text: str) -> set[int]:
    """The decades named in ``text`` as their first year (1960 for "the 1960s", "'60s", "the sixties")."""
    out = set()
    for match in DECADE.finditer(text):
        if match.group("short"):
            out.add(1900 + 10 * int(match.group("short")))
        else:
            out.add(int(match.group("century")) * 100 + 10 * int(match.group("digit")))
    out.update(1900 + 10 * DECADE_WORDS[m.group(1).lower()] for m in DECADE_WORD.finditer(text))
    return out


def name_phrases(text: str) -> list[tuple[str, list[str], frozenset[str]]]:
    """``(as written, normalised words, those of them written as acronyms)`` of each name in ``text``.

    A name is a run of capitalised words, joined by "of", "the", "and", ... and ended by a
    possessive ("Normandy's Duke Richard II" is two names). The sentence's first word alone is
    a name only when it is an acronym ("HBO"): "Joblessness" or "Roughly" is an ordinary word.
    """
    tokens = [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]
    phrases: list[list[int]] = []
    current: list[int] = []
    for index, (token, start, _) in enumerate(tokens):
        previous = tokens[index - 1][0] if index else ""
        joined = (bool(current) and not re.search(r"\S", text[tokens[index - 1][2]:start])
                  and not re.search(r"['’]s?$", previous))
        if (token[0].isupper() and not _is_number_word(token)) or (joined and token.lower() in CONNECTORS):
            if not joined and current:
                phrases.append(current)
                current = []
            current.append(index)
        elif current:
            phrases.append(current)
            current = []
    if current:
        phrases.append(current)
    out = []
    for phrase in phrases:
        while phrase and tokens[phrase[-1]][0].lower() in CONNECTORS:
            phrase = phrase[:-1]
        while phrase and (tokens[phrase[0]][0].lower() in CONNECTORS
                          or (phrase[0] == 0 and len(phrase) > 1 and tokens[0][0].lower() in STOPWORDS)):
            phrase = phrase[1:]
        if not phrase:
            continue
        acronyms = frozenset(normal_token(tokens[i][0]) for i in phrase
                             if sum(ch.isupper() for ch in tokens[i][0]) >= 2)
        if phrase == [0] and not acronyms:
            continue
        words = [w for w in (normal_token(tokens[i][0]) for i in phrase) if w]
        if words:
            out.append((text[tokens[phrase[0]][1]:tokens[phrase[-1]][2]], words, acronyms))
            if phrase[0] == 0 and len(phrase) > 1:  # "Near the Dutch border": the first word may be ordinary
                out[-1] = (out[-1][0], words, acronyms | {FIRST_OPTIONAL})
    return out


def dates(text: str) -> set[tuple[int | None, str, int]]:
    """``(day or None, month, year)`` of each date written with a month name and a year."""
    out = set()
    for match in DATE.finditer(text):
        day = match.group("day") or match.group("day2")
        month = normal_token(match.group("month") or match.group("month2"))
        out.add((int(day) if day else None, month, int(match.group("year") or match.group("year2"))))
    return out


def claim_facts(claim: str) -> list[Fact]:
    """Every number, period, decade and name ``claim`` states, normalised."""
    facts: list[Fact] = []
    decade_spans = [m.span() for m in DECADE.finditer(claim)]
    for raw, value, unit, end in numbers(claim):
        if any(a <= end - 1 < b for a, b in decade_spans):
            continue
        facts.append(Fact("number", raw, (value, unit)))
        period = PERIOD_AFTER_AMOUNT.match(claim[end:])
        if period:
            word = (period.group("unit") or period.group("adverb")).lower()
            facts.append(Fact("period", period.group().strip(), PERIODS.get(word, "year")))
    facts.extend(Fact("decade", f"{d}s", d) for d in sorted(decades(claim)))
    facts.extend(Fact("date", f"{d or ''} {m} {y}".strip(), (d, m, y)) for d, m, y in sorted(dates(claim), key=str))
    for raw, words, acronyms in name_phrases(claim):
        facts.append(Fact("name", raw, (tuple(words), acronyms)))
    return facts


class PassageFacts:
    """What a passage (and its title) states, ready for :meth:`states` to be asked about claims' facts."""

    def __init__(self, text: str, title: str = "") -> None:
        self.text = f"{title}\n{text}" if title else text

    @cached_property
    def words(self) -> list[str]:
        """The passage's words as names are compared, hyphenated ones in their parts ("Pac-12": pac, 12)."""
        return [w for m in TOKEN.finditer(self.text) for piece in re.split(r"[-‐–]", m.group())
                if (w := _singular(normal_token(piece)))]

    @cached_property
    def acronyms(self) -> set[str]:
        """Words the passage writes with two or more capitals ("AMPTP", "MSPs", "MoD"), normalised."""
        return {_singular(normal_token(m.group())) for m in TOKEN.finditer(self.text)
                if sum(ch.isupper() for ch in m.group()) >= 2}

    @cached_property
    def dates(self) -> set[tuple[int | None, str, int]]:
        return dates(self.text)

    @cached_property
    def stems(self) -> set[str]:
        return set(terms(self.text))

    @cached_property
    def numbers(self) -> list[tuple[float, str | None]]:
        return [(value, unit) for _, value, unit, _ in numbers(self.text)]

    @cached_property
    def periods(self) -> set[str]:
        return {PERIODS[w] for w in re.findall(r"[a-z]+", self.text.lower()) if w in PERIODS}

    @cached_property
    def decades(self) -> set[int]:
        return decades(self.text)

    def states(self, fact: Fact) -> bool:
        """True when the passage states ``fact`` (after normalisation)."""
        if fact.kind == "number":
            value, unit = fact.key
            return any(abs(v - value) <= 1e-9 * max(1.0, abs(value)) and (unit is None or u is None or u == unit)
                       for v, u in self.numbers)
        if fact.kind == "period":
            return fact.key in self.periods
        if fact.kind == "decade":
            return fact.key in self.decades
        if fact.kind == "date":
            return fact.key in self.dates or (fact.key[0] is None and any(m == fact.key[1] and y == fact.key[2]
                                                                         for _, m, y in self.dates))
        words, acronyms = fact.key
        if self._has_name(list(words), len(words) == 1 and words[0] in acronyms):
            return True
        if FIRST_OPTIONAL in acronyms:
            rest = list(words[1:])
            while rest and rest[0] in CONNECTORS:
                rest = rest[1:]
            if rest and self.states(Fact("name", fact.text, (tuple(rest), acronyms - {FIRST_OPTIONAL}))):
                return True
        # "Tom Cruise and George Clooney", "Donald Davies of the NPL", "Schmitt and Zipperer of the Center
        # for Economic and Policy Research": parts split at some of the connectors, each named on its own
        return self._parts_named(list(words), acronyms)

    def _parts_named(self, words: list[str], acronyms: frozenset[str]) -> bool:
        """True when ``words`` split at two or more of their connectors into parts the passage each names
        (a part may keep connectors inside: "Center for Economic and Policy Research")."""
        cuts = [k for k, word in enumerate(words) if word in CONNECTORS]
        if not cuts:
            return False

        def named(part: list[str]) -> bool:
            while part and part[0] in CONNECTORS:
                part = part[1:]
            while part and part[-1] in CONNECTORS:
                part = part[:-1]
            return bool(part) and self._has_name(part, len(part) == 1 and part[0] in acronyms)

        # reachable[k]: words[:k] splits into named parts, each ending just before a connector
        reachable = {0}
        for end in cuts + [len(words)]:
            last = end == len(words)
            if any(named(words[start:end]) for start in reachable if start < end and (start or not last)):
                if last:
                    return True
                reachable.add(end + 1)
        return False

    def _has_name(self, words: list[str], acronym: bool) -> bool:
        """True when the passage names ``words``: as written, without initials, or by acronym."""
        if self._contiguous(words, self.words):
            return True
        # initials may be dropped or added ("William Simon" / "William E. Simon")
        full = [w for w in words if len(w) > 1]
        if full and self._contiguous(full, [w for w in self.words if len(w) > 1]):
            return True
        passage = self.words
        significant = [w for w in words if w not in CONNECTORS]
        if len(significant) >= 2:  # an expansion whose acronym the passage uses
            initials = "".join(w[0] for w in significant)
            if initials in self.acronyms:
                return True
        if acronym and 2 <= len(words[0]) <= 8 and words[0].isalpha():  # an acronym the passage expands
            return self._expands(words[0])
        return False

    @staticmethod
    def _contiguous(words: list[str], passage: list[str]) -> bool:
        """True when ``words`` run together in ``passage``, however they are split into tokens there."""
        target = "".join(_singular(w) for w in words)
        for i in range(len(passage)):
            joined = ""
            for k in range(i, min(len(passage), i + len(words) + 3)):
                joined += passage[k]
                if joined == target:
                    return True
                if len(joined) >= len(target) or not target.startswith(joined):
                    break
        return False

    def _expands(self, acronym: str) -> bool:
        passage = [w for w in self.words if w not in STOPWORDS]
        for i in range(len(passage) - len(acronym) + 1):
            if all(passage[i + k][:1] == acronym[k] for k in range(len(acronym))):
                return True
        return False


def missing_facts(claim: str, passage: PassageFacts) -> list[Fact]:
    """The facts of ``claim`` that ``passage`` does not state (empty: every fact is there)."""
    return [fact for fact in claim_facts(claim) if not passage.states(fact)]
