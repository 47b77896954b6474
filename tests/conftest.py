from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run, so a red build always means a change; local runs keep
# exploring new inputs (that is how the credit-inside-a-sentence bug was found).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini_corpus"
SEEDS = Path(__file__).parent.parent / "seeds"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads or writes the real .rag/ index or cache: both default to folders in tmp_path."""
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "default-index"))
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))  # model exports (rag.embed) and eval indexes
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A private copy of the mini corpus that a test may change."""
    dst = tmp_path / "corpus"
    shutil.copytree(MINI, dst)
    return dst


# An index of the mini corpus as the version before segments wrote it (with the KeywordEmbedder, the
# corpus then at LEGACY_ROOT): every file in its one generation, BM25 as bm25s saves it.
LEGACY = DATA / "legacy_index"
LEGACY_ROOT = "/tmp/legacy-src/corpus"


@pytest.fixture
def legacy_index(corpus, tmp_path) -> Path:
    """A private copy of that index, its paths moved to the ``corpus`` fixture's."""
    import json

    idx = tmp_path / "idx"
    shutil.copytree(LEGACY, idx)
    gen = idx / "gen-000001"
    for name in ("docs.jsonl", "manifest.json"):
        text = (gen / name).read_text(encoding="utf-8")
        (gen / name).write_text(text.replace(json.dumps(LEGACY_ROOT)[1:-1], json.dumps(str(corpus))[1:-1]), encoding="utf-8")
    manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["docs.jsonl"] = (gen / "docs.jsonl").stat().st_size
    (gen / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return idx


@pytest.fixture(scope="module")
def mini_assistant(tmp_path_factory):
    """An Assistant over the mini corpus with the KeywordEmbedder, shared by a test module."""
    from fakes import KeywordEmbedder, rule_model
    from rag.pipeline import Assistant, build

    embedder = KeywordEmbedder()
    d = tmp_path_factory.mktemp("mini") / "idx"
    build([MINI], d, embedder=embedder)
    return Assistant.load(d, embedder=embedder, model=rule_model())
