import json
import struct

import pytest

from conftest import DATA, MINI
from evals import formats, metrics as M, run
from fakes import KeywordEmbedder, rule_model
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


def test_calibration_arithmetic():
    # bins of width 0.1; 0.3 opens bin 3 and 1.0 closes bin 9:
    #   bin 0: 0.05 (wrong)              conf 0.05,  right 0   -> gap 0.05,  n 1
    #   bin 1: 0.15 (wrong), 0.15 (right) conf 0.15,  right 0.5 -> gap 0.35,  n 2
    #   bin 3: 0.3 (right)               conf 0.3,   right 1   -> gap 0.7,   n 1
    #   bin 9: 0.95, 1.0 (both right)    conf 0.975, right 1   -> gap 0.025, n 2
    # ECE = (1·0.05 + 2·0.35 + 1·0.7 + 2·0.025) / 6 = 1.5 / 6 = 0.25
    got = M.calibration([0.05, 0.15, 0.15, 0.3, 0.95, 1.0], [False, False, True, True, True, True])
    assert got["ece"] == pytest.approx(0.25)
    assert [b["n"] for b in got["bins"]] == [1, 2, 0, 1, 0, 0, 0, 0, 0, 2]
    assert got["bins"][1] == pytest.approx({"lo": 0.1, "hi": 0.2, "n": 2, "confidence": 0.15, "accuracy": 0.5})
    assert got["bins"][2] == {"lo": 0.2, "hi": 0.3, "n": 0, "confidence": None, "accuracy": None}
    assert got["bins"][9]["confidence"] == pytest.approx(0.975)
    assert M.calibration([], []) == {"ece": 0.0, "bins": M.calibration([], [])["bins"]}


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

def _hand_made_records() -> list[dict]:
    """Six scored questions and one error, through ``run.score_one`` (no citations, so no index needed).

    id  type/split          gold       outcome   confidence  answer                      right?
    r1  person/tune         Lakeview   answer    0.9         "It is in Lakeview. [1]"     yes (concise)
    r2  person/tune         Lakeview   possible  0.45        "Lakeview " + 400 × "x"      yes (409 chars: not concise)
    r3  number/heldout      Lakeview   possible  0.4         "Somewhere else. [1]"        no
    r4  number/heldout      Lakeview   refuse    0.05        ""                           no (a false refusal)
    r5  unanswerable/tune   -          refuse    0.1         ""                           yes (a right refusal)
    r6  unanswerable/heldout -         answer    0.8         "It is in Lakeview. [1]"     no (a missed refusal)
    r7  person/tune         error
    """
    rows = [("r1", "person", "tune", True, "answer", 0.9, "It is in Lakeview. [1]"),
            ("r2", "person", "tune", True, "possible", 0.45, "Lakeview " + "x" * 400),
            ("r3", "number", "heldout", True, "possible", 0.4, "Somewhere else. [1]"),
            ("r4", "number", "heldout", True, "refuse", 0.05, ""),
            ("r5", "unanswerable", "tune", False, "refuse", 0.1, ""),
            ("r6", "unanswerable", "heldout", False, "answer", 0.8, "It is in Lakeview. [1]")]
    records = []
    for n, (qid, kind, split, answerable, outcome, conf, text) in enumerate(rows, start=1):
        q = formats.Question(id=qid, question=f"Question {qid}?", answers=("Lakeview",) if answerable else (),
                             source="a.txt" if answerable else None, type=kind, split=split)
        pred = {"id": qid, "question": q.question, "answer": text, "abstained": outcome == "refuse", "outcome": outcome,
                "confidence": conf, "citations": [], "passages": []}
        records.append({"id": qid, "q": q, "prediction": pred, "confidence": conf, "latency_ms": float(n),
                        **run.score_one(None, q, pred, ["a.txt"])})
    records.append({"id": "r7", "q": formats.Question(id="r7", question=" ", type="person", split="tune"),
                    "error": "EmptyQuestion: The question has no words"})
    return records


def test_summary_of_hand_made_records():
    s = run.summarize(_hand_made_records())
    # Over the 6 scored questions (r7 is an error):
    # accuracy 3/6 (r1, r2, r5); containment r1, r2 of 4 = 0.5; concise only r1 = 0.25
    # token F1 vs "Lakeview": r1 [it is in lakeview 1] P 1/5 -> 1/3; r2 [lakeview xxx…] P 1/2 -> 2/3; r3, r4 0 -> mean 0.25
    # answer chars of the 4 not refused: (22 + 409 + 19 + 22) / 4 = 118
    # outcomes: 2 answer (r1, r6), 2 possible (r2, r3), 2 refuse (r4, r5)
    # refusals r4 (answerable: fp), r5 (tp); r6 answered although unanswerable (fn):
    #   precision 1/2, recall 1/2, F1 0.5; false refusals 1 of 4 answerable = 0.25
    # answered right (answerable and correct): r1 (0.9), r2 (0.45); not: r3 0.4, r4 0.05, r5 0.1, r6 0.8
    #   bins: 0.9 -> gap 0.1; {0.45 right, 0.4 wrong} conf 0.425 right 0.5 -> gap 0.075 (n 2); 0.05 -> 0.05;
    #   0.1 (bin 1) -> 0.1; 0.8 -> 0.8. ECE = (0.1 + 2·0.075 + 0.05 + 0.1 + 0.8) / 6 = 1.2 / 6 = 0.2
    # latencies 1..6 ms: p50 3.5, p95 at position 4.75 -> 5.75
    assert s == pytest.approx({
        "questions": 7, "errors": 1, "answerable": 4, "unanswerable": 2, "accuracy": 0.5,
        "hit@1": 1.0, "hit@5": 1.0, "mrr@10": 0.0, "ndcg@10": 0.0,  # no trec scores in hand-made records
        "containment": 0.5, "concise_containment": 0.25, "f1": 0.25, "em": 0.0,
        "answer_chars": 118.0, "citation_exact": 1.0, "top_citation_in_gold": 0.0,
        "outcome_answer": 2, "outcome_answer_rate": 1 / 3, "outcome_possible": 2, "outcome_possible_rate": 1 / 3,
        "outcome_refuse": 2, "outcome_refuse_rate": 1 / 3,
        "abstain_precision": 0.5, "abstain_recall": 0.5, "abstain_f1": 0.5, "abstain_false_abstain_rate": 0.25,
        "ece": 0.2, "latency_p50_ms": 3.5, "latency_p95_ms": 5.75})


def test_tables_by_type_and_split_carry_refusals_and_calibration(tmp_path):
    records = _hand_made_records()
    types = run.by_type(records)
    # person: r1, r2 right, r7 an error; no unanswerable question, so no refusal F1; no refusal, so no precision
    #   ECE (|1 - 0.9| + |1 - 0.45|) / 2 = 0.325
    # number: r3, r4 wrong; r4 a false refusal of 2 answerable = 0.5; ECE (0.4 + 0.05) / 2 = 0.225
    # unanswerable: r5 refused (tp), r6 answered (fn): P 1, R 1/2, F1 2/3; no answerable question, so
    #   no hit@1, containment or false-refusal rate; ECE (0.1 + 0.8) / 2 = 0.45
    rounded = lambda v: round(v, 9) if isinstance(v, float) else v  # noqa: E731
    assert {t: {k: rounded(v.get(k)) for k in run.GROUP_KEYS} for t, v in types.items()} == {
        "number": {"questions": 2, "accuracy": 0.0, "hit@1": 1.0, "evidence_hit@5": None, "containment": 0.0,
                   "concise_containment": 0.0, "abstain_f1": None, "abstain_false_abstain_rate": 0.5, "ece": 0.225},
        "person": {"questions": 3, "accuracy": 1.0, "hit@1": 1.0, "evidence_hit@5": None, "containment": 1.0,
                   "concise_containment": 0.5, "abstain_f1": None, "abstain_false_abstain_rate": 0.0, "ece": 0.325},
        "unanswerable": {"questions": 2, "accuracy": 0.5, "hit@1": None, "evidence_hit@5": None, "containment": None,
                         "concise_containment": None, "abstain_f1": round(2 / 3, 9), "abstain_false_abstain_rate": None,
                         "ece": 0.45}}
    assert "abstain_precision" not in types["person"] and types["number"]["abstain_precision"] == 0.0
    ds = formats.Dataset("jsonl", tmp_path / "hand.jsonl", [r["q"] for r in records])
    run.write_report(tmp_path / "r", ds, records, run.summarize(records), {"model": "fake", "k": 5})
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    # by split: heldout r3, r4, r6 (all wrong: P 0, R 0, F1 0; false refusals 1/2; ECE (0.4 + 0.05 + 0.8) / 3);
    # tune r1, r2, r5 (all right: F1 1; no false refusal; ECE (0.1 + 0.55 + 0.1) / 3 = 0.25)
    for row in ["| metric | heldout | tune |", "| accuracy | 0.000 | 1.000 |", "| concise_containment | 0.000 | 0.500 |",
                "| abstain_f1 | 0.000 | 1.000 |", "| abstain_false_abstain_rate | 0.500 | 0.000 |", "| ece | 0.417 | 0.250 |",
                "| type | questions | accuracy | hit@1 | evidence_hit@5 | containment | concise_containment | abstain_f1 | "
                "abstain_false_abstain_rate | ece |",
                "| number | 2 | 0.000 | 1.000 | – | 0.000 | 0.000 | – | 0.500 | 0.225 |",
                "| person | 3 | 1.000 | 1.000 | – | 1.000 | 0.500 | – | 0.000 | 0.325 |",
                "| unanswerable | 2 | 0.500 | – | – | – | – | 0.667 | – | 0.450 |",
                "| 0.4–0.5 | 2 | 0.425 | 0.500 |", "| 0.2–0.3 | 0 | – | – |", "| 0.9–1.0 | 1 | 0.900 | 1.000 |",
                "| id | question | expected | got | outcome | confidence |",
                "| r6 | Question r6? | (refuse) | It is in Lakeview. [1] | answer | 0.80 |",
                "| r3 | Question r3? | Lakeview | Somewhere else. [1] | possible | 0.40 |",
                "| r4 | Question r4? | Lakeview | (refused) | refuse | 0.05 |",
                "Expected calibration error 0.200 over 10 equal-width confidence bins"]:
        assert row in md.splitlines() or row in md, row
    misses = md.split("## Worst misses")[1]
    assert misses.index("| r6 |") < misses.index("| r3 |") < misses.index("| r4 |")  # most confident first
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["calibration"]["ece"] == pytest.approx(0.2) and [b["n"] for b in rep["calibration"]["bins"]] == [
        1, 1, 0, 0, 2, 0, 0, 0, 1, 1]
    assert rep["by_type"]["unanswerable"]["abstain_f1"] == pytest.approx(2 / 3)
    head = (tmp_path / "r" / "reliability.png").read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (600, 500)  # 6 × 5 in × 100 dpi




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
    # documents the query shares nothing with tie at zero: they follow in reading order (d1, d2, d3)
    assert [r["ranked_docs"] for r in records] == [["d1", "d2", "d3"], ["d3", "d1", "d2"], ["d2", "d1", "d3"]]
    # q3: relevant d2 (rank 1) and d1 (rank 3): DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) = 1.6309 -> 0.9197
    assert records[2]["ndcg@10"] == pytest.approx(0.91972, abs=1e-4)
    assert run.summarize(records)["ndcg@10"] == pytest.approx((1 + 1 + 0.91972) / 3, abs=1e-4)


def test_squad_impossible_counts_as_unanswerable(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    e = KeywordEmbedder()
    ds = formats.load(DATA / "squad_mini.json")
    d, _ = run.prepare(ds, None, embedder=e)
    s = run.summarize(run.run(Assistant.load(d, embedder=e, model=rule_model()), ds.questions))
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
        assert list(r) == ["id", "question", "answer", "abstained", "outcome", "confidence", "citations", "passages",
                           "timings_ms"]
        assert isinstance(r["answer"], str) and isinstance(r["abstained"], bool)
        assert r["outcome"] in ("answer", "possible", "refuse") and r["abstained"] == (r["outcome"] == "refuse")
        assert isinstance(r["confidence"], float) and 0.0 <= r["confidence"] <= 1.0
        for c in r["citations"]:
            assert set(c) == {"n", "source", "title", "date", "start", "end", "quote", "encoding", "page", "url"}
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
    assert rep["metrics"]["accuracy"] == 1.0
    assert {k: rep["by_type"]["number"][k] for k in ("questions", "accuracy", "hit@1")} == {"questions": 2, "accuracy": 1.0,
                                                                                           "hit@1": 1.0}
    assert rep["by_split"]["heldout"]["questions"] == 2
    md = (tmp_path / "a" / "report.md").read_text()
    assert "## By type" in md and "## Worst misses" in md and "## Calibration" in md and "| unanswerable | 2 | 1.000 |" in md
    for png, width in (("types.png", 700), ("latency.png", 700), ("reliability.png", 600)):  # inches × 100 dpi
        head = (tmp_path / "a" / png).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24])[0] == width
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
