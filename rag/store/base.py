"""The storage boundary: what retrieval, answering and the page may ask of a store, as typed records.

Two stores implement it: ``local`` (FAISS + BM25 generations on disk, rag.store.local) and ``milvus``
(a Milvus collection through pymilvus, rag.store.milvus). Code above the store sees these records,
never array rows or column constants. Passage and sentence ids are integers a store gives out; they
mean something only to the store that gave them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from rag.types import Chunk, Document

Ranked = list[tuple[int, float]]  # (passage id, score), best first


@dataclass(frozen=True)
class SentenceRecord:
    """One body sentence: ``document.text[start:end] == text``. ``prev``/``next`` are the ids of its
    neighbours in the same section (None at a section's edge); ``lead`` marks a document's first."""

    sid: int
    doc_id: str
    start: int
    end: int
    section: int
    text: str
    terms: frozenset[str]
    prev: int | None
    next: int | None
    lead: bool


@dataclass(frozen=True)
class DocInfo:
    """What the library lists about a document, without its text."""

    doc_id: str
    title: str | None
    date: str | None
    path: str | None
    encoding: str
    sha256: str
    chars: int
    bytes: int
    passages: int
    url: str | None = None  # HTML: the page's canonical URL
    author: str | None = None
    site: str | None = None
    pages: tuple[int, ...] = ()  # PDF: start offset of each page (see Document.pages)


class Store(Protocol):
    """Read side of a store, as the pipeline uses it. Implementations are safe to read from several
    threads at once."""

    model_id: str

    def __len__(self) -> int:
        """Number of passages."""

    def catalog(self) -> list[DocInfo]:
        """Every document, ordered by id."""

    def info(self, doc_id: str) -> DocInfo | None:
        """The catalog entry of ``doc_id``, or None."""

    def document(self, doc_id: str) -> Document | None:
        """The document with its text, or None when the store does not hold ``doc_id``."""

    def passage(self, pid: int) -> Chunk:
        """Passage ``pid`` (its text is what was embedded and searched)."""

    def passages(self, pids: Sequence[int]) -> list[Chunk]:
        """Those passages, in that order: one round trip to a remote store, not one per passage."""

    def passage_sentences(self, pid: int) -> Sequence[int]:
        """The ids of the body sentences inside passage ``pid``, in reading order."""

    def sentence(self, sid: int) -> SentenceRecord:
        ...

    def sentences(self, sids: Sequence[int]) -> list[SentenceRecord]:
        """Those sentences, in that order, fetched together (see passages)."""

    def sentence_vectors(self, sids: Sequence[int]) -> np.ndarray:
        """(len(sids), dim) float32 unit vectors of those sentences."""

    def idf(self, term: str) -> float:
        """BM25 (Lucene) idf of ``term`` over the passages. A term no passage holds gets the highest
        idf: it is the most specific word of a question, and its absence must count."""

    def knows(self, term: str) -> bool:
        """Whether any passage holds ``term``."""

    def dense(self, vector: np.ndarray, k: int) -> Ranked:
        """The k passages nearest ``vector`` (inner product), best first."""

    def sparse(self, terms: Sequence[str], k: int) -> Ranked:
        """The k passages with the best BM25 score for ``terms`` (rag.text.tokenize terms); only
        passages that hold at least one of them."""

    def manifest(self) -> dict:
        """What the store records about itself: model, chunker, tokenizer, splitter, sources, counts."""

    def outdated(self) -> bool:
        """True when another process or page changed the library since this store read it."""

    def health(self) -> dict:
        """{"ok": bool, "store": kind, ...} without raising: for /health and `rag docs`."""
