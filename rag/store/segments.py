"""Segments: the documents one build wrote, in files written once and never changed afterwards, so
the generations after it share them by hard link instead of copying them (rag.store.generations
lists which segments, and which of their documents, a generation holds).

A segment's files, each named ``<segment>.<file>`` inside every generation directory that uses it::

    docs.jsonl            one metadata record per document (rag.store.generations.doc_record)
    texts.bin             the documents' texts, UTF-8, one after the other; text_offsets.npy where each starts
    chunks.npy            (n, 6) passage rows; the document and sentence columns count within the segment
    sentences.npy         (m, 4) sentence rows; the document column counts within the segment
    chunk_vectors.npy     (n, dim) float32, sentence_vectors.npy (m, dim) float32
    dense.faiss           the FAISS index of its chunk vectors (rag.store.dense)
    terms.json            its BM25 vocabulary, sorted; term_ptr.npy, term_rows.npy, term_tf.npy: for
                          term t, entries term_ptr[t]:term_ptr[t+1] of the chunk rows holding it and how often

A generation written before segments existed reads as one segment named "" whose files have no
prefix (its BM25 terms are bm25/ and term_counts.npy, when it has them).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.store.sparse import Postings, stored_terms

FILES = ("docs.jsonl", "texts.bin", "text_offsets.npy", "chunks.npy", "sentences.npy", "chunk_vectors.npy",
         "sentence_vectors.npy", "dense.faiss", "terms.json", "term_ptr.npy", "term_rows.npy", "term_tf.npy")
# chunks.npy columns
C_DOC, C_START, C_END, C_SECTION, C_SENT_LO, C_SENT_HI = range(6)
# sentences.npy columns
S_DOC, S_START, S_END, S_SECTION = range(4)


def file_name(segment: str, name: str) -> str:
    return f"{segment}.{name}" if segment else name


@dataclass(frozen=True)
class SegmentData:
    """What a build writes as a new segment, in memory."""

    records: list[str]  # per document: its docs.jsonl line (JSON, no newline)
    texts: list[bytes]  # per document: its text, UTF-8
    chunks: np.ndarray  # int64 (n, 6), segment-local document and sentence rows
    sentences: np.ndarray  # int64 (m, 4)
    chunk_vectors: np.ndarray  # float32 (n, dim)
    sentence_vectors: np.ndarray  # float32 (m, dim)
    terms: Postings  # BM25 counts of its chunks
    dim: int


def write_segment(directory: Path, segment: str, data: SegmentData) -> str:
    """Write ``data`` as segment ``segment`` into ``directory``; returns the FAISS index's description."""
    import faiss

    from rag.store.dense import make_vector_index

    path = lambda name: directory / file_name(segment, name)  # noqa: E731
    offsets = np.zeros(len(data.texts) + 1, dtype=np.int64)
    with open(path("docs.jsonl"), "w", encoding="utf-8") as f, open(path("texts.bin"), "wb") as t:
        for i, (record, text) in enumerate(zip(data.records, data.texts)):
            f.write(record + "\n")
            offsets[i + 1] = offsets[i] + t.write(text)
    np.save(path("text_offsets.npy"), offsets, allow_pickle=False)
    np.save(path("chunks.npy"), np.ascontiguousarray(data.chunks, dtype=np.int64), allow_pickle=False)
    np.save(path("sentences.npy"), np.ascontiguousarray(data.sentences, dtype=np.int64), allow_pickle=False)
    vectors = np.ascontiguousarray(data.chunk_vectors, dtype=np.float32)
    np.save(path("chunk_vectors.npy"), vectors, allow_pickle=False)
    np.save(path("sentence_vectors.npy"), np.ascontiguousarray(data.sentence_vectors, dtype=np.float32), allow_pickle=False)
    index, kind = make_vector_index(vectors, data.dim)
    faiss.write_index(index, str(path("dense.faiss")))
    terms = data.terms
    with open(path("terms.json"), "w", encoding="utf-8") as f:
        json.dump(list(terms.vocab), f, ensure_ascii=False)
    ptr = np.zeros(len(terms.vocab) + 1, np.int64)
    np.cumsum(np.bincount(terms.term, minlength=len(terms.vocab)), out=ptr[1:])
    np.save(path("term_ptr.npy"), ptr, allow_pickle=False)
    np.save(path("term_rows.npy"), terms.passage.astype(np.int32), allow_pickle=False)
    np.save(path("term_tf.npy"), terms.tf.astype(np.int32), allow_pickle=False)
    return kind


def link_segment(source: Path, target: Path, segment: str) -> None:
    """Make segment ``segment`` of generation ``source`` part of ``target`` too: hard links, so the
    files are shared and a generation's removal leaves them to the others that still use them
    (copies where the filesystem has no hard links)."""
    for name in FILES:
        src, dst = source / file_name(segment, name), target / file_name(segment, name)
        try:
            os.link(src, dst)
        except OSError:
            if not src.is_file():
                raise
            shutil.copyfile(src, dst)


class Segment:
    """One segment of a generation, opened: rows and vectors memory-mapped or loaded on first use.

    Raises (from its properties):
        ValueError, OSError, KeyError, TypeError: unreadable or inconsistent files.
    """

    def __init__(self, gen: Path, name: str):
        self.gen, self.name = gen, name
        self._cache: dict = {}

    def path(self, name: str) -> Path:
        return self.gen / file_name(self.name, name)

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def chunks(self) -> np.ndarray:
        return self._once("chunks", lambda: np.asarray(np.load(self.path("chunks.npy"), allow_pickle=False, mmap_mode="r")))

    @property
    def sentences(self) -> np.ndarray:
        return self._once("sentences", lambda: np.asarray(np.load(self.path("sentences.npy"), allow_pickle=False, mmap_mode="r")))

    @property
    def chunk_vectors(self) -> np.ndarray:
        return self._once("cv", lambda: np.load(self.path("chunk_vectors.npy"), allow_pickle=False, mmap_mode="r"))

    @property
    def sentence_vectors(self) -> np.ndarray:
        return self._once("sv", lambda: np.load(self.path("sentence_vectors.npy"), allow_pickle=False, mmap_mode="r"))

    def bounds(self, documents: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk row bounds, sentence row bounds): document j's rows are bounds[j]:bounds[j + 1]
        (rows are written document by document)."""
        def make():
            c, s = self.chunks, self.sentences
            if c.ndim != 2 or c.shape[1] != 6 or s.ndim != 2 or s.shape[1] != 4:
                raise ValueError("rows of the wrong shape")
            at = np.arange(documents + 1)
            cb = np.searchsorted(c[:, C_DOC], at) if len(c) else np.zeros(documents + 1, np.int64)
            sb = np.searchsorted(s[:, S_DOC], at) if len(s) else np.zeros(documents + 1, np.int64)
            if cb[-1] != len(c) or sb[-1] != len(s):
                raise ValueError("rows name documents the segment does not have")
            return cb, sb
        return self._once(("bounds", documents), make)

    def lines(self) -> list[str]:
        """Its docs.jsonl records, unparsed: split at "\\n" only (see generations._read_jsonl)."""
        return self._once("lines", lambda: [line for line in self.path("docs.jsonl").read_text(encoding="utf-8").split("\n")
                                            if line.strip()])

    def terms(self) -> Postings | None:
        """The BM25 counts of its chunks; None for a generation from before they were kept."""
        def make():
            if not self.name:
                return stored_terms(self.gen, len(self.chunks))
            vocab = tuple(json.loads(self.path("terms.json").read_text(encoding="utf-8")))
            ptr = np.load(self.path("term_ptr.npy"), allow_pickle=False)
            term = np.repeat(np.arange(len(vocab), dtype=np.int32), np.diff(ptr))
            return Postings(vocab, term, np.load(self.path("term_rows.npy"), allow_pickle=False),
                            np.load(self.path("term_tf.npy"), allow_pickle=False))
        return self._once("terms", make)


# The files every generation from before segments has (texts.bin, bm25/ and term_counts.npy came later).
LEGACY_FILES = ("docs.jsonl", "chunks.npy", "sentences.npy", "chunk_vectors.npy", "sentence_vectors.npy", "dense.faiss")
