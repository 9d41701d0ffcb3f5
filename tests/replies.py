"""The fixture set of model-like replies (tests/fixtures/generated_replies.jsonl), ready to use.

Each line is one reply a chat model might write over numbered passages, hand-written over
squad2-dev paragraphs and the bundled article (never news-dev):

``id``, ``half`` (``fit``: thresholds are chosen on it; ``held-out``: only reported; ``fresh``,
``fresh2`` and ``fresh3``: only reported, written after the first, second and third check were frozen),
``label`` (``correct`` | ``wrong``), ``kind`` (correct: units, names, acronyms, synonyms, joined;
wrong: number, name, date, extra_name, wrong_passage), ``question``, ``passages`` (references:
``squad2-dev/<doc id>`` or ``corpus/<file>#<paragraph number>``, numbered [1], [2], ... in the
prompt), ``reply`` (with its [n] markers), ``supports`` (the numbers of the passages that do
support the claim), ``shown`` (correct: the facts, as the reply wrote them, that the user must
see), ``never_shown`` (wrong: the wrong facts that must never reach the user), ``never_cited``
(wrong_passage: the passage numbers that must never be cited for it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from assistant.contract import Passage

ROOT = Path(__file__).resolve().parent.parent
REPLIES = ROOT / "tests" / "fixtures" / "generated_replies.jsonl"


@dataclass
class ModelReply:
    """One fixture reply and the passages its prompt numbered."""

    id: str
    half: str
    label: str
    kind: str
    question: str
    passages: list[Passage]
    reply: str
    supports: list[int]
    shown: list[str] = field(default_factory=list)
    never_shown: list[str] = field(default_factory=list)
    never_cited: list[int] = field(default_factory=list)


@lru_cache(maxsize=None)
def _texts() -> dict[str, tuple[str, str]]:
    """reference -> (title, text) for every passage a fixture may name."""
    texts: dict[str, tuple[str, str]] = {}
    for line in (ROOT / "eval" / "squad2-dev" / "documents.jsonl").read_text().splitlines():
        doc = json.loads(line)
        texts[f"squad2-dev/{doc['id']}"] = (doc.get("title", ""), doc["text"])
    for path in (ROOT / "corpus").glob("*.md"):
        front, _, body = path.read_text().partition("\n---\n")
        title = next((line.split(":", 1)[1].strip() for line in front.splitlines() if line.startswith("title:")), "")
        paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
        for number, paragraph in enumerate(paragraphs, 1):
            texts[f"corpus/{path.name}#{number}"] = (title, paragraph)
    return texts


def passage(reference: str) -> Passage:
    """The passage a fixture reference names (its chunk id is the reference)."""
    title, text = _texts()[reference]
    return Passage(reference, reference.split("/", 1)[1].split("#")[0], text, title=title)


def load_replies(path: Path = REPLIES, half: str | None = None) -> list[ModelReply]:
    """The fixture replies (only those of ``half`` when given)."""
    replies = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if half and row["half"] != half:
            continue
        row["passages"] = [passage(ref) for ref in row["passages"]]
        replies.append(ModelReply(**row))
    return replies
