"""How upset a customer's message reads, from VADER's maintained sentiment lexicon.

VADER (vaderSentiment) scores words from a human-rated lexicon and adjusts for negation ("not
good"), intensifiers ("really"), capitals and exclamation marks, which is how angry customers
write. Its compound score runs from -1 (as negative as it gets) to +1.

Kefu turns it into a score a lead can reason about: the compound times 4, so -4 is furious, 0
neutral; the hand-over threshold is the setting SENTIMENT_HANDOFF_SCORE (default -3). Messages that
merely report a problem ("my parcel is late", "it arrived broken") score around -1 to -2: they are
the bot's everyday work and must not go to a person on their own.
"""

from __future__ import annotations

import re
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

SCALE = 4.0


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def score(text: str) -> float:
    """From -4 (furious) through 0 (neutral) to +4 (delighted)."""
    return round(float(_analyzer().polarity_scores(text)["compound"]) * SCALE, 2)


def is_strongly_negative(text: str, threshold: float) -> bool:
    return score(text) <= threshold


# Impatience the lexicon scores as neutral: "it's been days", "nobody tells me anything", "still
# nothing", "this is ridiculous", "fed up".
_FRUSTRATION = re.compile(
    r"\b(?:ridiculous|unacceptable|useless|pathetic|joke|waste of|fed up|sick of|had enough|"
    r"nobody|no one|no-one|never (?:answer|reply|repl)|still (?:no|not|nothing|waiting)|"
    r"(?:it'?s|its) been (?:days|weeks|ages|forever)|how many times|again and again|"
    r"what'?s going on|wtf|seriously\?)",
    re.IGNORECASE,
)
# Where "reports a problem" (about -1 to -2) ends and "upset" begins, when no words above say so.
UPSET_SCORE = -2.0


def is_frustrated(text: str) -> bool:
    """Whether the customer sounds fed up with us: impatient words, or a clearly negative score.

    Used to stop and apologise (and offer a person) instead of a flat "I can't help with that"."""
    return bool(_FRUSTRATION.search(text or "")) or score(text or "") <= UPSET_SCORE
