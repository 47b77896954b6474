"""Deterministic embedders for fast tests. Both record what they embed."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from rag.text import tokenize

KEYWORDS = ["zephyr", "turbine", "lakeview", "plant", "founded", "crumb", "bakery", "sourdough", "harbor",
            "oven", "glacier", "frostline", "ice", "melt", "parade", "visitors", "exports", "output", "naples"]


class _Recording:
    """Records every text embedded (``embedded``) and the number of batch calls (``calls``)."""

    dim: int

    def _vector(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.embedded.extend(texts)
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


class KeywordEmbedder(_Recording):
    """One dimension per keyword (after stemming), so rankings are known in advance: a text's vector
    is its keyword counts, L2-normalised; a text with no keyword gets the zero vector."""

    model_id = "fake/keyword-v1"

    def __init__(self, keywords: Sequence[str] = KEYWORDS):
        self.vocab = {tokenize(w)[0]: i for i, w in enumerate(keywords)}
        self.dim = len(self.vocab)
        self.embedded: list[str] = []
        self.calls = 0

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for t in tokenize(text):
            if t in self.vocab:
                v[self.vocab[t]] += 1
        n = np.linalg.norm(v)
        return v / n if n else v


class HashEmbedder(_Recording):
    """Pseudo-random unit vectors seeded by SHA-256 of the text. Not ``hash()``: that is salted per
    process, and the vectors must be the same in every run."""

    model_id = "fake/hash-v1"

    def __init__(self, dim: int = 32):
        self.dim = dim
        self.embedded: list[str] = []
        self.calls = 0

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)


def rule_model(min_confidence: float = 0.5, confident: float = 0.8, sentence: dict | None = None,
               question: dict | None = None, sentence_bias: float = -5.0, question_bias: float = -4.0):
    """An answer model with hand-set weights, so tests do not depend on the trained file:
    p(sentence) = sigmoid(4·sem + 6·lex + 3·lent + offers + 0.5·inv_rank − 5) and
    confidence = sigmoid(8·p1 − 4), which is 0.5 exactly where the best sentence's p is 0.5."""
    from rag.answer.candidates import QUESTION_FEATURES, SENTENCE_FEATURES
    from rag.answer.model import AnswerModel, Logistic

    def linear(names, weights, bias):
        return Logistic(tuple(names), np.zeros(len(names)), np.ones(len(names)),
                        np.array([weights.get(n, 0.0) for n in names]), bias)

    s = sentence or {"sem": 4.0, "lex": 6.0, "lent": 3.0, "offers": 1.0, "inv_rank": 0.5}
    q = question or {"p1": 8.0}
    return AnswerModel(linear(SENTENCE_FEATURES, s, sentence_bias), linear(QUESTION_FEATURES, q, question_bias),
                       min_confidence, confident, {"test": True})
