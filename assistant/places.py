"""Names of countries and of US states: what "which country" and "which state" questions expect.

A quiz-style question asks "Which state sued ...?" and two sentences name a place: a US state and a
city. The sentence that names a state is the one that can answer. ``places.tsv`` lists the world's
countries (with their common short and older names: Britain, Holland, Burma, U.S.) and the 50 US
states, one ``kind<TAB>name`` a line: general knowledge, package data like ``english_zipf.tsv``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

PLACES_PATH = Path(__file__).parent / "places.tsv"
KINDS = ("country", "state")


@lru_cache(maxsize=1)
def _names() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for line in PLACES_PATH.read_text().splitlines():  # package data (pyproject.toml): never absent
        kind, _, name = line.partition("\t")
        table[kind].append(name)
    return table


@lru_cache(maxsize=len(KINDS))
def place_pattern(kind: str) -> re.Pattern:
    """A case-sensitive pattern of the names of ``kind`` (``country`` or ``state``), longest first."""
    names = sorted(_names()[kind], key=len, reverse=True)
    return re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w])")
