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
