"""Candidates + the answer model -> Answer: which sentences to quote, with what confidence, or a refusal.

Only body sentences of the retrieved passages (and the sentence after each) are candidates, so
boilerplate is never quoted. Every citation satisfies ``document.text[start:end] == quote``. Three
outcomes: a confident answer, a possible answer (quoted, its low confidence said), or a refusal when
the model is confident enough that the articles do not answer.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from rag.answer.candidates import Candidates, candidates, question_features
from rag.answer.model import AnswerModel
from rag.config import Settings
from rag.store.base import Store
from rag.text import leans_on_previous, offers
from rag.types import ANSWER, POSSIBLE, REFUSE, Answer, Citation, Hit, page_at

RUNNER_UP = 0.75  # a second sentence is quoted when its probability is at least this share of the best's
MARKER = len(" [1]") + 1  # what each quote adds to the answer text besides itself: its marker and a space


def _cost(text: str) -> int:
    """Characters a quote takes in the answer text, so ``max_chars`` bounds what the user reads."""
    return len(text) + MARKER


class Answerer(Protocol):
    def answer(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray | None = None) -> Answer:
        """An Answer citing sentences of ``hits``; refuses when they do not answer."""


class ExtractiveAnswerer:
    def __init__(self, store: Store, embedder=None, settings: Settings = Settings(), model: AnswerModel | None = None):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self._model = model

    @property
    def model(self) -> AnswerModel:
        """The answer model, loaded on first use (default: the shipped one)."""
        if self._model is None:
            self._model = AnswerModel.load()
        return self._model

    def score(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray) -> tuple[Candidates, np.ndarray, float]:
        """(candidates, each one's probability of answering, the probability the question is answerable)."""
        c = candidates(self.store, question, hits, query_vector)
        p = self.model.sentence.prob(c.X) if len(c) else np.zeros(0)
        confidence = float(self.model.question.prob(question_features(c, p)[None, :])[0])
        return c, p, confidence

    def answer(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray | None = None) -> Answer:
        if query_vector is None:
            query_vector = self.embedder.embed_query(question)
        c, p, confidence = self.score(question, hits, query_vector)
        s, m = self.settings, self.model
        refuse_below = m.min_confidence if s.min_confidence is None else s.min_confidence
        sure_from = m.confident if s.confident is None else s.confident
        if not len(c) or confidence < refuse_below:
            return Answer(question=question, text="", abstained=True, hits=tuple(hits), confidence=confidence,
                          outcome=REFUSE)
        rows = self.select(c, p)
        if s.complete_answers:
            rows = self.complete(c, rows, p)
        citations = tuple(self.citation(n, r) for n, r in enumerate(rows, start=1))
        text = " ".join(f"{x.quote} [{x.n}]" for x in citations)
        return Answer(question=question, text=text, abstained=False, citations=citations, hits=tuple(hits),
                      confidence=confidence, outcome=ANSWER if confidence >= max(sure_from, refuse_below) else POSSIBLE)

    def select(self, c: Candidates, p: np.ndarray) -> list[int]:
        """Sentence rows to cite: the most probable first; then the sentence before it when it leans on
        that one for its subject; then a close runner-up that holds question terms the others miss;
        within ``max_sentences`` and ``max_chars``."""
        s, store = self.settings, self.store
        order = sorted(range(len(c)), key=lambda i: (-p[i], int(c.rows[i])))
        best = order[0]
        row = int(c.rows[best])
        picked = [row]
        first = store.sentence(row)
        length = _cost(first.text)
        covered = set(c.terms[best])
        prev = store.sentence(first.prev) if first.prev is not None else None
        if prev is not None and len(picked) < s.max_sentences and \
                (c.needs_previous[best] or leans_on_previous(first.text)):
            if length + _cost(prev.text) <= s.max_chars:
                picked.append(prev.sid)
                length += _cost(prev.text)
                covered |= prev.terms
        for i in order[1:]:
            if len(picked) >= s.max_sentences or p[i] < RUNNER_UP * p[best]:
                break
            r = int(c.rows[i])
            extra = _cost(store.sentence(r).text)
            if r in picked or not (c.terms[i] - covered) or length + extra > s.max_chars:
                continue
            picked.append(r)
            covered |= c.terms[i]
            length += extra
        return picked

    def complete(self, c: Candidates, rows: list[int], p: np.ndarray | None = None) -> list[int]:
        """If the question asks for a kind of answer (a name for "who", a figure for "how many") that
        none of ``rows`` holds, add one of the next three sentences of [1]'s section that holds it and
        shares a term with the question: the one the sentence model ranks highest (``p``), else the
        nearest."""
        s, store = self.settings, self.store
        quoted = [store.sentence(r) for r in rows]
        if c.kind is None or len(rows) >= s.max_sentences or any(offers(q.text, c.kind, c.question) for q in quoted):
            return rows
        prob = dict(zip(c.rows.tolist(), p.tolist())) if p is not None else {}
        length = sum(_cost(q.text) for q in quoted)
        best, best_p = None, -1.0
        r = quoted[0].next
        for _ in range(3):
            if r is None:
                break
            nxt = store.sentence(r)
            if r not in rows and offers(nxt.text, c.kind, c.question) and nxt.terms & c.q_terms \
                    and prob.get(r, 0.0) > best_p and length + _cost(nxt.text) <= s.max_chars:
                best, best_p = r, prob.get(r, 0.0)
            r = nxt.next
        return rows + [best] if best is not None else rows

    def citation(self, n: int, sid: int) -> Citation:
        rec = self.store.sentence(sid)
        info = self.store.info(rec.doc_id)
        return Citation(n=n, doc_id=rec.doc_id, title=info.title, date=info.date, start=rec.start, end=rec.end,
                        quote=rec.text, encoding=info.encoding, page=page_at(info.pages, rec.start), url=info.url)
