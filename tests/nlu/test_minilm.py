"""The NumPy encoder Rasa uses (kefu_nlu/minilm.py) gives the same sentence vectors as the
sentence-transformers model the knowledge base uses, so intent classification and article search
understand a message the same way."""

from __future__ import annotations

import numpy as np
import pytest

from kefu_nlu.minilm import MiniLM, WordPiece, default_model_dir
from knowledge_base import embedding

MESSAGES = [
    "where is my order #100231??",
    "I want my MONEY back, the blender arrived broken!!!",
    "wheres my parcel its been 2 weeks",
    "Wie wird das Wetter morgen in Hamburg?",
    "今天天气怎么样",
    "café naïve façade — résumé",
    "🚀🌕",
    "",
    "refund " * 300,  # longer than the encoder's 256 tokens: cut the same way
]


@pytest.fixture(scope="module")
def numpy_encoder() -> MiniLM:
    return MiniLM(default_model_dir())


def test_vectors_match_sentence_transformers(numpy_encoder: MiniLM) -> None:
    ours = numpy_encoder.encode(MESSAGES)
    reference = embedding.encode(MESSAGES)
    assert ours.shape == reference.shape == (len(MESSAGES), 384)
    similarity = (ours * reference).sum(axis=1)
    assert np.all(similarity > 0.9999), dict(zip(MESSAGES, similarity.round(5), strict=True))


def test_batching_does_not_change_a_vector(numpy_encoder: MiniLM) -> None:
    alone = numpy_encoder.encode(["my parcel never showed up"])
    padded = numpy_encoder.encode(["my parcel never showed up", "a much longer message " * 20], batch_size=2)
    assert np.allclose(alone[0], padded[0], atol=1e-5)


def test_tokenizer_matches_the_reference_tokenizer() -> None:
    tokenizer = WordPiece(default_model_dir() / "vocab.txt")
    reference = embedding.model().tokenizer
    for message in MESSAGES:
        expected = reference(message, truncation=True, max_length=256)["input_ids"]
        assert tokenizer.encode(message) == expected, message
