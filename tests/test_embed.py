"""The ONNX embedder's length-sorted batches, the export cache keyed by model fingerprint, and what
happens when an export fails or is left half-written. A tiny ONNX graph stands in for the model."""
import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fakes import KeywordEmbedder
from rag import embed
from rag.store import generations as storage
from rag import pipeline

DIM = 384  # OnnxEmbedder.dim: the tiny graph returns vectors of the real model's width


def tiny_onnx(path, buckets: int = 97) -> str:
    """An ONNX graph with the exported model's inputs whose hidden state for a token is row
    ``id % buckets`` of a fixed random table, padding included: vectors come out right only if
    pooling leaves padding out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).normal(size=(buckets, DIM)).astype(np.float32)
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    graph = helper.make_graph(
        [helper.make_node("Mod", ["input_ids", "buckets"], ["bucket"]), helper.make_node("Gather", ["table", "bucket"], ["hidden"])],
        "tiny", inputs, [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", DIM])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array(buckets, np.int64), "buckets")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


class Exports:
    """Stands in for export_onnx: writes the tiny graph as the real one does (temporary file, then
    rename) and records the targets."""

    def __init__(self):
        self.targets = []

    def __call__(self, target):
        self.targets.append(str(target))
        tmp = f"{target}.tmp-{os.getpid()}"
        tiny_onnx(tmp)
        os.replace(tmp, target)


class Widths:
    """Wraps an onnxruntime session and records the padded width of every batch it runs."""

    def __init__(self, session):
        self.session, self.widths = session, []

    def run(self, outputs, feeds):
        self.widths.append(feeds["input_ids"].shape[1])
        return self.session.run(outputs, feeds)


def _fail(target):
    with open(f"{target}.tmp-{os.getpid()}", "wb") as f:  # what a failing export leaves half-written
        f.write(b"partial")
    raise RuntimeError("Exporting the operator 'aten::scaled_dot_product_attention' is not supported\nmore detail")


FAILED = ("the model could not be exported to ONNX (RuntimeError: Exporting the operator "
          "'aten::scaled_dot_product_attention' is not supported), so indexing and queries use "
          "sentence-transformers instead (same answers, slower): run `rag index` again to retry")


# ------------------------------------------------------------------------------- length-sorted batches

def test_length_batches_group_shortest_first_and_keep_ties_in_order():
    assert embed.length_batches([5, 2, 9, 2, 7], 2) == [[1, 3], [0, 4], [2]]
    assert embed.length_batches([3, 3, 3], 5) == [[0, 1, 2]]
    assert embed.length_batches([], 4) == []


def test_batches_are_sorted_by_tokens_not_characters(tmp_path):
    e = embed.OnnxEmbedder(tiny_onnx(tmp_path / "m.onnx"), batch_size=2)
    e._session = Widths(e.warm_up())
    # Word pieces with [CLS] and [SEP]: 12, 4, 12, 4. By characters (19, 46, 60, 49) each batch
    # would pair a 12 with a 4 and pad both to 12; by tokens the two 4s share one batch.
    texts = ["a b c d e f g h i j", "one" + " " * 40 + "two", "k l m n o p q r s t" + " " * 41, "three" + " " * 40 + "four"]
    e.embed_documents(texts)
    assert e._session.widths == [4, 12]


def test_sorted_batches_give_each_text_its_own_vector_in_the_original_order(tmp_path):
    e = embed.OnnxEmbedder(tiny_onnx(tmp_path / "m.onnx"), batch_size=3)
    texts = ["the longest text of them all, with many more words than the others have", "short", "",
             "a text of middling length", "short", "x " * 400, "tiny", "another text of middling size"]
    batched = e.embed_documents(texts)
    alone = np.stack([e.embed_query(t) for t in texts])  # one text per run: no padding, no reordering
    assert batched.shape == (8, DIM) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-6)
    # Rows differ unless their texts do not, so a row in the wrong place would show.
    same = np.abs(batched[:, None, :] - batched[None, :, :]).max(axis=2) < 1e-6
    assert same.sum() == len(texts) + 2  # the diagonal, and "short" twice (rows 1 and 4) both ways
    assert same[1, 4]


def test_a_long_embedding_run_shows_a_progress_bar(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    e = embed.OnnxEmbedder(tiny_onnx(tmp_path / "m.onnx"))
    e.embed_documents([f"text number {i}" for i in range(600)])
    assert "600/600" in err.getvalue()


# ------------------------------------------------------------------------- the export cache by fingerprint

def test_two_indexes_share_one_export_and_queries_use_it(corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    exports = Exports()
    monkeypatch.setattr(embed, "export_onnx", exports)
    fingerprint = embed.model_fingerprint()
    for name in ("a", "b"):
        report = pipeline.build([corpus], tmp_path / name)
        assert report.chunks == 7 and report.warnings == []
    export = cache / "models" / fingerprint / "model.onnx"
    assert exports.targets == [str(export)]  # exported once, for both
    assert sorted(os.listdir(export.parent)) == ["model-int8.onnx", "model.onnx"]
    for name in ("a", "b"):
        assert not (tmp_path / name / "models").exists()
        assert storage.read_manifest(tmp_path / name)[1]["model"]["fingerprint"] == fingerprint
        a = pipeline.Assistant.load(tmp_path / name)
        assert isinstance(a.embedder, embed.OnnxEmbedder) and a.embedder.onnx_path == str(export)


def test_side_by_side_sessions_give_the_vectors_of_one(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    texts = [("word " * n).strip() + f" {n}" for n in range(1, 40)]
    one = embed.OnnxEmbedder(path, batch_size=4).embed_documents(texts)
    three = embed.OnnxEmbedder(path, batch_size=4, workers=3)
    together = three.embed_documents(texts)
    assert len(three._workers) == 3  # the batches did run on the worker sessions
    np.testing.assert_array_equal(together, one)  # each row in its place, bit for bit
    assert embed.OnnxEmbedder(path, workers=3).embed_documents(["one text"]).shape == (1, DIM)


def test_indexes_are_embedded_with_the_int8_model_on_every_cpu_and_queries_with_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", Exports())
    folder = tmp_path / "models" / embed.model_fingerprint()
    e = embed.indexing_embedder(tmp_path)
    assert (e.onnx_path, e.threads, e.workers, e.fingerprint) == \
        (str(folder / "model-int8.onnx"), embed.cpu_threads(), embed.cpu_threads(), folder.name)
    q = embed.default_embedder(tmp_path)
    assert (q.onnx_path, q.fingerprint) == (str(folder / "model.onnx"), folder.name)
    texts = ["a few words", "a longer text with rather more words in it"]
    cos = (e.embed_documents(texts) * q.embed_documents(texts)).sum(axis=1)
    assert cos.min() > 0.99 and not np.allclose(cos, 1.0, atol=1e-6)  # the same graph, its table quantised


def test_a_failed_quantisation_falls_back_to_the_fp32_export_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", Exports())
    monkeypatch.setattr(embed, "quantize_onnx", lambda source, target: _fail(target))
    messages = []
    e = embed.indexing_embedder(tmp_path, messages.append)
    assert e.onnx_path == str(tmp_path / "models" / embed.model_fingerprint() / "model.onnx")
    assert messages == [
        "the model could not be quantised to int8 (RuntimeError: Exporting the operator "
        "'aten::scaled_dot_product_attention' is not supported), so indexing uses the fp32 ONNX model "
        "instead (as accurate, about half as fast): run `rag index` again to retry"]
    assert os.listdir(tmp_path / "models" / embed.model_fingerprint()) == ["model.onnx"]


def test_a_different_fingerprint_gets_its_own_export(tmp_path, monkeypatch):
    exports = Exports()
    monkeypatch.setattr(embed, "export_onnx", exports)
    first = embed.ensure_onnx(tmp_path, fingerprint="00000000000000aa")
    second = embed.ensure_onnx(tmp_path, fingerprint="00000000000000bb")
    assert embed.ensure_onnx(tmp_path, fingerprint="00000000000000aa") == first  # already there: not exported again
    assert (first, second) == (str(tmp_path / "models" / "00000000000000aa" / "model.onnx"),
                               str(tmp_path / "models" / "00000000000000bb" / "model.onnx"))
    assert exports.targets == [first, second]
    assert embed.default_embedder(tmp_path, "00000000000000bb").onnx_path == second
    # An index embedded by a model whose export is not cached falls back to sentence-transformers.
    assert isinstance(embed.default_embedder(tmp_path, "00000000000000cc"), embed.SentenceTransformerEmbedder)


def test_the_fingerprint_names_the_model_files_and_the_export(monkeypatch):
    first = embed.model_fingerprint()
    assert len(first) == 16 and int(first, 16) >= 0 and embed.model_fingerprint() == first
    monkeypatch.setattr(embed, "EXPORT_VERSION", embed.EXPORT_VERSION + 1)
    assert embed.model_fingerprint() != first  # a changed exporter makes new exports


def test_a_half_written_export_is_never_used(tmp_path, monkeypatch):
    fingerprint = "00000000000000aa"
    folder = tmp_path / "models" / fingerprint
    folder.mkdir(parents=True)
    writing = folder / f"model.onnx.tmp-{os.getppid()}"  # another process, still exporting
    writing.write_bytes(b"half an export")
    assert isinstance(embed.default_embedder(tmp_path, fingerprint), embed.SentenceTransformerEmbedder)
    monkeypatch.setattr(embed, "export_onnx", _fail)  # this process's export dies half-way
    assert embed.ensure_onnx(tmp_path, warn=lambda message: None, fingerprint=fingerprint) is None
    assert sorted(os.listdir(folder)) == [writing.name]  # its own temporary file is gone, the other's kept
    assert isinstance(embed.default_embedder(tmp_path, fingerprint), embed.SentenceTransformerEmbedder)
    monkeypatch.setattr(embed, "export_onnx", Exports())
    path = embed.ensure_onnx(tmp_path, fingerprint=fingerprint)
    assert path == str(folder / "model.onnx")
    assert embed.default_embedder(tmp_path, fingerprint).onnx_path == path


# ----------------------------------------------------------------------------------- failed exports

def test_a_failed_export_is_reported_with_its_cause_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", _fail)
    messages = []
    assert embed.ensure_onnx(tmp_path, warn=messages.append) is None
    assert messages == [FAILED]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_without_a_callback_the_failure_is_a_python_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", _fail)
    with pytest.warns(embed.OnnxExportWarning, match=r"could not be exported to ONNX \(RuntimeError: Exporting"):
        assert embed.ensure_onnx(tmp_path) is None


def test_a_build_still_succeeds_with_sentence_transformers_and_reports_the_failed_export(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", _fail)
    fallback = KeywordEmbedder()  # stands in for sentence-transformers
    monkeypatch.setattr(embed, "SentenceTransformerEmbedder", lambda **kwargs: fallback)
    report = pipeline.build([corpus], tmp_path / "idx")
    assert report.chunks == 7 and fallback.calls == 1
    assert [w for w in report.warnings if "ONNX" in w] == [FAILED]


def test_temporary_files_of_killed_exports_are_removed(tmp_path, monkeypatch):
    models = embed.onnx_file(tmp_path, embed.model_fingerprint()).parent
    models.mkdir(parents=True)
    (models / embed.ONNX_NAME).write_bytes(b"exported")
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()  # reaped: its pid is no longer alive
    dead = models / f"{embed.ONNX_NAME}.tmp-{done.pid}"
    running = models / f"{embed.ONNX_NAME}.tmp-{os.getppid()}"  # a live process, still writing
    odd = models / f"{embed.ONNX_NAME}.tmp-{os.getpid()}-x"  # not a pid: no process can still be writing it
    abandoned = models / f"{embed.ONNX_NAME}.tmp-{os.getppid()}0"
    unrelated = models / "notes.tmp-1"
    for p in (dead, running, odd, abandoned, unrelated):
        p.write_bytes(b"x" * 10)
    hours_ago = time.time() - 2 * 3600
    os.utime(abandoned, (hours_ago, hours_ago))  # whatever its pid, an export is never this slow
    monkeypatch.setattr(embed, "_pid_alive", lambda pid: pid != done.pid)
    assert embed.ensure_onnx(tmp_path) == str(models / embed.ONNX_NAME)
    assert sorted(os.listdir(models)) == sorted([embed.ONNX_NAME, running.name, unrelated.name])


def test_pid_alive():
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert embed._pid_alive(os.getpid()) and embed._pid_alive(os.getppid())
    assert not embed._pid_alive(done.pid)


# ------------------------------------------------------------- an index follows the model files it was embedded with
class _Fingerprinted(KeywordEmbedder):
    def __init__(self, fingerprint: str):
        super().__init__()
        self.fingerprint = fingerprint


def test_an_index_is_re_embedded_when_the_model_files_change(corpus, tmp_path):
    idx = tmp_path / "idx"
    pipeline.build([corpus], idx, embedder=_Fingerprinted("00000000000000aa"))
    same = _Fingerprinted("00000000000000aa")
    assert pipeline.build([corpus], idx, embedder=same).up_to_date and same.embedded == []
    other = _Fingerprinted("00000000000000bb")
    report = pipeline.build([corpus], idx, embedder=other)
    # Every text again, none reused: vectors of other model files would not be comparable.
    assert not report.up_to_date and report.reused == 0 and other.embedded
    assert storage.read_manifest(idx)[1]["model"]["fingerprint"] == "00000000000000bb"


def test_an_index_from_before_fingerprints_keeps_its_vectors(corpus, tmp_path):
    idx = tmp_path / "idx"
    pipeline.build([corpus], idx, embedder=KeywordEmbedder())  # no fingerprint recorded
    later = _Fingerprinted("00000000000000aa")
    assert pipeline.build([corpus], idx, embedder=later).up_to_date and later.embedded == []


def test_the_onnx_copy_old_indexes_kept_is_removed_by_the_next_build(corpus, tmp_path):
    idx = tmp_path / "idx"
    pipeline.build([corpus], idx, embedder=KeywordEmbedder())
    (idx / "models").mkdir()
    (idx / "models" / "all-MiniLM-L6-v2.onnx").write_bytes(b"x" * 1000)
    pipeline.build([corpus], idx, embedder=KeywordEmbedder(), rebuild=True)
    assert not (idx / "models").exists()


def test_the_export_cache_is_per_user_unless_named(tmp_path, monkeypatch):
    from rag.config import default_cache_dir

    monkeypatch.delenv("RAG_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "rag"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "rag"
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "named"))
    assert default_cache_dir() == tmp_path / "named"
