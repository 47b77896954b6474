"""The bad-input matrix and crash safety: each case ends in a clear message and the rest done."""
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from conftest import MINI
from fakes import KeywordEmbedder, rule_model
from rag.store import generations as storage
from rag.config import Settings
from rag.errors import EmptyQuestion
from rag.ingest import ingest
from rag.pipeline import MAX_QUESTION_CHARS, Assistant, build
from rag.text import tokenize

HERE = Path(__file__).parent


# ------------------------------------------------------------------------------------------ crashes

BUILD = (
    "import sys; sys.path.insert(0, {tests!r}); from fakes import KeywordEmbedder; from rag.pipeline import build; "
    "build([{corpus!r}], {idx!r}, embedder=KeywordEmbedder())"
)


@pytest.mark.parametrize("point", ["write-start", "write-middle", "before-rename", "after-rename"])
def test_sigkill_during_index_leaves_an_index_that_answers(corpus, tmp_path, point):
    e = KeywordEmbedder()
    idx = tmp_path / "idx"
    build([corpus], idx, embedder=e)
    question = "Where is Zephyr Dynamics based?"
    before = Assistant.load(idx, embedder=e).ask(question).to_dict()
    (corpus / "alpha.txt").write_text("Moved\n\nZephyr Dynamics is now based in Hillside.\n")
    env = {**os.environ, "RAG_TEST_PAUSE_AT": point, "RAG_TEST_PAUSE_SECONDS": "60"}
    proc = subprocess.Popen([sys.executable, "-c", BUILD.format(tests=str(HERE), corpus=str(corpus), idx=str(idx))],
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == f"paused at {point}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    after = Assistant.load(idx, embedder=e).ask(question).to_dict()
    if point == "after-rename":  # the new generation was already live: the new text answers
        assert "Hillside" in after["answer"]
    else:  # the old generation still answers, exactly as before
        after["timings_ms"] = before["timings_ms"]
        assert after == before
    # the lock died with the process; the next build completes and cleans up what was left
    build([corpus], idx, embedder=e)
    assert "Hillside" in Assistant.load(idx, embedder=e).ask(question).text
    live = (idx / "CURRENT").read_text().strip()  # kept: the live generation and the one before it
    assert sorted(p.name for p in idx.iterdir() if p.name.startswith("gen-")) == [f"gen-{int(live[4:]) - 1:06d}", live]
    assert not [p.name for p in idx.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ questions

@pytest.fixture(scope="module")
def lenient(tmp_path_factory):
    """The mini corpus, answering whatever it can (never refusing) so the matrix exercises citations."""
    e = KeywordEmbedder()
    d = tmp_path_factory.mktemp("q") / "idx"
    build([MINI], d, embedder=e)
    return Assistant.load(d, embedder=e, settings=Settings(min_confidence=0.0), model=rule_model())


@pytest.mark.parametrize("q", ["", "   \n\t ", "?!?…", "\x00\x01\x02", "🙂🚀🎉", "—–-"])
def test_questions_without_words_are_refused_clearly(lenient, q):
    with pytest.raises(EmptyQuestion, match="has no words"):
        lenient.ask(q)


def check(assistant, answer):
    for c in answer.citations:
        assert assistant.store.document(c.doc_id).text[c.start:c.end] == c.quote


def test_a_huge_question_is_cut_with_a_notice(lenient):
    a = lenient.ask("glacier ice melt " * 10_000)  # 170,000 characters
    assert a.notice == f"Only the first {MAX_QUESTION_CHARS:,} characters of the question were used."
    assert len(a.question) == MAX_QUESTION_CHARS and a.citations[0].doc_id == "sub/gamma.txt"
    check(lenient, a)


@pytest.mark.parametrize("q, source", [
    ("Where\x00 is Zephyr\x07 Dynamics\u200b based?", "alpha.txt"),   # control characters and NUL
    ("🙂 harbor parade visitors 🎉", "sub/gamma.txt"),                  # emoji around words
    ("The harbor parade drew 30,000 visitors on Sunday.", "sub/gamma.txt"),  # a quote from an article
])
def test_odd_questions_still_answer(lenient, q, source):
    a = lenient.ask(q)
    assert a.notice == "" and a.citations[0].doc_id == source
    check(lenient, a)


def test_a_quoted_sentence_cites_itself(lenient):
    a = lenient.ask("The harbor parade drew 30,000 visitors on Sunday.")
    assert a.citations[0].quote == "The harbor parade drew 30,000 visitors on Sunday."


@pytest.mark.parametrize("q, cited", [
    ("冰川 glacier ice melt 多少？", "Last summer the glacier lost 2.4 meters of ice."),   # Chinese around English terms
    ("متى harbor parade؟", "The harbor parade drew 30,000 visitors on Sunday."),          # Arabic, with its question mark
    ("合肥的人工智能公司有多少家？", None),                                                # no word the corpus has
])
def test_other_scripts_do_not_break_anything(lenient, q, cited):
    a = lenient.ask(q)
    assert a.searched == q and len(a.hits) == 5
    if cited:
        assert a.citations[0].quote == cited
    check(lenient, a)


def test_on_topic_passages_that_do_not_answer_are_refused(mini_assistant):
    q = "What wage do workers at the Lakeview turbine plant earn?"
    a = mini_assistant.ask(q)
    # retrieval finds the turbine plant's passages: the question is on topic for alpha.txt ...
    assert [h.chunk.doc_id for h in a.hits[:2]] == ["alpha.txt", "alpha.txt"]
    # ... but no sentence holds a wage. The best, "The new plant will build 400 turbines a year."
    # (in the top passage), is close in meaning (cosine 2/√6 between their keywords lakeview, turbine, plant
    # and plant, turbine) yet holds only the IDF share of "plant" and "turbin" among the question's six
    # terms and neither of its two rarest ("earn", "wage"), so the test model (fakes.rule_model) gives it
    # p = sigmoid(4·2/√6 + 6·share + 0.5·1 − 5) < 0.5, and the question sigmoid(8p − 4) < 0.5: refused.
    idx = mini_assistant.store
    terms = ["wage", "worker", "lakeview", "turbin", "plant", "earn"]
    assert tokenize(q) == terms
    share = (idx.idf("plant") + idx.idf("turbin")) / sum(idx.idf(t) for t in terms)
    p = 1 / (1 + math.exp(-(4 * 2 / math.sqrt(6) + 6 * share + 0.5 - 5)))
    assert a.abstained and a.outcome == "refuse" and a.text == "" and a.citations == ()
    expected = 1 / (1 + math.exp(-(8 * p - 4)))
    assert a.confidence == pytest.approx(expected, abs=1e-6) and expected < 0.5
    # the refusal is the threshold acting on that confidence: at the confidence itself, that sentence is cited
    at = Assistant(idx, mini_assistant.embedder, Settings(min_confidence=a.confidence), model=mini_assistant.answerer.model).ask(q)
    assert at.citations[0].quote == "The new plant will build 400 turbines a year." and at.outcome == "possible"


# ------------------------------------------------------------------------------------------ corpus

def test_corpus_matrix(tmp_path, monkeypatch):
    c = tmp_path / "c"
    c.mkdir()
    (c / "good.txt").write_text("Good news\n\nThe river Alder floods every spring.\n", encoding="utf-8")
    (c / "copy of good.txt").write_bytes((c / "good.txt").read_bytes())
    (c / "bom.txt").write_bytes("\ufeffBOM news\n\nThe bridge at Ulm opened in 1905.\n".encode("utf-8"))
    (c / "wide.txt").write_bytes("Wide news\n\nThe ferry to Brest sails at noon.\n".encode("utf-16"))
    (c / "old.md").write_bytes("# Caf\xe9 news\n\nThe caf\xe9 in Lyon opened in 1901.\n".encode("latin-1"))
    (c / "empty.txt").write_text("")
    (c / "photo.txt").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (c / "archive.md").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00")
    with open(c / "huge.txt", "wb") as f:
        f.truncate(50 * 2**20)  # 50 MB
    words = " ".join(f"word{i}" for i in range(30_000))  # one 30,000-word line without a full stop
    (c / "runon.txt").write_text(f"Run-on\n\n{words}\n")
    (c / "secret.txt").write_text("Secret\n\nNobody may read this.\n")
    (c / "loop").symlink_to(c, target_is_directory=True)
    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied")
        return real_read(self)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    report = ingest([c])
    assert sorted(d.doc_id for d in report.documents) == ["bom.txt", "copy of good.txt", "old.md", "runon.txt", "wide.txt"]
    warned = {Path(w.split(": ")[0]).name: w.split(": ", 1)[1] for w in report.warnings}
    assert warned == {
        "archive.md": "skipped, looks like a binary file",
        "empty.txt": "skipped, no article text in it",
        "good.txt": "skipped, same text as copy of good.txt",
        "huge.txt": "skipped, larger than 20 MB; split it into smaller files",
        "old.md": "not UTF-8, decoded as Windows-1252",
        "photo.txt": "skipped, looks like a binary file",
        "secret.txt": "skipped, Permission denied",
        "wide.txt": "not UTF-8, decoded as utf-16",
    }
    e = KeywordEmbedder()
    build([c], tmp_path / "i", embedder=e)
    index = storage.load(tmp_path / "i")
    runon = index.document("runon.txt")
    rows = [r for r in range(len(index.sentences)) if index.docs[index.sentences[r, 0]].doc_id == "runon.txt"]
    assert len(rows) == 150  # 30,000 words cut into 200-word pieces
    assert all(len(index.sentence_text(r).split()) == 200 for r in rows)
    assert " ".join(index.sentence_text(r) for r in rows) == runon.text.split("\n\n")[1].strip()


def test_a_file_that_vanishes_is_a_warning(tmp_path, monkeypatch):
    from rag import ingest as ingest_module

    c = tmp_path / "c"
    c.mkdir()
    (c / "a.txt").write_text("A\n\nThe harbor ferry sails.\n")
    real = ingest_module.discover
    monkeypatch.setattr(ingest_module, "discover",
                        lambda paths: ([*real(paths)[0], ("gone.txt", c / "gone.txt")], []))
    report = ingest([c])
    assert [d.doc_id for d in report.documents] == ["a.txt"]
    assert report.warnings == [f"{c / 'gone.txt'}: skipped, it disappeared while indexing"]


# ------------------------------------------------------------------------------------------ properties

SENTENCES = ["The harbor parade drew 30,000 visitors.", "Zephyr Dynamics is based in Lakeview!", "Ice melt? Yes.",
             "“Quoted,” he said.", "Output grew 17.1 percent.", "Glacier loss hit 2.4 m.", "Dr. Quill founded it.",
             "The bakery has ovens", "🙂 emoji line", "Copyright© example.com", "Photo: Jane Doe/GT", "x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Found by this test in CI: a credit run into a sentence that lacks its full stop.
@example(docs=[["The bakery has ovens", "Photo: Jane Doe/GT", "The harbor parade drew 30,000 visitors."]], seps=" ",
         question="harbor visitors")
@given(docs=st.lists(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=8), min_size=1, max_size=3),
       seps=st.sampled_from([" ", "\n", "\n\n", "\r\n"]),
       question=st.sampled_from(["harbor visitors", "Where is Zephyr based?", "glacier ice", "ovens bakery", "17.1 percent"]))
def test_property_every_citation_slices_back(tmp_path_factory, docs, seps, question):
    c = tmp_path_factory.mktemp("p")
    for i, sentences in enumerate(docs):
        (c / f"d{i}.txt").write_text(f"Title {i}\n\n" + seps.join(sentences), encoding="utf-8", newline="")
    e = KeywordEmbedder()
    try:
        build([c], c / "idx", embedder=e)
    except Exception as err:  # a corpus of only boilerplate has nothing to index: a clear error, nothing else
        assert type(err).__name__ == "NoDocuments"
        return
    a = Assistant.load(c / "idx", embedder=e, settings=Settings(min_confidence=0.0), model=rule_model()).ask(question)
    for cit in a.citations:
        raw = (c / cit.doc_id).read_bytes().decode("utf-8")
        assert raw[cit.start:cit.end] == cit.quote
        assert "Copyright" not in cit.quote and "Photo:" not in cit.quote


def test_a_second_writer_in_another_process_is_refused(corpus, tmp_path):
    idx = tmp_path / "idx"
    env = {**os.environ, "RAG_TEST_PAUSE_AT": "write-start", "RAG_TEST_PAUSE_SECONDS": "60"}
    first = subprocess.Popen([sys.executable, "-c", BUILD.format(tests=str(HERE), corpus=str(corpus), idx=str(idx))],
                             stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert first.stdout.readline().strip() == "paused at write-start"
        from rag.errors import IndexLocked

        with pytest.raises(IndexLocked, match="Another `rag index` is writing"):
            build([corpus], idx, embedder=KeywordEmbedder())
    finally:
        first.kill()
        first.wait(timeout=30)


def test_a_tampered_index_cannot_run_code(corpus, tmp_path, capsys):
    import pickle

    import numpy as np

    from rag.cli import main

    e = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=e)
    gen = storage.current_generation(tmp_path / "idx")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    # an object array pickled into its segment's chunks.npy, with the manifest's size updated to match
    (chunks,) = gen.glob("s*.chunks.npy")
    chunks.unlink()
    np.save(chunks, np.array([Evil()], dtype=object), allow_pickle=True)
    manifest = (gen / "manifest.json").read_text()
    import json

    m = json.loads(manifest)
    m["files"][chunks.name] = chunks.stat().st_size
    (gen / "manifest.json").write_text(json.dumps(m))
    assert main(["docs", "--index-dir", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err
    assert "is unusable (cannot read its data" in err and "rag index --rebuild" in err and err.count("\n") == 1
    assert not marker.exists()
    del pickle


def test_damaged_index_on_the_command_line(corpus, tmp_path, capsys):
    from rag.cli import main

    build([corpus], tmp_path / "idx", embedder=KeywordEmbedder())
    (docs,) = storage.current_generation(tmp_path / "idx").glob("s*.docs.jsonl")
    docs.unlink()
    docs.write_text("{truncated")
    assert main(["docs", "--index-dir", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag: The index at") and "docs.jsonl is truncated or changed" in err and "--rebuild" in err
