"""Speed and scale benchmarks (`rag bench`). Not tests: nothing here asserts a time.

Every goal is a ratio measured in the same run (absolute times drift on shared machines), each figure
a median over repeated runs after a warm-up. Writes bench.json and bench.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
QUESTIONS = ROOT / "evals" / "questions.jsonl"
GOALS = {"query_p50_over_torch_encode": 1.0, "build_over_encode": 1.2, "help_s": 0.3, "ask_s": 3.0, "serve_s": 6.0,
         "scale_1m_p95_ms": 20.0, "scale_1m_ram_gb": 2.0, "scale_recall10": 0.95, "library_add_overhead_s": 1.0}


def machine() -> dict:
    import faiss
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "faiss_threads": faiss.omp_get_max_threads(), "python": platform.python_version(),
            "platform": platform.platform()}


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def _p95_ms(xs: list[float]) -> float:
    return float(np.percentile(xs, 95)) * 1e3


# ------------------------------------------------------------------------------------------ 1. latency

def bench_latency(index_dir: Path, repeats: int = 3, limit: int | None = None) -> dict:
    """Assistant.ask against the floor: encoding the same question once, in the same process."""
    from evals.formats import load_jsonl
    from rag.pipeline import Assistant

    loaded = Assistant.load(index_dir)
    # No query-vector cache: every ask pays for its encode, as a new question would.
    assistant = Assistant(loaded.store, loaded.embedder, loaded.settings, query_cache=0)
    questions = [q.question for q in load_jsonl(QUESTIONS)][:limit]
    for q in questions[:5]:  # warm-up: model, BM25 caches, allocator
        assistant.ask(q)
        assistant.embedder.embed_query(q)
    encode, ask = [], []
    for _ in range(repeats):
        for q in questions:
            t = time.perf_counter()
            assistant.embedder.embed_query(q)
            encode.append(time.perf_counter() - t)
            t = time.perf_counter()
            assistant.ask(q)
            ask.append(time.perf_counter() - t)
    floor = _median_ms(encode)
    # The goal of the answer model (issue 10): a whole answer costs at most one torch encode of the
    # question, which is what every peer pays before answering anything.
    from rag.embed import SentenceTransformerEmbedder

    torch_embedder = SentenceTransformerEmbedder()
    for q in questions[:5]:
        torch_embedder.embed_query(q)
    torch_encode = []
    for q in questions:
        t = time.perf_counter()
        torch_embedder.embed_query(q)
        torch_encode.append(time.perf_counter() - t)
    torch_floor = _median_ms(torch_encode)
    return {"questions": len(questions), "repeats": repeats, "encode_p50_ms": floor, "ask_p50_ms": _median_ms(ask),
            "ask_p95_ms": _p95_ms(ask), "query_p50_over_encode": _median_ms(ask) / floor,
            "query_p95_over_encode": _p95_ms(ask) / floor, "torch_encode_p50_ms": torch_floor,
            "query_p50_over_torch_encode": _median_ms(ask) / torch_floor}


# ------------------------------------------------------------------------------------------ 2. build

def bench_build(copies: int = 4) -> dict:
    """Indexing a corpus (the seeds, ``copies`` times under other names) against encoding every text
    it embeds — passages and, for answering, every sentence — in one call, with the same warm model:
    the one builds use (see rag.embed.indexing_embedder). That encode is also timed with torch."""
    from rag import chunk as chunking
    from rag.config import ChunkSettings, default_cache_dir
    from rag.embed import SentenceTransformerEmbedder, cpu_threads, indexing_embedder
    from rag.ingest import ingest
    from rag.pipeline import build

    embedder = indexing_embedder(default_cache_dir())  # exported by run()'s first build: nothing to wait for
    embedder.embed_documents(["warm up the model"] * 8)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for c in range(copies):
            for p in sorted(SEEDS.glob("*.txt")):
                (corpus / f"copy{c}-{p.name}").write_bytes(p.read_bytes() + f"\n\nCopy {c}.\n".encode())
        cs = ChunkSettings()
        passages, sentences = [], []
        for doc in ingest([corpus]).documents:
            parts = chunking.split(doc, cs)
            passages += [chunking.passage_text(chunking.passage_context(doc, c.section), c.text, cs) for c in parts.chunks]
            sentences += [doc.text[s.start:s.end] for s in parts.sentences]
        t = time.perf_counter()
        embedder.embed_documents(passages)
        passages_s = time.perf_counter() - t
        t = time.perf_counter()
        embedder.embed_documents(passages + sentences)
        encode_s = time.perf_counter() - t
        t = time.perf_counter()
        report = build([corpus], Path(tmp) / "idx", embedder=embedder)
        build_s = time.perf_counter() - t
    torch_embedder = SentenceTransformerEmbedder(threads=cpu_threads())
    torch_embedder.embed_documents(["warm up the model"] * 8)
    t = time.perf_counter()
    torch_embedder.embed_documents(passages + sentences)
    torch_s = time.perf_counter() - t
    texts = len(passages) + len(sentences)
    return {"documents": report.documents, "passages": len(passages), "sentences": len(sentences),
            "embedder": Path(getattr(embedder, "onnx_path", "sentence-transformers")).name,
            "encode_passages_s": passages_s, "encode_all_s": encode_s, "build_s": build_s,
            "build_over_encode": build_s / encode_s, "build_over_passage_encode": build_s / passages_s,
            "texts_per_s": texts / encode_s, "torch_texts_per_s": texts / torch_s,
            "note": "sentence embeddings are computed at index time for answering and counted in the encode baseline"}


# ------------------------------------------------------------------------------------------ 3. start-up

def _rag(*args: str, env: dict | None = None) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, check=True,
                   env={**os.environ, **(env or {})}, timeout=300)
    return time.perf_counter() - t


def bench_startup(index_dir: Path, runs: int = 3) -> dict:
    helps = [_rag("--help") for _ in range(runs)]
    asks = [_rag("ask", "Where is iFlytek based?", "--index-dir", str(index_dir)) for _ in range(max(1, runs - 1))]
    return {"help_s": statistics.median(helps), "ask_s": statistics.median(asks), "serve_s": _serve_ready(index_dir)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(index_dir: Path) -> tuple[subprocess.Popen, str, float]:
    """(process, url, seconds until the ask API answered)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(index_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    body = json.dumps({"data": ["Where is iFlytek based?"]}).encode()
    while True:
        try:
            req = urllib.request.Request(url + "gradio_api/call/ask", data=body, headers={"Content-Type": "application/json"})
            event = json.loads(urllib.request.urlopen(req, timeout=5).read())["event_id"]
            urllib.request.urlopen(f"{url}gradio_api/call/ask/{event}", timeout=30).read()
            return proc, url, time.perf_counter() - t
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t > 120:
                proc.kill()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.05)


def _serve_ready(index_dir: Path) -> float:
    proc, _, seconds = _start_server(index_dir)
    proc.terminate()
    proc.wait(timeout=20)
    return seconds


# ------------------------------------------------------------------------------------------ 5. load

# (endpoint, concurrent callers, questions): the page's Gradio `ask`, then the HTTP API's /api/ask
THROUGHPUT_LEVELS = (("gradio", 1, 48), ("gradio", 4, 48), ("gradio", 16, 48), ("gradio", 32, 256),
                     ("api", 1, 256), ("api", 16, 512))
QUICK_THROUGHPUT_LEVELS = (("gradio", 1, 8), ("gradio", 4, 8), ("api", 16, 32))
MISMATCH_LOG = "throughput-mismatches.jsonl"


def _level(target: str, clients: int) -> str:
    return str(clients) if target == "gradio" else f"{target}-{clients}"


def bench_throughput(index_dir: Path, out_dir: Path, levels=THROUGHPUT_LEVELS) -> dict:
    """Questions per second answered by a running server at each level of concurrent callers, keyed
    "16" (Gradio) or "api-16" (evals/load.py, which also checks every answer against a sequential one).
    Each error and each answer differing from the sequential one goes, in full, to
    ``out_dir/throughput-mismatches.jsonl``."""
    from evals.load import run as load

    log = out_dir / MISMATCH_LOG
    log.write_text("", encoding="utf-8")
    proc, url, _ = _start_server(index_dir)
    try:
        return {_level(target, clients): load(url, clients=clients, count=count, log=log, target=target)
                for target, clients, count in levels}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ------------------------------------------------------------------------------------------ 4. scale

def bench_scale(sizes: list[int]) -> list[dict]:
    """Synthetic corpora; each size is built and then queried in fresh processes, so resident memory
    is that of a process serving the index, not of the one that generated it."""
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            built = _child("scale-build", str(n), tmp)
            queried = _child("scale-query", str(n), tmp)
            results.append({"passages": n, **built, **queried})
    return results


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "evals.bench", *args], capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 1)})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


DIM, CLUSTERS, VOCAB, TERMS = 384, 2048, 30_000, 24


def _vectors(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 2,048 random topics (real embeddings cluster by topic; uniform random
    vectors in 384 dimensions have no near neighbours to find)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).standard_normal((CLUSTERS, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x = centers[rng.integers(0, CLUSTERS, hi - lo)] + 0.06 * rng.standard_normal((hi - lo, DIM)).astype(np.float32)
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _scale_build(n: int, where: Path) -> dict:
    import bm25s
    import faiss

    from rag.store.dense import make_vector_index

    t0 = time.perf_counter()
    vecs = _vectors(n, seed=1)
    rng = np.random.default_rng(2)
    # Zipf-distributed term ids stand in for generated text on the BM25 side.
    ids = (rng.zipf(1.2, size=(n, TERMS)) % VOCAB).astype(np.int32)
    gen_s = time.perf_counter() - t0
    t = time.perf_counter()
    index, kind = make_vector_index(vecs, DIM)
    faiss_s = time.perf_counter() - t
    faiss.write_index(index, str(where / "dense.faiss"))
    t = time.perf_counter()
    bm25 = bm25s.BM25()
    vocab = {f"w{i}": i for i in range(VOCAB)}
    bm25.index(bm25s.tokenization.Tokenized(ids=ids.tolist(), vocab=vocab), show_progress=False)
    bm25_s = time.perf_counter() - t
    bm25.save(str(where / "bm25"), allow_pickle=False, show_progress=False)
    queries = _vectors(200, seed=3)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vecs)
    _, truth = exact.search(queries, 10)
    np.save(where / "truth.npy", truth, allow_pickle=False)
    size = sum(p.stat().st_size for p in where.rglob("*") if p.is_file() and p.name != "truth.npy")
    return {"faiss_index": kind, "generate_s": gen_s, "build_faiss_s": faiss_s, "build_bm25_s": bm25_s,
            "build_s": faiss_s + bm25_s, "disk_mb": size / 2**20,
            "vectors": "synthetic unit vectors around 2,048 random topics; BM25 over Zipf-distributed term ids"}


def _scale_query(n: int, where: Path) -> dict:
    import bm25s
    import faiss

    from rag.config import Settings
    from rag.store.dense import NPROBE
    from rag.retrieve import fuse

    faiss.omp_set_num_threads(1)
    index = faiss.read_index(str(where / "dense.faiss"))
    if hasattr(index, "nprobe"):
        index.nprobe = NPROBE
    bm25 = bm25s.BM25.load(str(where / "bm25"), mmap=True, allow_pickle=False, show_progress=False)
    truth = np.load(where / "truth.npy")
    queries = _vectors(200, seed=3)
    rng = np.random.default_rng(4)
    settings = Settings()
    latencies, recalls = [], []
    for i, q in enumerate(queries):
        terms = [f"w{t}" for t in rng.integers(5, 3000, 3)]
        t = time.perf_counter()
        scores, rows = index.search(q[None], settings.candidates)
        dense = [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
        ids = [bm25.vocab_dict[w] for w in terms if w in bm25.vocab_dict]
        sparse_scores = bm25.get_scores(ids)
        top = np.argpartition(-sparse_scores, settings.candidates)[: settings.candidates]
        sparse = sorted(((int(r), float(sparse_scores[r])) for r in top if sparse_scores[r] > 0), key=lambda x: -x[1])
        fuse(dense, sparse, settings)
        latencies.append(time.perf_counter() - t)
        recalls.append(len(set(rows[0][:10].tolist()) & set(truth[i].tolist())) / 10)
    rss = hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return {"retrieve_p50_ms": _median_ms(latencies[20:]), "retrieve_p95_ms": _p95_ms(latencies[20:]),
            "recall_at_10": float(np.mean(recalls)), "rss_gb": rss / 2**30, "peak_rss_gb": hwm / 2**30,
            "note": "retrieval excludes the query encode; FAISS and BM25 single-threaded"}


# ------------------------------------------------------------------------------------------ 6. library add

LIBRARY_MB = (1, 10, 50)


class HashingEmbedder:
    """Unit vectors seeded by a hash of the text: nearly free, so a 50 MB library builds in minutes
    and adding to it measures the index's own work. 384 dimensions, as the real model: stored
    vectors cost what they would. ``seconds`` adds up the time spent in embed_documents."""

    model_id = "bench/hashing"

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.seconds = 0.0

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def embed_documents(self, texts) -> np.ndarray:
        t = time.perf_counter()
        out = np.zeros((len(texts), self.dim), np.float32)  # filled row by row, as the real embedder does:
        for i, x in enumerate(texts):  # a stack of per-text arrays would double the build's peak memory
            out[i] = self._vector(x)
        self.seconds += time.perf_counter() - t
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def _words(n: int = 20_000) -> tuple[list[str], list[float]]:
    """A made-up vocabulary and Zipf cumulative weights: real text's long tail of rare terms."""
    rnd = random.Random(1)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words = sorted({"".join(rnd.choice(syllables) for _ in range(rnd.randint(1, 4))) for _ in range(n * 2)})[:n]
    rnd.shuffle(words)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1 / rank
        cumulative.append(total)
    return words, cumulative


def article(i: int, words: list[str], cumulative: list[float], paragraphs: int = 8) -> str:
    """Synthetic article ``i``: a title and paragraphs of plain sentences, the same for the same ``i``."""
    rnd = random.Random(i)
    pick = lambda k: rnd.choices(words, cum_weights=cumulative, k=k)  # noqa: E731
    lines = [f"Report {i}: " + " ".join(pick(4)).title(), ""]
    for _ in range(paragraphs):
        sentences = [" ".join(pick(rnd.randint(8, 30))).capitalize() + rnd.choice([".", ".", ".", "?", "!"])
                     for _ in range(rnd.randint(3, 6))]
        lines += [" ".join(sentences), ""]
    return "\n".join(lines)


def _library(folder: Path, mb: float, words, cumulative) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    size = count = 0
    while size < mb * 2**20:
        text = article(count, words, cumulative)
        (folder / f"a{count:06d}.txt").write_text(text, encoding="utf-8")
        size += len(text.encode("utf-8"))
        count += 1
    return count


def bench_library(sizes=LIBRARY_MB, repeats: int = 3) -> list[dict]:
    """Adding one small article to a library of ``mb`` megabytes, and removing it, as the chat page
    does: the seconds of each build beyond embedding the new article's texts (the overhead).
    Each library is built once first; each figure is a median over ``repeats`` articles. ``load_s`` is
    the time to open the library after an addition, as a server does to answer from it."""
    from rag.pipeline import build, open_store

    words, cumulative = _words()
    results = []
    for mb in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder, index_dir = Path(tmp) / "library", Path(tmp) / "index"
            documents = _library(folder, mb, words, cumulative)
            embedder = HashingEmbedder()
            t = time.perf_counter()
            report = build([folder], index_dir, embedder=embedder)
            build_s = time.perf_counter() - t
            adds, add_embeds, removes, loads = [], [], [], []
            for r in range(repeats):
                new = folder / f"new{r}.txt"
                new.write_text(article(10**9 + r, words, cumulative, paragraphs=1), encoding="utf-8")
                embedder.seconds = 0.0
                t = time.perf_counter()
                build([folder], index_dir, embedder=embedder)
                adds.append(time.perf_counter() - t)
                add_embeds.append(embedder.seconds)
                t = time.perf_counter()
                open_store(None, index_dir)  # what a server does to answer from the new generation
                loads.append(time.perf_counter() - t)
                new.unlink()
                embedder.seconds = 0.0
                t = time.perf_counter()
                build([folder], index_dir, embedder=embedder)
                removes.append(time.perf_counter() - t - embedder.seconds)
            overheads = [a - e for a, e in zip(adds, add_embeds)]
            results.append({"mb": mb, "documents": documents, "passages": report.chunks, "dim": embedder.dim,
                            "build_s": build_s, "add_s": statistics.median(adds),
                            "add_embed_s": statistics.median(add_embeds), "add_overhead_s": statistics.median(overheads),
                            "remove_overhead_s": statistics.median(removes), "load_s": statistics.median(loads),
                            "add_overhead_over_goal": statistics.median(overheads) / GOALS["library_add_overhead_s"]})
            shutil.rmtree(index_dir, ignore_errors=True)
    return results


# ------------------------------------------------------------------------------------------ 7. stores

STORE_KINDS = ("local", "milvus-lite")
STORE_SIZES = (10_000, 100_000)


class TopicEmbedder(HashingEmbedder):
    """HashingEmbedder whose vectors lie around 2,048 topics, as real embeddings cluster (uniform random
    vectors in 384 dimensions have no near neighbours, which flatters an approximate index)."""

    model_id = "bench/topics"

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        v = _centers()[rng.integers(0, CLUSTERS)] + 0.06 * rng.standard_normal(self.dim).astype(np.float32)
        return (v / np.linalg.norm(v)).astype(np.float32)


_CENTERS: list[np.ndarray] = []


def _centers() -> np.ndarray:
    if not _CENTERS:
        c = np.random.default_rng(0).standard_normal((CLUSTERS, DIM)).astype(np.float32)
        _CENTERS.append(c / np.linalg.norm(c, axis=1, keepdims=True))
    return _CENTERS[0]


def bench_stores(sizes=STORE_SIZES, kinds=STORE_KINDS) -> list[dict]:
    """Each store at each size: a synthetic library built through rag.pipeline.build (the same code as
    `rag index`), then searched by a fresh process as a server would. Build throughput excludes
    nothing but the (nearly free) hashing embedder; retrieval is the fused dense + BM25 search
    without the query encode; memory is the serving process's (milvus-lite's engine included)."""
    results = []
    for kind in kinds:
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                built = _child("store-build", str(n), tmp, kind)
                queried = _child("store-query", str(n), tmp, kind)
                results.append({"store": kind, "target_passages": n, **built, **queried})
    return results


def _store_spec(kind: str, where: Path) -> str:
    return "local" if kind == "local" else f"milvus-lite:{where / 'milvus.db'}"


def _store_build(n: int, where: Path, kind: str) -> dict:
    from rag.ingest import parse
    from rag.pipeline import build

    words, cumulative = _words()
    t = time.perf_counter()
    documents, passages, i = [], 0, 0
    while passages < n:  # ~18 passages an article (3 sentences each, 1 shared)
        text = article(i, words, cumulative)
        documents.append(parse(text, f"a{i:07d}.txt", sha256=hashlib.sha256(text.encode()).hexdigest()))
        passages += max(1, sum(text.count(c) for c in ".?!") // 2)
        i += 1
    generate_s = time.perf_counter() - t
    before = _rss()[0]
    embedder = TopicEmbedder()
    t = time.perf_counter()
    report = build(index_dir=where / "index", documents=documents, embedder=embedder, store=_store_spec(kind, where))
    build_s = time.perf_counter() - t
    size = sum(p.stat().st_size for p in where.rglob("*") if p.is_file())
    return {"documents": report.documents, "passages": report.chunks, "generate_s": generate_s, "build_s": build_s,
            "embed_s": embedder.seconds, "passages_per_s": report.chunks / max(build_s - embedder.seconds, 1e-9),
            "disk_mb": size / 2**20, "articles_rss_gb": before / 2**30,
            # the build process's peak, the generated articles (articles_rss_gb) included
            "build_peak_rss_gb": _rss()[1] / 2**30}


def _rss(pid: int | str = "self") -> tuple[int, int]:
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def _store_query(n: int, where: Path, kind: str) -> dict:
    from rag.pipeline import Assistant
    from rag.text import tokenize

    embedder = TopicEmbedder()
    assistant = Assistant.load(where / "index", embedder=embedder, store=_store_spec(kind, where))
    words, cumulative = _words()
    rnd = random.Random(5)
    queries = [" ".join(rnd.choices(words[:3000], k=3)) for _ in range(220)]
    vectors = [embedder.embed_query(q) for q in queries]
    latencies, answers = [], []
    for q, v in zip(queries, vectors):
        t = time.perf_counter()
        hits = assistant.retriever.search(q, v, 8)
        latencies.append(time.perf_counter() - t)
        answers.append(bool(hits) and bool(tokenize(q)))
    served, served_peak = _rss()  # milvus-lite runs its engine inside this process: it is counted here
    return {"retrieve_p50_ms": _median_ms(latencies[20:]), "retrieve_p95_ms": _p95_ms(latencies[20:]),
            "queries_with_hits": sum(answers) / len(answers),
            "server_rss_gb": served / 2**30, "server_peak_rss_gb": served_peak / 2**30}


# ------------------------------------------------------------------------------------------ report

STEPS = ("latency", "build", "startup", "throughput", "scale", "library", "stores")


def run(out_dir: Path, quick: bool = False, sizes: list[int] | None = None, only: list[str] | None = None,
        stores: list[str] | None = None) -> dict:
    from rag.pipeline import build

    out_dir.mkdir(parents=True, exist_ok=True)
    sizes_given = sizes  # the stores step takes the sizes asked for, with its own default
    sizes = sizes or ([10_000] if quick else [10_000, 100_000, 1_000_000])
    results: dict = {"machine": machine(), "quick": quick, "goals": GOALS}
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        build([SEEDS], index_dir)
        steps = [("latency", lambda: bench_latency(index_dir, repeats=1 if quick else 3, limit=20 if quick else None)),
                 ("build", lambda: bench_build(copies=1 if quick else 4)),
                 ("startup", lambda: bench_startup(index_dir, runs=1 if quick else 3)),
                 ("throughput", lambda: bench_throughput(index_dir, out_dir, QUICK_THROUGHPUT_LEVELS if quick else THROUGHPUT_LEVELS)),
                 ("scale", lambda: bench_scale(sizes)),
                 ("library", lambda: bench_library(LIBRARY_MB[:1] if quick else LIBRARY_MB, repeats=1 if quick else 3)),
                 ("stores", lambda: bench_stores(STORE_SIZES[:1] if quick else (sizes_given or STORE_SIZES),
                                                 stores or STORE_KINDS))]
        for name, step in steps:
            if only and name not in only:
                continue
            print(f"bench: {name}…", file=sys.stderr, flush=True)
            results[name] = step()
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    if not only:
        (out_dir / "bench.md").write_text(markdown(results), encoding="utf-8")
    return results


def markdown(r: dict) -> str:
    m, lat, b, s = r["machine"], r["latency"], r["build"], r["startup"]
    ok = lambda good: "met" if good else "**not met**"  # noqa: E731
    lines = ["# Benchmarks", "", f"Machine: {m['cpu']}, {m['cores']} cores; torch threads {m['torch_threads']}, "
             f"FAISS threads {m['faiss_threads']}; Python {m['python']}.", "",
             "| goal | measured | target | |", "|---|---|---|---|",
             f"| query p50 / one torch encode p50 | {lat['query_p50_over_torch_encode']:.2f}× ({lat['ask_p50_ms']:.1f} / "
             f"{lat['torch_encode_p50_ms']:.1f} ms; p95 {lat['ask_p95_ms']:.1f} ms) | ≤ 1.0× | {ok(lat['query_p50_over_torch_encode'] <= 1.0)} |",
             f"| query p50 / one ONNX encode p50 | {lat['query_p50_over_encode']:.2f}× ({lat['encode_p50_ms']:.1f} ms) | – | |",
             f"| index build / raw encode | {b['build_over_encode']:.2f}× ({b['build_s']:.1f} / {b['encode_all_s']:.1f} s, "
             f"{b['passages']} passages + {b['sentences']} sentences) | ≤ 1.2× | {ok(b['build_over_encode'] <= 1.2)} |",
             *([f"| texts embedded per second when indexing ({b['embedder']}) / with torch | {b['texts_per_s']:.0f} / "
                f"{b['torch_texts_per_s']:.0f} ({b['texts_per_s'] / b['torch_texts_per_s']:.1f}×) | – | |"]
               if "texts_per_s" in b else []),
             f"| `rag --help` | {s['help_s']:.2f} s | < 0.3 s | {ok(s['help_s'] < 0.3)} |",
             f"| one-shot `rag ask` | {s['ask_s']:.2f} s | < 3 s | {ok(s['ask_s'] < 3)} |",
             f"| `rag serve` until it answers | {s['serve_s']:.2f} s | < 6 s | {ok(s['serve_s'] < 6)} |"]
    if r.get("library"):
        big = r["library"][-1]
        lines.append(f"| adding an article to a {big['mb']} MB library, beyond embedding it | {big['add_overhead_s']:.2f} s "
                     f"({big['add_overhead_over_goal']:.2f}× the target) | < 1 s | {ok(big['add_overhead_s'] < 1)} |")
    lines += ["", "## Scale (synthetic)", "", "| passages | FAISS index | build s | disk MB | RSS GB | retrieve p50 / p95 ms | recall@10 |",
              "|---|---|---|---|---|---|---|"]
    for row in r["scale"]:
        lines.append(f"| {row['passages']:,} | {row['faiss_index']} | {row['build_s']:.1f} | {row['disk_mb']:.0f} | "
                     f"{row['rss_gb']:.2f} | {row['retrieve_p50_ms']:.2f} / {row['retrieve_p95_ms']:.2f} | {row['recall_at_10']:.3f} |")
    lines += ["", "Vectors are synthetic unit vectors around 2,048 random topics and BM25 runs over Zipf-distributed "
              "term ids; retrieval excludes the query encode."]
    if r.get("library"):
        lines += ["", "## Adding to a library (synthetic articles)", "",
                  "| library | articles | passages | first build s | add s | of which embedding s | add overhead s | "
                  "remove overhead s | loading it after s |", "|---|---|---|---|---|---|---|---|---|"]
        for row in r["library"]:
            lines.append(f"| {row['mb']} MB | {row['documents']:,} | {row['passages']:,} | {row['build_s']:.1f} | "
                         f"{row['add_s']:.2f} | {row['add_embed_s']:.3f} | {row['add_overhead_s']:.2f} | "
                         f"{row['remove_overhead_s']:.2f} | {row.get('load_s', float('nan')):.2f} |")
        lines += ["", f"A hashing embedder ({r['library'][0]['dim']} dimensions, like the real model) stands in for "
                  "the model: the overhead is everything a build does beyond embedding the new article."]
    if r.get("stores"):
        lines += ["", "## Stores (synthetic library, built by `rag index`'s code)", "",
                  "| store | passages | build s | passages/s | retrieve p50 / p95 ms | serving process RSS GB | disk MB |",
                  "|---|---|---|---|---|---|---|"]
        for row in r["stores"]:
            lines.append(f"| {row['store']} | {row['passages']:,} | {row['build_s']:.0f} | {row['passages_per_s']:.0f} | "
                         f"{row['retrieve_p50_ms']:.1f} / {row['retrieve_p95_ms']:.1f} | {row['server_rss_gb']:.2f} | "
                         f"{row['disk_mb']:.0f} |")
        lines += ["", "Retrieval is the fused dense + BM25 search with its passages fetched, without the query encode. "
                  "Passages/s excludes the hashing embedder that stands in for the model. milvus-lite runs its engine "
                  "inside the serving process: its memory is in the RSS column."]
    lines += ["", "## Throughput (server: the page's Gradio `ask`, and the HTTP API's `/api/ask`)", "",
              "| endpoint | concurrent callers | questions | questions/s | p50 ms | p95 ms | errors | answers differing from sequential |",
              "|---|---|---|---|---|---|---|---|"]
    for level, row in r["throughput"].items():
        endpoint = "`/api/ask`" if row.get("target") == "api" else "Gradio `ask`"
        lines.append(f"| {endpoint} | {row['clients']} | {row['questions']} | {row['qps']:.1f} | {row['p50_ms']:.0f} | "
                     f"{row['p95_ms']:.0f} | {row['errors']} | {row['mismatches']} |")
    bad = [(level, row) for level, row in r["throughput"].items() if row["errors"] or row["mismatches"]]
    for level, row in bad:
        lines.append(f"\n**{level.replace('-', ' ')} callers: {row['errors']} errors, {row['mismatches']} answers differing from the sequential "
                     f"ones** (first: {'; '.join(row['first_errors'] + row['first_mismatches'])}); each is logged in full "
                     f"in `{MISMATCH_LOG}`.")
    if not bad:
        lines.append(f"\nEvery concurrent answer matched the sequential one; `{MISMATCH_LOG}` is empty.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the child processes of bench_scale and bench_stores
    command, n, where, *more = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:]
    fn = {"scale-build": _scale_build, "scale-query": _scale_query, "store-build": _store_build,
          "store-query": _store_query}[command]
    print(json.dumps(fn(n, where, *more)))
