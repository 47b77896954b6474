"""Question + ranked passages -> Answer made of 1-3 verbatim sentences with exact citations.

Only body sentences of the retrieved passages are candidates, so boilerplate is never quoted. Every
citation satisfies ``document.text[start:end] == quote``. When the best sentence scores under the
calibrated threshold, the answer abstains (text "", no citations) and keeps the passages.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from rag.config import Settings
from rag.index import S_DOC, S_END, S_SECTION, S_START, Index
from rag.text import answer_type, numbers, offers, tokenize
from rag.types import Answer, Citation, Hit

# A sentence opening like this leans on the one before it for its subject.
_ANAPHOR = re.compile(
    r"^[\"“‘']?(it|its|this|these|that|those|they|their|them|he|she|his|her|such|both|the (company|firm|"
    r"center|centre|city|province|platform|model|team|project|plan|government|group|valley|computer|"
    r"region|country|move|program|programme|facility|device|exercise|mission|spacecraft|fleet|bill|suspect))\b",
    re.I,
)


class Answerer(Protocol):
    def answer(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray | None = None) -> Answer:
        """An Answer citing sentences of ``hits``; abstains when they do not answer."""


@dataclass(frozen=True)
class Scored:
    row: int  # sentence row in the index
    score: float
    semantic: float
    lexical: float
    terms: frozenset[str]  # question terms the sentence holds
    needs_previous: bool = False  # the previous sentence supplies question terms this one lacks


class ExtractiveAnswerer:
    def __init__(self, index: Index, embedder=None, settings: Settings = Settings()):
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def score_sentences(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray) -> list[Scored]:
        """Candidate sentences of ``hits``, best first.

        score = w_semantic·cos(question, sentence) + w_lexical·coverage + w_rank/passage rank
                + w_type·[holds an answer of the asked kind]
        coverage is the IDF-weighted share of the question's terms in the sentence (numbers count
        double: they pin down which figure is meant), plus ``context`` times the share that only the
        previous sentence of the same section holds.
        """
        idx, s = self.index, self.settings
        best_rank: dict[int, int] = {}
        for hit in hits:
            if hit.chunk.row < 0:
                continue
            for r in idx.chunk_sentence_rows(hit.chunk.row):
                best_rank.setdefault(r, hit.rank)
        if not best_rank:
            return []
        rows = np.fromiter(best_rank, dtype=np.int64)
        semantic = np.asarray(idx.sentence_vectors[rows]) @ np.asarray(query_vector, dtype=np.float32)
        q_terms = set(tokenize(question))
        q_numbers = numbers(question)
        weights = {t: idx.idf(t) * (2.0 if t in q_numbers else 1.0) for t in q_terms}
        total = sum(weights.values())
        kind = answer_type(question)
        out = []
        for r, sem in zip(rows.tolist(), semantic.tolist()):
            text = idx.sentence_text(r)
            terms = idx.sentence_terms(r) & q_terms
            prev = self._previous(r)
            extra = (idx.sentence_terms(prev) & q_terms) - terms if prev is not None else frozenset()
            own = sum(weights[t] for t in terms) / total if total > 0 else 0.0
            lent = sum(weights[t] for t in extra) / total if total > 0 else 0.0
            lexical = own + s.context * lent
            score = s.w_semantic * sem + s.w_lexical * lexical + s.w_rank / best_rank[r]
            if s.w_type and offers(text, kind, question):
                score += s.w_type
            out.append(Scored(r, score, sem, lexical, terms, needs_previous=bool(extra) and s.context > 0))
        out.sort(key=lambda x: (-x.score, x.row))
        return out

    def _previous(self, row: int) -> int | None:
        """The sentence before ``row`` in the same document section, if any."""
        idx = self.index
        prev = row - 1
        if prev >= 0 and idx.sentences[prev, S_DOC] == idx.sentences[row, S_DOC] \
                and idx.sentences[prev, S_SECTION] == idx.sentences[row, S_SECTION]:
            return prev
        return None

    def answer(self, question: str, hits: Sequence[Hit], query_vector: np.ndarray | None = None) -> Answer:
        if query_vector is None:
            query_vector = self.embedder.embed_query(question)
        scored = self.score_sentences(question, hits, query_vector)
        confidence = scored[0].score if scored else 0.0
        if not scored or confidence < self.settings.abstain_below:
            return Answer(question=question, text="", abstained=True, hits=tuple(hits), confidence=confidence)
        rows = self.select(scored)
        if self.settings.complete_answers:
            rows = self.complete(question, rows)
        citations = tuple(self.citation(n, r) for n, r in enumerate(rows, start=1))
        text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
        return Answer(question=question, text=text, abstained=False, citations=citations, hits=tuple(hits),
                      confidence=confidence)

    def select(self, scored: list[Scored]) -> list[int]:
        """Sentence rows to cite: the best first, then the sentence its subject depends on, then a
        close runner-up that covers question terms the others miss; within ``max_chars``."""
        s, idx = self.settings, self.index
        best = scored[0]
        picked = [best.row]
        length = len(idx.sentence_text(best.row))
        covered = set(best.terms)
        prev = self._previous(best.row)
        if prev is not None and len(picked) < s.max_sentences and \
                (best.needs_previous or _ANAPHOR.match(idx.sentence_text(best.row))):
            if length + len(idx.sentence_text(prev)) <= s.max_chars:
                picked.append(prev)
                length += len(idx.sentence_text(prev))
                covered |= idx.sentence_terms(prev)
        for cand in scored[1:]:
            if len(picked) >= s.max_sentences:
                break
            if cand.row in picked or cand.score < max(s.abstain_below, best.score - 0.06):
                continue
            if not (cand.terms - covered):
                continue
            extra = len(idx.sentence_text(cand.row))
            if length + extra > s.max_chars:
                continue
            picked.append(cand.row)
            covered |= cand.terms
            length += extra
        return picked

    def complete(self, question: str, rows: list[int]) -> list[int]:
        """If the question asks for a kind of answer (a name for "who", a figure for "how many") that
        none of ``rows`` holds, add the nearest of the next three sentences of [1]'s section that holds
        it and shares a word with the question ("… Quanxin … took 3 years." → "Vice President Zhong
        Xiumei said …")."""
        s, idx = self.settings, self.index
        kind = answer_type(question)
        if kind is None or len(rows) >= s.max_sentences or any(offers(idx.sentence_text(r), kind, question) for r in rows):
            return rows
        q_terms = set(tokenize(question))
        best = rows[0]
        length = sum(len(idx.sentence_text(r)) for r in rows)
        for r in range(best + 1, min(best + 4, len(idx.sentences))):
            if idx.sentences[r, S_DOC] != idx.sentences[best, S_DOC] or idx.sentences[r, S_SECTION] != idx.sentences[best, S_SECTION]:
                break
            text = idx.sentence_text(r)
            if r not in rows and offers(text, kind, question) and idx.sentence_terms(r) & q_terms:
                return rows + [r] if length + len(text) <= s.max_chars else rows
        return rows

    def citation(self, n: int, row: int) -> Citation:
        idx = self.index
        doc = idx.docs[int(idx.sentences[row, S_DOC])]
        start, end = int(idx.sentences[row, S_START]), int(idx.sentences[row, S_END])
        return Citation(n=n, doc_id=doc.doc_id, title=doc.title, date=doc.date, start=start, end=end,
                        quote=doc.text[start:end], encoding=doc.encoding)
