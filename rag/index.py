"""Index storage: write a generation atomically, load it with integrity checks.

Layout of an index directory::

    CURRENT               name of the live generation; replaced atomically (os.replace)
    .lock                 held while a build writes
    gen-000007/           one generation: manifest.json, docs.jsonl, chunks.npy, sentences.npy,
                          chunk_vectors.npy, sentence_vectors.npy, dense.faiss, bm25/

A build writes a new generation directory, fsyncs it, then swaps CURRENT, so a reader always sees
either the old index or the new one. Nothing is pickled: JSON, JSONL, .npy (allow_pickle=False)
and FAISS's own format.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.config import FORMAT_VERSION, ChunkSettings
from rag.errors import IndexCorrupt, IndexLocked, IndexNotFound
from rag.text import TOKENIZER_VERSION

SPLITTER_VERSION = 2  # = rag.chunk.VERSION, kept here so loading an index does not import pysbd
from rag.types import Block, Chunk, Document

CURRENT = "CURRENT"
LOCK = ".lock"
# chunks.npy columns
C_DOC, C_START, C_END, C_SECTION, C_SENT_LO, C_SENT_HI = range(6)
# sentences.npy columns
S_DOC, S_START, S_END, S_SECTION = range(4)
_FILES = ("docs.jsonl", "chunks.npy", "sentences.npy", "chunk_vectors.npy", "sentence_vectors.npy", "dense.faiss")


@dataclass(frozen=True)
class IndexData:
    """Everything a generation holds, in memory."""

    docs: list[Document]
    chunks: np.ndarray  # int64 (n, 6)
    sentences: np.ndarray  # int64 (m, 4)
    chunk_vectors: np.ndarray  # float32 (n, dim)
    sentence_vectors: np.ndarray  # float32 (m, dim)
    passage_tokens: list[list[str]]  # BM25 terms of each chunk
    model_id: str
    dim: int
    chunk_settings: ChunkSettings
    sources: list[str]  # the paths that were indexed


class Index:
    """A loaded generation. Vectors are memory-mapped."""

    def __init__(self, directory: Path, manifest: dict, docs: list[Document], chunks: np.ndarray,
                 sentences: np.ndarray, chunk_vectors: np.ndarray, sentence_vectors: np.ndarray, faiss_index, bm25):
        self.directory = directory
        self.manifest = manifest
        self.docs = docs
        self.doc_pos = {d.doc_id: i for i, d in enumerate(docs)}
        self.chunks = chunks
        self.sentences = sentences
        self.chunk_vectors = chunk_vectors
        self.sentence_vectors = sentence_vectors
        self.faiss = faiss_index
        self.bm25 = bm25
        self._df = None
        # Sentence terms are asked for again and again (each question rescans its candidates):
        # memoised per index, bounded so a huge corpus cannot grow it without limit.
        from functools import lru_cache

        self.sentence_terms = lru_cache(maxsize=65_536)(self._sentence_terms)

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
        text = doc.text[s:e]
        return Chunk(chunk_id(doc.doc_id, s, text), doc.doc_id, text, s, e, sec, row)

    def chunk_sentence_rows(self, row: int) -> range:
        return range(int(self.chunks[row, C_SENT_LO]), int(self.chunks[row, C_SENT_HI]))

    def sentence_text(self, row: int) -> str:
        d, s, e = (int(x) for x in self.sentences[row, :3])
        return self.docs[d].text[s:e]

    def _sentence_terms(self, row: int) -> frozenset[str]:
        """The BM25 terms of sentence ``row`` (see rag.text.tokenize)."""
        from rag.text import tokenize

        return frozenset(tokenize(self.sentence_text(row)))

    def document(self, doc_id: str) -> Document | None:
        i = self.doc_pos.get(doc_id)
        return None if i is None else self.docs[i]

    def doc_chunk_counts(self) -> np.ndarray:
        return np.bincount(self.chunks[:, C_DOC], minlength=len(self.docs)) if len(self.chunks) else np.zeros(len(self.docs), int)

    def idf(self, term: str) -> float:
        """BM25 (Lucene) idf of a term over passages. A term no passage has gets the highest idf:
        it is the most specific word of the question, and its absence must count."""
        if self._df is None:
            indptr = np.asarray(self.bm25.scores["indptr"])
            self._df = np.diff(indptr)
        tid = self.bm25.vocab_dict.get(term)
        n = len(self.chunks)
        df = 0.0 if tid is None else float(self._df[tid])
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))


# ---------------------------------------------------------------------------------------------- locks

class BuildLock:
    """An exclusive lock on an index directory for one build.

    Raises:
        IndexLocked: another build holds it and ``timeout`` ran out (0 = do not wait).
    """

    def __init__(self, index_dir: Path, timeout: float = 0.0):
        from filelock import FileLock

        index_dir.mkdir(parents=True, exist_ok=True)
        self.index_dir = index_dir
        self._lock = FileLock(str(index_dir / LOCK), timeout=timeout)

    def __enter__(self):
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise IndexLocked(str(self.index_dir)) from None
        return self

    def __exit__(self, *exc):
        self._lock.release()


# ---------------------------------------------------------------------------------------------- write

def write(index_dir: Path, data: IndexData) -> Path:
    """Write ``data`` as a new generation and make it current; returns the generation directory.

    The caller holds the BuildLock. Older generations are removed after the swap.
    """
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    name = _next_generation(index_dir)
    tmp = index_dir / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _test_pause("write-start")

    with open(tmp / "docs.jsonl", "w", encoding="utf-8") as f:
        for d in data.docs:
            f.write(json.dumps(_doc_record(d), ensure_ascii=False) + "\n")
    np.save(tmp / "chunks.npy", np.ascontiguousarray(data.chunks, dtype=np.int64), allow_pickle=False)
    np.save(tmp / "sentences.npy", np.ascontiguousarray(data.sentences, dtype=np.int64), allow_pickle=False)
    np.save(tmp / "chunk_vectors.npy", np.ascontiguousarray(data.chunk_vectors, dtype=np.float32), allow_pickle=False)
    np.save(tmp / "sentence_vectors.npy", np.ascontiguousarray(data.sentence_vectors, dtype=np.float32), allow_pickle=False)

    index, kind = make_vector_index(np.ascontiguousarray(data.chunk_vectors, dtype=np.float32), data.dim)
    faiss.write_index(index, str(tmp / "dense.faiss"))
    _test_pause("write-middle")

    import bm25s

    bm25 = bm25s.BM25()
    # An empty-string token keeps bm25s happy on passages with no terms; it never matches a query.
    bm25.index([t or [""] for t in data.passage_tokens] or [[""]], show_progress=False)
    bm25.save(str(tmp / "bm25"), allow_pickle=False, show_progress=False)

    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"id": data.model_id, "dim": data.dim},
        "chunker": data.chunk_settings.to_dict(),
        "tokenizer": TOKENIZER_VERSION,
        "splitter": SPLITTER_VERSION,
        "faiss_index": kind,
        "sources": data.sources,
        "counts": {"documents": len(data.docs), "chunks": int(len(data.chunks)), "sentences": int(len(data.sentences))},
        "documents": {d.doc_id: {"sha256": d.sha256, "path": d.path} for d in data.docs},
        "files": {},
    }
    for p in sorted(tmp.rglob("*")):
        if p.is_file():
            manifest["files"][p.relative_to(tmp).as_posix()] = p.stat().st_size
    _write_json(tmp / "manifest.json", manifest)
    _fsync_tree(tmp)
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
    """Remove every generation but the live one: leftovers of builds that were killed. The caller
    holds the BuildLock. (A reader still using an old generation keeps its open and mapped files.)"""
    try:
        live = current_generation(index_dir).name
    except (IndexNotFound, IndexCorrupt):
        return
    for old in Path(index_dir).iterdir():
        if old.name.startswith("gen-") and old.name != live:
            shutil.rmtree(old, ignore_errors=True)


EXACT_UP_TO = 200_000  # passages; above this an approximate index keeps search fast and memory small


def make_vector_index(vectors: np.ndarray, dim: int):
    """(FAISS index holding ``vectors``, its description for the manifest), chosen by corpus size.

    Up to EXACT_UP_TO passages: exact inner product (IndexFlatIP). Above: an inverted file over
    ~4·√n k-means cells with 8-bit scalar-quantised vectors (a quarter of float32's memory), searched
    with nprobe cells — measured by `rag bench` to keep recall@10 against exact search ≥ 0.95.
    """
    import faiss

    n = len(vectors)
    if n <= EXACT_UP_TO:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        return index, "IndexFlatIP"
    nlist = int(4 * np.sqrt(n))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)]
    index.train(sample)
    index.add(vectors)
    index.nprobe = NPROBE
    return index, f"IndexIVFScalarQuantizer(nlist={nlist}, QT_8bit, nprobe={NPROBE})"


NPROBE = 48


def _doc_record(d: Document) -> dict:
    return {"doc_id": d.doc_id, "title": d.title, "date": d.date, "sha256": d.sha256, "path": d.path,
            "encoding": d.encoding, "blocks": [[b.start, b.end, b.kind, b.section] for b in d.blocks], "text": d.text}


def _next_generation(index_dir: Path) -> str:
    numbers = [int(p.name[4:10]) for p in index_dir.glob("gen-*") if p.name[4:10].isdigit()]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


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


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            _fsync_file(p)
    for p in [root, *[q for q in root.rglob("*") if q.is_dir()]]:
        _fsync_dir(p)


def _test_pause(point: str) -> None:
    """Test hook: with RAG_TEST_PAUSE_AT=<point>, sleep there so a test can SIGKILL the build."""
    if os.environ.get("RAG_TEST_PAUSE_AT") == point:
        print(f"paused at {point}", flush=True)
        time.sleep(float(os.environ.get("RAG_TEST_PAUSE_SECONDS", "30")))


# ---------------------------------------------------------------------------------------------- removals

EXCLUDED = "excluded.json"


def read_excluded(index_dir: Path) -> set[str]:
    """Absolute paths of files a user removed from the index (in the chat page) without deleting them."""
    try:
        return set(json.loads((Path(index_dir) / EXCLUDED).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return set()


def write_excluded(index_dir: Path, paths: set[str]) -> None:
    """Replace the removal list atomically (the caller holds the BuildLock)."""
    index_dir = Path(index_dir)
    tmp = index_dir / f"{EXCLUDED}.tmp"
    tmp.write_text(json.dumps(sorted(paths), indent=1), encoding="utf-8")
    os.replace(tmp, index_dir / EXCLUDED)


# ---------------------------------------------------------------------------------------------- read

def current_generation(index_dir: Path) -> Path:
    """The live generation's directory.

    Raises:
        IndexNotFound: no index has been built there.
        IndexCorrupt: CURRENT names a generation that is missing.
    """
    index_dir = Path(index_dir)
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexNotFound(str(index_dir))
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        raise IndexCorrupt(str(index_dir), "CURRENT is unreadable") from None
    gen = index_dir / name
    if not name.startswith("gen-") or "/" in name or not gen.is_dir():
        raise IndexCorrupt(str(index_dir), f"CURRENT names a missing generation {name!r}")
    return gen


def read_manifest(index_dir: Path) -> tuple[Path, dict]:
    """(generation directory, manifest), checked for format version and file sizes.

    Raises:
        IndexNotFound, IndexCorrupt
    """
    index_dir = Path(index_dir)
    gen = current_generation(index_dir)
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
    for name in _FILES:
        if name not in files:
            raise IndexCorrupt(str(index_dir), f"{name} is missing")
    return gen, manifest


def load(index_dir: str | Path) -> Index:
    """The live generation, checked.

    Raises:
        IndexNotFound: nothing built there.
        IndexCorrupt: a piece is missing, truncated, unparsable or of another format version.
    """
    import bm25s
    import faiss

    index_dir = Path(index_dir)
    gen, manifest = read_manifest(index_dir)
    where = str(index_dir)
    try:
        docs = [_doc_from_record(json.loads(line)) for line in (gen / "docs.jsonl").read_text(encoding="utf-8").splitlines() if line]
        chunks = np.load(gen / "chunks.npy", allow_pickle=False)
        sentences = np.load(gen / "sentences.npy", allow_pickle=False)
        chunk_vectors = np.load(gen / "chunk_vectors.npy", allow_pickle=False, mmap_mode="r")
        sentence_vectors = np.load(gen / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise IndexCorrupt(where, f"cannot read its data ({type(e).__name__})") from None
    try:
        faiss_index = faiss.read_index(str(gen / "dense.faiss"))
    except RuntimeError:
        raise IndexCorrupt(where, "dense.faiss cannot be read") from None
    if hasattr(faiss_index, "nprobe"):
        faiss_index.nprobe = NPROBE
    # One query at a time: OpenMP threads cost more than they save (7.6 ms vs 15-20 ms at 100k x 384).
    faiss.omp_set_num_threads(1)
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
    return Index(gen, manifest, docs, chunks, sentences, chunk_vectors, sentence_vectors, faiss_index, bm25)


def _doc_from_record(r: dict) -> Document:
    return Document(doc_id=r["doc_id"], text=r["text"], sha256=r["sha256"], title=r.get("title"), date=r.get("date"),
                    path=r.get("path"), encoding=r.get("encoding", "utf-8"),
                    blocks=tuple(Block(*b) for b in r.get("blocks", ())))


def previous_vectors(index_dir: Path, model_id: str, chunk_settings: ChunkSettings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """sha256 -> (chunk vectors, sentence vectors) of each document in the current generation, if it
    was built by the same model and chunker; {} when there is nothing reusable."""
    try:
        gen, manifest = read_manifest(index_dir)
    except (IndexNotFound, IndexCorrupt):
        return {}
    if manifest["model"]["id"] != model_id or manifest["chunker"] != chunk_settings.to_dict() \
            or manifest.get("splitter") != SPLITTER_VERSION:
        return {}
    try:
        docs = [json.loads(line) for line in (gen / "docs.jsonl").read_text(encoding="utf-8").splitlines() if line]
        chunks = np.load(gen / "chunks.npy", allow_pickle=False)
        sentences = np.load(gen / "sentences.npy", allow_pickle=False)
        cv = np.load(gen / "chunk_vectors.npy", allow_pickle=False, mmap_mode="r")
        sv = np.load(gen / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError):
        return {}
    # Rows are written document by document, so each document's rows are one contiguous slice.
    c_bounds = np.searchsorted(chunks[:, C_DOC], np.arange(len(docs) + 1)) if len(chunks) else np.zeros(len(docs) + 1, int)
    s_bounds = np.searchsorted(sentences[:, S_DOC], np.arange(len(docs) + 1)) if len(sentences) else np.zeros(len(docs) + 1, int)
    return {d["sha256"]: (np.array(cv[c_bounds[i]:c_bounds[i + 1]]), np.array(sv[s_bounds[i]:s_bounds[i + 1]]))
            for i, d in enumerate(docs)}
