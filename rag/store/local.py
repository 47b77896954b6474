"""The embedded default store: one loaded generation of FAISS + BM25 files under ``.rag/`` (rag.store.generations
writes them, with the lock, atomic swap and garbage collection), read through the Store protocol."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rag.store.generations import C_DOC, S_DOC, S_SECTION, Index
from rag.store.base import DocInfo, Ranked, SentenceRecord
from rag.types import Chunk, Document


class LocalStore:
    kind = "local"

    def __init__(self, index: Index):
        self.index = index
        counts = np.bincount(index.chunks[:, C_DOC], minlength=len(index.docs)) if len(index.chunks) \
            else np.zeros(len(index.docs), int)
        self._infos = {d.doc_id: DocInfo(d.doc_id, d.title, d.date, d.path, d.encoding, d.sha256, index.chars[i],
                                         index.texts.bytes(i), int(counts[i]), d.url, d.author, d.site, d.pages)
                       for i, d in enumerate(index.docs)}

    @property
    def model_id(self) -> str:
        return self.index.model_id

    @property
    def directory(self):
        return self.index.directory

    def __len__(self) -> int:
        return len(self.index)

    def catalog(self) -> list[DocInfo]:
        return [self._infos[d.doc_id] for d in self.index.docs]

    def info(self, doc_id: str) -> DocInfo | None:
        return self._infos.get(doc_id)

    def document(self, doc_id: str) -> Document | None:
        return self.index.document(doc_id)

    def passage(self, pid: int) -> Chunk:
        return self.index.chunk(pid)

    def passages(self, pids: Sequence[int]) -> list[Chunk]:
        return [self.index.chunk(p) for p in pids]

    def passage_sentences(self, pid: int) -> Sequence[int]:
        return self.index.chunk_sentence_rows(pid)

    def sentence(self, sid: int) -> SentenceRecord:
        s = self.index.sentences
        d, start, end, section = (int(x) for x in s[sid, :4])
        doc_id = self.index.docs[d].doc_id

        def beside(j: int) -> int | None:
            ok = 0 <= j < len(s) and s[j, S_DOC] == d and s[j, S_SECTION] == section
            return j if ok else None

        return SentenceRecord(sid, doc_id, start, end, section, self.index.texts[d][start:end], self.index.sentence_terms(sid),
                              beside(sid - 1), beside(sid + 1), sid == 0 or int(s[sid - 1, S_DOC]) != d)

    def sentences(self, sids: Sequence[int]) -> list[SentenceRecord]:
        return [self.sentence(s) for s in sids]

    def sentence_vectors(self, sids: Sequence[int]) -> np.ndarray:
        return np.asarray(self.index.sentence_vectors[np.asarray(sids, dtype=np.int64)])

    def idf(self, term: str) -> float:
        return self.index.idf(term)

    def knows(self, term: str) -> bool:
        return self.index.sparse.knows(term)

    def dense(self, vector: np.ndarray, k: int) -> Ranked:
        k = min(k, len(self.index))
        if k <= 0:
            return []
        # Ties in reading order (rows are by document, then position), as every store breaks them.
        return self.index.dense.search(vector, k)

    def sparse(self, terms: Sequence[str], k: int) -> Ranked:
        known = [t for t in terms if self.index.sparse.knows(t)]
        k = min(k, len(self.index))
        if not known or k <= 0:
            return []
        scores = self.index.sparse.scores(known)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by id for determinism
        return [(int(r), float(scores[r])) for r in top if scores[r] > 0]

    def manifest(self) -> dict:
        return self.index.manifest

    def outdated(self) -> bool:
        """True when a build has swapped in a newer generation since this one was loaded."""
        from rag.errors import RagError
        from rag.store.generations import current_generation

        try:
            return current_generation(self.index.directory.parent) != self.index.directory
        except RagError:  # gone or damaged meanwhile: keep answering from what is loaded
            return False

    def health(self) -> dict:
        return {"ok": True, "store": self.kind, "location": str(self.index.directory.parent),
                "documents": len(self.index.docs), "passages": len(self.index)}
