"""How article and question text is cut into search terms, and which texts of an article are embedded."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

# Words a customer uses in every kind of question; as search terms they only add noise.
_EXTRA_STOPWORDS = frozenset(
    {
        "please",
        "pls",
        "plz",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "can",
        "could",
        "would",
        "want",
        "need",
        "help",
        "know",
        "tell",
        "get",
        "got",
        "im",
        "ive",
        "dont",
        "cant",
        "u",
        "ur",
        "one",
        "like",
    }
)
_STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | _EXTRA_STOPWORDS
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed words without stop words: the BM25 side of the search."""
    words = (word.replace("'", "") for word in _WORD.findall(text.lower()))
    kept = [word for word in words if word not in _STOPWORDS]
    return list(_stemmer().stemWords(kept))


def problem_lines(problem: str) -> list[str]:
    """The separate ways customers describe the problem, one per line in an article."""
    return [line.strip(" -\t") for line in problem.splitlines() if line.strip(" -\t")]


def texts_to_embed(title: str, problem: str) -> list[str]:
    """An article gets one vector for its title with the whole problem, and one per problem line:
    a question then matches the phrasing closest to it rather than an average of all of them."""
    lines = problem_lines(problem)
    return [f"{title}. {' '.join(lines)}", title, *lines]


def lexical_document(title: str, problem: str, tags: list[str], solution: str = "") -> list[str]:
    """The terms BM25 indexes for an article: title twice (it names the topic), problem, tags and
    the solution, whose exact words ("Klarna", "VAT", "Packstation") customers often ask about."""
    return terms(f"{title} {title} {problem} {' '.join(tags)} {solution}")
