"""The local store's files: write a generation atomically, load it with integrity checks, collect
the old ones. (Segments are rag.store.segments, BM25 rag.store.sparse, the FAISS choice
rag.store.dense, the build lock rag.store.lock, reuse by the next build rag.store.reuse, the page's
removals rag.store.excluded.)

Layout of an index directory::

    CURRENT               name of the live generation; replaced atomically (os.replace)
    .lock                 held while a build writes (rag.store.lock)
    excluded.json         files removed in the chat page (rag.store.excluded)
    gen-000007/           one generation: manifest.json, and the files of each segment it uses
                          (s000003.texts.bin, s000007.texts.bin, ...: see rag.store.segments)

A generation is a list of segments and, in reading order, its documents, each named by its segment
and its place there. A build writes the documents it added (and those of segments it merges) as one
new segment and hard-links the other segments' files from the live generation: adding an article
costs that article, not the library. Segment files are never written again once made, so sharing
them cannot change a generation another reader holds, and removing a generation directory removes
only its links: files another generation uses stay.

A build writes a new generation directory, fsyncs it, then swaps CURRENT, so a reader always sees
either the old index or the new one. The generation before the live one is kept, so a reader that
read CURRENT just before a swap still finds its files. Generations written before segments (every
file in the generation itself, without a segment prefix) still load. Nothing is pickled: JSON,
JSON Lines, .npy (allow_pickle=False) and FAISS's own format.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rag.config import FORMAT_VERSION, ChunkSettings
from rag.errors import IndexCorrupt, IndexNotFound, IndexOutdated
from rag.store.dense import NPROBE, make_vector_index
from rag.store.segments import FILES as SEGMENT_FILES
from rag.store.segments import (  # noqa: F401 (the row columns: re-exported)
    C_DOC, C_END, C_SECTION, C_SENT_HI, C_SENT_LO, C_START, LEGACY_FILES, S_DOC, S_END, S_SECTION, S_START, Segment,
    SegmentData, file_name, link_segment, write_segment)
from rag.store.sparse import Bm25, LegacyBm25, Postings
from rag.text import TOKENIZER_VERSION
from rag.types import Block, Chunk, Document

SPLITTER_VERSION = 7  # = rag.chunk.VERSION, kept here so loading an index does not import pysbd
CURRENT = "CURRENT"
SENTENCE_TERMS_CACHE = 65_536  # sentences whose terms an Index remembers
# Every document's text, UTF-8 one after the other, and the byte offset where each starts (plus the
# end): read on demand through a memory map, so a server never holds a large library's texts.
# Generations written before they existed keep texts in docs.jsonl, and still load.
TEXTS, TEXT_OFFSETS = "texts.bin", "text_offsets.npy"
TEXT_CACHE = 256  # documents whose decoded text an Index remembers


@dataclass(frozen=True)
class IndexData:
    """Everything a generation holds, in memory."""

    docs: list[Document]
    chunks: np.ndarray  # int64 (n, 6)
    sentences: np.ndarray  # int64 (m, 4)
    chunk_vectors: np.ndarray  # float32 (n, dim)
    sentence_vectors: np.ndarray  # float32 (m, dim)
    passage_terms: Postings  # BM25 terms of the chunks
    model_id: str
    dim: int
    chunk_settings: ChunkSettings
    sources: list[str]  # the paths that were indexed
    embed_keys: tuple[str, ...] = ()  # per document: hash of exactly the texts embedded for it (see reuse.Live.vectors)
    split_keys: tuple[str, ...] = ()  # per document: hash of what its rows and terms are made from (see reuse.Live.splits)
    model_fingerprint: str | None = None  # the embedder's rag.embed.model_fingerprint, when it has one
    files: dict = field(default_factory=dict)  # doc_id -> rag.ingest.FileStat of the file it was read from


class Texts:
    """Document texts by position: decoded on demand from memory-mapped texts.bin files (one per
    segment), the last few kept; or, for a generation from before texts.bin, held in memory as
    they were loaded."""

    def __init__(self, mapped=None, offsets: np.ndarray | None = None, held: list[str] | None = None,
                 parts: list | None = None, where: tuple[np.ndarray, np.ndarray] | None = None):
        """``parts``: (map, offsets) per segment, and ``where``: (part, position there) per document;
        or one ``mapped`` file whose ``offsets`` are the documents' own."""
        self._parts = parts if parts is not None else [(mapped, offsets)]
        self._where = where
        self._held = held
        self._cache: dict[int, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, offsets: np.ndarray) -> "Texts":
        return cls(mapped=_map(path), offsets=offsets)

    def _span(self, i: int):
        if self._where is None:
            mapped, offsets = self._parts[0]
            return mapped, int(offsets[i]), int(offsets[i + 1])
        mapped, offsets = self._parts[int(self._where[0][i])]
        j = int(self._where[1][i])
        return mapped, int(offsets[j]), int(offsets[j + 1])

    def __getitem__(self, i: int) -> str:
        if self._held is not None:
            return self._held[i]
        text = self._cache.get(i)
        if text is None:
            mapped, lo, hi = self._span(i)
            text = mapped[lo:hi].decode("utf-8", "surrogatepass")
            with self._lock:
                if len(self._cache) >= TEXT_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[i] = text
        return text

    def bytes(self, i: int) -> int:
        if self._held is not None:
            return len(self._held[i].encode("utf-8", "surrogatepass"))
        _, lo, hi = self._span(i)
        return hi - lo


def _map(path: Path):
    import mmap

    with open(path, "rb") as f:
        # A map outlives its file object, and the file itself after a build removes the
        # generation: this Index keeps reading the texts it loaded.
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""


class Rows:
    """Vectors by the generation's row, gathered from the segments' memory-mapped arrays: ``rows[ids]``
    and ``np.asarray(rows)`` as with one array."""

    def __init__(self, parts: list[np.ndarray], bases: np.ndarray, physical: np.ndarray, dim: int):
        self._parts, self._bases, self._physical = parts, bases, physical  # row -> row of the parts put end to end
        self.shape = (len(physical), dim)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            return self[np.array([rows])][0]
        p = self._physical[np.arange(self.shape[0])[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)]
        part = np.searchsorted(self._bases, p, side="right") - 1
        out = np.empty((len(p), self.shape[1]), np.float32)
        for k in np.unique(part).tolist():
            mask = part == k
            out[mask] = self._parts[k][p[mask] - self._bases[k]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(self.shape[0])]
        return out if dtype is None else out.astype(dtype)


class Dense:
    """The segments' FAISS indexes, searched as one: each maps its rows to the generation's (-1 for
    rows of documents the generation no longer holds, which are never returned)."""

    def __init__(self, parts: list[tuple[object, np.ndarray | None]]):
        self._parts = [(index, rows, 0 if rows is None else int((rows < 0).sum())) for index, rows in parts]
        self.ntotal = sum(int(index.ntotal) - dead for index, _, dead in self._parts)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k rows nearest ``vector`` (inner product), best first, ties by row."""
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        found = []
        for index, rows, dead in self._parts:
            n = int(index.ntotal)
            if n == 0:
                continue
            # 16 more than asked, so that ties at the cut are all seen and then ordered by row.
            scores, ids = index.search(q, min(k + 16 + dead, n))
            for i, v in zip(ids[0].tolist(), scores[0].tolist()):
                if i >= 0 and (rows is None or rows[i] >= 0):
                    found.append((i if rows is None else int(rows[i]), v))
        found.sort(key=lambda x: (-x[1], x[0]))
        return found[:k]


class Index:
    """A loaded generation. Vectors and document texts are memory-mapped; ``docs`` holds each
    document's metadata with an empty ``text`` (``document()`` gives the whole one). Rows are in
    reading order (documents in the order the build was given them), whatever segments hold them."""

    def __init__(self, directory: Path, manifest: dict, docs: list[Document], chunks: np.ndarray,
                 sentences: np.ndarray, chunk_vectors, sentence_vectors, dense: Dense, sparse,
                 texts: Texts, chars: list[int]):
        self.directory = directory
        self.manifest = manifest
        self.docs = docs
        self.texts = texts
        self.chars = chars  # each document's length in characters
        self.doc_pos = {d.doc_id: i for i, d in enumerate(docs)}
        self.chunks = chunks
        self.sentences = sentences
        self.chunk_vectors = chunk_vectors
        self.sentence_vectors = sentence_vectors
        self.dense = dense
        self.sparse = sparse  # rag.store.sparse.Bm25 or LegacyBm25
        # Sentence terms are asked for again and again (each question rescans its candidates), so
        # they are memoised. A plain dict rather than lru_cache on a bound method: that would be a
        # reference cycle keeping every reloaded-away Index alive until the cycle collector runs.
        self._terms: dict[int, frozenset[str]] = {}
        self._terms_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.manifest["model"]["id"]

    @property
    def chunk_settings(self) -> ChunkSettings:
        return ChunkSettings(**self.manifest["chunker"])

    def __len__(self) -> int:
        return len(self.chunks)

    def chunk(self, row: int) -> Chunk:
        from rag.chunk import chunk_id

        d, s, e, sec = (int(x) for x in self.chunks[row, :4])
        doc = self.docs[d]
        text = self.texts[d][s:e]
        return Chunk(chunk_id(doc.doc_id, s, text), doc.doc_id, text, s, e, sec, row, doc.encoding)

    def chunk_sentence_rows(self, row: int) -> range:
        return range(int(self.chunks[row, C_SENT_LO]), int(self.chunks[row, C_SENT_HI]))

    def sentence_text(self, row: int) -> str:
        d, s, e = (int(x) for x in self.sentences[row, :3])
        return self.texts[d][s:e]

    def sentence_terms(self, row: int) -> frozenset[str]:
        """The BM25 terms of sentence ``row`` (see rag.text.tokenize); safe to call from many threads."""
        terms = self._terms.get(row)
        if terms is None:
            from rag.text import tokenize

            terms = frozenset(tokenize(self.sentence_text(row)))
            with self._terms_lock:
                if len(self._terms) >= SENTENCE_TERMS_CACHE:  # bounded: drop the oldest entry
                    self._terms.pop(next(iter(self._terms)))
                self._terms[row] = terms
        return terms

    def document(self, doc_id: str) -> Document | None:
        i = self.doc_pos.get(doc_id)
        return None if i is None else replace(self.docs[i], text=self.texts[i])

    def doc_chunk_counts(self) -> np.ndarray:
        return np.bincount(self.chunks[:, C_DOC], minlength=len(self.docs)) if len(self.chunks) else np.zeros(len(self.docs), int)

    def idf(self, term: str) -> float:
        """BM25 (Lucene) idf of a term over passages. A term no passage has gets the highest idf:
        it is the most specific word of the question, and its absence must count."""
        return self.sparse.idf(term)


# ---------------------------------------------------------------------------------------------- write

@dataclass(frozen=True)
class Plan:
    """What a build writes: the generation's documents, in reading order, each in a segment."""

    model_id: str
    dim: int
    chunk_settings: ChunkSettings
    sources: list[str]
    model_fingerprint: str | None
    documents: dict  # doc_id -> its manifest entry, with "segment", "at" (its place there), "chunks", "sentences"
    segments: dict  # name -> {"documents", "chunks", "sentences", "faiss_index"} of the kept segments, in order
    previous: Path | None  # the generation the kept segments' files are linked from
    new: SegmentData | None = None  # the segment this build made, named segment_name(name)
    name: str = ""  # the generation's name (see next_generation)


def segment_name(generation: str) -> str:
    """The name of the segment generation ``generation`` writes: s000007 for gen-000007."""
    return "s" + generation[4:]


def write(index_dir: Path, plan: Plan) -> Path:
    """Write ``plan`` as generation ``plan.name`` and make it current; returns its directory.

    The caller holds the BuildLock. After the swap, generations older than the previous one are removed.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    name = plan.name or next_generation(index_dir)
    tmp = index_dir / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _test_pause("write-start")
    segments = {}
    for seg, info in plan.segments.items():
        link_segment(plan.previous, tmp, seg)
        segments[seg] = info
    written = []
    if plan.new is not None:
        seg = segment_name(name)
        kind = write_segment(tmp, seg, plan.new)
        written = [tmp / file_name(seg, f) for f in SEGMENT_FILES]
        segments[seg] = {"documents": len(plan.new.records), "chunks": int(len(plan.new.chunks)),
                         "sentences": int(len(plan.new.sentences)), "faiss_index": kind}
    _test_pause("write-middle")

    kinds = sorted({info["faiss_index"] for info in segments.values()})
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"id": plan.model_id, "dim": plan.dim, **({"fingerprint": plan.model_fingerprint} if plan.model_fingerprint else {})},
        "chunker": plan.chunk_settings.to_dict(),
        "tokenizer": TOKENIZER_VERSION,
        "splitter": SPLITTER_VERSION,
        "faiss_index": " + ".join(kinds) if kinds else make_vector_index(np.zeros((0, plan.dim), np.float32), plan.dim)[1],
        "sources": plan.sources,
        "counts": {"documents": len(plan.documents), "chunks": sum(int(e["chunks"]) for e in plan.documents.values()),
                   "sentences": sum(int(e["sentences"]) for e in plan.documents.values())},
        "segments": segments,
        "documents": plan.documents,
        "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()},
    }
    # No indent: the documents make it megabytes at 50 MB of articles, and only the C encoder is fast.
    _write_json(tmp / "manifest.json", manifest, indent=None)
    # Linked files were made durable by the build that wrote them.
    _fsync_tree(tmp, [*written, tmp / "manifest.json"])
    _test_pause("before-rename")

    final = index_dir / name
    os.replace(tmp, final)
    _fsync_dir(index_dir)
    pointer = index_dir / f"{CURRENT}.tmp"
    pointer.write_text(name + "\n", encoding="utf-8")
    _fsync_file(pointer)
    os.replace(pointer, index_dir / CURRENT)
    _fsync_dir(index_dir)
    _test_pause("after-rename")

    collect_garbage(index_dir)
    return final


def collect_garbage(index_dir: Path) -> None:
    """Remove every generation but the live one and the one before it, and the leftovers (``*.tmp``)
    of builds that were killed. The caller holds the BuildLock.

    The previous generation stays because a reader may have read CURRENT just before the swap and
    not opened its files yet; one that already loaded keeps its open and mapped files anyway. Only
    a reader slower than two whole builds can lose its generation, and load() then retries once.
    """
    index_dir = Path(index_dir)
    try:
        live = current_generation(index_dir).name
    except (IndexNotFound, IndexCorrupt):
        return
    if not _GENERATION.match(live):
        return
    complete = [p.name for p in index_dir.iterdir() if _GENERATION.match(p.name) and p.is_dir()]
    older = sorted((name for name in complete if _number(name) < _number(live)), key=_number)
    keep = {live, *older[-1:]}
    for old in index_dir.iterdir():
        if old.name in keep:
            continue
        if old.name.startswith("gen-"):
            shutil.rmtree(old, ignore_errors=True)  # older generations, never-live ones and .tmp leftovers
        elif old.name.endswith(".tmp") and old.is_file():
            old.unlink(missing_ok=True)  # CURRENT.tmp, excluded.json.tmp of a killed build
        elif old.name == "models" and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # the ~90 MB ONNX copy indexes kept before the shared cache


_GENERATION = re.compile(r"^gen-\d{6,}$")


def _number(generation: str) -> int:
    return int(generation[4:])


def doc_record(d: Document) -> dict:
    return {"doc_id": d.doc_id, "title": d.title, "date": d.date, "sha256": d.sha256, "path": d.path,
            "encoding": d.encoding, "blocks": [[b.start, b.end, b.kind, b.section] for b in d.blocks], "chars": len(d.text),
            "url": d.url, "author": d.author, "site": d.site, "pages": list(d.pages)}


def next_generation(index_dir: Path) -> str:
    """The name the next generation written to ``index_dir`` gets."""
    numbers = [int(p.name[4:10]) for p in index_dir.glob("gen-*") if p.name[4:10].isdigit()]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _write_json(path: Path, obj, indent: int | None = 1) -> None:
    with open(path, "w", encoding="utf-8") as f:
        # json.dumps, not json.dump: only a one-shot encode without indent runs the C encoder.
        f.write(json.dumps(obj, ensure_ascii=False, indent=indent))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:
        pass  # some filesystems do not allow fsync on directories


def _fsync_tree(root: Path, files: list[Path] | None = None) -> None:
    """fsync ``files`` (default: every file under ``root``) and every directory under ``root``."""
    for p in root.rglob("*") if files is None else files:
        if p.is_file():
            _fsync_file(p)
    for p in [root, *[q for q in root.rglob("*") if q.is_dir()]]:
        _fsync_dir(p)


def _test_pause(point: str) -> None:
    """Test hook: with RAG_TEST_PAUSE_AT=<point>, sleep there so a test can SIGKILL the build."""
    if os.environ.get("RAG_TEST_PAUSE_AT") == point:
        print(f"paused at {point}", flush=True)
        time.sleep(float(os.environ.get("RAG_TEST_PAUSE_SECONDS", "30")))


# ---------------------------------------------------------------------------------------------- read

def _current_name(index_dir: Path) -> str:
    """What CURRENT says, unchecked.

    Raises:
        IndexNotFound, IndexCorrupt
    """
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexNotFound(str(index_dir))
    try:
        return pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        raise IndexCorrupt(str(index_dir), "CURRENT is unreadable") from None


def current_generation(index_dir: Path) -> Path:
    """The live generation's directory.

    Raises:
        IndexNotFound: no index has been built there.
        IndexCorrupt: CURRENT names a generation that is missing.
    """
    index_dir = Path(index_dir)
    return _generation(index_dir, _current_name(index_dir))


def _generation(index_dir: Path, name: str) -> Path:
    gen = index_dir / name
    if not name.startswith("gen-") or "/" in name or not gen.is_dir():
        raise IndexCorrupt(str(index_dir), f"CURRENT names a missing generation {name!r}")
    return gen


def read_manifest(index_dir: Path, gen: Path | None = None) -> tuple[Path, dict]:
    """(generation directory, manifest) of generation ``gen`` (default: the live one), checked for
    format version and file sizes.

    Raises:
        IndexNotFound, IndexCorrupt
    """
    index_dir = Path(index_dir)
    gen = current_generation(index_dir) if gen is None else Path(gen)
    try:
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(str(index_dir), "manifest.json is missing") from None
    except (ValueError, OSError):
        raise IndexCorrupt(str(index_dir), "manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise IndexCorrupt(str(index_dir), "manifest.json has no format_version")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexCorrupt(str(index_dir), f"it was written in index format {manifest['format_version']}, this version reads format {FORMAT_VERSION}")
    try:
        files = dict(manifest["files"])
        manifest["model"]["id"], manifest["model"]["dim"], manifest["chunker"]
    except (KeyError, TypeError):
        raise IndexCorrupt(str(index_dir), "manifest.json lacks required fields") from None
    for name, size in files.items():
        p = gen / name
        if not p.is_file():
            raise IndexCorrupt(str(index_dir), f"{name} is missing")
        if p.stat().st_size != size:
            raise IndexCorrupt(str(index_dir), f"{name} is truncated or changed ({p.stat().st_size} bytes, expected {size})")
    segments = manifest.get("segments")
    required = LEGACY_FILES if segments is None else [file_name(seg, f) for seg in segments for f in SEGMENT_FILES]
    for name in required:
        if name not in files:
            raise IndexCorrupt(str(index_dir), f"{name} is missing")
    return gen, manifest


def load(index_dir: str | Path) -> Index:
    """The live generation, checked.

    Raises:
        IndexNotFound: nothing built there.
        IndexCorrupt: a piece is missing, truncated, unparsable or of another format version.
        IndexOutdated: it was built with another tokenizer or sentence splitter.
    """
    index_dir = Path(index_dir)
    name = _current_name(index_dir)
    try:
        return _load(index_dir, _generation(index_dir, name))
    except IndexOutdated:
        raise
    except IndexCorrupt:
        # A build may have swapped CURRENT and removed this generation while we read it: then the
        # index is healthy and the new generation is the one to load. Retried once, so an index
        # that is really damaged is still reported.
        try:
            moved = _current_name(index_dir) != name
        except (IndexNotFound, IndexCorrupt):
            moved = False
        if not moved:
            raise
    return _load(index_dir, current_generation(index_dir))


def _load(index_dir: Path, gen: Path) -> Index:
    import faiss

    gen, manifest = read_manifest(index_dir, gen)
    where = str(index_dir)
    # BM25 terms and sentence rows were made by these: another version would silently mis-score.
    for key, what, version in (("tokenizer", "tokenizer", TOKENIZER_VERSION),
                               ("splitter", "sentence splitter", SPLITTER_VERSION)):
        if manifest.get(key) != version:
            raise IndexOutdated(where, f"{what} version {manifest.get(key, 'unknown')}", f"version {version}")
    # One query at a time: OpenMP threads cost more than they save (7.6 ms vs 15-20 ms at 100k x 384).
    faiss.omp_set_num_threads(1)
    if "segments" not in manifest:
        return _load_unsegmented(where, gen, manifest)
    try:
        return _load_segments(where, gen, manifest)
    except IndexCorrupt:
        raise
    except (ValueError, OSError, KeyError, TypeError, IndexError) as e:
        raise IndexCorrupt(where, f"cannot read its data ({type(e).__name__})") from None


def _read_faiss(where: str, path: Path):
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        raise IndexCorrupt(where, f"{path.name} cannot be read") from None
    if hasattr(index, "nprobe"):
        index.nprobe = NPROBE
    return index


def _load_segments(where: str, gen: Path, manifest: dict) -> Index:
    """A generation of segments: its rows put in reading order, each segment's vectors and texts
    mapped where they lie."""
    dim = manifest["model"]["dim"]
    names = list(manifest["segments"])
    segs = [Segment(gen, name) for name in names]
    sizes = [int(manifest["segments"][name]["documents"]) for name in names]
    number = {name: k for k, name in enumerate(names)}
    entries = manifest["documents"]
    seg_of = np.fromiter((number[e["segment"]] for e in entries.values()), np.int64, len(entries))
    at = np.fromiter((int(e["at"]) for e in entries.values()), np.int64, len(entries))
    n_docs = len(entries)
    c_lo, c_n, s_lo, s_n = (np.zeros(n_docs, np.int64) for _ in range(4))
    lines: list[list[str]] = []
    parts = []
    for k, seg in enumerate(segs):
        cb, sb = seg.bounds(sizes[k])
        vc, vs = seg.chunk_vectors, seg.sentence_vectors
        if vc.shape != (len(seg.chunks), dim) or vs.shape != (len(seg.sentences), dim) \
                or (len(seg.chunks) and int(seg.chunks[:, C_SENT_HI].max()) > len(seg.sentences)):
            raise IndexCorrupt(where, f"segment {seg.name}: its pieces disagree in size")
        mine = seg_of == k
        j = at[mine]
        if len(j) and (j.min() < 0 or j.max() >= sizes[k]):
            raise IndexCorrupt(where, f"segment {seg.name} does not have the documents the manifest names")
        c_lo[mine], c_n[mine] = cb[j], cb[j + 1] - cb[j]
        s_lo[mine], s_n[mine] = sb[j], sb[j + 1] - sb[j]
        lines.append(seg.lines())
        offsets = np.load(seg.path("text_offsets.npy"), allow_pickle=False)
        if len(lines[-1]) != sizes[k] or offsets.shape != (sizes[k] + 1,) or int(offsets[-1]) != seg.path("texts.bin").stat().st_size:
            raise IndexCorrupt(where, f"segment {seg.name}: texts.bin, its offsets and docs.jsonl disagree")
        parts.append((_map(seg.path("texts.bin")), offsets))
    c_base = np.concatenate([[0], np.cumsum([len(seg.chunks) for seg in segs])]).astype(np.int64)
    s_base = np.concatenate([[0], np.cumsum([len(seg.sentences) for seg in segs])]).astype(np.int64)
    # Row r of the generation is row physical[r] of the segments' rows put end to end.
    first_c = np.concatenate([[0], np.cumsum(c_n)]).astype(np.int64)
    first_s = np.concatenate([[0], np.cumsum(s_n)]).astype(np.int64)
    n, m = int(first_c[-1]), int(first_s[-1])
    phys_c = np.repeat(c_base[seg_of] + c_lo - first_c[:-1], c_n) + np.arange(n, dtype=np.int64)
    phys_s = np.repeat(s_base[seg_of] + s_lo - first_s[:-1], s_n) + np.arange(m, dtype=np.int64)
    empty_c, empty_s = np.zeros((0, 6), np.int64), np.zeros((0, 4), np.int64)
    chunks = np.concatenate([np.asarray(seg.chunks, np.int64) for seg in segs] or [empty_c])[phys_c]
    sentences = np.concatenate([np.asarray(seg.sentences, np.int64) for seg in segs] or [empty_s])[phys_s]
    chunks[:, C_DOC] = np.repeat(np.arange(n_docs), c_n)
    shift = np.repeat(first_s[:-1] - s_lo, c_n)  # a segment's sentence rows -> the generation's
    chunks[:, C_SENT_LO] += shift
    chunks[:, C_SENT_HI] += shift
    sentences[:, S_DOC] = np.repeat(np.arange(n_docs), s_n)
    row_of = np.full(int(c_base[-1]), -1, np.int64)
    row_of[phys_c] = np.arange(n)
    dense = Dense([(_read_faiss(where, seg.path("dense.faiss")), row_of[c_base[k]:c_base[k + 1]]) for k, seg in enumerate(segs)])
    sparse_parts = []
    for k, (seg, (index, _, _)) in enumerate(zip(segs, dense._parts)):
        if index.ntotal != len(seg.chunks) or index.d != dim:
            raise IndexCorrupt(where, f"segment {seg.name}: dense.faiss disagrees with its vectors")
        vocab = tuple(json.loads(seg.path("terms.json").read_text(encoding="utf-8")))
        ptr = np.load(seg.path("term_ptr.npy"), allow_pickle=False)
        rows = np.load(seg.path("term_rows.npy"), allow_pickle=False, mmap_mode="r")
        tf = np.load(seg.path("term_tf.npy"), allow_pickle=False, mmap_mode="r")
        if ptr.shape != (len(vocab) + 1,) or int(ptr[-1]) != len(rows) or len(tf) != len(rows) \
                or (len(rows) and int(np.max(rows)) >= len(seg.chunks)):
            raise IndexCorrupt(where, f"segment {seg.name}: its BM25 terms disagree with its passages")
        sparse_parts.append((vocab, ptr, np.asarray(rows), np.asarray(tf), row_of[c_base[k]:c_base[k + 1]]))
    records = [json.loads(lines[k][j]) for k, j in zip(seg_of.tolist(), at.tolist())]
    if [r["doc_id"] for r in records] != list(entries) or n_docs != manifest["counts"]["documents"]:
        raise IndexCorrupt(where, "its documents disagree with its manifest")
    docs = [_doc_from_record(r) for r in records]
    texts = Texts(parts=parts, where=(seg_of, at))
    # One segment holding every row in order (a fresh build's) needs no gathering: its maps serve as they are.
    whole = len(segs) == 1 and np.array_equal(phys_c, np.arange(n)) and np.array_equal(phys_s, np.arange(m))
    chunk_vectors = segs[0].chunk_vectors if whole else Rows([seg.chunk_vectors for seg in segs], c_base, phys_c, dim)
    sentence_vectors = segs[0].sentence_vectors if whole else Rows([seg.sentence_vectors for seg in segs], s_base, phys_s, dim)
    return Index(gen, manifest, docs, chunks, sentences, chunk_vectors, sentence_vectors, dense, Bm25(sparse_parts, n),
                 texts, [int(r["chars"]) for r in records])


def _load_unsegmented(where: str, gen: Path, manifest: dict) -> Index:
    """A generation from before segments: every file its own."""
    import bm25s

    try:
        docs, texts, chars = read_documents(gen)
        chunks = np.load(gen / "chunks.npy", allow_pickle=False)
        sentences = np.load(gen / "sentences.npy", allow_pickle=False)
        chunk_vectors = np.load(gen / "chunk_vectors.npy", allow_pickle=False, mmap_mode="r")
        sentence_vectors = np.load(gen / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise IndexCorrupt(where, f"cannot read its data ({type(e).__name__})") from None
    faiss_index = _read_faiss(where, gen / "dense.faiss")
    try:
        bm25 = bm25s.BM25.load(str(gen / "bm25"), allow_pickle=False, mmap=False, show_progress=False)
    except Exception:
        raise IndexCorrupt(where, "the BM25 index cannot be read") from None
    dim = manifest["model"]["dim"]
    n, m = len(chunks), len(sentences)
    consistent = (
        chunks.ndim == 2 and chunks.shape[1] == 6 and sentences.ndim == 2 and sentences.shape[1] == 4
        and chunk_vectors.shape == (n, dim) and sentence_vectors.shape == (m, dim)
        and faiss_index.ntotal == n and faiss_index.d == dim and len(docs) == manifest["counts"]["documents"]
        and (n == 0 or (chunks[:, C_DOC].max() < len(docs) and chunks[:, C_SENT_HI].max() <= m))
    )
    if not consistent:
        raise IndexCorrupt(where, "its pieces disagree in size")
    return Index(gen, manifest, docs, chunks, sentences, chunk_vectors, sentence_vectors, Dense([(faiss_index, None)]),
                 LegacyBm25(bm25, n), texts, chars)


def read_documents(gen: Path) -> tuple[list[Document], Texts, list[int]]:
    """(documents' metadata with empty texts, their texts, their lengths) of generation ``gen``.

    Raises:
        ValueError, OSError, KeyError, TypeError: unreadable or inconsistent files.
    """
    records = _read_jsonl(gen / "docs.jsonl")
    docs = [_doc_from_record(r) for r in records]
    if (gen / TEXTS).is_file():
        offsets = np.load(gen / TEXT_OFFSETS, allow_pickle=False)
        if offsets.shape != (len(docs) + 1,) or int(offsets[-1]) != (gen / TEXTS).stat().st_size:
            raise ValueError("texts.bin and its offsets disagree")
        return docs, Texts.open(gen / TEXTS, offsets), [int(r["chars"]) for r in records]
    return docs, Texts(held=[r["text"] for r in records]), [len(r["text"]) for r in records]


def _read_jsonl(path: Path) -> list:
    r"""The records of a JSON Lines file. Split at "\n" only: str.splitlines() also breaks at
    U+2028, U+2029, U+0085 and more, which json.dumps(ensure_ascii=False) leaves unescaped inside
    strings. (json.dumps always escapes "\n", "\r" and the other ASCII controls.)"""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _doc_from_record(r: dict) -> Document:
    """The document's metadata; its text is read apart (see Texts)."""
    return Document(doc_id=r["doc_id"], text="", sha256=r["sha256"], title=r.get("title"), date=r.get("date"),
                    path=r.get("path"), encoding=r.get("encoding", "utf-8"),
                    blocks=tuple(Block(*b) for b in r.get("blocks", ())), url=r.get("url"), author=r.get("author"),
                    site=r.get("site"), pages=tuple(r.get("pages") or ()))


