"""The only module that knows the stage order.

Indexing: ingest -> chunk -> embed -> index.write; a document whose text and settings did not change
keeps its sentences, passages, BM25 terms and vectors from the live generation.
Asking: embed the query -> hybrid retrieve -> extractive answer.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from rag import chunk as chunking
from rag.store import generations as storage
from rag.store import excluded as removals
from rag.store import lock, reuse, sparse
from rag.answer import Answerer, AnswerModel, ExtractiveAnswerer
from rag.config import ChunkSettings, Settings, default_cache_dir, default_index_dir, whole_number
from rag.embed import Embedder, OnnxEmbedder, SentenceTransformerEmbedder, cpu_threads, default_embedder, indexing_embedder
from rag.errors import DuplicateDocumentId, EmbedderMismatch, EmptyQuestion, NoDocuments, RagError
from rag.ingest import READERS, SUFFIXES, Unreadable, ingest  # noqa: F401 (Unreadable: for read_article's callers)
from rag.retrieve import HybridRetriever, Retriever
from rag.store.local import LocalStore
from rag.store.segments import SegmentData
from rag.text import TOKENIZER_VERSION, tokenize
from rag.types import Answer, Document

ANSWER_PASSAGES = 5  # passages the answer model reads: the k of evals/train.py
MAX_QUESTION_CHARS = 2000  # longer input is cut before searching: the model reads ~256 word pieces anyway


@dataclass
class BuildReport:
    index_dir: Path
    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    excluded: int = 0  # files skipped because they were removed in the chat page
    reused: int = 0  # documents whose vectors were reused
    embedded_texts: int = 0
    warnings: list[str] = field(default_factory=list)
    up_to_date: bool = False
    seconds: float = 0.0


def build(paths: Sequence[str | Path] | None = None, index_dir: str | Path | None = None,
          embedder: Embedder | None = None, chunk_settings: ChunkSettings = ChunkSettings(),
          rebuild: bool = False, lock_timeout: float = 0.0, documents: list[Document] | None = None,
          remove: Sequence[str] = (), include_removed: bool = False, store: str | None = None,
          unexclude: Sequence[str] = ()) -> BuildReport:
    """Index ``paths`` (or ready ``documents``) into ``index_dir``, or into the Milvus store ``store``
    names (see open_store), re-embedding only what changed.

    With no paths, re-indexes the sources recorded in the current index, else ``seeds/``. Files removed
    in the chat page (``remove``: their paths) stay out until ``include_removed`` brings them all back,
    or ``unexclude`` (paths) some of them.

    Raises:
        PathNotFound, NoDocuments: nothing to index.
        IndexLocked: another build is writing the same index (or, from this machine, the same store).
        StoreUnreachable: a Milvus store that does not answer.
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir) if index_dir else default_index_dir()
    export_warnings: list[str] = []  # the ONNX export failed: the build embeds with sentence-transformers
    embedder = embedder or indexing_embedder(default_cache_dir(), export_warnings.append)
    if store not in (None, "", "local"):
        with lock.BuildLock(index_dir, timeout=lock_timeout):
            report = _build_milvus(store, paths, embedder, chunk_settings, rebuild, documents, remove, include_removed, t0,
                                   unexclude)
        report.warnings += export_warnings
        return report
    with lock.BuildLock(index_dir, timeout=lock_timeout):
        storage.collect_garbage(index_dir)
        gen, old_manifest = _manifest_or_none(index_dir)
        old = old_manifest or {}
        fingerprint = getattr(embedder, "fingerprint", None)
        same_settings = old_manifest is not None and old_manifest["model"]["id"] == embedder.model_id \
            and old_manifest["chunker"] == chunk_settings.to_dict() and old_manifest.get("tokenizer") == TOKENIZER_VERSION \
            and old_manifest.get("splitter") == storage.SPLITTER_VERSION and reuse.same_files(old_manifest, fingerprint)
        live = None if rebuild or old_manifest is None else reuse.Live.of(gen, old_manifest)
        # Documents of a segmented generation whose files did not change are taken over from their
        # segment, unread; otherwise known() gives them whole, to be written again.
        carry = live is not None and live.segmented and same_settings
        paths, sources, docs, warnings, files = _gather(paths, documents, old.get("sources"), old.get("documents", {}),
                                                        None if live is None else live.known(stubs=carry))
        excluded = _excluded(set() if include_removed else removals.read_excluded(index_dir), remove, unexclude)
        if include_removed or remove or unexclude:
            removals.write_excluded(index_dir, excluded)
        kept = [d for d in docs if not (excluded and d.path and str(Path(d.path).resolve()) in excluded)]
        if not kept and docs:
            raise NoDocuments([str(p) for p in (paths or [])])
        report = BuildReport(index_dir=index_dir, warnings=warnings, documents=len(kept), excluded=len(docs) - len(kept))
        docs = kept
        old_docs = old.get("documents", {})
        new_ids = {d.doc_id: d.sha256 for d in docs}
        report.added = sorted(set(new_ids) - set(old_docs))
        report.removed = sorted(set(old_docs) - set(new_ids))
        report.changed = sorted(i for i in new_ids if i in old_docs and old_docs[i]["sha256"] != new_ids[i])
        if not rebuild and same_settings and not (report.added or report.removed or report.changed) \
                and old_manifest.get("sources") == sources:
            report.up_to_date = True
            report.chunks = old_manifest["counts"]["chunks"]
            report.warnings += export_warnings
            report.seconds = time.perf_counter() - t0
            return report

        plan = _plan(docs, live if carry else None, live, files, embedder, fingerprint, chunk_settings, sources, report,
                     index_dir)
        storage.write(index_dir, plan)
        report.chunks = sum(int(e["chunks"]) for e in plan.documents.values())
        report.warnings += export_warnings
        report.seconds = time.perf_counter() - t0
        return report


MERGE_WHEN_DEAD = 0.5  # a segment with more than this share of its documents gone is written again


def _plan(docs: list[Document], carry: "reuse.Live | None", live: "reuse.Live | None", files: dict, embedder: Embedder,
          fingerprint: str | None, cs: ChunkSettings, sources: list[str], report: BuildReport, index_dir: Path) -> storage.Plan:
    """The generation a build writes: documents ``carry`` (the live generation, when its segments
    can be kept) holds unchanged stay in their segments; the others, with those of segments worth
    merging, are split (or take their rows from ``live``), embedded (or take their vectors) and
    written as one new segment."""
    name = storage.next_generation(index_dir)
    new_segment = storage.segment_name(name)
    entries: dict[str, dict | None] = {}
    fresh: list[Document] = []
    for d in docs:
        e = carry.entries.get(d.doc_id) if carry is not None else None
        if e is not None and (carry.stubs.get(d.doc_id) is d or _same_document(d, e, cs)):
            entry = dict(e)
            entry.pop("file", None)
            entry.update(_file(files, d.doc_id))
            entries[d.doc_id] = entry
        else:
            entries[d.doc_id] = None
            fresh.append(d)
    merge = _merges(carry, entries, len(fresh)) if carry is not None else set()
    for doc_id, e in entries.items():
        if e is not None and e["segment"] in merge:
            fresh.append(carry.document(doc_id))
            entries[doc_id] = None
    report.reused = sum(e is not None for e in entries.values())
    used = {e["segment"] for e in entries.values() if e is not None}
    # Oldest first, as the live generation lists them: _merges reads the newest from the end.
    kept = {} if carry is None else {seg: info for seg, info in carry.manifest["segments"].items() if seg in used}
    new = None
    if fresh:
        old_vectors = live.vectors(embedder.model_id, fingerprint) if live is not None else {}
        # Rows of any document of the live generation; BM25 counts of the segments written again.
        numbered = [] if live is None else [""] if not live.segmented else \
            [seg for seg in live.manifest["segments"] if carry is None or seg in merge]
        previous = live.splits(numbered) if live is not None else reuse.NOTHING_PREVIOUS
        data = _assemble(fresh, embedder, cs, old_vectors, report, previous)
        c_bounds = np.searchsorted(data.chunks[:, storage.C_DOC], np.arange(len(fresh) + 1))
        s_bounds = np.searchsorted(data.sentences[:, storage.S_DOC], np.arange(len(fresh) + 1))
        records = [json.dumps(storage.doc_record(d), ensure_ascii=False) for d in fresh]
        for j, (d, record) in enumerate(zip(fresh, records)):
            entries[d.doc_id] = {"sha256": d.sha256, "path": d.path, "embedded": data.embed_keys[j],
                                 "split": data.split_keys[j], "record": _record_key(record), **_file(files, d.doc_id),
                                 "segment": new_segment, "at": j, "chunks": int(c_bounds[j + 1] - c_bounds[j]),
                                 "sentences": int(s_bounds[j + 1] - s_bounds[j])}
        new = SegmentData(records, [d.text.encode("utf-8", "surrogatepass") for d in fresh], data.chunks, data.sentences,
                          data.chunk_vectors, data.sentence_vectors, data.passage_terms, embedder.dim)
    return storage.Plan(model_id=embedder.model_id, dim=embedder.dim, chunk_settings=cs, sources=sources, model_fingerprint=fingerprint,
                        documents=entries, segments=kept, previous=None if carry is None else carry.gen, new=new,
                        name=name)


def _merges(live: "reuse.Live", entries: dict, fresh: int) -> set[str]:
    """The segments of ``live`` whose documents the new segment takes in: the newest ones while
    each holds at most twice what the new one has gathered (so a library grown one article at a
    time keeps a few segments, each article being copied a few times over its life), and any
    segment most of whose documents are gone."""
    left: dict[str, int] = {}
    for e in entries.values():
        if e is not None:
            left[e["segment"]] = left.get(e["segment"], 0) + 1
    merge, gathered = set(), fresh
    for seg in reversed(list(live.manifest["segments"])):
        if seg not in left:
            continue
        if left[seg] > 2 * gathered:
            break
        merge.add(seg)
        gathered += left[seg]
    for seg, n in left.items():
        if n < (1 - MERGE_WHEN_DEAD) * int(live.manifest["segments"][seg]["documents"]):
            merge.add(seg)
    return merge


def _same_document(d: Document, entry: dict, cs: ChunkSettings) -> bool:
    """Whether ``d``, read again, is what the live generation holds for it (rows, terms and record)."""
    return "segment" in entry and entry.get("split") == split_key(d, cs) \
        and entry.get("record") == _record_key(json.dumps(storage.doc_record(d), ensure_ascii=False))


def _record_key(record: str) -> str:
    return hashlib.sha256(record.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _file(files: dict, doc_id: str) -> dict:
    """The manifest's record of the file ``doc_id`` was read from (a FileStat), if it was read from one."""
    f = files.get(doc_id)
    return {} if f is None else {"file": [f.size, f.mtime_ns, f.seen_ns, f.reader]}


def _gather(paths, documents: list[Document] | None, old_sources, indexed: dict, known=None):
    """(paths, sources, documents, warnings, files) of a build: ``documents`` as given, or what
    ``paths`` (default: the sources indexed before, else seeds/) hold, with the FileStat of each
    file; of two copies, the ``indexed`` one stays. ``known``: see rag.ingest.ingest.

    Raises:
        PathNotFound, DuplicateDocumentId
    """
    if documents is None:
        paths = paths or old_sources or ["seeds"]
        got = ingest(list(paths), keep=indexed, known=known)
        sources, docs, warnings, files = [str(Path(p).resolve()) for p in paths], got.documents, got.warnings, got.stats
    else:
        sources, docs, warnings, files = [], documents, [], {}
    # Two documents under one id would resolve each other's citations against the wrong text.
    counts = Counter(d.doc_id for d in docs)
    if counts and max(counts.values()) > 1:
        raise DuplicateDocumentId(*counts.most_common(1)[0])
    return paths, sources, docs, warnings, files


def _excluded(before: set[str], remove: Sequence[str], unexclude: Sequence[str]) -> set[str]:
    """The paths removed in the page after this build: ``before`` without ``unexclude``, with ``remove``."""
    return (before - {str(Path(p).resolve()) for p in unexclude}) | {str(Path(p).resolve()) for p in remove}


def _build_milvus(spec: str, paths, embedder: Embedder, cs: ChunkSettings, rebuild: bool,
                  documents: list[Document] | None, remove: Sequence[str], include_removed: bool, t0: float,
                  unexclude: Sequence[str]) -> BuildReport:
    """build() into a Milvus store: only documents whose version (text, splitting and model) the store
    does not hold yet are split, embedded and written; the store keeps the others."""
    from rag.store.milvus import MilvusStore

    st = MilvusStore(spec)
    try:
        return _fill_milvus(st, spec, paths, embedder, cs, rebuild, documents, remove, include_removed, t0, unexclude)
    finally:
        st.close()


def _fill_milvus(st, spec: str, paths, embedder: Embedder, cs: ChunkSettings, rebuild: bool,
                 documents: list[Document] | None, remove: Sequence[str], include_removed: bool, t0: float,
                 unexclude: Sequence[str]) -> BuildReport:
    from rag.config import FORMAT_VERSION

    old = st.manifest()
    wanted = {"format_version": FORMAT_VERSION, "model": {"id": embedder.model_id, "dim": embedder.dim},
              "chunker": cs.to_dict(), "tokenizer": TOKENIZER_VERSION, "splitter": storage.SPLITTER_VERSION}
    recorded = {**old, "model": {k: v for k, v in (old.get("model") or {}).items() if k != "fingerprint"}}
    if rebuild or not old or any(recorded.get(k) != v for k, v in wanted.items()) \
            or not reuse.same_files(old, getattr(embedder, "fingerprint", None)):
        st.create(embedder.dim)
        st.refresh()
        old = {}
    paths, sources, docs, warnings, _ = _gather(paths, documents, old.get("sources"),
                                             {i.doc_id: {"sha256": i.sha256} for i in st.catalog()})
    excluded = _excluded(set() if include_removed else set(old.get("excluded") or []), remove, unexclude)
    kept = [d for d in docs if not (d.path and str(Path(d.path).resolve()) in excluded)]
    if not kept and docs:
        raise NoDocuments([str(p) for p in (paths or [])])
    report = BuildReport(index_dir=Path(spec), warnings=warnings, documents=len(kept), excluded=len(docs) - len(kept))
    # A version covers what the catalog entry shows too (path, date, URL, pages…): a page whose URL
    # changed while its text did not is written again, not listed with the old URL.
    versions = {d.doc_id: hashlib.sha256(f"{split_key(d, cs)}|{embedder.model_id}|{_listed(d)}".encode()).hexdigest()[:32]
                for d in kept}
    stored = st.versions()
    report.added = sorted(set(versions) - set(stored))
    report.removed = sorted(set(stored) - set(versions))
    report.changed = sorted(d for d in versions if d in stored and stored[d] != versions[d])
    todo = [d for d in kept if stored.get(d.doc_id) != versions[d.doc_id]]
    report.reused = len(kept) - len(todo)
    fingerprint = getattr(embedder, "fingerprint", None)
    manifest = {**wanted, "sources": sources, "excluded": sorted(excluded), "store": "milvus"}
    if fingerprint:  # the query embedder loads the export of exactly these files (Assistant.load)
        manifest["model"] = {**wanted["model"], "fingerprint": fingerprint}
    if not todo and not report.removed and old.get("sources") == sources and sorted(old.get("excluded") or []) == sorted(excluded):
        report.up_to_date = True
    else:
        data = _assemble(todo, embedder, cs, {}, report)
        st.write(data, versions, manifest)
    report.chunks = len(st)
    report.seconds = time.perf_counter() - t0
    return report


def _listed(d: Document) -> str:
    return json.dumps([d.title, d.date, d.path, d.encoding, d.sha256, d.url, d.author, d.site, list(d.pages)],
                      ensure_ascii=False)


FORMATS = SUFFIXES  # the file suffixes `rag index` reads


def read_article(path: str | Path, name: str) -> Document:
    """The Document `rag index` makes of the file at ``path`` when it is named ``name`` (whose suffix
    picks the reader: an upload's temporary file may have another).

    Raises:
        Unreadable: a web page or PDF with no article text, or a damaged PDF (the message says which).
        UnicodeError: a text file that is not text.
        OSError: the file cannot be read.
    """
    reader = READERS.get(Path(name).suffix.lower(), READERS[".txt"])
    return reader.read(Path(path).read_bytes(), name, str(path))[0]


def library_state(index_dir: str | Path | None = None, store: str | None = None) -> dict:
    """What a library holds, for the page's library: {"sources": folders indexed, "documents": doc_id ->
    {"sha256", "path"}, "excluded": paths removed in the page}.

    Raises:
        IndexNotFound, IndexCorrupt, StoreUnreachable
    """
    if store in (None, "", "local"):
        index_dir = Path(index_dir) if index_dir else default_index_dir()
        manifest = storage.read_manifest(index_dir)[1]
        return {"sources": list(manifest.get("sources") or []), "documents": dict(manifest.get("documents") or {}),
                "excluded": removals.read_excluded(index_dir)}
    from rag.store.milvus import MilvusStore

    st = MilvusStore(store)
    try:
        m = st.manifest()
        return {"sources": list(m.get("sources") or []), "excluded": set(m.get("excluded") or []),
                "documents": {i.doc_id: {"sha256": i.sha256, "path": i.path} for i in st.catalog()}}
    finally:
        st.close()


def _where(store) -> str:
    return str(store.directory.parent) if isinstance(store, LocalStore) else getattr(store, "spec", "the store")


def _manifest_or_none(index_dir: Path) -> tuple[Path | None, dict | None]:
    """(live generation, its manifest), or (None, None) when there is no usable one."""
    try:
        return storage.read_manifest(index_dir)
    except Exception:  # a missing or damaged index is simply rebuilt
        return None, None


def _assemble(docs: list[Document], embedder: Embedder, cs: ChunkSettings,
              old_vectors: dict[str, tuple[np.ndarray, np.ndarray]], report: BuildReport,
              previous: reuse.Previous = reuse.NOTHING_PREVIOUS) -> storage.IndexData:
    dim = embedder.dim
    chunk_blocks: list[np.ndarray] = []  # per document: its rows
    sent_blocks: list[np.ndarray] = []
    fresh_terms = sparse.PostingsBuilder()  # BM25 terms of the chunks not taken over from ``previous``
    moved = np.full(previous.chunks, -1, np.int64)  # previous chunk row -> its row now
    taken: set[str] = set()
    chunk_vecs: list[np.ndarray | None] = []
    sent_vecs: list[np.ndarray | None] = []
    chunk_texts: list[str] = []  # to embed: the passages of the documents not reused ...
    sentence_texts_all: list[str] = []  # ... and their sentences
    keys: list[str] = []
    pending: list[int] = []  # positions in chunk_vecs / sent_vecs of the documents embedded, in order
    n_chunks = n_sents = 0
    # Splitting (pysbd) is most of a build's time outside embedding: a document whose inputs are the
    # same keeps its rows, terms and embed key from the live generation; the others are split here,
    # on every CPU when there are enough of them.
    split_keys = [split_key(doc, cs) for doc in docs]
    olds = [previous.rows.get(key) for key in split_keys]
    splits = _split_all([doc for doc, old in zip(docs, olds) if old is None], cs)
    for d_i, (doc, old) in enumerate(zip(docs, olds)):
        chunk_rows, sent_rows = old.placed(d_i, n_sents) if old is not None else _split_rows(splits[id(doc)], d_i, n_sents)
        texts: list[str] | None = None  # made only when they are tokenized or embedded
        if old is not None and old.chunk_lo is not None and previous.terms is not None and split_keys[d_i] not in taken:
            moved[old.chunk_lo:old.chunk_lo + len(chunk_rows)] = np.arange(n_chunks, n_chunks + len(chunk_rows))
            taken.add(split_keys[d_i])  # a second document with the same key gets its terms afresh
        else:
            texts = _passage_texts(doc, chunk_rows, cs)
            for row, text in enumerate(texts, start=n_chunks):
                fresh_terms.add(row, tokenize(text))
        chunk_blocks.append(chunk_rows)
        sent_blocks.append(sent_rows)
        n_chunks += len(chunk_rows)
        n_sents += len(sent_rows)
        sentence_texts = None
        key = old.embedded if old is not None else None
        if key is None:
            texts = texts if texts is not None else _passage_texts(doc, chunk_rows, cs)
            sentence_texts = _sentence_texts(doc, sent_rows)
            key = embed_key(texts, sentence_texts)
        keys.append(key)
        cached = old_vectors.get(key)
        if cached is not None and len(cached[0]) == len(chunk_rows) and len(cached[1]) == len(sent_rows):
            chunk_vecs.append(cached[0])
            sent_vecs.append(cached[1])
            report.reused += 1
            continue
        texts = texts if texts is not None else _passage_texts(doc, chunk_rows, cs)
        sentence_texts = sentence_texts if sentence_texts is not None else _sentence_texts(doc, sent_rows)
        chunk_vecs.append(None)
        sent_vecs.append(None)
        pending.append(len(chunk_vecs) - 1)
        chunk_texts.extend(texts)
        sentence_texts_all.extend(sentence_texts)
    # One call for every new text: the embedder batches it and shows one progress bar. Passages come
    # first, then sentences, each in document order: when no document is reused, the two halves of
    # the result are the index's vectors as they are, with no copy (which held every vector twice at a
    # large first build's peak).
    n_fresh = len(chunk_texts)
    to_embed = chunk_texts + sentence_texts_all
    vectors = embedder.embed_documents(to_embed) if to_embed else np.zeros((0, dim), np.float32)
    report.embedded_texts = len(to_embed)
    del to_embed, chunk_texts, sentence_texts_all
    fresh_chunks, fresh_sents = vectors[:n_fresh], vectors[n_fresh:]
    empty = np.zeros((0, dim), np.float32)
    if len(pending) == len(docs):
        chunk_vectors, sentence_vectors = np.asarray(fresh_chunks, np.float32), np.asarray(fresh_sents, np.float32)
    else:
        c_at = s_at = 0
        for pos in pending:
            nc, ns = len(chunk_blocks[pos]), len(sent_blocks[pos])
            chunk_vecs[pos], sent_vecs[pos] = fresh_chunks[c_at:c_at + nc], fresh_sents[s_at:s_at + ns]
            c_at, s_at = c_at + nc, s_at + ns
        chunk_vectors = np.asarray(np.concatenate(chunk_vecs or [empty]), np.float32)
        sentence_vectors = np.asarray(np.concatenate(sent_vecs or [empty]), np.float32)
    carried = previous.terms.moved(moved) if previous.terms is not None and taken else sparse.NO_POSTINGS
    return storage.IndexData(
        docs=docs,
        chunks=np.concatenate(chunk_blocks or [np.zeros((0, 6), np.int64)]),
        sentences=np.concatenate(sent_blocks or [np.zeros((0, 4), np.int64)]),
        chunk_vectors=chunk_vectors,
        sentence_vectors=sentence_vectors,
        passage_terms=carried + fresh_terms.postings(), model_id=embedder.model_id, dim=dim,
        chunk_settings=cs, sources=[], embed_keys=tuple(keys), split_keys=tuple(split_keys),
    )


PARALLEL_SPLIT_CHARS = 2_000_000  # below this much text, starting worker processes costs more than they save


def _split_all(docs: list[Document], cs: ChunkSettings) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """id(document) -> its _split_arrays, for ``docs``. With enough text, split in one worker process
    per CPU (pysbd is pure Python: threads would wait on each other), in order, so the result is the same."""
    workers = min(cpu_threads(), len(docs))
    # Forked workers, and only from a process with no other thread (`rag index`, `rag eval`): a fork
    # copies locks other threads may hold, and spawned workers would first run the caller's script
    # again. A server adding uploads from its threads splits in its own process.
    if workers > 1 and threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() \
            and sum(len(d.text) for d in docs) >= PARALLEL_SPLIT_CHARS:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                return {id(d): rows for d, rows in zip(docs, pool.map(_split_arrays, docs, [cs] * len(docs), chunksize=32))}
        except (OSError, BrokenProcessPool):  # no processes here (a sandbox, a limit): split in this one
            pass
    return {id(d): _split_arrays(d, cs) for d in docs}


def _split_arrays(doc: Document, cs: ChunkSettings) -> tuple[np.ndarray, np.ndarray]:
    """(sentences: start, end, section; chunks: start, end, section, first and past-last sentence) of
    ``doc``, as int64 arrays: a few bytes a row where the Split's objects take a hundred."""
    parts = chunking.split(doc, cs)
    sentences = np.array([(s.start, s.end, s.section) for s in parts.sentences], np.int64).reshape(-1, 3)
    chunks = np.array([(c.start, c.end, c.section, lo, hi) for c, (lo, hi) in zip(parts.chunks, parts.ranges)],
                      np.int64).reshape(-1, 5)
    return sentences, chunks


def _split_rows(split: tuple[np.ndarray, np.ndarray], d_i: int, first_sentence: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk rows, sentence rows) of a document's _split_arrays, as document row ``d_i`` whose first
    sentence is row ``first_sentence``."""
    sentences, chunks = split
    sent_rows = np.column_stack([np.full(len(sentences), d_i, np.int64), sentences]).reshape(-1, 4)
    chunk_rows = np.column_stack([np.full(len(chunks), d_i, np.int64), chunks[:, :3], chunks[:, 3:] + first_sentence]).reshape(-1, 6)
    return chunk_rows, sent_rows


def _sentence_texts(doc: Document, sent_rows: np.ndarray) -> list[str]:
    return [doc.text[s:e] for s, e in sent_rows[:, storage.S_START:storage.S_END + 1].tolist()]


def _passage_texts(doc: Document, chunk_rows: np.ndarray, cs: ChunkSettings) -> list[str]:
    """What is embedded and BM25-indexed for each of the document's chunk rows."""
    contexts: dict[int, str | None] = {}
    texts = []
    for start, end, section in chunk_rows[:, storage.C_START:storage.C_SECTION + 1].tolist():
        if section not in contexts:
            contexts[section] = chunking.passage_context(doc, section)
        texts.append(chunking.passage_text(contexts[section], doc.text[start:end], cs))
    return texts


def split_key(doc: Document, cs: ChunkSettings) -> str:
    """A hash of everything a document's sentence and chunk rows, passage texts and BM25 terms are
    made from (its text, blocks and title; the chunk settings; the splitter and tokenizer versions):
    equal keys mean equal rows, texts and terms. Not its id: rows do not hold it."""
    head = json.dumps([chunking.VERSION, storage.SPLITTER_VERSION, TOKENIZER_VERSION, cs.to_dict(), doc.title,
                       [[b.start, b.end, b.kind, b.section] for b in doc.blocks]])
    h = hashlib.sha256(head.encode("utf-8", "surrogatepass") + b"\x00")
    h.update(doc.text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def embed_key(passage_texts: Sequence[str], sentence_texts: Sequence[str]) -> str:
    """A hash of exactly what is embedded for one document: equal keys mean equal vectors."""
    h = hashlib.sha256()
    for part in ("passages", *passage_texts, "sentences", *sentence_texts):
        h.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()


def open_store(spec: str | None, index_dir: str | Path | None = None):
    """The store ``spec`` names: None or "local" -> the generation at ``index_dir`` (default
    ``$RAG_INDEX_DIR`` or ``.rag/index``); "milvus://HOST:PORT/NAME" or "milvus-lite:PATH.db" -> a
    Milvus store (see rag.store.milvus). ``$RAG_STORE`` is read by the CLI, not here.

    Raises:
        IndexNotFound, IndexCorrupt, StoreUnreachable, StoreMissing, StoreMismatch, RagError
    """
    if spec in (None, "", "local"):
        return LocalStore(storage.load(Path(index_dir) if index_dir else default_index_dir()))
    from rag.store.milvus import MilvusStore

    return MilvusStore(spec).check()


class Assistant:
    """Answers questions from one store. Cheap to ask concurrently: it holds no per-question state."""

    def __init__(self, store, embedder: Embedder, settings: Settings = Settings(), query_cache: int = 256,
                 model: AnswerModel | None = None, retriever: Retriever | None = None, answerer: Answerer | None = None):
        """``retriever`` and ``answerer`` replace the hybrid retriever and the extractive answerer over
        ``store`` (any object with their protocol's methods)."""
        if isinstance(store, storage.Index):
            store = LocalStore(store)
        if store.model_id != embedder.model_id:
            raise EmbedderMismatch(_where(store), store.model_id, embedder.model_id)
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.retriever: Retriever = retriever or HybridRetriever(store, embedder, settings)
        self.answerer: Answerer = answerer or ExtractiveAnswerer(store, embedder, settings, model)
        self._vectors: dict[str, np.ndarray] = {}  # insertion-ordered: the first key is the oldest
        self._vectors_lock = threading.Lock()  # the chat page asks from several threads at once
        self._cache_size = query_cache

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector, remembered for the last ``query_cache`` queries (repeats, re-ranking)."""
        with self._vectors_lock:
            vector = self._vectors.get(query)
        if vector is None:
            vector = self.embedder.embed_query(query)  # outside the lock: other queries encode meanwhile
            if self._cache_size:
                with self._vectors_lock:
                    if query not in self._vectors and len(self._vectors) >= self._cache_size:
                        del self._vectors[next(iter(self._vectors))]
                    self._vectors[query] = vector
        return vector

    @classmethod
    def load(cls, index_dir: str | Path | None = None, embedder: Embedder | None = None,
             settings: Settings | None = None, model: AnswerModel | None = None, store: str | None = None) -> "Assistant":
        """The assistant over the store ``store`` names (see open_store; default: the local index at
        ``index_dir``).

        Raises:
            IndexNotFound, IndexCorrupt, EmbedderMismatch, ModelMissing, StoreUnreachable, StoreMissing, StoreMismatch
        """
        index_dir = Path(index_dir) if index_dir else default_index_dir()
        opened = open_store(store, index_dir)
        if embedder is None:
            if opened.model_id != SentenceTransformerEmbedder.model_id:
                raise EmbedderMismatch(_where(opened), opened.model_id, SentenceTransformerEmbedder.model_id)
            # The export of the model the index was embedded with: queries start without torch.
            embedder = default_embedder(default_cache_dir(), opened.manifest().get("model", {}).get("fingerprint"))
        return cls(opened, embedder, settings or Settings(), model=model)

    def outdated(self) -> bool:
        """True when the library has moved on since this assistant loaded it (another process or page
        changed it): load it again to see the change."""
        return self.store.outdated()

    def ask(self, question: str, history: Sequence[str] | None = None, k: int | None = None) -> Answer:
        """Answer ``question``; ``history`` holds earlier questions of the conversation, oldest first;
        ``k`` passages are returned (None: ``settings.top_k``).

        Raises:
            EmptyQuestion: the question has no words.
            BadSetting: ``k`` is not a whole number of at least 1.
        """
        t0 = time.perf_counter()
        original = question
        question = clean_question(question)
        notice = ""
        if isinstance(original, str) and len(" ".join(original.split())) > MAX_QUESTION_CHARS:
            notice = f"Only the first {MAX_QUESTION_CHARS:,} characters of the question were used."
        query = contextualize(question, [clean_question(h) for h in history or [] if _has_words(h)])
        k = self.settings.top_k if k is None else whole_number("k", k, 1)
        t1 = time.perf_counter()
        qvec = self.embed_query(query)
        t2 = time.perf_counter()
        # The answer model always reads the same number of passages it was trained on, so an answer and
        # its confidence mean the same whatever k the user asks to see.
        hits = self.retriever.search(query, qvec, max(k, ANSWER_PASSAGES))
        t3 = time.perf_counter()
        answer = self.answerer.answer(query, hits[:ANSWER_PASSAGES], qvec)
        t4 = time.perf_counter()
        timings = {"embed": (t2 - t1) * 1e3, "retrieve": (t3 - t2) * 1e3, "answer": (t4 - t3) * 1e3,
                   "total": (t4 - t0) * 1e3}
        return Answer(question=question, text=answer.text, abstained=answer.abstained, citations=answer.citations,
                      hits=tuple(hits[:k]), timings_ms=timings, searched=query, confidence=answer.confidence,
                      notice=notice, outcome=answer.outcome)


def serving_embedder(embedder: Embedder) -> Embedder:
    """The query encoder for a server in place of ``embedder`` (the one Assistant.load chose): an ONNX
    encoder of one thread (same model file, same vectors), so a server answers several questions at
    once, one per core, instead of splitting each across both cores, which stall whenever another
    process holds one (README, Performance). Any other embedder is returned as it is."""
    if type(embedder) is not OnnxEmbedder or embedder.threads:
        return embedder
    return OnnxEmbedder(embedder.onnx_path, threads=1, fingerprint=embedder.fingerprint)


def clean_question(question: str) -> str:
    """The question with control characters removed, whitespace collapsed and length capped.

    Raises:
        EmptyQuestion: nothing with letters or digits is left.
    """
    if not isinstance(question, str):
        raise EmptyQuestion()
    text = "".join(ch if ch.isprintable() or ch in "\t\n" else " " for ch in question)
    text = " ".join(text.split())[:MAX_QUESTION_CHARS]
    if not any(ch.isalnum() for ch in text):
        raise EmptyQuestion()
    return text


def _has_words(text) -> bool:
    return isinstance(text, str) and any(ch.isalnum() for ch in text)


_FOLLOW_UP = ("and ", "what about ", "how about ", "also ", "then ", "so ")


def contextualize(question: str, history: Sequence[str]) -> str:
    """The query to search: the question itself, or for an elliptical follow-up ("And Wuhu?", "Who
    runs it?") the question plus the previous question, so its subject carries over. When the
    follow-up names something new ("And Wuhu?"), the names of the previous question are dropped:
    the new name replaces them instead of competing with them."""
    if not history:
        return question
    previous = history[-1]
    lower = question.lower()
    terms = tokenize(question)
    elliptical = len(terms) <= 1 or lower.startswith(_FOLLOW_UP) or any(
        f" {p} " in f" {lower.rstrip('?.! ')} " for p in ("it", "its", "they", "them", "their", "he", "she", "his", "her", "there", "that"))
    if not elliptical:
        return question
    if _names(question):
        previous = " ".join(w for w in previous.split() if not _is_name(w, previous))
    return f"{question} {previous}"


_NAME_WORD = re.compile(r"^[A-Z][a-z][\w'’-]*$")  # Wuhu, Ma'anshan; not R&D or USTC


def _is_name(word: str, sentence: str) -> bool:
    """A capitalised word that is not the sentence's first word (which is capitalised anyway)."""
    core = word.strip("?.!,;:\"'“”‘’()")
    return bool(_NAME_WORD.match(core)) and not sentence.lstrip().startswith(word)


def _names(question: str) -> list[str]:
    return [w for w in question.split() if _is_name(w, question)]
