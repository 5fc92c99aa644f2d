"""The in-memory search index: dense vectors and BM25 over the published articles, one score.

An index is built once from documents whose vectors are already computed and is never changed
afterwards; a process that needs a newer one builds a new index and swaps it in (`live.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import bm25s
import numpy as np

from knowledge_base import text

Mode = Literal["hybrid", "dense", "lexical"]

# hybrid = dense + LEXICAL_WEIGHT * bm25 / (bm25 + LEXICAL_SATURATION).
# Cosine similarity carries the meaning; BM25, squashed into [0, 1), lifts articles that share the
# question's exact words (product names, "Klarna", "VAT"). Saturating instead of dividing by the
# best score keeps the result absolute, so thresholds mean the same for every question.
LEXICAL_WEIGHT = 0.25
LEXICAL_SATURATION = 8.0


@dataclass(frozen=True)
class Document:
    """One published article version as the index sees it."""

    article_id: int
    version_id: int
    slug: str
    title: str
    vectors: np.ndarray  # (n, dimensions) unit-length rows; an article's score is its best row's
    terms: list[str]


@dataclass(frozen=True)
class Hit:
    article_id: int
    version_id: int
    slug: str
    title: str
    score: float
    dense: float
    lexical: float


@dataclass
class SearchIndex:
    documents: list[Document]
    encode: Callable[[list[str]], np.ndarray]
    _matrix: np.ndarray = field(init=False, repr=False)
    _starts: np.ndarray = field(init=False, repr=False)
    _bm25: bm25s.BM25 | None = field(init=False, repr=False, default=None)
    _vocabulary: frozenset[str] = field(init=False, repr=False, default=frozenset())

    def __post_init__(self) -> None:
        counts = [len(document.vectors) for document in self.documents]
        dimensions = self.documents[0].vectors.shape[1] if self.documents else 1
        self._matrix = (
            np.vstack([document.vectors for document in self.documents]).astype(np.float32, copy=False)
            if self.documents
            else np.zeros((0, dimensions), dtype=np.float32)
        )
        self._starts = (
            np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            if counts
            else np.zeros(0, np.int64)
        )
        corpus = [document.terms or [""] for document in self.documents]
        if corpus:
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)
            self._vocabulary = frozenset(term for document in corpus for term in document)

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def nbytes(self) -> int:
        """Memory held by the vectors (the bulk of the index)."""
        return int(self._matrix.nbytes)

    def dense_scores(self, query_vector: np.ndarray) -> np.ndarray:
        if not self.documents:
            return np.zeros(0, dtype=np.float32)
        similarities = self._matrix @ query_vector
        return np.maximum.reduceat(similarities, self._starts)

    def lexical_scores(self, query_terms: Sequence[str]) -> np.ndarray:
        known = [term for term in query_terms if term in self._vocabulary]
        if self._bm25 is None or not known:
            return np.zeros(len(self.documents), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def search(self, query: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        """The k best articles for a question, best first."""
        if not self.documents or not query.strip():
            return []
        dense = (
            self.dense_scores(self.encode([query])[0])
            if mode != "lexical"
            else np.zeros(len(self), np.float32)
        )
        raw_lexical = (
            self.lexical_scores(text.terms(query)) if mode != "dense" else np.zeros(len(self), np.float32)
        )
        lexical = raw_lexical / (raw_lexical + LEXICAL_SATURATION)
        if mode == "hybrid":
            scores = dense + LEXICAL_WEIGHT * lexical
        elif mode == "dense":
            scores = dense
        else:
            scores = lexical
        k = min(k, len(self.documents))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            Hit(
                article_id=self.documents[i].article_id,
                version_id=self.documents[i].version_id,
                slug=self.documents[i].slug,
                title=self.documents[i].title,
                score=float(scores[i]),
                dense=float(dense[i]),
                lexical=float(lexical[i]),
            )
            for i in top
        ]
