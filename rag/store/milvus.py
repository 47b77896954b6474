"""A store in Milvus, through pymilvus: a cluster (``milvus://HOST:19530/NAME``) or the embedded engine
(``milvus-lite:PATH.db``), with the same calls.

Five collections named ``NAME_*`` hold passages (text, BM25 terms, dense vector, and a sparse vector
the engine fills with its BM25 function), sentences (text, offsets, neighbours, dense vector), document
texts (in parts: a VARCHAR holds at most 64 KB), the catalog of documents, and the manifest. Any number
of `rag serve` replicas can read one library: nothing is held in the serving process but caches.

What the engine guarantees, and how the store uses it: each insert or delete is atomic within one
collection, and reads are "Strong" (they see every write acknowledged before them); there are no
transactions across collections. So a document's rows are written under a new ``version`` first,
and its catalog row last: the catalog row is the commit. Readers ignore rows whose (document,
version) the catalog does not list, and a build deletes such rows, so a build killed half way leaves
the library as it was (plus invisible rows the next build removes).
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Sequence

import numpy as np

from rag.errors import RagError, StoreMismatch, StoreMissing, StoreUnreachable  # noqa: F401 (re-exported)
from rag.store.base import DocInfo, Ranked, SentenceRecord
from rag.types import Chunk, Document

TEXT_PART = 16_000  # characters of document text per row: at most 64,000 bytes of UTF-8, under VARCHAR's 65,535
MAX_VARCHAR = 65_535
WRITE_BATCH = 1000  # rows per upsert
COLLECT_BATCH = 200  # documents committed, and collected, per call
DUMMY_DIM = 2  # Milvus needs a vector field in every collection; the catalog, texts and manifest carry a dummy
CACHE = 65_536  # sentences and passages remembered per store
SUFFIXES = ("passages", "sentences", "texts", "documents", "meta")
CONSISTENCY = "Strong"


def parse(spec: str) -> tuple[str, str]:
    """``milvus://HOST:PORT/NAME`` -> ("http://HOST:PORT", NAME); ``milvus-lite:PATH`` -> (PATH, "rag").

    Raises:
        RagError: anything else.
    """
    if spec.startswith("milvus://"):
        rest = spec[len("milvus://"):]
        host, _, name = rest.partition("/")
        if not host or not name or not name.replace("_", "").isalnum():
            raise RagError(f"--store {spec}: write milvus://HOST:19530/COLLECTION (a name of letters, digits and _)")
        return f"http://{host}", name
    if spec.startswith("milvus-lite:"):
        path = spec[len("milvus-lite:"):]
        if not path.endswith(".db"):
            raise RagError(f"--store {spec}: the embedded engine's file must end in .db, e.g. milvus-lite:.rag/milvus.db")
        return path, "rag"
    raise RagError(f"--store {spec}: use local, milvus://HOST:19530/COLLECTION or milvus-lite:PATH.db")


def _id(*parts) -> int:
    """A stable positive int64 id for a row: the same document version and position, the same id."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _connect(uri: str, where: str):
    import os

    # grpc's C core prints keep-alive chatter from long sessions with milvus-lite on stderr; failures
    # still reach us as exceptions.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from pymilvus import MilvusClient

    # After the import, which configures pymilvus's logging: its iterator warns on every use with milvus-lite.
    logging.getLogger("pymilvus").setLevel(logging.ERROR)

    try:
        if uri.startswith("http"):
            return MilvusClient(uri=uri, timeout=10)
        from pathlib import Path

        Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        # milvus-lite serves pymilvus in this process and logs every call it lacks (the iterator asks
        # for a timestamp, then falls back) as a server error, and a failed start with a traceback;
        # the store reports failures itself, in one line.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
        return MilvusClient(uri)
    except Exception as e:  # pymilvus raises its own and grpc's errors
        problem = " ".join(str(e).split())[:200]
        if not uri.startswith("http") and _locked_elsewhere(uri):
            # several processes need a Milvus server
            problem = "another process has this milvus-lite file open; milvus-lite serves one process at a time"
        raise StoreUnreachable(where, problem) from None


def _locked_elsewhere(path: str) -> bool:
    """Whether another process holds milvus-lite's lock on the data directory ``path``."""
    import fcntl
    import os

    from milvus_lite.db import LOCK_FILENAME

    lock = os.path.join(os.path.abspath(path), LOCK_FILENAME)
    if not os.path.exists(lock):
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class MilvusStore:
    kind = "milvus"

    def __init__(self, spec: str, client=None):
        self.spec = spec
        uri, self.name = parse(spec)
        self.client = client or _connect(uri, spec)
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._load()

    # ------------------------------------------------------------------------------------ state

    def _c(self, suffix: str) -> str:
        return f"{self.name}_{suffix}"

    def exists(self) -> bool:
        try:
            return all(self.client.has_collection(self._c(s)) for s in SUFFIXES)
        except Exception as e:
            raise StoreUnreachable(self.spec, " ".join(str(e).split())[:200]) from None

    def _load(self) -> None:
        """Read the manifest and the catalog (never the texts or vectors)."""
        if not self.exists():
            self._manifest, self._infos, self._versions = {}, {}, {}
            self._stamp = None
            return
        try:  # a collection starts "released" in a new process: searches need it loaded
            for suffix in SUFFIXES:
                self.client.load_collection(self._c(suffix))
        except Exception as e:
            raise StoreUnreachable(self.spec, " ".join(str(e).split())[:200]) from None
        rows = self.client.get(self._c("meta"), ids=["manifest"], output_fields=["value"])
        manifest = json.loads(rows[0]["value"]) if rows else {}
        docs = self._all("documents", 'doc_id != ""', ["doc_id", "version", "info"])
        infos, versions = {}, {}
        for r in docs:
            infos[r["doc_id"]] = DocInfo(**json.loads(r["info"]))
            versions[r["doc_id"]] = r["version"]
        with self._lock:
            self._manifest = manifest
            self._infos = dict(sorted(infos.items()))
            self._versions = versions
            self._stamp = manifest.get("stamp")
            self._sentences: dict[int, SentenceRecord] = {}
            self._passages: dict[int, tuple[Chunk, tuple[int, ...]]] = {}
            self._df_cache: dict[str, int] = {}  # term -> passages holding it

    def _all(self, suffix: str, expr: str, fields: list[str]) -> list[dict]:
        """Every row matching ``expr``, read in batches (a plain query stops at 16,384 rows)."""
        it = self.client.query_iterator(self._c(suffix), batch_size=1000, filter=expr, output_fields=fields,
                                        consistency_level=CONSISTENCY)
        out: list[dict] = []
        try:
            while batch := it.next():
                out.extend(batch)
        finally:
            it.close()
        return out

    def outdated(self) -> bool:
        """True when another process changed the library since this store read its catalog."""
        try:
            rows = self.client.get(self._c("meta"), ids=["manifest"], output_fields=["value"])
        except Exception:
            return False
        stamp = json.loads(rows[0]["value"]).get("stamp") if rows else None
        return stamp != self._stamp

    def refresh(self) -> None:
        self._load()

    def close(self) -> None:
        """Release the connection (for milvus-lite, the file, so another process can open it)."""
        try:
            self.client.close()
        except Exception:  # already closed, or the engine went away: nothing left to release
            pass

    def check(self, model_id: str | None = None) -> "MilvusStore":
        """Raises StoreMissing or StoreMismatch unless the store holds a library this code can read
        (and, given ``model_id``, one embedded by that model)."""
        from rag.config import FORMAT_VERSION
        from rag.store.generations import SPLITTER_VERSION
        from rag.text import TOKENIZER_VERSION

        m = self._manifest
        if not m:
            raise StoreMissing(self.spec)
        if m.get("format_version") != FORMAT_VERSION:
            raise StoreMismatch(self.spec, f"in format {m.get('format_version')}, this version reads format {FORMAT_VERSION}")
        if m.get("tokenizer") != TOKENIZER_VERSION or m.get("splitter") != SPLITTER_VERSION:
            raise StoreMismatch(self.spec, "split or tokenised by another version of rag")
        if model_id is not None and m["model"]["id"] != model_id:
            raise StoreMismatch(self.spec, f"embedded with {m['model']['id']}, not {model_id}")
        return self

    @property
    def model_id(self) -> str:
        return self._manifest["model"]["id"]

    def __len__(self) -> int:
        return int(self._manifest.get("counts", {}).get("chunks", 0))

    def manifest(self) -> dict:
        return self._manifest

    def health(self) -> dict:
        try:
            ok = self.exists()
        except RagError as e:
            return {"ok": False, "store": self.kind, "location": self.spec, "error": str(e)}
        return {"ok": ok, "store": self.kind, "location": self.spec, "documents": len(self._infos), "passages": len(self)}

    # ------------------------------------------------------------------------------------ reading

    def catalog(self) -> list[DocInfo]:
        return list(self._infos.values())

    def info(self, doc_id: str) -> DocInfo | None:
        return self._infos.get(doc_id)

    def document(self, doc_id: str) -> Document | None:
        info = self._infos.get(doc_id) if isinstance(doc_id, str) else None
        if info is None:
            return None
        version = self._versions[doc_id]
        rows = self.client.query(self._c("texts"), filter=f"doc_id == {_quote(doc_id)} and version == {_quote(version)}",
                                 output_fields=["part", "text"], consistency_level=CONSISTENCY)
        text = "".join(r["text"] for r in sorted(rows, key=lambda r: r["part"]))
        return Document(doc_id, text, info.sha256, info.title, info.date, info.path, info.encoding, url=info.url,
                        author=info.author, site=info.site, pages=tuple(info.pages))

    def _visible(self, doc_id: str, version: str) -> bool:
        return self._versions.get(doc_id) == version

    def passage(self, pid: int) -> Chunk:
        return self._passage(pid)[0]

    def passages(self, pids: Sequence[int]) -> list[Chunk]:
        self._fetch_passages(pids)
        return [self._passage(p)[0] for p in pids]

    def passage_sentences(self, pid: int) -> Sequence[int]:
        return self._passage(pid)[1]

    def _passage(self, pid: int) -> tuple[Chunk, tuple[int, ...]]:
        got = self._passages.get(pid)
        if got is None:
            self._fetch_passages([pid])
            got = self._passages[pid]
        return got

    def _fetch_passages(self, pids: Sequence[int]) -> None:
        missing = [p for p in pids if p not in self._passages]
        if not missing:
            return
        rows = self.client.get(self._c("passages"), ids=missing, output_fields=[
            "pid", "doc_id", "version", "start", "end", "section", "sent_lo", "sent_hi", "text"])
        from rag.chunk import chunk_id

        for r in rows:
            info = self._infos.get(r["doc_id"])
            chunk = Chunk(chunk_id(r["doc_id"], r["start"], r["text"]), r["doc_id"], r["text"], r["start"], r["end"],
                          r["section"], r["pid"], info.encoding if info else "utf-8")
            sids = tuple(_id(r["doc_id"], r["version"], "s", o) for o in range(r["sent_lo"], r["sent_hi"]))
            self._remember(self._passages, r["pid"], (chunk, sids))

    def sentence(self, sid: int) -> SentenceRecord:
        rec = self._sentences.get(sid)
        if rec is None:
            self._fetch_sentences([sid])
            rec = self._sentences[sid]
        return rec

    def sentences(self, sids: Sequence[int]) -> list[SentenceRecord]:
        self._fetch_sentences(sids)
        return [self.sentence(s) for s in sids]

    def _fetch_sentences(self, sids: Sequence[int]) -> None:
        from rag.text import tokenize

        missing = [s for s in sids if s not in self._sentences]
        if not missing:
            return
        rows = self.client.get(self._c("sentences"), ids=missing, output_fields=[
            "sid", "doc_id", "start", "end", "section", "prev", "next", "lead", "text"])
        for r in rows:
            rec = SentenceRecord(r["sid"], r["doc_id"], r["start"], r["end"], r["section"], r["text"],
                                 frozenset(tokenize(r["text"])), r["prev"] if r["prev"] >= 0 else None,
                                 r["next"] if r["next"] >= 0 else None, bool(r["lead"]))
            self._remember(self._sentences, r["sid"], rec)

    def _remember(self, cache: dict, key, value) -> None:
        with self._lock:
            if len(cache) >= CACHE:
                cache.pop(next(iter(cache)))
            cache[key] = value

    def sentence_vectors(self, sids: Sequence[int]) -> np.ndarray:
        ids = [int(s) for s in sids]
        if not ids:
            return np.zeros((0, self._manifest["model"]["dim"]), np.float32)
        rows = self.client.get(self._c("sentences"), ids=ids, output_fields=["sid", "dense"])
        by_id = {r["sid"]: r["dense"] for r in rows}
        return np.array([by_id[i] for i in ids], dtype=np.float32)

    def idf(self, term: str) -> float:
        n, df = len(self), float(self._df(term))
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    def knows(self, term: str) -> bool:
        return self._df(term) > 0

    def _df(self, term: str) -> int:
        """Passages holding ``term``: one count per term, remembered (a question asks idf and knows of each)."""
        got = self._df_cache.get(term)
        if got is None:
            got = self._count(f"TEXT_MATCH(terms, {_quote(term)})") if term.strip() else 0
            self._remember(self._df_cache, term, got)
        return got

    def _count(self, expr: str) -> int:
        rows = self.client.query(self._c("passages"), filter=expr, output_fields=["count(*)"],
                                 consistency_level=CONSISTENCY)
        return int(rows[0]["count(*)"]) if rows else 0

    # ------------------------------------------------------------------------------------ searching

    def dense(self, vector: np.ndarray, k: int) -> Ranked:
        return self._search("dense", [np.asarray(vector, np.float32).tolist()], k, {"metric_type": "IP"}, sign=1.0)

    def sparse(self, terms: Sequence[str], k: int) -> Ranked:
        if not any(t.strip() for t in terms):
            return []
        # The engine's BM25 reads the same rag.text terms the local store indexes (see write()).
        return self._search("sparse", [" ".join(terms)], k, {"metric_type": "BM25"}, sign=-1.0)

    def _search(self, field: str, data, k: int, params: dict, sign: float) -> Ranked:
        k = min(k, len(self))
        if k <= 0:
            return []
        found = self.client.search(self._c("passages"), data=data, anns_field=field, limit=k + 16, search_params=params,
                                   output_fields=["doc_id", "version", "start"], consistency_level=CONSISTENCY)[0]
        hits = [(int(h["pid"]), float(h["distance"]), h["entity"]["doc_id"], h["entity"]["start"]) for h in found
                if self._visible(h["entity"]["doc_id"], h["entity"]["version"])]
        # milvus-lite reports BM25 as a negated distance; a cluster as a positive score
        if field == "sparse" and hits and all(v <= 0 for _, v, _, _ in hits):
            hits = [(i, -v, d, s) for i, v, d, s in hits]
        # Ties in reading order (document, then position), as the local store breaks them.
        out = sorted(hits, key=lambda x: (-x[1], x[2], x[3]))[:k]
        return [(i, v) for i, v, _, _ in out if field == "dense" or v > 0]

    # ------------------------------------------------------------------------------------ writing

    def create(self, dim: int) -> None:
        """Make the collections (an existing library of this name is dropped first)."""
        from pymilvus import DataType, Function, FunctionType

        for s in SUFFIXES:
            if self.client.has_collection(self._c(s)):
                self.client.drop_collection(self._c(s))
        c = self.client

        def collection(suffix, fields, vector_dim, extra=None, functions=()):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            for name, dtype, kw in fields:
                schema.add_field(name, dtype, **kw)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=vector_dim)
            for f in functions:
                schema.add_function(f)
            index = c.prepare_index_params()
            index.add_index("dense", index_type="FLAT", metric_type="IP")
            for name, kind, metric, params in extra or ():
                index.add_index(name, index_type=kind, metric_type=metric, params=params)
            c.create_collection(self._c(suffix), schema=schema, index_params=index, consistency_level=CONSISTENCY)

        V, I64 = DataType.VARCHAR, DataType.INT64
        common = [("doc_id", V, {"max_length": 1024}), ("version", V, {"max_length": 64})]
        collection("passages", [("pid", I64, {"is_primary": True}), *common, ("start", I64, {}), ("end", I64, {}),
                                ("section", I64, {}), ("sent_lo", I64, {}), ("sent_hi", I64, {}),
                                ("text", V, {"max_length": MAX_VARCHAR}),
                                ("terms", V, {"max_length": MAX_VARCHAR, "enable_analyzer": True, "enable_match": True,
                                              "analyzer_params": {"tokenizer": "standard"}}),
                                ("sparse", DataType.SPARSE_FLOAT_VECTOR, {})], dim,
                   extra=[("sparse", "SPARSE_INVERTED_INDEX", "BM25", {"bm25_k1": 1.5, "bm25_b": 0.75})],
                   functions=[Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                       output_field_names=["sparse"])])
        collection("sentences", [("sid", I64, {"is_primary": True}), *common, ("start", I64, {}), ("end", I64, {}),
                                 ("section", I64, {}), ("prev", I64, {}), ("next", I64, {}), ("lead", DataType.BOOL, {}),
                                 ("text", V, {"max_length": MAX_VARCHAR})], dim)
        collection("texts", [("tid", I64, {"is_primary": True}), *common, ("part", I64, {}),
                             ("text", V, {"max_length": MAX_VARCHAR})], DUMMY_DIM)
        collection("documents", [("doc_id", V, {"max_length": 1024, "is_primary": True}), ("version", V, {"max_length": 64}),
                                 ("info", V, {"max_length": MAX_VARCHAR})], DUMMY_DIM)
        collection("meta", [("key", V, {"max_length": 64, "is_primary": True}), ("value", V, {"max_length": MAX_VARCHAR})],
                   DUMMY_DIM)

    def versions(self) -> dict[str, str]:
        """doc_id -> version of what the catalog lists now."""
        return dict(self._versions)

    def write(self, data, versions: dict[str, str], manifest: dict) -> None:
        """Make the library hold exactly the documents of ``versions`` (doc_id -> version). ``data``
        (a rag.store.generations.IndexData) holds the rows of every document whose version is not stored yet;
        documents already stored under their version are kept as they are. ``manifest`` is recorded
        last. The caller holds the build lock of this store."""
        from rag.store.generations import C_DOC, C_END, C_SECTION, C_SENT_HI, C_SENT_LO, C_START, S_DOC, S_END, S_SECTION, S_START

        c = self.client
        dummy = [0.0] * DUMMY_DIM
        terms = _passage_terms(data)
        sentence_rows, chunk_rows = np.asarray(data.sentences), np.asarray(data.chunks)
        # Rows come document by document: each document's rows are one slice.
        s_bounds = np.searchsorted(sentence_rows[:, S_DOC], np.arange(len(data.docs) + 1)) if len(sentence_rows) \
            else np.zeros(len(data.docs) + 1, int)
        c_bounds = np.searchsorted(chunk_rows[:, C_DOC], np.arange(len(data.docs) + 1)) if len(chunk_rows) \
            else np.zeros(len(data.docs) + 1, int)
        pending: dict[str, list[dict]] = {"sentences": [], "passages": [], "texts": []}
        commits: list[dict] = []

        def flush() -> None:
            for suffix, rows in pending.items():
                for at in range(0, len(rows), WRITE_BATCH):
                    c.upsert(self._c(suffix), rows[at:at + WRITE_BATCH])
                rows.clear()
            # The commit of these documents: from here readers see their new rows and stop seeing the
            # old. A build killed before it leaves rows no catalog entry points at (see _collect).
            if commits:
                c.upsert(self._c("documents"), commits)
            commits.clear()

        for d_i, doc in enumerate(data.docs):
            version = versions[doc.doc_id]
            s_lo, s_hi = int(s_bounds[d_i]), int(s_bounds[d_i + 1])
            for o, i in enumerate(range(s_lo, s_hi)):
                start, end, section = (int(sentence_rows[i, x]) for x in (S_START, S_END, S_SECTION))

                def beside(j: int) -> int:
                    ok = s_lo <= j < s_hi and int(sentence_rows[j, S_SECTION]) == section
                    return _id(doc.doc_id, version, "s", j - s_lo) if ok else -1

                pending["sentences"].append({
                    "sid": _id(doc.doc_id, version, "s", o), "doc_id": doc.doc_id, "version": version,
                    "start": start, "end": end, "section": section, "prev": beside(i - 1), "next": beside(i + 1),
                    "lead": o == 0, "text": doc.text[start:end], "dense": np.asarray(data.sentence_vectors[i], np.float32).tolist()})
            for o, i in enumerate(range(int(c_bounds[d_i]), int(c_bounds[d_i + 1]))):
                row = chunk_rows[i]
                start, end = int(row[C_START]), int(row[C_END])
                pending["passages"].append({
                    "pid": _id(doc.doc_id, version, "p", o), "doc_id": doc.doc_id, "version": version,
                    "start": start, "end": end, "section": int(row[C_SECTION]),
                    "sent_lo": int(row[C_SENT_LO]) - s_lo, "sent_hi": int(row[C_SENT_HI]) - s_lo,
                    "text": doc.text[start:end], "terms": " ".join(terms[i]) or "",
                    "dense": np.asarray(data.chunk_vectors[i], np.float32).tolist()})
            pending["texts"] += [{"tid": _id(doc.doc_id, version, "t", n), "doc_id": doc.doc_id, "version": version,
                                  "part": n, "text": doc.text[at:at + TEXT_PART], "dense": dummy}
                                 for n, at in enumerate(range(0, max(len(doc.text), 1), TEXT_PART))]
            info = DocInfo(doc.doc_id, doc.title, doc.date, doc.path, doc.encoding, doc.sha256, len(doc.text),
                           len(doc.text.encode("utf-8", "surrogatepass")), int(c_bounds[d_i + 1] - c_bounds[d_i]),
                           doc.url, doc.author, doc.site, doc.pages)
            commits.append({"doc_id": doc.doc_id, "version": version,
                            "info": json.dumps(info.__dict__, ensure_ascii=False), "dense": dummy})
            if sum(len(rows) for rows in pending.values()) >= WRITE_BATCH or len(commits) >= COLLECT_BATCH:
                flush()
        flush()
        written = {doc.doc_id: int(c_bounds[d_i + 1] - c_bounds[d_i]) for d_i, doc in enumerate(data.docs)}
        passages = sum(written.get(d, self._infos[d].passages if d in self._infos else 0) for d in versions)
        manifest = {**manifest, "counts": {"documents": len(versions), "chunks": passages}}
        gone = [d for d in self._versions if d not in versions]
        if gone:
            c.delete(self._c("documents"), filter=f"doc_id in {json.dumps(gone, ensure_ascii=False)}")
        self._versions = dict(versions)
        self._collect([d.doc_id for d in data.docs] + gone)
        manifest = {**manifest, "stamp": f"{time.time_ns()}"}
        c.upsert(self._c("meta"), [{"key": "manifest", "value": json.dumps(manifest, ensure_ascii=False), "dense": dummy}])
        self._load()

    def _collect(self, doc_ids: list[str]) -> None:
        """Delete the rows of ``doc_ids`` the catalog does not list: older versions, removed documents,
        and what a killed build left of them (the next build of the same documents removes it).

        One delete per collection for every COLLECT_BATCH documents: a delete is a scan of the
        collection, so one per document made building a library of thousands take minutes."""
        for lo in range(0, len(doc_ids), COLLECT_BATCH):
            group = doc_ids[lo:lo + COLLECT_BATCH]
            keep = sorted({self._versions[d] for d in group if d in self._versions})
            # Every listed row survives. A document's old rows whose version another document of the
            # group lists now (the same content under two names) survive too, unseen: reads go through
            # the catalog's version of each document.
            expr = f"doc_id in {json.dumps(group, ensure_ascii=False)}"
            if keep:
                expr += f" and version not in {json.dumps(keep)}"
            for suffix in ("sentences", "passages", "texts"):
                self.client.delete(self._c(suffix), filter=expr)


def _passage_terms(data) -> list[list[str]]:
    """Each passage's BM25 terms, with repeats, from the build's postings."""
    out: list[list[str]] = [[] for _ in range(len(data.chunks))]
    p = data.passage_terms
    for t, row, tf in zip(np.asarray(p.term).tolist(), np.asarray(p.passage).tolist(), np.asarray(p.tf).tolist()):
        word = p.vocab[t]
        if word:
            out[row].extend([word] * tf)
    return out
