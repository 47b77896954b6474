"""BM25 over passages: the term counts a build keeps (Postings) and the bm25s index made from them.

The index is computed here with numpy, bit-identical to ``bm25s.BM25.index`` (tested), so a build can
add and drop passages' counts instead of tokenizing the whole library again.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

# BM25 term counts, in the order of bm25/'s matrix. Optional in a generation: those written before it
# existed still load, and their next build tokenizes every passage again.
TERM_COUNTS = "term_counts.npy"


@dataclass(frozen=True)
class Postings:
    """BM25 term counts of passages: passage ``passage[k]`` holds term ``vocab[term[k]]`` ``tf[k]`` times.

    ``vocab`` is sorted and holds only terms some entry has; there is one entry per (term, passage)
    pair, sorted by term then passage: the order of the BM25 matrix. A generation stores ``tf``
    beside that matrix (term_counts.npy), so the next build takes over the counts of unchanged
    passages instead of tokenizing them again.
    """

    vocab: tuple[str, ...]
    term: np.ndarray  # int32
    passage: np.ndarray  # int32
    tf: np.ndarray  # int32

    @classmethod
    def of(cls, tokens: Sequence[Sequence[str]], rows: Sequence[int]) -> "Postings":
        """The counts of passages ``rows[i]`` whose terms are ``tokens[i]``. A passage with no terms
        gets one "" term, as bm25s gives it: a query never has it."""
        counts = [Counter(t or [""]) for t in tokens]
        vocab = tuple(sorted({w for c in counts for w in c}))
        ids = {w: i for i, w in enumerate(vocab)}
        term = np.fromiter((ids[w] for c in counts for w in c), np.int32)
        passage = np.repeat(np.asarray(rows, np.int32), [len(c) for c in counts]).astype(np.int32)
        tf = np.fromiter((n for c in counts for n in c.values()), np.int32)
        return cls(vocab, term, passage, tf)._sorted()

    def moved(self, new_row: np.ndarray) -> "Postings":
        """The entries of the passages ``p`` with ``new_row[p] >= 0``, renumbered ``new_row[p]``."""
        new_row = np.asarray(new_row)
        rows = new_row[self.passage]
        keep = rows >= 0
        term = self.term[keep]
        used = np.bincount(term, minlength=len(self.vocab)) > 0
        if used.all():
            vocab = self.vocab
        else:  # terms only removed passages had: a fresh build would not know them either
            vocab = tuple(w for w, u in zip(self.vocab, used.tolist()) if u)
            term = (np.cumsum(used) - 1).astype(np.int32)[term]
        moved = Postings(vocab, term.astype(np.int32), rows[keep].astype(np.int32), self.tf[keep].astype(np.int32))
        kept = new_row[new_row >= 0]
        # Passages that keep their order keep the entries in order (the usual case: documents are
        # sorted by id, so only added and removed ones shift the rest).
        return moved if bool(np.all(kept[1:] > kept[:-1])) else moved._sorted()

    def __add__(self, other: "Postings") -> "Postings":
        """The entries of both (of different passages), over the union of their vocabularies."""
        new = sorted(set(other.vocab).difference(self.vocab))
        vocab = tuple(sorted(self.vocab + tuple(new))) if new else self.vocab  # two sorted runs: a linear merge
        if new and len(self.vocab):
            # A word of ours moves up by the number of new words sorting before it.
            gaps = np.array([bisect_left(self.vocab, w) for w in new])
            at = np.arange(len(self.vocab))
            mine = self.term + np.searchsorted(gaps, at, side="right")[self.term] if len(self.term) else self.term
        else:
            mine = self.term
        if other.vocab == vocab or not len(other.term):
            theirs = other.term
        else:
            theirs = np.array([bisect_left(vocab, w) for w in other.vocab], np.int64)[other.term]
        mine, theirs = mine.astype(np.int32), theirs.astype(np.int32)
        if len(other.term) * 16 < len(self.term):  # a few entries into many: insert them where they sort
            at = np.searchsorted(_keys(mine, self.passage), _keys(theirs, other.passage))
            return Postings(vocab, np.insert(mine, at, theirs), np.insert(self.passage, at, other.passage),
                            np.insert(self.tf, at, other.tf))
        return Postings(vocab, np.concatenate([mine, theirs]),
                        np.concatenate([self.passage, other.passage]).astype(np.int32),
                        np.concatenate([self.tf, other.tf]).astype(np.int32))._sorted()

    def _sorted(self) -> "Postings":
        key = _keys(self.term, self.passage)
        if len(key) < 2 or bool(np.all(key[1:] > key[:-1])):
            return self
        # Stable, and close to linear on what a build passes: a few long runs already in order.
        order = np.argsort(key, kind="stable")
        return Postings(self.vocab, self.term[order], self.passage[order], self.tf[order])


def _keys(term: np.ndarray, passage: np.ndarray) -> np.ndarray:
    """One int64 per entry, in the order of (term, passage)."""
    return term.astype(np.int64) << 32 | passage.astype(np.int64)


NO_POSTINGS = Postings((), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32))


def bm25_index(terms: Postings, passages: int):
    """(bm25s.BM25 over ``passages`` passages with these terms, the term counts in the order of its
    matrix). The scores are those bm25s.BM25().index(tokens) computes, bit for bit, by the same
    float operations in the same order, but over whole arrays: its loop over every term of every
    passage cost 1.3 s per 10 MB of text at each build."""
    import bm25s

    bm25 = bm25s.BM25()
    if bm25.method != "lucene" or bm25.idf_method not in (None, "lucene"):
        raise RuntimeError(f"bm25_index computes BM25 'lucene', not {bm25.method!r}")
    if passages == 0:  # bm25s cannot index nothing: one passage with the "" term stands in
        terms, passages = Postings.of([[]], [0]), 1
    vocab, term = terms.vocab, terms.term
    if "" not in vocab:  # bm25s always has "" in its vocabulary; it sorts first
        vocab, term = ("", *vocab), term + 1
    passage, tf = terms.passage, terms.tf.astype(np.float64)
    lengths = np.bincount(passage, weights=tf, minlength=passages).astype(np.int64)
    mean_length = lengths.mean()  # bm25s: np.array([len(tokens) for tokens in corpus]).mean()
    df = np.bincount(term, minlength=len(vocab))
    # idf with math.log on Python numbers as bm25s does (numpy's log may round differently).
    values, where = np.unique(df, return_inverse=True)
    idf = np.array([math.log(1 + (passages - d + 0.5) / (d + 0.5)) if d else 0.0 for d in values.tolist()],
                   np.float32)[where.reshape(-1)]
    k1, b = bm25.k1, bm25.b
    norm = k1 * ((1 - b) + b * lengths.astype(np.float64) / mean_length)
    # idf * tf / (norm + tf) in float64, as bm25s, in place: a 50 MB library has ~10 million entries.
    score = norm[passage]
    score += tf
    np.divide(tf, score, out=score)
    score *= idf[term]
    indptr = np.zeros(len(vocab) + 1, np.int64)
    np.cumsum(df, out=indptr[1:])
    bm25.scores = {"data": score.astype(np.float32), "indices": passage.astype(np.int32, copy=False), "indptr": indptr,
                   "num_docs": passages}
    bm25.vocab_dict = {w: i for i, w in enumerate(vocab)}
    bm25.unique_token_ids_set = set(bm25.vocab_dict.values())
    bm25.nonoccurrence_array = None
    return bm25, terms.tf.astype(np.int32, copy=False)


def stored_terms(gen: Path, passages: int) -> Postings | None:
    """The Postings a generation's bm25/ and term_counts.npy hold, or None when it has no term counts."""
    import bm25s

    if passages == 0 or not (gen / TERM_COUNTS).is_file():
        return None
    try:
        counts = np.load(gen / TERM_COUNTS, allow_pickle=False, mmap_mode="r")
        bm25 = bm25s.BM25.load(str(gen / "bm25"), allow_pickle=False, mmap=True, show_progress=False)
    except Exception:  # unreadable: its documents are tokenized again
        return None
    vocab = tuple(bm25.vocab_dict)
    indptr = np.asarray(bm25.scores["indptr"], dtype=np.int64)
    passage = np.asarray(bm25.scores["indices"])
    # Written by bm25_index: ids are the positions of the sorted vocabulary, one column each.
    if list(bm25.vocab_dict.values()) != list(range(len(vocab))) or any(a >= b for a, b in zip(vocab, vocab[1:])) \
            or len(indptr) != len(vocab) + 1 or int(indptr[-1]) != len(counts) or len(passage) != len(counts) \
            or bm25.scores["num_docs"] != passages or (len(passage) and int(passage.max()) >= passages):
        return None
    term = np.repeat(np.arange(len(vocab), dtype=np.int32), np.diff(indptr))
    return Postings(vocab, term, passage.astype(np.int32), np.asarray(counts, dtype=np.int32))
