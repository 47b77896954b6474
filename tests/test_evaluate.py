"""The Evaluate tab's figures are those of `rag eval` (evals.run) on the same set, and a set with its
own documents never touches the library."""
import json
import re
import zipfile
from pathlib import Path

import pytest

from conftest import DATA, MINI
from evals import formats, run
from fakes import KeywordEmbedder, rule_model
from rag.cli import main
from rag.pipeline import Assistant, build
from ui import evaluate
from ui.app import Holder

LATENCY = ("latency_p50_ms", "latency_p95_ms")  # timings: the only figures two runs may not share


def timeless(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k not in LATENCY}


@pytest.fixture
def library(tmp_path):
    """(Holder over the mini corpus with the fakes, embedder, index dir)."""
    e = KeywordEmbedder()
    build([MINI], tmp_path / "idx", embedder=e)
    return Holder(tmp_path / "idx", e, rule_model()), e, tmp_path / "idx"


def mixed_set(tmp_path) -> Path:
    """questions_mini with three questions made wrong, so the figures are not all 1.0: m2's gold is
    a number the article lacks, m3's a word and document the answer lacks, m6 (unanswerable) gets a gold
    string, which a refusal never holds."""
    rows = [json.loads(line) for line in (DATA / "questions_mini.jsonl").read_text().splitlines()]
    rows[1]["answers"] = ["40,000"]
    rows[2].update(source="alpha.txt", answers=["turbines"], evidence=[])
    rows[5]["answers"], rows[5]["source"] = ["sheep"], "alpha.txt"
    out = tmp_path / "mixed.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.mark.parametrize("which", ["mini", "mixed"])
def test_the_tab_shows_the_figures_of_evals_run(library, tmp_path, which):
    holder, e, idx = library
    path = DATA / "questions_mini.jsonl" if which == "mini" else mixed_set(tmp_path)
    result = evaluate.Evaluator(holder, e, tmp_path / "runs").run(path, k=3)
    records, summary, _ = run.evaluate(Assistant.load(idx, embedder=e, model=rule_model()), formats.load(path), idx, k=3)
    assert timeless(result.summary) == timeless(summary)
    assert {t: timeless(v) for t, v in result.types.items()} == {t: timeless(v) for t, v in run.by_type(records).items()}
    assert {s: timeless(v) for s, v in result.splits.items()} == {s: timeless(v) for s, v in run.by_split(records).items()}
    assert [m.id for m in result.misses] == [str(r["id"]) for r in run.worst_misses(records)]
    if which == "mixed":  # m2 and m3 miss their (wrong) gold; m6 is refused though it now has one
        assert (summary["accuracy"], sorted(m.id for m in result.misses)) == (0.5, ["m2", "m3", "m6"])
    # the page shows each figure as `rag eval` prints it
    cells = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="rag-num">([^<]*)</td>', evaluate.summary_html(result)))
    assert cells == {k: run.fmt(summary[k]) for k in run.TABLE_KEYS if k in summary and k not in LATENCY} | \
        {k: cells[k] for k in LATENCY}
    groups = evaluate.groups_html(result)
    for t, v in run.by_type(records).items():
        row = re.search(rf'<tr><th scope="row">{t}</th>(.*?)</tr>', groups)[1]
        assert re.findall(r'<td class="rag-num">([^<]*)</td>', row) == [run.fmt(v.get(k)) for k in run.GROUP_KEYS]


def test_the_tab_agrees_with_the_rag_eval_command(library, tmp_path, monkeypatch, capsys):
    holder, e, idx = library
    path = mixed_set(tmp_path)
    load = Assistant.load.__func__
    monkeypatch.setattr(Assistant, "load", classmethod(
        lambda cls, index_dir=None, embedder=None, settings=None, model=None, store=None:
        load(cls, index_dir, embedder or e, settings, model or rule_model(), store=store)))
    assert main(["eval", str(path), "--index-dir", str(idx), "-k", "3", "--report", str(tmp_path / "cli"),
                 "--predictions", str(tmp_path / "cli" / "predictions.jsonl")]) == 0
    printed = capsys.readouterr().out
    result = evaluate.Evaluator(holder, e, tmp_path / "runs").run(path, k=3)
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    ours = json.loads((result.report / "report.json").read_text())
    assert timeless(ours["metrics"]) == timeless(report["metrics"])
    for group in ("by_type", "by_split"):
        assert {g: timeless(v) for g, v in ours[group].items()} == {g: timeless(v) for g, v in report[group].items()}
    assert ours["calibration"] == report["calibration"]
    # what the command printed, line by line, is what the tab's table shows
    cells = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="rag-num">([^<]*)</td>', evaluate.summary_html(result)))
    for line in printed.splitlines()[:-1]:
        key, value = line.split()
        assert key in LATENCY or cells[key] == value
    for key in ("model", "k", "index_dir", "corpus", "settings", "chunker", "limit", "dataset"):
        assert ours[key] == report[key] or key == "dataset" and ours[key]["content_hash"] == report[key]["content_hash"]
    # every answer the same, passage for passage (k=3: three passages each); only the timings differ
    predictions = [{**json.loads(x), "timings_ms": None} for x in (result.report / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["m1", "m2", "m3", 4, 5, "m6"]
    assert {len(p["passages"]) for p in predictions} == {3}
    assert predictions == [{**json.loads(x), "timings_ms": None}
                           for x in (tmp_path / "cli" / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p.name for p in result.report.iterdir()) == [
        "latency.png", "predictions.jsonl", "reliability.png", "report.json", "report.md", "report.zip", "types.png"]
    # the archive holds the report as written, and never itself (a zip of its own folder grows while read)
    with zipfile.ZipFile(result.report / "report.zip") as z:
        assert sorted(z.namelist()) == ["latency.png", "predictions.jsonl", "reliability.png", "report.json", "report.md",
                                        "types.png"]
        assert all(z.read(n) == (result.report / n).read_bytes() for n in z.namelist())


def test_a_squad_set_is_indexed_on_its_own_and_the_library_is_untouched(library, tmp_path, monkeypatch):
    holder, e, idx = library
    before = {p.relative_to(idx): p.read_bytes() for p in idx.rglob("*") if p.is_file()}
    catalog = [d.doc_id for d in holder.current().store.catalog()]
    steps, prepared = [], []
    result = evaluate.Evaluator(holder, e, tmp_path / "runs").run(DATA / "squad_mini.json", "squad_mini.json",
                                               step=lambda done, total: steps.append((done, total)),
                                               preparing=lambda: prepared.append(True))
    ds = formats.load(DATA / "squad_mini.json")
    assert result.index_dir == str(run.cache_dir(ds)) and Path(result.index_dir).parent == tmp_path / "cache"
    assert {p.relative_to(idx): p.read_bytes() for p in idx.rglob("*") if p.is_file()} == before
    assert [d.doc_id for d in holder.current().store.catalog()] == catalog
    # 3 questions: a step before each and one after the last
    assert (steps, prepared) == ([(0, 3), (1, 3), (2, 3), (3, 3)], [True])
    d, built = run.prepare(ds, None, embedder=e)  # the cached index, with the seconds its build took
    _, summary, _ = run.evaluate(Assistant.load(d, embedder=e, model=rule_model()), ds, d, built)
    assert timeless(result.summary) == timeless(summary) and summary["questions"] == 3
    store = evaluate.Evaluator(holder, e, tmp_path / "runs").store(result.index_dir)
    assert [doc.doc_id for doc in store.catalog()] == ["Crumb/0", "Crumb/1"]


def test_a_bad_upload_is_named_by_its_file_not_its_temporary_path(library, tmp_path):
    holder, e, _ = library
    bad = tmp_path / "upload-123" / "mine.json"
    bad.parent.mkdir()
    bad.write_text('{"questions": []}')
    with pytest.raises(formats.BadQuestionSet) as err:
        evaluate.Evaluator(holder, e, tmp_path / "runs").run(bad, "mine.json")
    assert str(err.value) == f"mine.json: is JSON without a SQuAD \"data\" list; expected {formats.EXPECTED}"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(formats.BadQuestionSet, match="^empty.jsonl: holds no questions; expected"):
        evaluate.Evaluator(holder, e, tmp_path / "runs").run(empty)


def test_a_miss_opens_its_answer_its_citations_and_its_expected_source(library, tmp_path):
    holder, e, _ = library
    result = evaluate.Evaluator(holder, e, tmp_path / "runs").run(mixed_set(tmp_path))
    store = holder.current().store
    m2 = next((i, m) for i, m in enumerate(result.misses) if m.id == "m2")
    i, m = m2
    panel = evaluate.miss_html(m, i, store)
    parade = "The harbor parade drew 30,000 visitors on Sunday."
    assert f'<span class="rag-q">{parade}</span> <a class="rag-cite-link" href="#miss-{i}-cite-1"' in panel
    assert "Expected: 40,000." in panel and f'href="#miss-{i}-gold"' in panel
    article = evaluate.miss_article_html(m, store, "answer")
    assert re.search(r'<mark id="rag-highlight" class="rag-quote">([^<]*)</mark>', article)[1] == parade
    assert evaluate.miss_article_html(m, store, "cite:1") == article
    # the expected source with its evidence marked; m3 has none, so its gold string is marked
    marked = r'<mark id="rag-highlight" class="rag-passage">([^<]*)</mark>'
    assert re.search(marked, evaluate.miss_article_html(m, store, "gold"))[1] == parade
    m3 = next(x for x in result.misses if x.id == "m3")
    gold = evaluate.miss_article_html(m3, store, "gold")
    assert "· alpha.txt</div>" in gold and re.search(marked, gold)[1] == "turbines"
    # m6 was refused: the closest passage's article, labelled not an answer
    k, m6 = next((k, x) for k, x in enumerate(result.misses) if x.id == "m6")
    assert evaluate.miss_article_html(m6, store, "answer").startswith('<div class="rag-note rag-closest">')
    # questions and answers are text, never markup
    odd = evaluate.Miss("x<1>", "Is <b>this</b> **bold**?", "(refuse)", None, (), m.prediction)
    table = evaluate.misses_html(evaluate.Result("s", {}, {}, {}, (odd,), None, tmp_path, 5))
    assert "Is &lt;b&gt;this&lt;/b&gt; **bold**?" in table and "x&lt;1&gt;" in table and "<b>" not in table


def test_old_report_folders_are_removed(tmp_path, monkeypatch):
    import os
    import time

    from ui import conversation

    old, new = conversation.fresh_folder("runs", tmp_path), conversation.fresh_folder("runs", tmp_path)
    stale = time.time() - conversation.KEEP_SECONDS - 60
    os.utime(old, (stale, stale))
    newest = conversation.fresh_folder("runs", tmp_path)
    assert (old.exists(), new.exists(), newest.exists()) == (False, True, True)
