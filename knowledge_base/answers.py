"""From search hits to what the assistant does: answer, offer a choice, or admit it has nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from knowledge_base.index import Hit

Band = Literal["answer", "choose", "none"]
MAX_CHOICES = 3
MAX_QUERY_CHARS = 500
# Another article this close to the best one means the question is ambiguous: offer both.
AMBIGUITY_MARGIN = 0.03


@dataclass(frozen=True)
class Decision:
    band: Band
    hits: list[Hit]  # answer: the article, then the next candidates; choose: the choices

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def decide(
    hits: list[Hit], answer_score: float, suggest_score: float, margin: float = AMBIGUITY_MARGIN
) -> Decision:
    """Answer with the best article when it scores `answer_score` and no other is within `margin`;
    offer a choice when several fit; nothing below `suggest_score`."""
    candidates = [hit for hit in hits if hit.score >= suggest_score]
    if not candidates:
        return Decision("none", hits[:1])
    best = candidates[0]
    close = len(candidates) > 1 and best.score - candidates[1].score < margin
    if best.score >= answer_score and not close:
        return Decision("answer", candidates)
    return Decision("choose", candidates[:MAX_CHOICES])


def query_from(text: str) -> str:
    """The customer's message as a search query: one line of words, at most MAX_QUERY_CHARS."""
    return re.sub(r"\s+", " ", text).strip()[:MAX_QUERY_CHARS]


def has_words(query: str) -> bool:
    return re.search(r"[^\W\d_]{2,}", query) is not None


# "last" is looked at first: "the last one" is not "one".
_ORDINALS = {
    -1: ("last", "bottom", "final"),
    0: ("first", "1st", "1", "top"),
    1: ("second", "2nd", "two", "2", "middle"),
    2: ("third", "3rd", "three", "3"),
}


def ordinal_choice(text: str, count: int) -> int | None:
    """Which of `count` offered choices "the second one" or "3" means, if any."""
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    for position, names in _ORDINALS.items():
        if words & set(names):
            index = position if position >= 0 else count - 1
            return index if 0 <= index < count else None
    return None


def plausible(decision: Decision) -> int:
    """How many articles a decision found worth showing (a "choice" of one is just an answer)."""
    return len(decision.hits) if decision.band != "none" else 0


_QUESTION_START = re.compile(
    r"^\W*(?:how|what|whats|what's|when|where|which|who|why|can|could|do|does|did|is|are|will|would|"
    r"should|may|have you|has)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """Whether a message is put as a question ("how long do refunds take?"), not a statement."""
    return "?" in (text or "") or _QUESTION_START.match(text or "") is not None


_FOLLOWUP_START = re.compile(
    r"^\W*(?:(?:ok|okay|alright|right|great|cool|thanks|thx)\W+)?(?:and|so|but|what about|how about|then)\b",
    re.IGNORECASE,
)


def is_followup(text: str) -> bool:
    """Whether a short message leans on what came before ("and the return?", "so what now?")."""
    return len(re.findall(r"\w+", text or "")) <= 8 and _FOLLOWUP_START.match(text or "") is not None


def without_lead_in(text: str) -> str:
    """A follow-up without the words that lean on what came before ("and the return?" -> "the return?")."""
    core = _FOLLOWUP_START.sub("", text or "", count=1).strip()
    return core if has_words(core) else text
