"""The database side of the search index: stored vectors, the index generation, loading documents."""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.crm.models import ArticleStatus, KbArticle, KbArticleVersion, KbIndexState
from knowledge_base import embedding, text
from knowledge_base.index import Document

logger = logging.getLogger(__name__)

_STATE_ID = 1


def embed_version(version: KbArticleVersion) -> np.ndarray:
    """Compute and store a version's vectors (done once, when it is published)."""
    vectors = embedding.encode(text.texts_to_embed(version.title, version.problem))
    version.embedding = embedding.to_bytes(vectors)
    version.embedding_model = embedding.MODEL_NAME
    version.embedding_dim = int(vectors.shape[1])
    return vectors


def has_current_embedding(version: KbArticleVersion) -> bool:
    return (
        version.embedding is not None
        and version.embedding_model == embedding.MODEL_NAME
        and version.embedding_dim == embedding.DIMENSIONS
    )


def generation(session: Session) -> int:
    """The index generation: it goes up whenever the set of published articles changes."""
    value = session.scalar(select(KbIndexState.generation).where(KbIndexState.id == _STATE_ID))
    return int(value or 0)


def bump_generation(session: Session) -> None:
    """Tell every process's index to reload (in the caller's transaction, so it lands with the change)."""
    updated = session.execute(
        update(KbIndexState)
        .where(KbIndexState.id == _STATE_ID)
        .values(generation=KbIndexState.generation + 1)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(KbIndexState(id=_STATE_ID, generation=1))
    session.flush()


def published_versions(session: Session) -> list[tuple[KbArticle, KbArticleVersion]]:
    rows = session.execute(
        select(KbArticle, KbArticleVersion)
        .join(KbArticleVersion, KbArticleVersion.id == KbArticle.published_version_id)
        .where(KbArticle.status == ArticleStatus.PUBLISHED)
        .order_by(KbArticle.id)
    )
    return [(article, version) for article, version in rows.tuples()]


def load_documents(session: Session) -> list[Document]:
    """Every published article as an index document, from the stored vectors.

    A published version without current vectors (made by an older model, or written straight into
    the database) is embedded here and the vectors are saved, so that happens only once.
    """
    documents = []
    for article, version in published_versions(session):
        if has_current_embedding(version):
            assert version.embedding is not None
            vectors = embedding.from_bytes(version.embedding, embedding.DIMENSIONS)
        else:
            logger.info("embedding %s v%s, which had no current vectors", article.slug, version.number)
            vectors = embed_version(version)
        documents.append(
            Document(
                article_id=article.id,
                version_id=version.id,
                slug=article.slug,
                title=version.title,
                vectors=vectors,
                terms=text.lexical_document(
                    version.title, version.problem, list(version.tags or []), version.solution
                ),
            )
        )
    return documents
