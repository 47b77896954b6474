import json
import os

import numpy as np
import pytest

from fakes import HashEmbedder, KeywordEmbedder, rule_model
from rag.store import generations as storage
from rag.store import lock
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
    a = Assistant(index, fresh, Settings(min_confidence=0.0), model=rule_model())  # the fake knows neither "rye" nor "bread"
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
    assert [d.doc_id for d in a.store.catalog()] == ["alpha.txt", "beta.md"]
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


def test_renaming_txt_to_md_embeds_again_what_reads_differently(built):
    """Markdown is parsed differently ("#" marks a title, "https://…" lines, …): vectors are reused
    only for texts that would embed exactly the same."""
    corpus, idx_dir, embedder = built
    (corpus / "notes.txt").write_text("# Harbor notes\n\nThe harbor parade drew visitors.\n", encoding="utf-8")
    build([corpus], idx_dir, embedder=embedder)
    os.rename(corpus / "notes.txt", corpus / "notes.md")
    embedder.embedded.clear()
    report = build([corpus], idx_dir, embedder=embedder)
    assert report.added == ["notes.md"] and report.removed == ["notes.txt"] and report.reused == 3
    # As .txt "# Harbor notes" was a body line; as .md it is the title, prepended to the passage.
    assert embedder.embedded == ["Harbor notes\nThe harbor parade drew visitors.", "The harbor parade drew visitors."]
    idx = storage.load(idx_dir)
    doc = idx.document("notes.md")
    assert doc.title == "Harbor notes"


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


def _segment_file(g, name):
    """The file ``name`` of the generation's only segment."""
    (path,) = g.glob(f"s*.{name}")
    return path


def _damage(path, data: bytes):
    """Write ``data`` over ``path`` without touching the other generations its segment file is linked into."""
    path.unlink()
    path.write_bytes(data)


@pytest.mark.parametrize("damage, problem", [
    (lambda g: _damage(_segment_file(g, "dense.faiss"), _segment_file(g, "dense.faiss").read_bytes()[:50]),
     "dense.faiss is truncated"),
    (lambda g: (g / "manifest.json").write_text("{not json"), "manifest.json is not valid JSON"),
    (lambda g: os.remove(_segment_file(g, "chunks.npy")), "chunks.npy is missing"),
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
    size = _segment_file(g, "dense.faiss").stat().st_size
    _damage(_segment_file(g, "dense.faiss"), b"\x00" * size)
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
    with lock.BuildLock(idx_dir):
        with pytest.raises(IndexLocked, match="Another `rag index`"):
            build([corpus], idx_dir, embedder=embedder, rebuild=True)


def test_no_pickle_in_the_index(built):
    corpus, idx_dir, _ = built
    g = storage.current_generation(idx_dir)
    for p in g.rglob("*.npy"):
        arr = np.load(p, allow_pickle=False)  # raises if any array needed pickle
        assert arr.dtype != object
    assert sorted(p.name for p in g.iterdir()) == ["manifest.json", *(f"s000001.{name}" for name in sorted(
        ["chunk_vectors.npy", "chunks.npy", "dense.faiss", "docs.jsonl", "sentence_vectors.npy", "sentences.npy",
         "term_ptr.npy", "term_rows.npy", "term_tf.npy", "terms.json", "text_offsets.npy", "texts.bin"]))]


# Every character str.splitlines() breaks a line at (see the str.splitlines docs), "\n" aside.
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def test_text_with_every_line_separator_survives_build_reload_reindex_and_rebuild(built):
    corpus, idx_dir, embedder = built
    text = ("Separator Times\n\nThe harbor parade drew visitors." + "".join(
        f" Line {i} of the glacier report{ch}ends here." for i, ch in enumerate(LINE_BREAKS)) + "\n")
    (corpus / "odd.txt").write_bytes(text.encode("utf-8"))
    build([corpus], idx_dir, embedder=embedder)
    assert storage.load(idx_dir).document("odd.txt").text == text

    (corpus / "new.txt").write_text("Fresh news\n\nA harbor ferry sank.\n", encoding="utf-8")
    embedder.embedded.clear()
    report = build([corpus], idx_dir, embedder=embedder)  # reads the previous docs.jsonl to reuse vectors
    assert report.added == ["new.txt"] and report.reused == 4
    assert embedder.embedded == ["Fresh news\nA harbor ferry sank.", "A harbor ferry sank."]
    assert storage.load(idx_dir).document("odd.txt").text == text

    build([corpus], idx_dir, embedder=embedder, rebuild=True)
    index = storage.load(idx_dir)
    assert index.document("odd.txt").text == text and len(index.docs) == 5


def _gens(idx_dir):
    return sorted(p.name for p in idx_dir.iterdir() if p.name.startswith("gen-"))


def test_the_previous_generation_is_kept_and_older_ones_and_leftovers_removed(built):
    corpus, idx_dir, embedder = built
    (idx_dir / "gen-000009.tmp").mkdir()  # a build killed while writing
    (corpus / "new.txt").write_text("Fresh news\n\nA harbor ferry sank.\n")
    build([corpus], idx_dir, embedder=embedder)
    assert _gens(idx_dir) == ["gen-000001", "gen-000002"] and (idx_dir / "CURRENT").read_text().strip() == "gen-000002"
    # a reader that read CURRENT just before the swap still finds every file of its generation
    old = storage.read_manifest(idx_dir, idx_dir / "gen-000001")[0]
    assert old.name == "gen-000001"
    (corpus / "new.txt").write_text("Fresh news\n\nA harbor ferry sank at noon.\n")
    build([corpus], idx_dir, embedder=embedder)
    assert _gens(idx_dir) == ["gen-000002", "gen-000003"]


def test_a_reader_whose_generation_is_collected_mid_load_retries_the_new_one(built, monkeypatch):
    corpus, idx_dir, embedder = built
    real = storage.read_manifest
    state = {"swapped": False}

    def read_then_two_builds_finish(*args, **kwargs):
        result = real(*args, **kwargs)
        if not state["swapped"]:
            state["swapped"] = True  # two builds land between reading CURRENT and reading the files
            for text in ("A harbor ferry sank.", "A harbor ferry sank at noon."):
                (corpus / "new.txt").write_text(f"Fresh news\n\n{text}\n")
                build([corpus], idx_dir, embedder=embedder)
        return result

    monkeypatch.setattr(storage, "read_manifest", read_then_two_builds_finish)
    index = storage.load(idx_dir)
    assert not (idx_dir / "gen-000001").exists()
    assert index.directory.name == "gen-000003" and "new.txt" in index.doc_pos


def test_a_damaged_generation_is_not_retried_when_current_did_not_move(built, monkeypatch):
    corpus, idx_dir, embedder = built
    calls = []
    real = storage.read_manifest
    monkeypatch.setattr(storage, "read_manifest", lambda *a, **k: calls.append(a) or real(*a, **k))
    os.remove(_segment_file(storage.current_generation(idx_dir), "docs.jsonl"))
    with pytest.raises(IndexCorrupt, match="docs.jsonl is missing"):
        storage.load(idx_dir)
    assert len(calls) == 1


def test_a_dropped_index_is_freed_without_the_cycle_collector(built):
    import gc
    import weakref

    corpus, idx_dir, embedder = built
    gc.collect()
    gc.disable()
    try:
        index = storage.load(idx_dir)
        assert index.sentence_terms(0) == frozenset(["zephyr", "dynam", "maker", "wind", "turbin", "base", "lakeview"])
        assert index.sentence_terms(0) is index.sentence_terms(0)  # memoised
        ref = weakref.ref(index)
        del index
        assert ref() is None
    finally:
        gc.enable()


def test_sentence_terms_cache_is_bounded(built, monkeypatch):
    corpus, idx_dir, embedder = built
    from rag.text import tokenize

    monkeypatch.setattr(storage, "SENTENCE_TERMS_CACHE", 4)
    index = storage.load(idx_dir)
    for row in range(len(index.sentences)):
        assert index.sentence_terms(row) == frozenset(tokenize(index.sentence_text(row)))
    assert len(index._terms) == 4


@pytest.mark.parametrize("key, value, recorded", [("tokenizer", -1, "tokenizer version -1"),
                                                   ("splitter", 99, "sentence splitter version 99")])
def test_an_index_from_another_tokenizer_or_splitter_must_be_rebuilt(built, key, value, recorded):
    from rag.errors import IndexOutdated

    corpus, idx_dir, embedder = built
    gen = storage.current_generation(idx_dir)
    manifest = json.loads((gen / "manifest.json").read_text())
    # manifest.json is not in its own size list, so editing it passes the size check
    assert "manifest.json" not in manifest["files"]
    manifest[key] = value
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexOutdated) as e:
        Assistant.load(idx_dir, embedder=embedder)
    message = str(e.value)
    ours = storage.TOKENIZER_VERSION if key == "tokenizer" else storage.SPLITTER_VERSION
    assert message == (f"The index at {idx_dir} was built with {recorded}, but this version of rag uses version {ours}: "
                       f"rebuild it with `rag index --rebuild --index-dir {idx_dir}`")
    assert isinstance(e.value, IndexCorrupt)  # callers that rebuild a damaged index rebuild this one too
    build([corpus], idx_dir, embedder=embedder, rebuild=True)
    assert len(storage.load(idx_dir)) == 7


# ------------------------------------------------------------------ document texts are read on demand
def _answers(idx, embedder):
    a = Assistant.load(idx, embedder=embedder, model=rule_model())
    return [(x.text, [(c.doc_id, c.start, c.end, c.quote) for c in x.citations])
            for x in (a.ask(q) for q in ("Where is the turbine plant?", "How many ovens does the bakery run?"))]


def test_a_loaded_index_reads_document_texts_on_demand(corpus, tmp_path):
    build([corpus], tmp_path / "idx", embedder=KeywordEmbedder())
    index = storage.load(tmp_path / "idx")
    assert index.texts._held is None and index.texts._cache == {}  # nothing decoded at load
    assert all(d.text == "" for d in index.docs)  # the records carry metadata only
    for i, meta in enumerate(index.docs):
        doc = index.document(meta.doc_id)
        assert doc.text == open(meta.path, encoding="utf-8", newline="").read() and index.chars[i] == len(doc.text)
    assert len(index.texts._cache) == len(index.docs) >= 3


def test_texts_stay_readable_after_a_build_removes_the_generation(corpus, tmp_path):
    idx = tmp_path / "idx"
    build([corpus], idx, embedder=KeywordEmbedder())
    index = storage.load(idx)
    first = index.directory
    for _ in range(2):  # the second build garbage-collects the first generation
        build([corpus], idx, embedder=KeywordEmbedder(), rebuild=True)
    assert not first.exists()
    meta = index.docs[-1]
    assert index.document(meta.doc_id).text == open(meta.path, encoding="utf-8", newline="").read() != ""


def test_a_generation_from_before_segments_answers_as_a_new_one(corpus, legacy_index, tmp_path):
    e = KeywordEmbedder()
    build([corpus], tmp_path / "fresh", embedder=e)
    expected = _answers(tmp_path / "fresh", e)
    index = storage.load(legacy_index)
    assert "segments" not in index.manifest and (index.directory / "bm25").is_dir()
    assert _answers(legacy_index, e) == expected and expected[0][1]


def test_a_generation_from_before_texts_bin_still_answers_the_same(corpus, legacy_index, tmp_path):
    idx = legacy_index
    e = KeywordEmbedder()
    expected = _answers(idx, e)
    # Rewrite the generation as the format before it did: texts inside docs.jsonl, no texts.bin.
    gen = storage.current_generation(idx)
    manifest = json.loads((gen / "manifest.json").read_text())
    records = [json.loads(line) for line in (gen / "docs.jsonl").read_text().splitlines()]
    with open(gen / "docs.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            r.pop("chars")
            r["text"] = open(r["path"], encoding="utf-8", newline="").read()
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    for name in (storage.TEXTS, storage.TEXT_OFFSETS):
        (gen / name).unlink()
        del manifest["files"][name]
    manifest["files"]["docs.jsonl"] = (gen / "docs.jsonl").stat().st_size
    (gen / "manifest.json").write_text(json.dumps(manifest))
    assert storage.load(idx).texts._held is not None
    assert _answers(idx, e) == expected and expected[0][1]
    # The next build takes its vectors over (texts from docs.jsonl) and writes segments.
    (corpus / "new.txt").write_text("Fresh news\n\nA harbor ferry sank.\n", encoding="utf-8")
    report = build([corpus], idx, embedder=e)
    assert report.added == ["new.txt"] and report.reused == 3 and e.embedded == ["Fresh news\nA harbor ferry sank.", "A harbor ferry sank."]
    assert "segments" in storage.load(idx).manifest and _answers(idx, e) == expected


def test_texts_that_disagree_with_their_offsets_are_reported(corpus, tmp_path):
    idx = tmp_path / "idx"
    build([corpus], idx, embedder=KeywordEmbedder())
    gen = storage.current_generation(idx)
    offsets = np.load(_segment_file(gen, storage.TEXT_OFFSETS))
    offsets[-1] += 1
    np.save(_segment_file(gen, storage.TEXT_OFFSETS), offsets)  # same size: only the check of the values can see it
    with pytest.raises(IndexCorrupt):
        storage.load(idx)
