"""How common a term is in general English: the answerer's sense of what a question is about.

A corpus's own idf cannot tell a common word from a rare name when the corpus is small: in one
article "go", "famous" and "Oppenheimer" are all unseen and weigh alike. The weights here come from
general English instead (``english_zipf.tsv``, made by ``bench/english_zipf.py``: the terms of
:func:`assistant.text.terms` with their Zipf frequency, log10 of occurrences per billion words, from
the ``small_en`` list of wordfreq 3.1.1 by Robyn Speer, data CC BY-SA 4.0; terms rarer than Zipf 3
are left out). A term's weight is how much rarer than a very
common word it is, so a question's mass sits on its names, numbers and rare words.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

ZIPF_PATH = Path(__file__).parent / "english_zipf.tsv"
COMMON_ZIPF = 7.0  # about the frequency of "one" or "new": such a term weighs nothing
RARE_ZIPF = 2.5    # a term missing from the list (a name, a number, a rare word)


@lru_cache(maxsize=1)
def _zipf() -> dict[str, float]:
    table: dict[str, float] = {}
    for line in ZIPF_PATH.read_text().splitlines():  # package data (pyproject.toml): never absent
        term, _, value = line.partition("\t")
        table[term] = float(value)
    return table


def known_in_english(term: str) -> bool:
    """Whether general English uses the stemmed ``term`` (Zipf 3 or more)."""
    return term in _zipf()


def background_weight(term: str) -> float:
    """The weight of a stemmed term (see :func:`assistant.text.terms`) in general English."""
    return max(COMMON_ZIPF - _zipf().get(term, RARE_ZIPF), 0.0)

