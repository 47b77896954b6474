"""What the live generation offers the next build: vectors of texts embedded before, and the rows and
BM25 counts of documents split before, so adding one article costs that article."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt, IndexNotFound
from rag.store.generations import C_DOC, C_SENT_HI, C_SENT_LO, S_DOC, read_documents, read_manifest
from rag.store.sparse import TERM_COUNTS, Postings, stored_terms


def same_files(manifest: dict, fingerprint: str | None) -> bool:
    """False only when the index records a model fingerprint and ``fingerprint`` names other files
    (an index from before fingerprints, or an embedder without one, is taken as the same model)."""
    recorded = manifest.get("model", {}).get("fingerprint")
    return not (recorded and fingerprint and recorded != fingerprint)


def previous_vectors(index_dir: Path, model_id: str, fingerprint: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """embed key -> (chunk vectors, sentence vectors) of each document in the current generation, if
    it was built by the same model (and, when both are known, the same model files: ``fingerprint``);
    {} when there is nothing reusable.

    The key hashes exactly the texts that were embedded for the document (passages with their title
    or heading, then sentences), so vectors are reused only where they would come out the same: a
    file renamed from .txt to .md, parsed differently, or cut differently, is embedded again.
    """
    try:
        gen, manifest = read_manifest(index_dir)
    except (IndexNotFound, IndexCorrupt):
        return {}
    if manifest["model"]["id"] != model_id or not same_files(manifest, fingerprint):
        return {}
    try:
        keys = [d.get("embedded") for d in manifest["documents"].values()]  # in row order
        chunks = np.load(gen / "chunks.npy", allow_pickle=False)
        sentences = np.load(gen / "sentences.npy", allow_pickle=False)
        cv = np.asarray(np.load(gen / "chunk_vectors.npy", allow_pickle=False, mmap_mode="r"))
        sv = np.asarray(np.load(gen / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r"))
    except (ValueError, OSError, KeyError, TypeError, AttributeError):
        return {}
    # Rows are written document by document, so each document's rows are one contiguous slice.
    n = len(keys)
    c_bounds = np.searchsorted(chunks[:, C_DOC], np.arange(n + 1)) if len(chunks) else np.zeros(n + 1, int)
    s_bounds = np.searchsorted(sentences[:, S_DOC], np.arange(n + 1)) if len(sentences) else np.zeros(n + 1, int)
    # Views of the mapped files, not copies: the build copies what it keeps once, into the new arrays
    # (at 384 dimensions a 50 MB library holds over a gigabyte of vectors).
    return {key: (cv[c_bounds[i]:c_bounds[i + 1]], sv[s_bounds[i]:s_bounds[i + 1]])
            for i, key in enumerate(keys) if key}


@dataclass(frozen=True)
class DocRows:
    """One document's rows in the live generation (views of its memory-mapped arrays)."""

    chunk_lo: int  # its first chunk row there
    sentence_lo: int  # its first sentence row there
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
    """What the live generation offers the next build; see previous_splits."""

    rows: dict[str, DocRows]  # split key -> the rows of the document that had it
    terms: Postings | None  # BM25 counts of its chunks; None when it did not store them
    chunks: int  # its number of chunks


NOTHING_PREVIOUS = Previous({}, None, 0)


def previous_splits(index_dir: Path) -> Previous:
    """Each document's sentence and chunk rows in the live generation, by the split key the build
    that wrote it recorded, and the BM25 term counts of those chunks; nothing when there is no
    usable generation. Generations written before split keys existed offer nothing: their
    documents are split again.
    """
    try:
        gen, manifest = read_manifest(index_dir)
        entries = list(manifest["documents"].values())  # in row order
        keys = [e.get("split") for e in entries]
        if not any(keys):
            return NOTHING_PREVIOUS
        # Mapped, as plain arrays: slicing an np.memmap costs a Python call per slice.
        chunks = np.asarray(np.load(gen / "chunks.npy", allow_pickle=False, mmap_mode="r"))
        sentences = np.asarray(np.load(gen / "sentences.npy", allow_pickle=False, mmap_mode="r"))
    except (IndexNotFound, IndexCorrupt, ValueError, OSError, KeyError, TypeError, AttributeError):
        return NOTHING_PREVIOUS
    n = len(keys)
    if chunks.ndim != 2 or chunks.shape[1] != 6 or sentences.ndim != 2 or sentences.shape[1] != 4:
        return NOTHING_PREVIOUS
    # Rows are written document by document, so each document's rows are one contiguous slice.
    c_bounds = np.searchsorted(chunks[:, C_DOC], np.arange(n + 1)).tolist()
    s_bounds = np.searchsorted(sentences[:, S_DOC], np.arange(n + 1)).tolist()
    if c_bounds[-1] != len(chunks) or s_bounds[-1] != len(sentences):
        return NOTHING_PREVIOUS
    rows = {key: DocRows(c_bounds[i], s_bounds[i], chunks[c_bounds[i]:c_bounds[i + 1]],
                         sentences[s_bounds[i]:s_bounds[i + 1]], entries[i].get("embedded"))
            for i, key in enumerate(keys) if key}
    return Previous(rows, stored_terms(gen, len(chunks)), len(chunks))


def known_files(index_dir: Path):
    """``known`` for rag.ingest.ingest: the document the live generation holds for a file that has
    not changed since it was read (same path, size and mtime, same reader version; see FileStat),
    else None. The generation's documents are read on the first question, not before."""
    from rag.ingest import FileStat
    from rag.types import Document

    try:
        gen, manifest = read_manifest(index_dir)
        entries = dict(manifest["documents"])
    except (IndexNotFound, IndexCorrupt, KeyError, TypeError):
        return None
    loaded: list = []

    def known(doc_id: str, path: Path, now: FileStat) -> Document | None:
        entry = entries.get(doc_id) or {}
        try:
            before = FileStat(*entry["file"])
        except (KeyError, TypeError):
            return None
        if entry.get("path") != str(path) or not before.unchanged(now):
            return None
        if not loaded:
            try:
                docs, texts, _ = read_documents(gen)
            except (ValueError, OSError, KeyError, TypeError):
                docs, texts = [], None
            loaded.append(({d.doc_id: i for i, d in enumerate(docs)}, docs, texts))
        position, docs, texts = loaded[0]
        i = position.get(doc_id)
        return None if i is None else replace(docs[i], text=texts[i])

    return known
