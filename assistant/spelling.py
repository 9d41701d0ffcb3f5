"""The spelling stage: a question's misspelt word read as the corpus word it meant.

A word that no chunk of the corpus holds makes the question look as if it were about something
else, so "Who reportd the job ad first?" would be refused. Before retrieval, :class:`Speller`
reads such a word as a word of the corpus one edit away (a letter dropped, added, changed, or two
swapped, on the stemmed term) when

- general English does not know the word either (``assistant/english_zipf.tsv``: "actors" is never
  read as "factor", nor "Biden" as "Baden"), and it is at least ``MIN_LETTERS`` long;
- a chunk the asker may see holds the corrected word beside ``COOCCURRING`` other terms of the
  question ("Kelven Report" is read as "Kalven Report" because a chunk holds "Kalven" and
  "report"), so a name from another subject is not bent into a word of this corpus;
- of several such words, the one more chunks hold wins.

The corrected question goes to retrieval and to the answerer; the words read otherwise are kept
with the query (``--explain`` prints them).
"""

from __future__ import annotations

import re
import string
from dataclasses import replace

from assistant.background import known_in_english
from assistant.contract import Query
from assistant.lexical import LexicalIndex
from assistant.text import STOPWORDS, WORD, terms

MIN_LETTERS = 4   # shorter words have too many neighbours one edit away
COOCCURRING = 2   # other question terms a chunk must hold beside the corrected word (fewer if the question has fewer)
_LETTERS = string.ascii_lowercase


def one_edit_away(term: str) -> set[str]:
    """Every string one deletion, insertion, substitution or transposition from ``term``."""
    splits = [(term[:i], term[i:]) for i in range(len(term) + 1)]
    found = {a + b[1:] for a, b in splits if b}
    found |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    found |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    found |= {a + c + b for a, b in splits for c in _LETTERS}
    found.discard(term)
    return found


class Speller:
    """Corrects a question's misspelt words against ``index``, the corpus's lexical index."""

    def __init__(self, index: LexicalIndex) -> None:
        self.index = index

    def correct(self, query: Query, visible_to: str | None = None) -> Query:
        """``query`` with its misspelt words read as corpus words in ``search`` and ``answer`` (and
        the pairs in ``corrections``); ``visible_to``: only chunks that user may see vouch for a word."""
        read_as: dict[str, str] = {}
        for text in (query.search, query.answer):
            for word in dict.fromkeys(m.group() for m in WORD.finditer(text)):
                if word not in read_as and (meant := self.meant(word, terms(text), visible_to)):
                    read_as[word] = meant
        if not read_as:
            return query
        pattern = re.compile(r"(?<![\w'’.-])(?:" + "|".join(map(re.escape, read_as)) + r")(?![\w'’-])")
        fix = (lambda text: pattern.sub(lambda m: read_as[m.group()], text))
        return replace(query, search=fix(query.search), answer=fix(query.answer),
                       corrections=tuple(read_as.items()))

    def meant(self, word: str, question_terms: list[str], visible_to: str | None) -> str | None:
        """The corpus word that ``word`` misspells, as the corpus writes it; None when it is no typo
        (a known word, a number, a name of another subject) or nothing is one edit away."""
        if not word.isalpha() or word.lower() in STOPWORDS or len(word) < MIN_LETTERS:
            return None
        stems = terms(word)
        if len(stems) != 1 or len(stem := stems[0]) < MIN_LETTERS or known_in_english(stem):
            return None
        if self.index.term_counts([stem]):
            return None
        others = {t for t in question_terms if t != stem}
        if not others:
            return None
        need = min(COOCCURRING, len(others))
        for candidate, _ in sorted(self.index.term_counts(one_edit_away(stem)).items(), key=lambda kv: (-kv[1], kv[0])):
            texts = self.index.texts_with(candidate, others, need, visible_to)
            if texts and (written := _as_written(word, candidate, "\n".join(texts))):
                return written
        return None


def _as_written(word: str, stem: str, text: str) -> str | None:
    """The word of ``text`` whose term is ``stem`` and that is spelt most like ``word`` ("reportd":
    "reported", not "reports"), capitalised like ``word``."""
    forms = {token for m in WORD.finditer(text)
             if (token := m.group().strip(".,'’")).isalpha() and terms(token) == [stem]}
    if not forms:
        return None
    best = min(sorted(forms), key=lambda form: _edits(word.lower(), form.lower()))
    return best[0].upper() + best[1:] if word[0].isupper() else best


def _edits(a: str, b: str) -> int:
    """Levenshtein distance."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]
