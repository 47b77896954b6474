"""An index updated in place equals one built from scratch: a document whose text and settings did
not change keeps its sentences, passages and BM25 terms from the live generation instead of being
split and tokenized again, and the result is the same, array for array."""
import json

import bm25s
import numpy as np
import pytest

from fakes import HashEmbedder, KeywordEmbedder, rule_model
from rag import chunk as chunking
from rag.store import generations as storage
from rag.store import sparse
from rag.config import ChunkSettings, Settings
from rag.ingest import parse
from rag.pipeline import Assistant, build, split_key

ARTICLES = {
    "harbor.md": "# Harbor ferry resumes service\n\nThe harbor ferry resumed service on Monday after a two-week "
                 "repair. Officials said the crossing takes twelve minutes. About 4,000 visitors used it on the "
                 "first day.\n\n## Fares\n\nA single fare costs 3 dollars. Children ride free. It is what it is.\n",
    "mill.txt": "Old mill turns into a museum\n\nThe old textile mill on River Street opened as a museum. It "
                "shows looms from 1890. The museum is open daily. Entry is free on Sundays.\n\nThe town bought "
                "the mill in 2019 for 2.1 million dollars.\n",
    "quarry.txt": "Quarry lake closed to swimmers\n\nThe quarry lake was closed to swimmers after tests found "
                  "algae. Rangers posted signs at the gate. The lake reopens when the water is clean.\n",
}
NEW = ("orchard.txt", "Orchard harvest sets a record\n\nThe orchard picked 80 tonnes of apples this autumn, a "
                      "record. Pickers came from three towns. The cider press ran all night.\n")
QUESTIONS = ["How long does the ferry crossing take?", "When was the loom made?", "Why was the quarry lake closed?",
             "How many tonnes of apples were picked?", "What does a fare cost?", "Who bought the mill?"]


def _write(folder, articles):
    folder.mkdir(exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")


def _assert_fresh(folder, idx, tmp_path, embedder):
    """The index at ``idx`` equals, array for array and answer for answer, one built from scratch."""
    scratch = _scratch(folder, tmp_path, embedder)
    _assert_same(_arrays(idx), _arrays(scratch))
    assert _answers(idx, embedder) == _answers(scratch, embedder)


def _arrays(idx_dir):
    """Every row, vector, text and BM25 score of the live generation in reading order, its documents
    and their manifest entries: what a reader sees, whichever segments hold it."""
    index = storage.load(idx_dir)
    out = {"chunks": index.chunks, "sentences": index.sentences, "chunk_vectors": np.asarray(index.chunk_vectors),
           "sentence_vectors": np.asarray(index.sentence_vectors)}
    out["docs"] = [index.document(d.doc_id) for d in index.docs]
    out["vocabulary"] = index.sparse.vocabulary()
    for term in out["vocabulary"]:  # every passage's score for every term, float32 bit for bit
        out[f"bm25 {term}"] = index.sparse.scores([term])
    # When each file was seen, and where it lies, differ from build to build; everything else must not.
    out["documents"] = {d: {k: v for k, v in e.items() if k not in ("file", "segment", "at")}
                        for d, e in index.manifest["documents"].items()}
    out["counts"] = index.manifest["counts"]
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], np.ndarray):
            assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
        else:
            assert a[name] == b[name], name


def _answers(idx_dir, embedder):
    assistant = Assistant.load(idx_dir, embedder=embedder, settings=Settings(min_confidence=0.0), model=rule_model())
    answers = []
    for q in QUESTIONS:
        a = assistant.ask(q).to_dict()
        a.pop("timings_ms")
        answers.append(a)
    return answers


@pytest.fixture
def split_calls(monkeypatch):
    """The doc_ids chunk.split is called for."""
    calls = []
    real = chunking.split

    def spy(doc, *args, **kwargs):
        calls.append(doc.doc_id)
        return real(doc, *args, **kwargs)

    monkeypatch.setattr(chunking, "split", spy)
    return calls


def _scratch(folder, tmp_path, embedder, **kwargs):
    scratch = tmp_path / "scratch"
    build([folder], scratch, embedder=embedder, rebuild=True, **kwargs)
    return scratch


def test_adding_a_file_splits_only_it_and_equals_a_fresh_build(tmp_path, split_calls):
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, ARTICLES)
    embedder = KeywordEmbedder()
    build([folder], idx, embedder=embedder)
    assert sorted(split_calls) == sorted(ARTICLES)
    split_calls.clear()

    _write(folder, dict([NEW]))  # sorts between the others: the rows after it move
    report = build([folder], idx, embedder=embedder)
    assert report.added == ["orchard.txt"] and report.reused == 3
    assert split_calls == ["orchard.txt"]
    assert all(e["split"] for e in storage.read_manifest(idx)[1]["documents"].values())

    _assert_fresh(folder, idx, tmp_path, embedder)


def test_removing_a_file_forgets_its_terms_like_a_fresh_build(tmp_path, split_calls):
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, {**ARTICLES, NEW[0]: NEW[1]})
    embedder = KeywordEmbedder()
    build([folder], idx, embedder=embedder)
    assert storage.load(idx).sparse.knows("tonn")
    split_calls.clear()

    (folder / "orchard.txt").unlink()
    build([folder], idx, embedder=embedder)
    assert split_calls == []
    assert not storage.load(idx).sparse.knows("tonn")  # "tonnes" was only in the removed file
    _assert_fresh(folder, idx, tmp_path, embedder)


@pytest.mark.parametrize("change", ["text", "title", "markdown"])
def test_a_changed_document_is_split_again(tmp_path, split_calls, change):
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, ARTICLES)
    embedder = KeywordEmbedder()
    build([folder], idx, embedder=embedder)
    split_calls.clear()
    if change == "text":  # same length, other words
        (folder / "mill.txt").write_text(ARTICLES["mill.txt"].replace("1890", "1891"), encoding="utf-8")
        expected = ["mill.txt"]
    elif change == "title":  # only the title line: rows may stay, passage texts (title first) do not
        (folder / "quarry.txt").write_text(ARTICLES["quarry.txt"].replace("Quarry lake closed", "Quarry pond closed"),
                                           encoding="utf-8")
        expected = ["quarry.txt"]
    else:  # the same text read as Markdown: other blocks and title
        (folder / "mill.txt").rename(folder / "mill.md")
        (folder / "mill.md").write_text("# " + ARTICLES["mill.txt"], encoding="utf-8")
        expected = ["mill.md"]
    build([folder], idx, embedder=embedder)
    assert split_calls == expected
    _assert_fresh(folder, idx, tmp_path, embedder)


def test_other_chunk_settings_split_everything_again(tmp_path, split_calls):
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, ARTICLES)
    embedder = HashEmbedder()
    build([folder], idx, embedder=embedder)
    split_calls.clear()
    other = ChunkSettings(sentences_per_chunk=2, overlap=0)
    build([folder], idx, embedder=embedder, chunk_settings=other)
    assert sorted(split_calls) == sorted(ARTICLES)
    scratch = _scratch(folder, tmp_path, embedder, chunk_settings=other)
    _assert_same(_arrays(idx), _arrays(scratch))


def test_an_index_without_split_keys_splits_again_once(corpus, legacy_index, tmp_path, split_calls):
    """An index written before split keys and term counts existed still updates: its documents are
    split and tokenized again, and the build after that reuses them."""
    idx, embedder = legacy_index, KeywordEmbedder()
    gen = storage.current_generation(idx)
    manifest = json.loads((gen / "manifest.json").read_text())
    for entry in manifest["documents"].values():
        del entry["split"]
    del manifest["files"][sparse.TERM_COUNTS]
    (gen / sparse.TERM_COUNTS).unlink()
    (gen / "manifest.json").write_text(json.dumps(manifest))

    _write(corpus, dict([NEW]))
    report = build([corpus], idx, embedder=embedder)
    old = ["alpha.txt", "beta.md", "sub/gamma.txt"]
    assert sorted(split_calls) == sorted([*old, NEW[0]]) and report.reused == 3  # vectors still reused
    scratch = _scratch(corpus, tmp_path, embedder)
    _assert_same(_arrays(idx), _arrays(scratch))

    split_calls.clear()
    (corpus / "beta.md").unlink()
    build([corpus], idx, embedder=embedder)
    assert split_calls == []


def test_an_index_from_before_segments_takes_over_rows_terms_and_vectors(corpus, legacy_index, tmp_path, split_calls):
    """The first build over a generation from before segments writes one segment of everything, the
    documents it had split and embedded taken over, not split or embedded again."""
    embedder = KeywordEmbedder()
    _write(corpus, dict([NEW]))
    report = build([corpus], legacy_index, embedder=embedder)
    assert split_calls == [NEW[0]] and report.reused == 3 and report.added == [NEW[0]]
    assert list(storage.load(legacy_index).manifest["segments"]) == ["s000002"]
    _assert_fresh(corpus, legacy_index, tmp_path, embedder)


def test_two_documents_with_the_same_text_both_get_their_terms(tmp_path, split_calls):
    text = ARTICLES["quarry.txt"]
    one = parse(text, "a.txt")
    idx = tmp_path / "idx"
    embedder = KeywordEmbedder()
    build(index_dir=idx, documents=[one], embedder=embedder)
    split_calls.clear()
    docs = [one, parse(text, "b.txt"), parse(ARTICLES["mill.txt"], "c.txt")]
    assert split_key(docs[0], ChunkSettings()) == split_key(docs[1], ChunkSettings())
    build(index_dir=idx, documents=docs, embedder=embedder)
    assert split_calls == ["c.txt"]
    scratch = tmp_path / "scratch"
    build(index_dir=scratch, documents=docs, embedder=embedder, rebuild=True)
    _assert_same(_arrays(idx), _arrays(scratch))


def _segment_terms(tokens):
    """A segment's BM25 files, in memory, for passages with these terms: (vocab, ptr, rows, tf)."""
    p = sparse.Postings.of(tokens, range(len(tokens)))
    ptr = np.zeros(len(p.vocab) + 1, np.int64)
    np.cumsum(np.bincount(p.term, minlength=len(p.vocab)), out=ptr[1:])
    return p.vocab, ptr, p.passage, p.tf


@pytest.mark.parametrize("seed", range(5))
def test_bm25_over_segments_scores_as_bm25s_does_bit_for_bit(seed):
    """Passages spread over three segments, some of them no longer in the generation, and in another
    order there: the scores are those of a bm25s index of the live passages in reading order."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    segments = [[[words[int(min(i, 299))] for i in rng.zipf(1.3, size=int(rng.integers(0, 40)))]
                 for _ in range(int(rng.integers(1, 120)))] for _ in range(3)]
    live = [(k, j) for k, seg in enumerate(segments) for j in range(len(seg)) if rng.random() < 0.7]
    live = [live[i] for i in rng.permutation(len(live))]  # the generation's reading order
    rows = [np.full(len(seg), -1) for seg in segments]
    for r, (k, j) in enumerate(live):
        rows[k][j] = r
    ours = sparse.Bm25([(*_segment_terms(seg), rows[k]) for k, seg in enumerate(segments)], len(live))
    tokens = [segments[k][j] for k, j in live]
    ref = bm25s.BM25()
    ref.index([t or [""] for t in tokens], show_progress=False)
    assert [w for w in ours.vocabulary() if w] == sorted(w for w in ref.vocab_dict if w)
    for q in (["w1"], ["w2", "w7", "w1"], ["w200", "w3"], ["w1", "w1"], ["w299", "nowhere"]):
        known = [w for w in q if w in ref.vocab_dict]
        expected = ref.get_scores(known) if known else np.zeros(len(tokens), np.float32)
        got = ours.scores(q)
        assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()  # bit for bit


def test_postings_moved_and_added_equal_postings_made_at_once():
    a = [["ferry", "harbor", "ferry"], [], ["mill", "loom"], ["algae", "lake"]]
    b = [["apple", "cider", "harbor"], ["zebra"]]
    p = sparse.Postings.of(a, range(4))
    # passages 1 and 2 are dropped (with "loom", "mill" and ""), 0 and 3 move to 2 and 0
    together = p.moved(np.array([2, -1, -1, 0])) + sparse.Postings.of(b, [1, 3])
    expected = sparse.Postings.of([a[3], b[0], a[0], b[1]], range(4))
    assert together.vocab == expected.vocab == ("algae", "apple", "cider", "ferry", "harbor", "lake", "zebra")
    for name in ("term", "passage", "tf"):
        assert np.array_equal(getattr(together, name), getattr(expected, name)), name
    assert together.tf[together.vocab.index("ferry") == together.term].tolist() == [2]


@pytest.mark.parametrize("seed", range(4))
def test_postings_of_many_moved_passages_and_a_few_new_ones(seed):
    """The two ways a build merges counts (inserting a few entries among many, or sorting all of
    them when passages change order) give what counting everything afresh gives."""
    rng = np.random.default_rng(seed)
    words = [f"t{i:03d}" for i in range(500)]
    old = [[words[int(min(i, 499))] for i in rng.zipf(1.2, size=int(rng.integers(0, 30)))] for _ in range(300)]
    fresh = [[words[int(min(i, 499))] + "x" for i in rng.zipf(1.2, size=5)] for _ in range(3)]
    kept = sorted(rng.choice(300, size=250, replace=False).tolist())
    if seed % 2:  # a renamed document moves: passages change order
        kept = kept[100:] + kept[:100]
    new_row = np.full(300, -1)
    new_row[kept] = np.arange(250)
    together = sparse.Postings.of(old, range(300)).moved(new_row) + sparse.Postings.of(fresh, [250, 251, 252])
    expected = sparse.Postings.of([old[p] for p in kept] + fresh, range(253))
    assert together.vocab == expected.vocab
    for name in ("term", "passage", "tf"):
        assert np.array_equal(getattr(together, name), getattr(expected, name)), name


def test_library_bench_times_adding_and_removing_an_article_beyond_embedding_it():
    from evals import bench

    words, cumulative = bench._words()
    assert bench.article(7, words, cumulative) == bench.article(7, words, cumulative) != bench.article(8, words, cumulative)
    (row,) = bench.bench_library([0.03], repeats=1)
    assert row["mb"] == 0.03 and row["documents"] == 7 and row["dim"] == 384 and row["passages"] > 7
    assert 0 < row["add_embed_s"] < row["add_s"]
    assert row["add_overhead_s"] == pytest.approx(row["add_s"] - row["add_embed_s"]) and row["load_s"] > 0
    assert row["add_overhead_over_goal"] == pytest.approx(row["add_overhead_s"] / bench.GOALS["library_add_overhead_s"])
    assert "library" in bench.STEPS
    page = bench.markdown({"machine": {"cpu": "x", "cores": 2, "torch_threads": 2, "faiss_threads": 1, "python": "3"},
                           "latency": {"query_p50_over_encode": 1, "ask_p50_ms": 1, "encode_p50_ms": 1, "ask_p95_ms": 1,
                                       "query_p50_over_torch_encode": 0.5, "torch_encode_p50_ms": 2},
                           "build": {"build_over_encode": 1, "build_s": 1, "encode_all_s": 1, "passages": 1, "sentences": 1},
                           "startup": {"help_s": 0.1, "ask_s": 1, "serve_s": 1}, "scale": [], "throughput": {},
                           "library": [{**row, "mb": 50, "add_overhead_s": 1.5, "add_overhead_over_goal": 1.5}]})
    assert ("| adding an article to a 50 MB library, beyond embedding it | 1.50 s (1.50× the target) | < 1 s | "
            "**not met** |") in page
    assert "| 50 MB | 7 |" in page


# ------------------------------------------------------------------- unchanged files are not read again
@pytest.fixture
def reads(monkeypatch):
    """The doc_ids of files a build reads (and parses)."""
    import rag.ingest

    got = []
    real = rag.ingest.read_document

    def counting(path, doc_id):
        got.append(doc_id)
        return real(path, doc_id)

    monkeypatch.setattr(rag.ingest, "read_document", counting)
    return got


def _age(folder, seconds=3600):
    """Make every file look last written ``seconds`` ago (older than the racy window)."""
    import os
    import time

    for f in folder.iterdir():
        t = time.time() - seconds
        os.utime(f, (t, t))


def _aged_index(tmp_path):
    """(folder, index, embedder): the articles, last written an hour ago, indexed once."""
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, ARTICLES)
    _age(folder)
    embedder = KeywordEmbedder()
    build([folder], idx, embedder=embedder)
    return folder, idx, embedder


def test_files_unchanged_since_they_were_read_are_not_read_again(tmp_path, reads):
    folder, idx, embedder = _aged_index(tmp_path)
    assert sorted(reads) == sorted(ARTICLES)
    reads.clear()
    _write(folder, dict([NEW]))
    report = build([folder], idx, embedder=embedder)
    assert reads == ["orchard.txt"] and report.added == ["orchard.txt"]
    # Taken over unread, the index is still the one a fresh build makes.
    _assert_fresh(folder, idx, tmp_path, embedder)


def test_a_file_changed_since_is_read_again_and_answers_from_its_new_text(tmp_path, reads):
    folder, idx, embedder = _aged_index(tmp_path)
    reads.clear()
    changed = ARTICLES["mill.txt"].replace("2.1 million", "3.4 million")
    assert len(changed) == len(ARTICLES["mill.txt"])  # the same size: only the mtime tells
    (folder / "mill.txt").write_text(changed, encoding="utf-8")
    report = build([folder], idx, embedder=embedder)
    assert reads == ["mill.txt"] and report.changed == ["mill.txt"]
    assert "3.4 million" in storage.load(idx).document("mill.txt").text


def test_a_file_written_just_before_it_was_read_is_read_again(tmp_path, reads):
    """Within the racy window a second write could keep size and mtime: such a file is not trusted."""
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, ARTICLES)  # written now: mtime within RACY_NS of when the build sees it
    embedder = KeywordEmbedder()
    build([folder], idx, embedder=embedder)
    reads.clear()
    build([folder], idx, embedder=embedder, rebuild=False)
    assert sorted(reads) == sorted(ARTICLES)


def test_files_read_by_another_reader_version_are_read_again(tmp_path, reads, monkeypatch):
    import rag.ingest

    folder, idx, embedder = _aged_index(tmp_path)
    reads.clear()
    monkeypatch.setattr(rag.ingest, "READER_VERSION", rag.ingest.READER_VERSION + 1)
    build([folder], idx, embedder=embedder, rebuild=False)
    assert sorted(reads) == sorted(ARTICLES)


# ------------------------------------------------------------------- segments shared between generations
# Each named to sort before the articles and the notes before it: reading order is not the order
# segments were written in.
SMALL = {f"a-note{9 - i}.txt": f"Note {i} from the pier\n\nThe pier counted {i} gulls at dawn. The gulls left by noon.\n"
         for i in range(1, 6)}


def _segments(idx):
    """{segment: documents of it in the live generation} in the order the manifest lists segments."""
    manifest = storage.read_manifest(idx)[1]
    held = {s: 0 for s in manifest["segments"]}
    for e in manifest["documents"].values():
        held[e["segment"]] += 1
    return held


def test_a_new_generation_links_the_files_of_the_segments_it_keeps(tmp_path, split_calls):
    import os

    folder, idx, embedder = _aged_index(tmp_path)
    first = storage.current_generation(idx)
    _write(folder, dict([NEW]))
    embedder.embedded.clear()
    build([folder], idx, embedder=embedder)
    second = storage.current_generation(idx)
    assert _segments(idx) == {"s000001": 3, "s000002": 1}
    # The three articles' segment is the same files, not a copy; only the new article was written.
    for old in first.glob("s000001.*"):
        assert os.stat(second / old.name).st_ino == os.stat(old).st_ino and os.stat(old).st_nlink == 2
    assert json.loads(storage.Segment(second, "s000002").lines()[0])["doc_id"] == NEW[0]
    assert split_calls[-1:] == [NEW[0]] and embedder.embedded[0].startswith("Orchard harvest")

    # A third build removes the first generation: the files the live one links stay, and it answers.
    (folder / "quarry.txt").unlink()
    build([folder], idx, embedder=embedder)
    assert not first.exists() and second.exists()
    third = storage.current_generation(idx)
    assert _segments(idx) == {"s000001": 2, "s000002": 1}
    assert os.stat(third / "s000001.chunk_vectors.npy").st_nlink == 2  # the second and third generations
    _assert_fresh(folder, idx, tmp_path, embedder)


def test_adding_one_article_at_a_time_merges_small_segments_and_equals_a_fresh_build(tmp_path, split_calls):
    folder, idx, embedder = _aged_index(tmp_path)
    seen = []
    for name, text in SMALL.items():
        split_calls.clear()
        embedder.embedded.clear()
        _write(folder, {name: text})
        build([folder], idx, embedder=embedder)
        assert split_calls == [name]  # merged segments take their rows over: only the new article is split
        assert all("gulls" in t or t.startswith("Note") for t in embedder.embedded)  # ... and embedded
        seen.append(_segments(idx))
    # The newest segments are merged while each holds at most twice what the new one gathered.
    assert seen == [{"s000001": 3, "s000002": 1},
                    {"s000003": 5},
                    {"s000003": 5, "s000004": 1},
                    {"s000003": 5, "s000005": 2},
                    {"s000006": 8}]
    _assert_fresh(folder, idx, tmp_path, embedder)


def test_a_segment_most_of_whose_documents_are_gone_is_written_again(tmp_path, split_calls):
    folder, idx = tmp_path / "lib", tmp_path / "idx"
    _write(folder, {**ARTICLES, NEW[0]: NEW[1]})
    embedder = KeywordEmbedder()
    build([folder], idx, embedder=embedder)
    for name in ("harbor.md", "mill.txt", "quarry.txt"):
        (folder / name).unlink()
    split_calls.clear()
    embedder.embedded.clear()
    report = build([folder], idx, embedder=embedder)
    assert report.removed == ["harbor.md", "mill.txt", "quarry.txt"] and report.reused == 1
    assert _segments(idx) == {"s000002": 1} and split_calls == [] and embedder.embedded == []
    _assert_fresh(folder, idx, tmp_path, embedder)


def test_a_large_build_splits_in_worker_processes_into_the_same_rows(tmp_path, monkeypatch):
    """Above PARALLEL_SPLIT_CHARS, documents are split by one process per CPU (pysbd is pure Python);
    the index is the one a single process makes, array for array."""
    import concurrent.futures

    from rag import pipeline

    folder = tmp_path / "lib"
    _write(folder, {**ARTICLES, NEW[0]: NEW[1]})
    embedder = KeywordEmbedder()
    build([folder], tmp_path / "serial", embedder=embedder)
    pools = []

    class Counted(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(args[0] if args else kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

        def map(self, *args, **kwargs):  # the workers' splits, all of them (no fallback to this process)
            out = list(super().map(*args, **kwargs))
            pools.append(len(out))
            return out

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Counted)
    monkeypatch.setattr(pipeline, "PARALLEL_SPLIT_CHARS", 0)
    monkeypatch.setattr(pipeline, "cpu_threads", lambda: 2)
    monkeypatch.setattr(pipeline.threading, "active_count", lambda: 1)  # other tests may leave threads running
    build([folder], tmp_path / "parallel", embedder=embedder)
    assert pools == [2, 4]  # two workers split the four articles
    _assert_same(_arrays(tmp_path / "parallel"), _arrays(tmp_path / "serial"))


def _assert_vectors_are_their_rows(idx_dir, embedder):
    """Every stored vector is the embedding of its own row's text (what _assemble embeds for it)."""
    from rag.pipeline import _passage_texts, _sentence_texts

    index = storage.load(idx_dir)
    chunk_vectors, sentence_vectors = np.asarray(index.chunk_vectors), np.asarray(index.sentence_vectors)
    for d_i, info in enumerate(index.docs):
        doc = index.document(info.doc_id)
        c = np.flatnonzero(index.chunks[:, storage.C_DOC] == d_i)
        s = np.flatnonzero(index.sentences[:, storage.S_DOC] == d_i)
        assert len(c) and len(s)
        expected = embedder.embed_documents(_passage_texts(doc, index.chunks[c], ChunkSettings()))
        assert np.array_equal(chunk_vectors[c], expected), info.doc_id
        assert np.array_equal(sentence_vectors[s], embedder.embed_documents(_sentence_texts(doc, index.sentences[s]))), info.doc_id


def test_each_vector_belongs_to_its_row_in_a_first_build_and_after_reusing_documents(tmp_path):
    """A build embeds all new passages, then all new sentences, in one call: with nothing reused the two
    halves are the index's arrays as they are (no copy); with documents reused they are placed among the
    reused ones. Either way each row keeps its own text's vector."""
    folder = tmp_path / "lib"
    _write(folder, ARTICLES)
    embedder = HashEmbedder()  # a different vector for every text: a row given another's vector shows
    build([folder], tmp_path / "idx", embedder=embedder)
    _assert_vectors_are_their_rows(tmp_path / "idx", embedder)
    _write(folder, {NEW[0]: NEW[1], "mill.txt": ARTICLES["mill.txt"] + "\nA cafe opened inside in 2021.\n"})
    embedder.embedded.clear()
    build([folder], tmp_path / "idx", embedder=embedder)
    assert embedder.embedded and not any("quarry" in t.lower() for t in embedder.embedded)  # quarry.txt reused
    _assert_vectors_are_their_rows(tmp_path / "idx", embedder)


@pytest.mark.parametrize("seed", [0, 1])
def test_postings_count_each_term_of_each_passage_as_a_counter_does(seed):
    from collections import Counter

    rnd = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(40)]
    tokens = [list(rnd.choice(words, size=rnd.integers(0, 12))) for _ in range(200)]
    rows = rnd.permutation(1000)[:200]  # rows in no order, as a build passes them after removals
    p = sparse.Postings.of(tokens, rows)
    got = {(p.vocab[t], int(r)): int(n) for t, r, n in zip(p.term, p.passage, p.tf)}
    expected = {(w, int(r)): n for r, t in zip(rows, tokens) for w, n in Counter(t or [""]).items()}
    assert got == expected
    assert list(p.vocab) == sorted({w for w, _ in expected})
    order = list(zip(p.term.tolist(), p.passage.tolist()))
    assert order == sorted(order)  # by term, then passage
