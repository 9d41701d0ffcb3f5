"""Rebuild assistant/english_zipf.tsv: general English's frequency of each term, as terms() makes it.

The table must be made by the same rules that make the terms it is looked up with: when
``assistant.text.terms`` changes (say, it starts reading "surprise" as "surprize"), a word the old
table knew would be weighed as a rare name and be open to the spelling stage. Each word of
wordfreq 3.1.1's ``small_en`` list (Robyn Speer, data CC BY-SA 4.0) that makes exactly one term adds
its frequency to that term; a term is kept at Zipf 3 or more (log10 of occurrences per billion words).

    pip install wordfreq==3.1.1   # only for this script: the assistant reads the table, not wordfreq
    python bench/english_zipf.py [--check]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict

from assistant.background import ZIPF_PATH
from assistant.text import terms

MIN_ZIPF = 3.0


def table() -> dict[str, float]:
    """Term -> Zipf frequency (one decimal), most frequent first."""
    import wordfreq

    summed: dict[str, float] = defaultdict(float)
    for word, frequency in wordfreq.get_frequency_dict("en", "small").items():
        made = terms(word)
        if len(made) == 1:
            summed[made[0]] += frequency
    zipf = {term: round(math.log10(f * 1e9), 1) for term, f in summed.items()}
    return dict(sorted(((t, z) for t, z in zipf.items() if z >= MIN_ZIPF), key=lambda tz: (-tz[1], tz[0])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether the shipped table is current")
    args = parser.parse_args()
    try:
        made = table()
    except ImportError:
        print("wordfreq is not installed: pip install wordfreq==3.1.1 (for this script only)", file=sys.stderr)
        return 2
    text = "".join(f"{term}\t{z}\n" for term, z in made.items())
    shipped = ZIPF_PATH.read_text()
    if args.check:
        old = dict(line.split("\t") for line in shipped.splitlines())
        differ = sum(1 for t, z in made.items() if old.get(t) != str(z)) + sum(1 for t in old if t not in made)
        print(f"{ZIPF_PATH.name}: {'current' if text == shipped else f'{differ} terms differ from the rules of today'}")
        return 0 if text == shipped else 1
    ZIPF_PATH.write_text(text)
    print(f"wrote {ZIPF_PATH} ({len(made):,} terms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
