"""One contract, every store: the local generation and Milvus (the real engine, embedded by milvus-lite)
must give the same answers, citations, catalog and texts, and change the same way."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import MINI
from fakes import KeywordEmbedder, rule_model
from rag.pipeline import Assistant, build

QUESTIONS = [
    "Where is Zephyr Dynamics based?",
    "How many ovens does the bakery run?",
    "harbor parade visitors",
    "glacier ice melt",
    "Who founded the company Zephyr Dynamics?",
    "Who won the 2018 FIFA World Cup?",
]


@pytest.fixture(params=["local", "milvus-lite"])
def kind(request):
    return request.param


@pytest.fixture
def lib(kind, tmp_path):
    """(spec, corpus, index_dir, embedder): a store over a private copy of the mini corpus."""
    corpus = tmp_path / "corpus"
    shutil.copytree(MINI, corpus)
    spec = "local" if kind == "local" else f"milvus-lite:{tmp_path / 'milvus.db'}"
    e = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=e, store=spec)
    return spec, corpus, tmp_path / "idx", e


def assistant(lib) -> Assistant:
    spec, _, index_dir, e = lib
    return Assistant.load(index_dir, embedder=e, model=rule_model(), store=spec)


def answers(a: Assistant) -> list[tuple]:
    out = []
    for q in QUESTIONS:
        ans = a.ask(q)
        out.append((q, ans.outcome, ans.text, round(ans.confidence, 6),
                    [(c.doc_id, c.start, c.end, c.quote, c.title) for c in ans.citations]))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local store's answers on the untouched mini corpus: what every store must give."""
    d = tmp_path_factory.mktemp("ref")
    e = KeywordEmbedder()
    build([MINI], d / "idx", embedder=e)
    return answers(Assistant.load(d / "idx", embedder=e, model=rule_model()))


def test_answers_and_citations_are_the_local_stores(lib, reference):
    a = assistant(lib)
    got = answers(a)
    assert got == reference
    for _, _, _, _, cites in got:
        for doc_id, start, end, quote, _ in cites:
            assert a.store.document(doc_id).text[start:end] == quote
    # the answers hold what they should, so equality above is not two empty lists
    assert "Lakeview" in got[0][2] and got[-1][1] == "refuse"


def test_catalog_and_texts(lib):
    a = assistant(lib)
    _, corpus, _, _ = lib
    assert [(i.doc_id, i.title, i.passages) for i in a.store.catalog()] == [
        ("alpha.txt", "Zephyr Dynamics opens a turbine plant in Lakeview", 2),
        ("beta.md", "Crumb and Co bakes sourdough for Harbor City", 2),
        ("sub/gamma.txt", "Glacier station records record melt", 3)]
    assert a.store.document("beta.md").text == (corpus / "beta.md").read_text(encoding="utf-8")
    assert a.store.document("../beta.md") is None and a.store.info("nope") is None
    assert len(a.store) == 7 and a.store.health()["ok"] is True


def test_add_change_and_remove_are_incremental(lib):
    spec, corpus, index_dir, e = lib
    (corpus / "ferry.txt").write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", encoding="utf-8")
    e.embedded.clear()
    report = build([corpus], index_dir, embedder=e, store=spec)
    assert report.added == ["ferry.txt"] and report.reused == 3
    assert e.embedded == ["Ferry news\nThe harbor ferry carries 900 visitors a day.", "The harbor ferry carries 900 visitors a day."]
    a = assistant(lib)
    assert a.ask("harbor ferry visitors").citations[0].quote == "The harbor ferry carries 900 visitors a day."
    (corpus / "ferry.txt").write_text("Ferry news\n\nThe harbor ferry carries 1,200 visitors a day.\n", encoding="utf-8")
    assert build([corpus], index_dir, embedder=e, store=spec).changed == ["ferry.txt"]
    a = assistant(lib)
    assert a.ask("harbor ferry visitors").citations[0].quote == "The harbor ferry carries 1,200 visitors a day."
    (corpus / "ferry.txt").unlink()
    assert build([corpus], index_dir, embedder=e, store=spec).removed == ["ferry.txt"]
    a = assistant(lib)
    assert [i.doc_id for i in a.store.catalog()] == ["alpha.txt", "beta.md", "sub/gamma.txt"]
    assert all(h.chunk.doc_id != "ferry.txt" for h in a.ask("harbor ferry visitors").hits)
    assert build([corpus], index_dir, embedder=e, store=spec).up_to_date


def test_a_rebuild_gives_the_same_answers(lib, reference):
    spec, corpus, index_dir, e = lib
    build([corpus], index_dir, embedder=e, store=spec, rebuild=True)
    assert answers(assistant(lib)) == reference


def test_removed_in_the_page_stays_out_until_brought_back(lib):
    spec, corpus, index_dir, e = lib
    build(None, index_dir, embedder=e, store=spec, remove=[str(corpus / "beta.md")])
    assert [i.doc_id for i in assistant(lib).store.catalog()] == ["alpha.txt", "sub/gamma.txt"]
    assert build(None, index_dir, embedder=e, store=spec).excluded == 1
    build(None, index_dir, embedder=e, store=spec, include_removed=True)
    assert [i.doc_id for i in assistant(lib).store.catalog()] == ["alpha.txt", "beta.md", "sub/gamma.txt"]


def test_another_reader_sees_a_change_made_elsewhere(lib):
    spec, corpus, index_dir, e = lib
    reader = assistant(lib)
    assert not reader.outdated()
    (corpus / "ferry.txt").write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", encoding="utf-8")
    build([corpus], index_dir, embedder=KeywordEmbedder(), store=spec)  # as another process or replica would
    assert reader.outdated()


def test_a_store_embedded_by_another_model_is_refused(lib):
    from fakes import HashEmbedder
    from rag.errors import EmbedderMismatch

    spec, _, index_dir, _ = lib
    with pytest.raises(EmbedderMismatch, match="was built with fake/keyword-v1 but this run uses fake/hash-v1"):
        Assistant.load(index_dir, embedder=HashEmbedder(), store=spec)


# ------------------------------------------------------------------------------------------ Milvus errors

def rag_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAG_STORE"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**env, "RAG_INDEX_DIR": str(tmp_path / "default"), "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("spec, line", [
    ("milvus://127.0.0.1:1/library", "rag: Cannot reach the Milvus store at milvus://127.0.0.1:1/library ("),
    ("milvus-lite:{tmp}/empty.db", "rag: No library in the Milvus store milvus-lite:{tmp}/empty.db: build one with "
                                   "`rag index seeds/ --store milvus-lite:{tmp}/empty.db`"),
    ("milvus-lite:{tmp}/x.sqlite", "rag: --store milvus-lite:{tmp}/x.sqlite: the embedded engine's file must end in .db, "
                                   "e.g. milvus-lite:.rag/milvus.db"),
    ("mongodb://x", "rag: --store mongodb://x: use local, milvus://HOST:19530/COLLECTION or milvus-lite:PATH.db"),
])
def test_a_bad_store_is_one_line_and_exit_2(tmp_path, spec, line):
    spec, line = spec.format(tmp=tmp_path), line.format(tmp=tmp_path)
    out = rag_cli("ask", "Where is it?", "--store", spec, tmp_path=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(line) and out.stderr.count("\n") == 1


def test_another_process_reads_the_milvus_store(tmp_path):
    """A store one process writes and a new process reads (milvus-lite serves one process at a time,
    so the writer has ended, as a `rag index` run would have)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(MINI, corpus)
    spec = f"milvus-lite:{tmp_path / 'milvus.db'}"
    write = ("import sys; sys.path.insert(0, sys.argv[1]); from fakes import KeywordEmbedder; "
             "from rag.pipeline import build; build([sys.argv[2]], sys.argv[3], embedder=KeywordEmbedder(), store=sys.argv[4])")
    subprocess.run([sys.executable, "-c", write, str(MINI.parents[1]), str(corpus), str(tmp_path / "idx"), spec],
                   check=True, timeout=120, capture_output=True)
    out = rag_cli("docs", "--store", spec, tmp_path=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines() == [
        "alpha.txt\t2021-03-03\t2 passages\tZephyr Dynamics opens a turbine plant in Lakeview",
        "beta.md\t-\t2 passages\tCrumb and Co bakes sourdough for Harbor City",
        "sub/gamma.txt\t2022-08-15\t3 passages\tGlacier station records record melt"]
    # while one process holds the file, another is told why it cannot open it
    from rag.store.milvus import MilvusStore

    held = MilvusStore(spec)
    out = rag_cli("docs", "--store", spec, tmp_path=tmp_path)
    assert out.returncode == 2 and out.stderr == (
        f"rag: Cannot reach the Milvus store at {spec} (another process has this milvus-lite file open; milvus-lite "
        "serves one process at a time): start Milvus there, or check --store / RAG_STORE\n")
    held.close()


class _Fingerprinted(KeywordEmbedder):
    def __init__(self, fingerprint: str):
        super().__init__()
        self.fingerprint = fingerprint


def test_the_store_records_the_model_files_and_re_embeds_when_they_change(kind, tmp_path):
    spec = "local" if kind == "local" else f"milvus-lite:{tmp_path / 'milvus.db'}"
    build([MINI], tmp_path / "idx", embedder=_Fingerprinted("00000000000000aa"), store=spec)
    same = _Fingerprinted("00000000000000aa")
    assert build([MINI], tmp_path / "idx", embedder=same, store=spec).up_to_date and same.embedded == []
    other = _Fingerprinted("00000000000000bb")
    report = build([MINI], tmp_path / "idx", embedder=other, store=spec)
    assert not report.up_to_date and report.reused == 0 and other.embedded
    a = Assistant.load(tmp_path / "idx", embedder=other, model=rule_model(), store=spec)
    # what Assistant.load reads to pick the query encoder's export
    assert a.store.manifest()["model"]["fingerprint"] == "00000000000000bb"


def test_a_remote_store_is_asked_in_batches_not_once_per_sentence(tmp_path):
    spec = f"milvus-lite:{tmp_path / 'milvus.db'}"
    e = KeywordEmbedder()
    build([MINI], tmp_path / "idx", embedder=e, store=spec)
    a = Assistant.load(tmp_path / "idx", embedder=e, model=rule_model(), store=spec)
    calls = []
    real = a.store.client.get
    a.store.client.get = lambda *args, **kw: calls.append(kw.get("ids") or args[1]) or real(*args, **kw)
    try:
        answer = a.ask("Where is Zephyr Dynamics based?")
        fetched = sum(len(ids) for ids in calls)
        # passages, their last sentences, the candidates, the sentences before them, their vectors
        assert answer.citations and fetched > len(calls) and len(calls) <= 5
    finally:
        a.store.close()
