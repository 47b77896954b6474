import json
import struct

import pytest

from conftest import DATA, MINI
from evals import formats, metrics as M, run
from fakes import KeywordEmbedder
from rag.cli import main
from rag.pipeline import Assistant

QUESTIONS = DATA.parent.parent / "evals" / "questions.jsonl"
SEEDS = DATA.parent.parent / "seeds"


# ------------------------------------------------------------------------------------------ metrics

def test_squad_normalisation_f1_and_em():
    assert M.squad_normalize("The  Harbor-City!") == "harborcity"
    # prediction tokens: [harbor, city, is, big]; gold: [harbor, city] -> P = 2/4, R = 2/2, F1 = 2·0.5·1/1.5 = 0.6667
    assert M.token_f1("Harbor City is big", ["Harbor City"]) == pytest.approx(2 / 3)
    assert M.exact_match("the Harbor City.", ["Harbor City"]) == 1.0
    assert M.token_f1("nothing", ["Harbor City"]) == 0.0


def test_containment_folds_case_quotes_and_space():
    assert M.contains("He said “Quantum  Boulevard” here", ['"quantum boulevard"'])
    assert not M.contains("17.1 percent", ["18.2 percent"])


def test_abstention_arithmetic():
    # abstained:    T T F F T ; unanswerable: T F T F F
    # tp = 1 (q1), fp = 2 (q2, q5), fn = 1 (q3); P = 1/3, R = 1/2, F1 = 2·(1/3)(1/2)/(5/6) = 0.4
    # false-abstain rate = fp / answerable = 2/3
    got = M.abstention([True, True, False, False, True], [True, False, True, False, False])
    assert got == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "false_abstain_rate": 2 / 3})


def test_percentile_interpolates():
    assert M.percentile([10, 20, 30, 40], 50) == 25.0  # position 1.5 between 20 and 30
    assert M.percentile([5], 95) == 5 and M.percentile([], 50) == 0.0


def test_trec_ndcg_and_mrr():
    # ranking d1 > d2 > d3, only d2 relevant: DCG = 1/log2(3) = 0.6309, IDCG = 1 -> nDCG@10 0.6309; RR = 1/2
    got = M.trec({"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}, {"q": {"d2": 1}})
    assert got["q"]["ndcg@10"] == pytest.approx(0.63093, abs=1e-4) and got["q"]["mrr@10"] == 0.5
    # a relevant document at rank 11 is past the cut: both 0
    run11 = {f"d{i}": 100.0 - i for i in range(11)}
    got = M.trec({"q": run11}, {"q": {"d10": 1}})
    assert got["q"] == {"ndcg@10": 0.0, "mrr@10": 0.0}


# ------------------------------------------------------------------------------------------ formats

def test_format_detection_and_ids():
    ours = formats.load(DATA / "questions_mini.jsonl")
    assert ours.kind == "jsonl" and ours.documents is None
    assert [q.id for q in ours.questions] == ["m1", "m2", "m3", 4, 5, "m6"]  # line number when absent; types kept
    beir = formats.load(DATA / "beir_mini")
    assert beir.kind == "beir" and [d.doc_id for d in beir.documents] == ["d1", "d2", "d3"]
    assert [q.id for q in beir.questions] == ["q1", "q2", "q3"]  # q9 has no judgments
    assert beir.questions[2].relevant == {"d2": 1, "d1": 1} and beir.documents[0].title == "Zephyr turbines"
    squad = formats.load(DATA / "squad_mini.json")
    assert [d.doc_id for d in squad.documents] == ["Crumb/0", "Crumb/1"]
    assert [(q.id, q.answerable, q.source, q.answers) for q in squad.questions] == [
        ("s1", True, "Crumb/0", ("Harbor City",)), ("s3", False, None, ()), ("s2", True, "Crumb/1", ("Naples",))]
    # the SQuAD context is the document text itself, so answer_start offsets still hold
    assert squad.documents[1].text[59:65] == "Naples" and squad.documents[0].text[28:39] == "Harbor City"


@pytest.mark.parametrize("make, why", [
    (lambda p: p / "missing.jsonl", "does not exist"),
    (lambda p: (p / "x.csv").write_text("a,b") and p / "x.csv", "unknown extension"),
    (lambda p: (p / "x.json").write_text("[1, 2]") and p / "x.json", "without a SQuAD"),
    (lambda p: (p / "x.jsonl").write_text("{broken") and p / "x.jsonl", "cannot be parsed"),
    (lambda p: p, "is a folder without corpus.jsonl"),
])
def test_bad_question_sets_are_user_errors(tmp_path, make, why):
    with pytest.raises(formats.BadQuestionSet, match=why):
        formats.load(make(tmp_path))


# ------------------------------------------------------------------------------------------ runs



def test_jsonl_run_scores_every_question(mini_assistant):
    records = run.run(mini_assistant, formats.load(DATA / "questions_mini.jsonl").questions)
    assert [(r["id"], r["abstained"], r["correct"]) for r in records] == [
        ("m1", False, True), ("m2", False, True), ("m3", False, True), (4, False, True), (5, True, True), ("m6", True, True)]
    s = run.summarize(records)
    # 4 answerable, all answered with the gold string; 2 unanswerable, both abstained
    assert {k: s[k] for k in ("questions", "answerable", "accuracy", "hit@1", "mrr@10", "evidence_hit@5", "containment",
                              "citation_exact", "abstain_precision", "abstain_recall", "abstain_false_abstain_rate")} == {
        "questions": 6, "answerable": 4, "accuracy": 1.0, "hit@1": 1.0, "mrr@10": 1.0, "evidence_hit@5": 1.0,
        "containment": 1.0, "citation_exact": 1.0, "abstain_precision": 1.0, "abstain_recall": 1.0,
        "abstain_false_abstain_rate": 0.0}


def test_a_failing_question_is_recorded_not_fatal(mini_assistant):
    qs = [formats.Question(id="bad", question="   "), *formats.load(DATA / "questions_mini.jsonl").questions[:1]]
    records = run.run(mini_assistant, qs)
    assert records[0]["error"].startswith("EmptyQuestion") and records[1]["correct"]
    s = run.summarize(records)
    assert (s["questions"], s["errors"], s["accuracy"]) == (2, 1, 1.0)


def test_beir_is_indexed_once_into_a_cache_and_scored_with_trec(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    e = KeywordEmbedder()
    ds = formats.load(DATA / "beir_mini")
    d, seconds = run.prepare(ds, None, embedder=e)
    assert d.parent == tmp_path / "cache" and d.name.startswith("beir-") and seconds > 0
    calls = e.calls
    d2, seconds2 = run.prepare(ds, None, embedder=e)
    assert (d2, seconds2, e.calls) == (d, seconds, calls)  # reused: nothing embedded again
    records = run.run(Assistant.load(d, embedder=e), ds.questions)
    assert [r["ranked_docs"] for r in records] == [["d1", "d3", "d2"], ["d3", "d2", "d1"], ["d2", "d3", "d1"]]
    # q3: relevant d2 (rank 1) and d1 (rank 3): DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) = 1.6309 -> 0.9197
    assert records[2]["ndcg@10"] == pytest.approx(0.91972, abs=1e-4)
    assert run.summarize(records)["ndcg@10"] == pytest.approx((1 + 1 + 0.91972) / 3, abs=1e-4)


def test_squad_impossible_counts_as_unanswerable(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    e = KeywordEmbedder()
    ds = formats.load(DATA / "squad_mini.json")
    d, _ = run.prepare(ds, None, embedder=e)
    s = run.summarize(run.run(Assistant.load(d, embedder=e), ds.questions))
    # s1 right (Harbor City), s3 abstained (right), s2 right: [1] is the ovens sentence, which names no
    # place, so the next sentence, which does ("Naples") and shares "imported", is added as [2]
    assert (s["answerable"], s["unanswerable"], s["accuracy"], s["containment"], s["abstain_recall"]) == (2, 1, 1.0, 1.0, 1.0)


def test_predictions_follow_the_answer_schema(mini_assistant, tmp_path):
    records = run.run(mini_assistant, formats.load(DATA / "questions_mini.jsonl").questions)
    out = tmp_path / "p.jsonl"
    run.write_predictions(records, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["m1", "m2", "m3", 4, 5, "m6"]
    for r in rows:
        assert list(r) == ["id", "question", "answer", "abstained", "citations", "passages", "timings_ms"]
        assert isinstance(r["answer"], str) and isinstance(r["abstained"], bool)
        for c in r["citations"]:
            assert set(c) == {"n", "source", "title", "date", "start", "end", "quote", "encoding"}
            assert isinstance(c["n"], int) and isinstance(c["start"], int) and isinstance(c["end"], int)
            assert (MINI / c["source"]).read_text(encoding="utf-8")[c["start"]:c["end"]] == c["quote"]
        for p in r["passages"]:
            assert set(p) == {"rank", "source", "start", "end", "score", "text", "encoding"} and isinstance(p["score"], float)
        assert set(r["timings_ms"]) == {"embed", "retrieve", "answer", "total"}


def test_report_and_compare(mini_assistant, tmp_path):
    ds = formats.load(DATA / "questions_mini.jsonl")
    records = run.run(mini_assistant, ds.questions)
    summary = run.summarize(records)
    run.write_report(tmp_path / "a", ds, records, summary, {"model": "fake", "k": 5})
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["metrics"]["accuracy"] == 1.0 and rep["by_type"]["number"] == {"n": 2, "accuracy": 1.0, "hit@1": 1.0}
    assert rep["by_split"]["heldout"]["questions"] == 2
    md = (tmp_path / "a" / "report.md").read_text()
    assert "## By type" in md and "## Worst misses" in md and "| unanswerable | 2 | 1.000 |" in md
    for png in ("types.png", "latency.png"):
        head = (tmp_path / "a" / png).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24])[0] == 700  # 7 in × 100 dpi
    b = json.loads((tmp_path / "a" / "report.json").read_text())
    b["metrics"]["accuracy"] = 0.75
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text(json.dumps(b))
    table = run.compare(tmp_path / "a" / "report.json", tmp_path / "b" / "report.json")
    line = next(l for l in table.splitlines() if l.startswith("accuracy"))
    assert line.split() == ["accuracy", "1.000", "0.750", "-0.250"]


def test_cli_eval_user_errors(capsys, tmp_path):
    assert main(["eval", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist; expected a question set" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert "give two report.json files" in capsys.readouterr().err


def test_our_question_set_is_exact():
    """Every gold answer and evidence string is an exact substring of its source (and answers of evidence)."""
    qs = formats.load(QUESTIONS).questions
    assert len(qs) >= 80 and len({q.id for q in qs}) == len(qs)
    assert sum(not q.answerable for q in qs) >= 12
    assert {q.source for q in qs if q.source} == {p.name for p in SEEDS.glob("*.txt")}
    assert {q.split for q in qs} == {"tune", "heldout"}
    for q in qs:
        if not q.answerable:
            assert q.source is None and not q.evidence
            continue
        text = (SEEDS / q.source).read_text(encoding="utf-8")
        for e in q.evidence:
            assert e in text, (q.id, e)
        for a in q.answers:
            assert a in text and any(a in e for e in q.evidence), (q.id, a)


def test_untitled_squad_articles_keep_apart(tmp_path, monkeypatch):
    """Sets of long papers carry `document_id` and no `title`: each article keeps its own id, and the
    citations of the index built from them slice back to their own text."""
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    data = {"version": "v2.0", "data": [
        {"document_id": "paper-7", "paragraphs": [{"context": "The Zephyr turbine spins at night.", "qas": [
            {"id": "a", "question": "When does the Zephyr turbine spin?", "is_impossible": False,
             "answers": [{"text": "at night", "answer_start": 25}]}]}]},
        {"document_id": "paper-9", "paragraphs": [{"context": "The bakery oven came from Naples.", "qas": []}]},
        {"paragraphs": [{"context": "Glacier ice melts every summer.", "qas": []}]},
        {"paragraphs": [{"context": "The harbor parade drew visitors.", "qas": []}]},
    ]}
    path = tmp_path / "papers.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    ds = formats.load(path)
    assert [d.doc_id for d in ds.documents] == ["paper-7/0", "paper-9/0", "article-2/0", "article-3/0"]
    assert [d.title for d in ds.documents] == [None] * 4
    assert ds.questions[0].source == "paper-7/0"
    e = KeywordEmbedder()
    d, _ = run.prepare(ds, None, embedder=e)
    a = Assistant.load(d, embedder=e).ask("When does the Zephyr turbine spin?")
    doc = {x.doc_id: x for x in ds.documents}[a.citations[0].doc_id]
    assert a.citations[0].doc_id == "paper-7/0" and doc.text[a.citations[0].start:a.citations[0].end] == a.citations[0].quote


def test_two_documents_with_one_id_are_refused(tmp_path):
    from rag.errors import DuplicateDocumentId
    from rag.ingest import parse
    from rag.pipeline import build

    docs = [parse("The Zephyr turbine spins.", "same/0"), parse("The bakery oven is hot.", "same/0")]
    with pytest.raises(DuplicateDocumentId, match="2 documents share the id 'same/0'"):
        build(index_dir=tmp_path / "idx", documents=docs, embedder=KeywordEmbedder())
    assert not (tmp_path / "idx" / "CURRENT").exists()
