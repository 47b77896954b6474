import json
import os

import numpy as np
import pytest

from fakes import HashEmbedder, KeywordEmbedder
from rag import index as storage
from rag.config import ChunkSettings, Settings
from rag.errors import EmbedderMismatch, IndexCorrupt, IndexLocked, IndexNotFound
from rag.pipeline import Assistant, build


@pytest.fixture
def built(corpus, tmp_path):
    embedder = KeywordEmbedder()
    idx_dir = tmp_path / "idx"
    build([corpus], idx_dir, embedder=embedder)
    return corpus, idx_dir, embedder


def test_first_build_embeds_every_chunk_and_sentence_once(built):
    corpus, idx_dir, embedder = built
    index = storage.load(idx_dir)
    # 7 chunks + 15 sentences (alpha 5, beta 4, gamma 6), embedded in one call
    assert (len(index.chunks), len(index.sentences)) == (7, 15)
    assert embedder.calls == 1 and len(embedder.embedded) == 22
    assert index.manifest["counts"] == {"documents": 3, "chunks": 7, "sentences": 15}
    assert index.manifest["model"] == {"id": "fake/keyword-v1", "dim": len(embedder.vocab)}
    assert index.manifest["chunker"] == ChunkSettings().to_dict()
    assert set(index.manifest["documents"]) == {"alpha.txt", "beta.md", "sub/gamma.txt"}


def test_unchanged_rerun_embeds_nothing(built):
    corpus, idx_dir, embedder = built
    before = (idx_dir / storage.CURRENT).read_text()
    report = build([corpus], idx_dir, embedder=embedder)
    assert report.up_to_date and embedder.calls == 1
    assert (idx_dir / storage.CURRENT).read_text() == before


def test_changed_file_is_the_only_one_reembedded(built):
    corpus, idx_dir, embedder = built
    (corpus / "beta.md").write_text("# Crumb and Co\n\nCrumb and Co sells rye bread in Harbor City.\n", encoding="utf-8")
    embedder.embedded.clear()
    report = build([corpus], idx_dir, embedder=embedder)
    assert report.changed == ["beta.md"] and report.reused == 2
    # beta now has one chunk and one sentence: two texts, the chunk with its title prepended
    assert embedder.embedded == ["Crumb and Co\nCrumb and Co sells rye bread in Harbor City.",
                                 "Crumb and Co sells rye bread in Harbor City."]
    index = storage.load(idx_dir)
    # reused vectors equal freshly computed ones for unchanged files
    fresh = KeywordEmbedder()
    a = Assistant(index, fresh, Settings(abstain_below=0.0))  # the fake knows neither "rye" nor "bread"
    rows = [i for i in range(len(index)) if index.chunk(i).doc_id == "alpha.txt"]
    expected = fresh.embed_documents(["Zephyr Dynamics opens a turbine plant in Lakeview\n" + index.chunk(r).text for r in rows])
    assert np.allclose(index.chunk_vectors[rows], expected)
    assert a.ask("rye bread").citations[0].quote == "Crumb and Co sells rye bread in Harbor City."


def test_deleted_file_is_dropped_and_never_cited(built):
    corpus, idx_dir, embedder = built
    os.remove(corpus / "sub" / "gamma.txt")
    report = build([corpus], idx_dir, embedder=embedder)
    assert report.removed == ["sub/gamma.txt"]
    a = Assistant.load(idx_dir, embedder=embedder)
    assert [d.doc_id for d in a.index.docs] == ["alpha.txt", "beta.md"]
    answer = a.ask("How much ice did the glacier lose?")
    assert all(h.chunk.doc_id != "sub/gamma.txt" for h in answer.hits)
    assert all(c.doc_id != "sub/gamma.txt" for c in answer.citations)


def test_renamed_file_reuses_its_vectors(built):
    corpus, idx_dir, embedder = built
    os.rename(corpus / "alpha.txt", corpus / "zephyr.txt")
    embedder.embedded.clear()
    report = build([corpus], idx_dir, embedder=embedder)
    assert report.added == ["zephyr.txt"] and report.removed == ["alpha.txt"]
    assert embedder.embedded == [] and report.reused == 3


def test_only_the_current_generation_is_kept(built):
    corpus, idx_dir, embedder = built
    (corpus / "new.txt").write_text("Fresh news\n\nA harbor ferry sank.\n")
    build([corpus], idx_dir, embedder=embedder)
    gens = sorted(p.name for p in idx_dir.iterdir() if p.name.startswith("gen-"))
    assert gens == ["gen-000002"] and (idx_dir / "CURRENT").read_text().strip() == "gen-000002"


def test_failed_write_leaves_previous_index_answering(built, monkeypatch):
    corpus, idx_dir, embedder = built
    before = Assistant.load(idx_dir, embedder=embedder).ask("Where is Zephyr Dynamics based?").to_dict()
    (corpus / "alpha.txt").write_text("Changed\n\nZephyr Dynamics moved to Hillside.\n")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(storage, "_fsync_tree", boom)
    with pytest.raises(OSError):
        build([corpus], idx_dir, embedder=embedder)
    after = Assistant.load(idx_dir, embedder=embedder).ask("Where is Zephyr Dynamics based?").to_dict()
    after["timings_ms"] = before["timings_ms"]
    assert after == before
    monkeypatch.undo()
    build([corpus], idx_dir, embedder=embedder)  # the leftover .tmp directory does not block the next build
    assert "Hillside" in Assistant.load(idx_dir, embedder=embedder).ask("Where did Zephyr Dynamics move?").text


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFound, match="rag index"):
        storage.load(tmp_path / "none")


@pytest.mark.parametrize("damage, problem", [
    (lambda g: (g / "dense.faiss").write_bytes((g / "dense.faiss").read_bytes()[:50]), "dense.faiss is truncated"),
    (lambda g: (g / "manifest.json").write_text("{not json"), "manifest.json is not valid JSON"),
    (lambda g: os.remove(g / "chunks.npy"), "chunks.npy is missing"),
    (lambda g: (g / "manifest.json").write_text(json.dumps({**json.loads((g / "manifest.json").read_text()), "format_version": 0})),
     "index format 0"),
])
def test_damaged_index_names_the_problem_and_the_fix(built, damage, problem):
    corpus, idx_dir, embedder = built
    damage(storage.current_generation(idx_dir))
    with pytest.raises(IndexCorrupt) as e:
        storage.load(idx_dir)
    assert problem in str(e.value) and "rag index --rebuild" in str(e.value)
    assert "\n" not in str(e.value)


def test_same_size_garbage_faiss_file_is_reported(built):
    corpus, idx_dir, embedder = built
    g = storage.current_generation(idx_dir)
    size = (g / "dense.faiss").stat().st_size
    (g / "dense.faiss").write_bytes(b"\x00" * size)
    with pytest.raises(IndexCorrupt, match="dense.faiss cannot be read"):
        storage.load(idx_dir)


def test_damaged_index_is_rebuilt_by_index(built):
    corpus, idx_dir, embedder = built
    (storage.current_generation(idx_dir) / "manifest.json").write_text("{")
    report = build([corpus], idx_dir, embedder=embedder)
    assert not report.up_to_date and report.reused == 0
    assert len(storage.load(idx_dir)) == 7


def test_other_embedder_is_refused(built):
    corpus, idx_dir, _ = built
    with pytest.raises(EmbedderMismatch, match="fake/keyword-v1.*fake/hash-v1.*--rebuild"):
        Assistant.load(idx_dir, embedder=HashEmbedder())
    with pytest.raises(EmbedderMismatch, match="all-MiniLM-L6-v2"):
        Assistant.load(idx_dir)  # the default embedder is the real model


def test_second_writer_is_refused_while_the_lock_is_held(built):
    corpus, idx_dir, embedder = built
    with storage.BuildLock(idx_dir):
        with pytest.raises(IndexLocked, match="Another `rag index`"):
            build([corpus], idx_dir, embedder=embedder, rebuild=True)


def test_no_pickle_in_the_index(built):
    corpus, idx_dir, _ = built
    g = storage.current_generation(idx_dir)
    for p in g.rglob("*.npy"):
        arr = np.load(p, allow_pickle=False)  # raises if any array needed pickle
        assert arr.dtype != object
    assert sorted(p.name for p in g.iterdir()) == ["bm25", "chunk_vectors.npy", "chunks.npy", "dense.faiss",
                                                   "docs.jsonl", "manifest.json", "sentence_vectors.npy", "sentences.npy"]
