"""The local store's files: write a generation atomically, load it with integrity checks, collect
the old ones. (BM25 is rag.store.sparse, the FAISS choice rag.store.dense, the build lock
rag.store.lock, reuse by the next build rag.store.reuse, the page's removals rag.store.excluded.)

Layout of an index directory::

    CURRENT               name of the live generation; replaced atomically (os.replace)
    .lock                 held while a build writes (rag.store.lock)
    excluded.json         files removed in the chat page (rag.store.excluded)
    gen-000007/           one generation: manifest.json, docs.jsonl, texts.bin, text_offsets.npy, chunks.npy,
                          sentences.npy, chunk_vectors.npy, sentence_vectors.npy, dense.faiss, bm25/,
                          term_counts.npy

A build writes a new generation directory, fsyncs it, then swaps CURRENT, so a reader always sees
either the old index or the new one. The generation before the live one is kept, so a reader that
read CURRENT just before a swap still finds its files. Nothing is pickled: JSON, JSONL, .npy
(allow_pickle=False) and FAISS's own format.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path

import numpy as np

from rag.config import FORMAT_VERSION, ChunkSettings
from rag.errors import IndexCorrupt, IndexNotFound, IndexOutdated
from rag.store.dense import NPROBE, make_vector_index
from rag.store.sparse import TERM_COUNTS, Postings, bm25_index
from rag.text import TOKENIZER_VERSION
from rag.types import Block, Chunk, Document

SPLITTER_VERSION = 7  # = rag.chunk.VERSION, kept here so loading an index does not import pysbd
CURRENT = "CURRENT"
# chunks.npy columns
C_DOC, C_START, C_END, C_SECTION, C_SENT_LO, C_SENT_HI = range(6)
# sentences.npy columns
S_DOC, S_START, S_END, S_SECTION = range(4)
SENTENCE_TERMS_CACHE = 65_536  # sentences whose terms an Index remembers
_FILES = ("docs.jsonl", "chunks.npy", "sentences.npy", "chunk_vectors.npy", "sentence_vectors.npy", "dense.faiss")
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
    embed_keys: tuple[str, ...] = ()  # per document: hash of exactly the texts embedded for it (see previous_vectors)
    split_keys: tuple[str, ...] = ()  # per document: hash of what its rows and terms are made from (see previous_splits)
    model_fingerprint: str | None = None  # the embedder's rag.embed.model_fingerprint, when it has one
    files: dict = field(default_factory=dict)  # doc_id -> rag.ingest.FileStat of the file it was read from


class Texts:
    """Document texts by position: decoded on demand from a memory-mapped texts.bin, the last few
    kept; or, for a generation from before texts.bin, held in memory as they were loaded."""

    def __init__(self, mapped=None, offsets: np.ndarray | None = None, held: list[str] | None = None):
        self._mapped, self._offsets, self._held = mapped, offsets, held
        self._cache: dict[int, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, offsets: np.ndarray) -> "Texts":
        import mmap

        with open(path, "rb") as f:
            # A map outlives its file object, and the file itself after a build removes the
            # generation: this Index keeps reading the texts it loaded.
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
        return cls(mapped=mapped, offsets=offsets)

    def __getitem__(self, i: int) -> str:
        if self._held is not None:
            return self._held[i]
        text = self._cache.get(i)
        if text is None:
            text = self._mapped[int(self._offsets[i]):int(self._offsets[i + 1])].decode("utf-8", "surrogatepass")
            with self._lock:
                if len(self._cache) >= TEXT_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[i] = text
        return text

    def bytes(self, i: int) -> int:
        if self._held is not None:
            return len(self._held[i].encode("utf-8", "surrogatepass"))
        return int(self._offsets[i + 1] - self._offsets[i])


class Index:
    """A loaded generation. Vectors and document texts are memory-mapped; ``docs`` holds each
    document's metadata with an empty ``text`` (``document()`` gives the whole one)."""

    def __init__(self, directory: Path, manifest: dict, docs: list[Document], chunks: np.ndarray,
                 sentences: np.ndarray, chunk_vectors: np.ndarray, sentence_vectors: np.ndarray, faiss_index, bm25,
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
        self.faiss = faiss_index
        self.bm25 = bm25
        self._df = None
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
        if self._df is None:
            indptr = np.asarray(self.bm25.scores["indptr"])
            self._df = np.diff(indptr)
        tid = self.bm25.vocab_dict.get(term)
        n = len(self.chunks)
        df = 0.0 if tid is None else float(self._df[tid])
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))


# ---------------------------------------------------------------------------------------------- write

def write(index_dir: Path, data: IndexData) -> Path:
    """Write ``data`` as a new generation and make it current; returns the generation directory.

    The caller holds the BuildLock. After the swap, generations older than the previous one are removed.
    """
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    name = _next_generation(index_dir)
    tmp = index_dir / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _test_pause("write-start")

    # JSON Lines: records end at "\n" only; text may hold other line separators unescaped (see _read_jsonl).
    offsets = np.zeros(len(data.docs) + 1, dtype=np.int64)
    with open(tmp / "docs.jsonl", "w", encoding="utf-8") as f, open(tmp / TEXTS, "wb") as t:
        for i, d in enumerate(data.docs):
            f.write(json.dumps(_doc_record(d), ensure_ascii=False) + "\n")
            offsets[i + 1] = offsets[i] + t.write(d.text.encode("utf-8", "surrogatepass"))
    np.save(tmp / TEXT_OFFSETS, offsets, allow_pickle=False)
    np.save(tmp / "chunks.npy", np.ascontiguousarray(data.chunks, dtype=np.int64), allow_pickle=False)
    np.save(tmp / "sentences.npy", np.ascontiguousarray(data.sentences, dtype=np.int64), allow_pickle=False)
    np.save(tmp / "chunk_vectors.npy", np.ascontiguousarray(data.chunk_vectors, dtype=np.float32), allow_pickle=False)
    np.save(tmp / "sentence_vectors.npy", np.ascontiguousarray(data.sentence_vectors, dtype=np.float32), allow_pickle=False)

    index, kind = make_vector_index(np.ascontiguousarray(data.chunk_vectors, dtype=np.float32), data.dim)
    faiss.write_index(index, str(tmp / "dense.faiss"))
    _test_pause("write-middle")

    bm25, counts = bm25_index(data.passage_terms, len(data.chunks))
    bm25.save(str(tmp / "bm25"), allow_pickle=False, show_progress=False)
    np.save(tmp / TERM_COUNTS, counts, allow_pickle=False)

    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"id": data.model_id, "dim": data.dim, **({"fingerprint": data.model_fingerprint} if data.model_fingerprint else {})},
        "chunker": data.chunk_settings.to_dict(),
        "tokenizer": TOKENIZER_VERSION,
        "splitter": SPLITTER_VERSION,
        "faiss_index": kind,
        "sources": data.sources,
        "counts": {"documents": len(data.docs), "chunks": int(len(data.chunks)), "sentences": int(len(data.sentences))},
        "documents": {d.doc_id: {"sha256": d.sha256, "path": d.path, "embedded": key, "split": split,
                                 **({"file": list(astuple(data.files[d.doc_id]))} if d.doc_id in data.files else {})}
                      for d, key, split in zip(data.docs, data.embed_keys or [None] * len(data.docs),
                                               data.split_keys or [None] * len(data.docs))},
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


def _doc_record(d: Document) -> dict:
    return {"doc_id": d.doc_id, "title": d.title, "date": d.date, "sha256": d.sha256, "path": d.path,
            "encoding": d.encoding, "blocks": [[b.start, b.end, b.kind, b.section] for b in d.blocks], "chars": len(d.text),
            "url": d.url, "author": d.author, "site": d.site, "pages": list(d.pages)}


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
    for name in _FILES:
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
    import bm25s
    import faiss

    gen, manifest = read_manifest(index_dir, gen)
    where = str(index_dir)
    # BM25 terms and sentence rows were made by these: another version would silently mis-score.
    for key, what, version in (("tokenizer", "tokenizer", TOKENIZER_VERSION),
                               ("splitter", "sentence splitter", SPLITTER_VERSION)):
        if manifest.get(key) != version:
            raise IndexOutdated(where, f"{what} version {manifest.get(key, 'unknown')}", f"version {version}")
    try:
        docs, texts, chars = read_documents(gen)
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
    return Index(gen, manifest, docs, chunks, sentences, chunk_vectors, sentence_vectors, faiss_index, bm25, texts, chars)


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


