"""Intent classification from what a message means and how it is spelled.

A logistic regression over two views of the message:
- the MiniLM sentence vector the MiniLMFeaturizer put on it (meaning: "my parcel never showed up"
  is near "where is my order", "what's the capital of peru" is near nothing we sell);
- TF-IDF of character n-grams inside words and of words (spelling: typos, run-on words, our own
  product and programme names that the encoder does not know).

Why not DIET for intents: on this 2-core machine DIET needed ~9 s an epoch once the training data
held several languages of out-of-scope examples (their character n-grams multiply the sparse
input), so training took far over the 5-minute budget, and on messages we did not write
(benchmarks/nlu.py, Bitext) it did no better than this classifier, which trains in seconds.
DIETClassifier stays in the pipeline for entities.

Pipeline entry (config.yml), after kefu_nlu.minilm.MiniLMFeaturizer:

    - name: kefu_nlu.intents.SentenceIntentClassifier
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import joblib
import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from kefu_nlu.minilm import MiniLMFeaturizer

logger = logging.getLogger(__name__)

MODEL_FILE = "sentence_intents.joblib"


class _Views:
    """Turns messages into the classifier's input: sentence vector | char n-grams | words."""

    def __init__(self, char_weight: float, word_weight: float) -> None:
        self.char_weight = char_weight
        self.word_weight = word_weight
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.words = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
        )

    def fit(self, texts: List[str]) -> "_Views":
        self.chars.fit(texts)
        self.words.fit(texts)
        return self

    def transform(self, texts: List[str], vectors: np.ndarray) -> csr_matrix:
        return hstack(
            [
                csr_matrix(vectors),
                self.char_weight * self.chars.transform(texts),
                self.word_weight * self.words.transform(texts),
            ]
        ).tocsr()


def _sentence_vector(message: Message) -> np.ndarray:
    _, sentence = message.get_dense_features(TEXT)
    if sentence is None:
        raise ValueError(
            "SentenceIntentClassifier needs the MiniLM sentence vector: put "
            "kefu_nlu.minilm.MiniLMFeaturizer before it in config.yml"
        )
    return np.asarray(sentence.features, dtype=np.float32).reshape(-1)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SentenceIntentClassifier(GraphComponent, IntentClassifier):
    """Predicts the intent and a ranking of the likeliest ones, with calibrated confidences."""

    @classmethod
    def required_components(cls) -> List[type]:
        return [MiniLMFeaturizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # Inverse regularisation strength of the logistic regression.
            "C": 4.0,
            # Weights of the spelling views next to the unit-length sentence vector.
            "char_weight": 1.0,
            "word_weight": 0.5,
            # Weigh each intent by the inverse of its number of examples, so a large intent
            # (out_of_scope, ask_question) does not swallow the small ones.
            "balanced": True,
            "ranking_length": 10,
        }

    @staticmethod
    def required_packages() -> List[Text]:
        return ["sklearn", "scipy", "joblib"]

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        views: Optional[_Views] = None,
        model: Optional[LogisticRegression] = None,
    ) -> None:
        self.config = config
        self.model_storage = model_storage
        self.resource = resource
        self.views = views
        self.model = model

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SentenceIntentClassifier":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [example for example in training_data.intent_examples if example.get(TEXT)]
        intents = sorted({example.get(INTENT) for example in examples})
        if len(intents) < 2:
            logger.warning("SentenceIntentClassifier: fewer than two intents to tell apart; not trained")
            return self.resource
        texts = [example.get(TEXT) for example in examples]
        vectors = np.vstack([_sentence_vector(example) for example in examples])
        views = _Views(float(self.config["char_weight"]), float(self.config["word_weight"])).fit(texts)
        model = LogisticRegression(
            C=float(self.config["C"]),
            max_iter=3000,
            class_weight="balanced" if self.config["balanced"] else None,
        )
        model.fit(views.transform(texts, vectors), [example.get(INTENT) for example in examples])
        self.views, self.model = views, model
        with self.model_storage.write_to(self.resource) as directory:
            joblib.dump({"views": views, "model": model}, directory / MODEL_FILE)
        return self.resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "SentenceIntentClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                saved = joblib.load(directory / MODEL_FILE)
        except (ValueError, FileNotFoundError):
            logger.warning("SentenceIntentClassifier: no trained model in this model archive")
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, saved["views"], saved["model"])

    def process(self, messages: List[Message]) -> List[Message]:
        if self.model is None or self.views is None:
            return messages
        todo = [message for message in messages if message.get(TEXT)]
        if not todo:
            return messages
        texts = [message.get(TEXT) for message in todo]
        vectors = np.vstack([_sentence_vector(message) for message in todo])
        probabilities = self.model.predict_proba(self.views.transform(texts, vectors))
        labels = self.model.classes_
        for message, row in zip(todo, probabilities):  # noqa: B905 (Python 3.9 has no strict=)
            order = np.argsort(-row)
            ranking = [
                {INTENT_NAME_KEY: str(labels[i]), PREDICTED_CONFIDENCE_KEY: float(row[i])}
                for i in order[: int(self.config["ranking_length"])]
            ]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages
