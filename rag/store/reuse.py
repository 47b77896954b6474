"""What the live generation offers the next build: vectors of texts embedded before, and the rows and
BM25 counts of documents split before, so adding one article costs that article."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.store.generations import C_DOC, C_SENT_HI, C_SENT_LO, S_DOC
from rag.store.segments import Segment
from rag.store.sparse import Postings
from rag.types import Document


def same_files(manifest: dict, fingerprint: str | None) -> bool:
    """False only when the index records a model fingerprint and ``fingerprint`` names other files
    (an index from before fingerprints, or an embedder without one, is taken as the same model)."""
    recorded = manifest.get("model", {}).get("fingerprint")
    return not (recorded and fingerprint and recorded != fingerprint)


class Live:
    """The live generation as the next build sees it: its documents by id, where each lies, and what
    of theirs (rows, terms, vectors, texts) can be taken over. Reads segment files only on demand."""

    def __init__(self, gen: Path, manifest: dict):
        self.gen, self.manifest = gen, manifest
        self.entries: dict = dict(manifest["documents"])  # doc_id -> manifest entry, in row order
        self.segmented = "segments" in manifest
        self._segments: dict[str, Segment] = {}
        self._place = None if self.segmented else {d: i for i, d in enumerate(self.entries)}
        self._texts: dict[str, tuple] = {}
        self.stubs: dict[str, Document] = {}  # the documents known() gave without their text

    @classmethod
    def of(cls, gen: Path, manifest: dict) -> "Live | None":
        """The generation ``gen`` whose manifest (see read_manifest) is ``manifest``; None if unusable."""
        try:
            return cls(gen, manifest)
        except (KeyError, TypeError, ValueError):
            return None

    def segment(self, name: str) -> Segment:
        if name not in self._segments:
            self._segments[name] = Segment(self.gen, name)
        return self._segments[name]

    def where(self, doc_id: str) -> tuple[str, int]:
        """(segment, place there) of a document the generation holds."""
        if self._place is not None:
            return "", self._place[doc_id]
        e = self.entries[doc_id]
        return e["segment"], int(e["at"])

    def size(self, segment: str) -> int:
        """Number of documents segment ``segment`` holds (in this generation or not)."""
        return len(self.entries) if not self.segmented else int(self.manifest["segments"][segment]["documents"])

    def bounds(self, doc_id: str) -> tuple[Segment, int, int, int, int]:
        """(segment, first chunk row, end, first sentence row, end) of a document, within its segment."""
        name, j = self.where(doc_id)
        seg = self.segment(name)
        cb, sb = seg.bounds(self.size(name))
        return seg, int(cb[j]), int(cb[j + 1]), int(sb[j]), int(sb[j + 1])

    def document(self, doc_id: str) -> Document:
        """The document, with its text, as the generation holds it.

        Raises:
            ValueError, OSError, KeyError, TypeError: unreadable files.
        """
        from rag.store.generations import TEXT_OFFSETS, TEXTS, _doc_from_record, _map

        name, j = self.where(doc_id)
        seg = self.segment(name)
        record = json.loads(seg.lines()[j])
        if name not in self._texts:
            path = seg.path(TEXTS)
            self._texts[name] = (_map(path), np.load(seg.path(TEXT_OFFSETS), allow_pickle=False)) if path.is_file() else None
        held = self._texts[name]
        if held is None:  # a generation from before texts.bin: the text is in the record
            text = record["text"]
        else:
            mapped, offsets = held
            text = mapped[int(offsets[j]):int(offsets[j + 1])].decode("utf-8", "surrogatepass")
        return replace(_doc_from_record(record), text=text)

    def known(self, stubs: bool):
        """``known`` for rag.ingest.ingest: for a file that has not changed since it was read (same
        path, size and mtime, same reader version; see FileStat), the document the generation holds,
        else None. With ``stubs``, a document without text or blocks, recorded in ``self.stubs``:
        the build takes it over from its segment without reading it."""
        from rag.ingest import FileStat

        def known(doc_id: str, path: Path, now: FileStat) -> Document | None:
            entry = self.entries.get(doc_id) or {}
            try:
                before = FileStat(*entry["file"])
            except (KeyError, TypeError):
                return None
            if entry.get("path") != str(path) or not before.unchanged(now):
                return None
            if stubs:
                doc = Document(doc_id=doc_id, text="", sha256=entry["sha256"], path=entry["path"])
                self.stubs[doc_id] = doc
                return doc
            try:
                return self.document(doc_id)
            except (ValueError, OSError, KeyError, TypeError, IndexError):
                return None

        return known

    def vectors(self, model_id: str, fingerprint: str | None = None) -> "Vectors | dict":
        """embed key -> (chunk vectors, sentence vectors) of the generation's documents, if it was
        built by the same model (and, when both are known, the same model files: ``fingerprint``);
        {} when there is nothing reusable.

        The key hashes exactly the texts that were embedded for the document (passages with their
        title or heading, then sentences), so vectors are reused only where they would come out the
        same: a file renamed from .txt to .md, parsed differently, or cut differently, is embedded again.
        """
        if self.manifest["model"]["id"] != model_id or not same_files(self.manifest, fingerprint):
            return {}
        return Vectors(self)

    def splits(self, numbered: list[str]) -> "Previous":
        """Each document's sentence and chunk rows, by the split key the build that wrote it
        recorded; and the BM25 term counts of the chunks of segments ``numbered``, whose chunks are
        numbered one segment after the other (the documents of other segments offer rows only).
        Generations written before split keys existed offer nothing: their documents are split again.
        """
        keys = {e.get("split"): d for d, e in self.entries.items() if e.get("split")}
        if not keys:
            return NOTHING_PREVIOUS
        base, terms, n = {}, [], 0
        try:
            for name in numbered:
                base[name] = n
                t = self.segment(name).terms()
                terms.append(None if t is None else Postings(t.vocab, t.term, (t.passage + n).astype(np.int32), t.tf))
                n += len(self.segment(name).chunks)
        except (ValueError, OSError, KeyError, TypeError):
            return NOTHING_PREVIOUS
        together = None
        if terms and all(t is not None for t in terms):
            together = terms[0]
            for t in terms[1:]:
                together = together + t
        return Previous(_Rows(self, keys, base), together, n)


class Vectors:
    """embed key -> (chunk vectors, sentence vectors): views of the live generation's mapped files."""

    def __init__(self, live: Live):
        self._live = live
        self._docs = {e.get("embedded"): d for d, e in live.entries.items() if e.get("embedded")}

    def get(self, key: str):
        doc_id = self._docs.get(key)
        if doc_id is None:
            return None
        try:
            seg, c0, c1, s0, s1 = self._live.bounds(doc_id)
            return seg.chunk_vectors[c0:c1], seg.sentence_vectors[s0:s1]
        except (ValueError, OSError, KeyError, TypeError, IndexError):
            return None


class _Rows:
    """split key -> DocRows, made when asked."""

    def __init__(self, live: Live, keys: dict[str, str], base: dict[str, int]):
        self._live, self._keys, self._base = live, keys, base

    def get(self, key: str) -> "DocRows | None":
        doc_id = self._keys.get(key)
        if doc_id is None:
            return None
        try:
            seg, c0, c1, s0, s1 = self._live.bounds(doc_id)
            chunks, sentences = seg.chunks[c0:c1], seg.sentences[s0:s1]
        except (ValueError, OSError, KeyError, TypeError, IndexError):
            return None
        lo = self._base[seg.name] + c0 if seg.name in self._base else None
        return DocRows(lo, s0, chunks, sentences, self._live.entries[doc_id].get("embedded"))


@dataclass(frozen=True)
class DocRows:
    """One document's rows in the live generation (views of its memory-mapped arrays)."""

    chunk_lo: int | None  # its first chunk row in the numbering of Previous.terms; None: not numbered
    sentence_lo: int  # its first sentence row in its segment
    chunks: np.ndarray
    sentences: np.ndarray
    embedded: str | None  # its embed key there

    def placed(self, doc: int, first_sentence: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk rows, sentence rows) of the document as row ``doc`` whose first sentence is row ``first_sentence``."""
        chunks = np.array(self.chunks, dtype=np.int64)
        sentences = np.array(self.sentences, dtype=np.int64)
        chunks[:, C_DOC] = doc
        sentences[:, S_DOC] = doc
        chunks[:, [C_SENT_LO, C_SENT_HI]] += first_sentence - self.sentence_lo
        return chunks, sentences


@dataclass(frozen=True)
class Previous:
    """What the live generation offers the next build; see Live.splits."""

    rows: object  # split key -> the DocRows of the document that had it (.get)
    terms: Postings | None  # BM25 counts of the numbered chunks; None when they are not all stored
    chunks: int  # the number of numbered chunks


NOTHING_PREVIOUS = Previous({}, None, 0)
