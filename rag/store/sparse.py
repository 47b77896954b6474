"""BM25 over passages: the term counts a build keeps (Postings), and the scores computed from them
when a question is asked (Bm25), bit-identical to those of ``bm25s.BM25.index`` (tested), so a build
adds and drops passages' counts instead of tokenizing, or scoring, the whole library again.
"""
from __future__ import annotations

import math
from array import array
from bisect import bisect_left
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
    pair, sorted by term then passage. A segment stores them (rag.store.segments), so a build that
    writes a document's passages again takes over their counts instead of tokenizing them again.
    """

    vocab: tuple[str, ...]
    term: np.ndarray  # int32
    passage: np.ndarray  # int32
    tf: np.ndarray  # int32

    @classmethod
    def of(cls, tokens: Sequence[Sequence[str]], rows: Sequence[int]) -> "Postings":
        """The counts of passages ``rows[i]`` whose terms are ``tokens[i]``. A passage with no terms
        gets one "" term, as bm25s gives it: a query never has it."""
        builder = PostingsBuilder()
        for row, terms in zip(rows, tokens):
            builder.add(row, terms)
        return builder.postings()

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


class PostingsBuilder:
    """Postings.of, one passage at a time. Each term becomes an int as it comes, so a large build holds
    4 bytes a term occurrence until the end, not a string object each and a Counter a passage."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}  # term -> id in order of first sight
        self._terms = array("i")  # every term occurrence, as an id, passage after passage
        self._lengths = array("q")
        self._rows = array("q")

    def add(self, row: int, terms: Sequence[str]) -> None:
        ids = self._ids
        terms = terms or [""]
        self._terms.extend([ids.setdefault(w, len(ids)) for w in terms])
        self._lengths.append(len(terms))
        self._rows.append(row)

    def postings(self) -> Postings:
        vocab = tuple(sorted(self._ids))
        rank = np.empty(len(vocab), np.int64)
        rank[[self._ids[w] for w in vocab]] = np.arange(len(vocab))
        # One int64 per occurrence, (term, passage) as _keys makes it, built and sorted in place: a
        # large build has tens of millions of occurrences, and each temporary copy is as large.
        keys = np.repeat(np.frombuffer(self._rows, np.int64), np.frombuffer(self._lengths, np.int64))
        if len(keys):
            high = rank[np.frombuffer(self._terms, np.int32)]
            high <<= 32
            keys |= high
            del high
        keys.sort()
        # One entry per (term, passage) pair with its count, in the order Postings keeps: by term, then passage.
        first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if len(keys) else np.zeros(0, np.int64)
        tf = np.diff(np.append(first, len(keys)))
        keys = keys[first]
        return Postings(vocab, (keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), tf.astype(np.int32))


def _keys(term: np.ndarray, passage: np.ndarray) -> np.ndarray:
    """One int64 per entry, in the order of (term, passage)."""
    return term.astype(np.int64) << 32 | passage.astype(np.int64)


NO_POSTINGS = Postings((), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32))


def stored_terms(gen: Path, passages: int) -> Postings | None:
    """The Postings the bm25/ and term_counts.npy of a generation from before segments hold, or None
    when it has no term counts."""
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
    # Written by the bm25_index of that version: ids are the positions of the sorted vocabulary, one column each.
    if list(bm25.vocab_dict.values()) != list(range(len(vocab))) or any(a >= b for a, b in zip(vocab, vocab[1:])) \
            or len(indptr) != len(vocab) + 1 or int(indptr[-1]) != len(counts) or len(passage) != len(counts) \
            or bm25.scores["num_docs"] != passages or (len(passage) and int(passage.max()) >= passages):
        return None
    term = np.repeat(np.arange(len(vocab), dtype=np.int32), np.diff(indptr))
    return Postings(vocab, term, passage.astype(np.int32), np.asarray(counts, dtype=np.int32))


class Bm25:
    """BM25 (Lucene, as bm25s scores it) over the chunks of a generation's segments, computed at
    question time from their term counts: the counts of a segment never change, while N, the mean
    passage length and each term's document frequency (which every score depends on) change with
    every document added. The scores equal, bit for bit, those of a bm25s index of the same
    passages: the same float operations in the same order (tested)."""

    def __init__(self, parts: list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]], passages: int):
        """``parts``: per segment, its vocabulary, term bounds, chunk rows and counts (see
        rag.store.segments: terms.json, term_ptr, term_rows, term_tf), and its chunk rows' rows in
        the generation (-1: not in it)."""
        import bm25s

        defaults = bm25s.BM25()
        if defaults.method != "lucene" or defaults.idf_method not in (None, "lucene"):
            raise RuntimeError(f"Bm25 computes BM25 'lucene', not {defaults.method!r}")
        k1, b = defaults.k1, defaults.b
        self.passages = passages
        self._parts = []
        total, counted = 0, []
        for vocab, ptr, passage, tf, rows in parts:
            live = rows >= 0
            # Each passage's length (its number of terms), as bm25s counts it.
            lengths = np.bincount(passage, weights=tf, minlength=len(rows)).astype(np.int64)
            total += int(lengths[live].sum())
            # Per term, how many passages of this generation hold it: a cumulative count of live
            # entries, read at each term's bounds (np.add.reduceat mishandles empty runs).
            seen = np.zeros(len(passage) + 1, np.int64)
            np.cumsum(live[passage], out=seen[1:])
            counted.append((vocab, ptr, passage, tf, rows, lengths, seen[ptr[1:]] - seen[ptr[:-1]]))
        # bm25s: np.array(lengths).mean(); an int64 sum is exact, so this is the same division.
        mean = total / passages if passages else 1.0
        for vocab, ptr, passage, tf, rows, lengths, df in counted:
            norm = k1 * ((1 - b) + b * lengths.astype(np.float64) / mean)
            self._parts.append(((passage, tf), {w: i for i, w in enumerate(vocab)}, rows, norm, ptr, df))
        self._df: dict[str, int] = {}

    def df(self, term: str) -> int:
        """How many passages hold ``term``."""
        got = self._df.get(term)
        if got is None:
            got = sum(int(df[ids[term]]) for _, ids, _, _, _, df in self._parts if term in ids)
            self._df[term] = got
        return got

    def knows(self, term: str) -> bool:
        return self.df(term) > 0

    def vocabulary(self) -> list[str]:
        """Every term some passage holds, sorted."""
        return sorted({w for _, ids, _, _, _, df in self._parts for w, i in ids.items() if df[i]})

    def idf(self, term: str) -> float:
        """BM25 (Lucene) idf; a term no passage has gets the highest."""
        df, n = float(self.df(term)), self.passages
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """float32 score of every passage for ``terms`` (known ones; a repeated term counts again)."""
        out = np.zeros(self.passages, np.float32)
        n = self.passages
        for term in terms:
            d = self.df(term)
            if not d:
                continue
            # As bm25s: idf with math.log on Python numbers, kept as float32.
            idf = np.float32(math.log(1 + (n - d + 0.5) / (d + 0.5)))
            for t, ids, rows, norm, ptr, _ in self._parts:
                i = ids.get(term)
                if i is None:
                    continue
                p = t[0][ptr[i]:ptr[i + 1]]
                r = rows[p]
                keep = r >= 0
                p, r = p[keep], r[keep]
                tf = t[1][ptr[i]:ptr[i + 1]][keep].astype(np.float64)
                score = norm[p] + tf  # idf * tf / (norm + tf) in float64, in bm25s's order
                np.divide(tf, score, out=score)
                score *= np.float64(idf)
                out[r] += score.astype(np.float32)  # each row once per term: as bm25s adds a column
        return out


class LegacyBm25:
    """The bm25s index a generation from before segments holds (bm25/), with Bm25's methods."""

    def __init__(self, bm25, passages: int):
        self.bm25, self.passages = bm25, passages
        self._df = np.diff(np.asarray(bm25.scores["indptr"]))

    def knows(self, term: str) -> bool:
        return term in self.bm25.vocab_dict

    def vocabulary(self) -> list[str]:
        return sorted(w for w, i in self.bm25.vocab_dict.items() if self._df[i])

    def idf(self, term: str) -> float:
        tid = self.bm25.vocab_dict.get(term)
        df, n = (0.0 if tid is None else float(self._df[tid])), self.passages
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        known = [t for t in terms if t in self.bm25.vocab_dict]
        return self.bm25.get_scores(known) if known else np.zeros(self.passages, np.float32)
