"""Query -> ranked passages (Hits): dense, BM25, and their fusion, over any Store.

Every retriever returns at most k hits, best first, ranks from 1, and never a passage twice. Fusion
happens here, the same way for every store.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from rag.config import Settings
from rag.embed import Embedder
from rag.store.base import Ranked, Store
from rag.text import tokenize
from rag.types import Hit


class Retriever(Protocol):
    def retrieve(self, query: str, k: int) -> list[Hit]:
        """The k best passages for ``query``."""

    def search(self, query: str, query_vector: np.ndarray, k: int) -> list[Hit]:
        """As retrieve, given the query's vector (the pipeline embeds each question once)."""


class DenseRetriever:
    def __init__(self, store: Store, embedder: Embedder):
        self.store = store
        self.embedder = embedder

    def ranked(self, query_vector: np.ndarray, k: int) -> Ranked:
        return self.store.dense(np.asarray(query_vector, dtype=np.float32), k) if k > 0 else []

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.search(query, self.embedder.embed_query(query), k)

    def search(self, query: str, query_vector: np.ndarray, k: int) -> list[Hit]:
        ranked = self.ranked(query_vector, k)
        chunks = self.store.passages([r for r, _ in ranked])
        return [Hit(c, s, i + 1, dense_rank=i + 1) for i, (c, (_, s)) in enumerate(zip(chunks, ranked))]


class BM25Retriever:
    def __init__(self, store: Store):
        self.store = store

    def ranked(self, terms: Sequence[str], k: int) -> Ranked:
        return self.store.sparse(list(terms), k) if k > 0 and terms else []

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.search(query, None, k)

    def search(self, query: str, query_vector: np.ndarray | None, k: int) -> list[Hit]:
        """BM25 needs no vector: ``query_vector`` is ignored."""
        ranked = self.ranked(tokenize(query), k)
        chunks = self.store.passages([r for r, _ in ranked])
        return [Hit(c, s, i + 1, bm25_rank=i + 1) for i, (c, (_, s)) in enumerate(zip(chunks, ranked))]


class HybridRetriever:
    """Dense and BM25 candidates fused by reciprocal rank ("rrf") or by min-max normalised scores
    ("score"); "dense" and "bm25" use one side only (for comparison in evals)."""

    def __init__(self, store: Store, embedder: Embedder, settings: Settings = Settings()):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.dense = DenseRetriever(store, embedder)
        self.bm25 = BM25Retriever(store)

    def retrieve(self, query: str, k: int) -> list[Hit]:
        return self.search(query, self.embedder.embed_query(query), k)

    def search(self, query: str, query_vector: np.ndarray, k: int) -> list[Hit]:
        s = self.settings
        n = max(s.candidates, k)
        dense = self.dense.ranked(query_vector, n) if s.fusion != "bm25" else []
        sparse = self.bm25.ranked(tokenize(query), n) if s.fusion != "dense" else []
        fused = fuse(dense, sparse, s)
        dense_rank = {r: i + 1 for i, (r, _) in enumerate(dense)}
        bm25_rank = {r: i + 1 for i, (r, _) in enumerate(sparse)}
        top = fused[:k]
        chunks = self.store.passages([r for r, _ in top])  # one fetch for all of them
        return [Hit(c, score, i + 1, dense_rank.get(r), bm25_rank.get(r)) for i, (c, (r, score)) in enumerate(zip(chunks, top))]


def fuse(dense: Ranked, sparse: Ranked, settings: Settings) -> Ranked:
    """One ranking from two; ties broken by dense rank, then row, so results are deterministic."""
    scores: dict[int, float] = {}
    if settings.fusion in ("rrf", "dense", "bm25"):
        for ranked in (dense, sparse):
            for i, (row, _) in enumerate(ranked):
                scores[row] = scores.get(row, 0.0) + 1.0 / (settings.rrf_k + i + 1)
    else:
        for ranked, weight in ((dense, settings.dense_weight), (sparse, 1.0 - settings.dense_weight)):
            if not ranked:
                continue
            values = np.array([v for _, v in ranked])
            lo, hi = float(values.min()), float(values.max())
            for row, v in ranked:
                norm = (v - lo) / (hi - lo) if hi > lo else 1.0
                scores[row] = scores.get(row, 0.0) + weight * norm
    order = {row: i for i, (row, _) in enumerate(dense)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)), kv[0]))
