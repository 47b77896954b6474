"""Question + ranked passages -> candidate sentences, with the features the answer model reads.

Candidates are the body sentences of the retrieved passages plus the sentence just after each passage
(an answer often sits in the next sentence). Features are plain numbers computed the same way when
the model is trained (evals/train.py) and when it answers; their names are recorded in the model file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rag.store.base import SentenceRecord, Store
from rag.text import answer_type, focus_terms, name_terms, negated, numbers, offers, tokenize
from rag.types import Hit

# Per sentence. "gap" features are relative to the best candidate of the same question, so the model
# sees how a sentence compares with its rivals, not only its raw similarity.
SENTENCE_FEATURES = (
    "sem",  # cosine of question and sentence (all-MiniLM-L6-v2)
    "sem_gap",  # sem minus the best sem among the candidates
    "lex",  # IDF-weighted share of the question's terms the sentence holds (numbers count double)
    "lex_gap",
    "lent",  # share held only by the previous sentence of the same section (its subject, often)
    "rare",  # share of the question's two rarest terms held by the sentence or the one before
    "focus",  # share of the names and numbers the question mentions held by the sentence or the one before
    "offers",  # holds something of the kind asked for (a name for "who", a figure for "how many")
    "numbers",  # share of the question's numbers the sentence holds (0 when it asks none)
    "inv_rank",  # 1 / rank of the best retrieved passage holding it
    "neighbour",  # 1 when it follows a passage rather than being inside one
    "lead",  # 1 for the first sentence of its document
    "log_words",
)
# Per question, over its candidates ranked by the sentence model ("1": the best, "2": the runner-up).
QUESTION_FEATURES = (
    "p1", "p2", "margin", "sem1", "sem_max", "lex1", "rare1", "offers1",
    "focus1",  # share of the question's names and numbers the best sentence (or the one before) holds
    "focus_any",  # ... that any candidate holds
    "names",  # 1 when the question names anything (a lower-case question leaves the focus features at 1)
    "rare_any",  # share of the two rarest question terms found in any candidate
    "cov_any",  # IDF-weighted share of all question terms found in any candidate
    "unknown",  # IDF-weighted share of question terms no passage of the index holds
    "asks_kind",  # the question asks for a name, figure, date or place
    "log_terms", "n_likely",
    # The best sentence (with the one before) lacks a name the question mentions, and names something
    # else instead: the question is likely about another entity than the one the sentence is about.
    "swap_name1",
    # ... lacks every figure the question mentions, and states other figures (another year, another count).
    "swap_number1",
    "negated1",  # the question holds a negation ("not", "never", "n't") and the best sentence none
)


@dataclass(frozen=True)
class Candidates:
    """The candidates of one question; arrays are aligned, one entry per sentence."""

    question: str
    rows: np.ndarray  # int64 sentence ids of the store
    ranks: np.ndarray  # int64 rank of the best passage holding (or preceding) each
    X: np.ndarray  # float64 (n, len(SENTENCE_FEATURES))
    terms: tuple[frozenset[str], ...]  # question terms each sentence holds
    needs_previous: np.ndarray  # bool: the previous sentence holds question terms this one lacks
    q_terms: frozenset[str]
    kind: str | None  # the kind of answer asked for (rag.text.answer_type)
    unknown: float  # see QUESTION_FEATURES
    rare_any: float
    cov_any: float
    focus_any: float
    names: float
    swap_name: np.ndarray  # float64 per sentence, see QUESTION_FEATURES "swap_name1"
    swap_number: np.ndarray
    negated: np.ndarray  # bool per sentence: it holds a negation (all False when the question holds none)
    q_negated: bool

    def __len__(self) -> int:
        return len(self.rows)

    def feature(self, name: str) -> np.ndarray:
        return self.X[:, SENTENCE_FEATURES.index(name)]


def candidates(store: Store, question: str, hits: Sequence[Hit], query_vector: np.ndarray) -> Candidates:
    """The candidate sentences of ``hits`` for ``question``, with their features."""
    rank: dict[int, int] = {}
    neighbour: set[int] = set()
    records: dict[int, SentenceRecord] = {}

    def record(sid: int) -> SentenceRecord:
        if sid not in records:
            records[sid] = store.sentence(sid)
        return records[sid]

    def fetch(sids) -> None:
        """Fetch what is not here yet in one go (a remote store answers a batch in one round trip)."""
        missing = list(dict.fromkeys(s for s in sids if s is not None and s not in records))
        records.update(zip(missing, store.sentences(missing)))

    inside = {hit.chunk.pid: store.passage_sentences(hit.chunk.pid) for hit in hits if hit.chunk.pid >= 0}
    fetch(rows[-1] for rows in inside.values() if len(rows))
    for hit in hits:
        if hit.chunk.pid < 0:
            continue
        for r in inside[hit.chunk.pid]:
            rank.setdefault(r, hit.rank)
            neighbour.discard(r)
        if len(inside[hit.chunk.pid]) and (nxt := record(inside[hit.chunk.pid][-1]).next) is not None and nxt not in rank:
            rank[nxt] = hit.rank
            neighbour.add(nxt)
    q_terms = frozenset(tokenize(question))
    kind = answer_type(question)
    focus = focus_terms(question) & q_terms
    idf = {t: store.idf(t) for t in q_terms}
    unknown = _unknown(store, idf)
    if not rank:
        return Candidates(question, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(SENTENCE_FEATURES))),
                          (), np.zeros(0, bool), q_terms, kind, unknown, 0.0, 0.0, 0.0 if focus else 1.0,
                          float(bool(focus)), np.zeros(0), np.zeros(0), np.zeros(0, bool), negated(question))
    rows = np.fromiter(rank, dtype=np.int64)
    sem = np.asarray(store.sentence_vectors(rows.tolist())) @ np.asarray(query_vector, dtype=np.float32)
    q_numbers = numbers(question)
    weights = {t: w * (2.0 if t in q_numbers else 1.0) for t, w in idf.items()}
    total = sum(weights.values()) or 1.0
    rare = set(sorted(q_terms, key=lambda t: (-weights[t], t))[:2])
    q_names = focus - q_numbers
    q_negated = negated(question)
    feats, held, needs, swaps = [], [], [], []
    seen: set[str] = set()
    fetch(rows.tolist())
    fetch(records[r].prev for r in rows.tolist())
    for r, sim in zip(rows.tolist(), sem.tolist()):
        rec = record(r)
        text = rec.text
        own = rec.terms & q_terms
        before = record(rec.prev).terms & q_terms if rec.prev is not None else frozenset()
        extra = before - own
        near = own | before
        stated = numbers(text) if q_numbers else set()  # the figures the sentence states, when the question asks some
        seen |= own
        lex = sum(weights[t] for t in own) / total
        lent = sum(weights[t] for t in extra) / total
        n_asked = len(q_numbers)
        feats.append((
            sim, 0.0, lex, 0.0, lent,
            len(rare & near) / len(rare) if rare else 0.0,
            len(focus & near) / len(focus) if focus else 1.0,
            float(offers(text, kind, question)),
            len(q_numbers & stated) / n_asked if n_asked else 0.0,
            1.0 / rank[r],
            float(r in neighbour),
            float(rec.lead),
            math.log1p(len(text.split())),
        ))
        held.append(own)
        needs.append(bool(extra))
        swaps.append(swapped(text, stated, near, q_terms, q_names, q_numbers))
    X = np.array(feats, dtype=np.float64)
    X[:, 1] = X[:, 0] - X[:, 0].max()
    X[:, 3] = X[:, 2] - X[:, 2].max()
    return Candidates(
        question=question, rows=rows, ranks=np.array([rank[r] for r in rows.tolist()], dtype=np.int64), X=X,
        terms=tuple(held), needs_previous=np.array(needs, dtype=bool), q_terms=q_terms, kind=kind,
        unknown=unknown, rare_any=len(rare & seen) / len(rare) if rare else 0.0,
        cov_any=sum(weights[t] for t in seen) / total, focus_any=len(focus & seen) / len(focus) if focus else 1.0,
        names=float(bool(focus)), swap_name=np.array([a for a, _ in swaps], dtype=np.float64),
        swap_number=np.array([b for _, b in swaps], dtype=np.float64),
        # only a negated question asks whether its sentences are negated
        negated=np.array([q_negated and negated(records[r].text) for r in rows.tolist()], dtype=bool), q_negated=q_negated,
    )


def swapped(text: str, stated: set[str], held: frozenset[str], q_terms: frozenset[str], q_names: frozenset[str],
            q_numbers: set[str]) -> tuple[float, float]:
    """(name, number): 1.0 when the sentence ``text`` (``stated``: its numbers(); ``held``: the question
    terms it or the sentence before holds) misses a name (a figure) the question mentions while naming others (stating other
    figures) itself. The pattern of a question about another entity, year or count than the sentence's,
    the way SQuAD 2.0's writers made answerable questions unanswerable; a sentence that simply does not
    mention the name is not counted, it may be a paraphrase."""
    name = bool(q_names - held) and bool(name_terms(text) - q_terms)
    number = bool(q_numbers) and not (q_numbers & held) and bool(stated - q_numbers)
    return float(name), float(number)


def _unknown(store: Store, weights: dict[str, float]) -> float:
    """IDF-weighted share of the question's terms (``weights``: term -> idf) that no passage holds: a
    question about something the articles never name."""
    if not weights:
        return 1.0
    return sum(w for t, w in weights.items() if not store.knows(t)) / (sum(weights.values()) or 1.0)


def question_features(c: Candidates, p: np.ndarray) -> np.ndarray:
    """(len(QUESTION_FEATURES),) for the candidates ``c`` given the sentence model's ``p``."""
    asks = float(c.kind is not None)
    n_terms = math.log1p(len(c.q_terms))
    if len(c) == 0:
        return np.array([0.0] * 8 + [0.0, c.focus_any, c.names, 0.0, 0.0, c.unknown, asks, n_terms, 0.0, 0.0, 0.0,
                                     float(c.q_negated)])
    order = np.argsort(-p, kind="stable")
    best = order[0]
    p1 = float(p[best])
    p2 = float(p[order[1]]) if len(order) > 1 else 0.0
    f = c.feature
    return np.array([
        p1, p2, p1 - p2, f("sem")[best], f("sem").max(), f("lex")[best], f("rare")[best], f("offers")[best],
        f("focus")[best], c.focus_any, c.names, c.rare_any, c.cov_any, c.unknown, asks, n_terms, math.log1p(float((p >= 0.5).sum())),
        c.swap_name[best], c.swap_number[best], float(c.q_negated and not c.negated[best]),
    ], dtype=np.float64)
