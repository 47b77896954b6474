"""ensure_onnx: a failed export is reported, and temporary files of killed exports are removed."""
import os
import subprocess
import sys
import time

import pytest

from fakes import KeywordEmbedder
from rag import embed
from rag import pipeline


def _fail(target):
    with open(f"{target}.tmp-{os.getpid()}", "wb") as f:  # what a failing export leaves half-written
        f.write(b"partial")
    raise RuntimeError("Exporting the operator 'aten::scaled_dot_product_attention' is not supported\nmore detail")


def test_a_failed_export_is_reported_with_its_cause_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", _fail)
    messages = []
    assert embed.ensure_onnx(tmp_path, warn=messages.append) is None
    assert messages == [
        "the model could not be exported to ONNX (RuntimeError: Exporting the operator "
        "'aten::scaled_dot_product_attention' is not supported), so `rag ask` and `rag serve` use "
        "sentence-transformers instead (same answers, slower to start): run `rag index` again to retry"]
    assert os.listdir(tmp_path / "models") == []


def test_without_a_callback_the_failure_is_a_python_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", _fail)
    with pytest.warns(embed.OnnxExportWarning, match=r"could not be exported to ONNX \(RuntimeError: Exporting"):
        assert embed.ensure_onnx(tmp_path) is None


def test_a_build_still_succeeds_and_reports_the_failed_export(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "export_onnx", _fail)
    monkeypatch.setattr(pipeline, "default_embedder", lambda index_dir=None: KeywordEmbedder())  # counts as the real model
    report = pipeline.build([corpus], tmp_path / "idx")
    assert report.chunks == 7
    assert [w for w in report.warnings if "ONNX" in w] == [
        "the model could not be exported to ONNX (RuntimeError: Exporting the operator "
        "'aten::scaled_dot_product_attention' is not supported), so `rag ask` and `rag serve` use "
        "sentence-transformers instead (same answers, slower to start): run `rag index` again to retry"]


def test_temporary_files_of_killed_exports_are_removed(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
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
